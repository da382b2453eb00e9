//! The whole memory plan, checked once at load ([`crate::Model::from_bytes`]): no two tensors
//! that are live at the same time share arena bytes, except where an op writes its output over
//! an input that it reads for the last time, as the in-place rules allow ([`crate::plan_rules`],
//! checked op by op in `model.rs`).
//!
//! A tensor is live from the op that writes it to the last op that reads it (the model's output
//! to the end of the run). One forward pass over the ops keeps the tensors live at the current op
//! in a fixed array of at most [`MAX_LIVE`] (no heap) and compares the op's output with each of
//! them: O(ops x live tensors) comparisons. A tensor's last reader is found when it is written,
//! by reading on through the remaining op records, as the dataflow check does: the op records
//! are read O(ops^2) times in all, which is most of the check's cost (measured at load on QEMU
//! Cortex-M4 in BENCHMARKS.md, "Loading a model"). Records have no fixed size, so the ops cannot
//! be walked backwards without an index, which would need memory sized by the model.
use super::{Model, ModelError};
use crate::format::Tensor;
use crate::plan_rules::overlaps;

/// The most tensors a plan may keep live at once (the zoo's residual networks need at most
/// four); a plan with more is refused with a clear error.
pub const MAX_LIVE: usize = 32;

#[derive(Clone, Copy)]
struct Live {
    id: u16,
    tensor: Tensor,
    /// Index of the last op that reads the tensor (the op count for the model's output).
    last: usize,
}

/// Checks the plan of a model whose ops and dataflow are already valid (each tensor written
/// once, every read tensor written earlier).
pub(crate) fn check(model: &Model<'_>) -> Result<(), ModelError> {
    let n = model.header().ops as usize;
    let output = model.header().output;
    let mut live = [None::<Live>; MAX_LIVE];
    let mut ops = model.ops();
    let mut i = 0;
    while let Some(op) = ops.next() {
        let y = op?.output();
        let yt = model.tensor(y)?;
        for slot in live.iter_mut() {
            let Some(e) = *slot else { continue };
            if e.last < i {
                *slot = None;
            } else if e.last > i && overlaps(&e.tensor, &yt) {
                return Err(ModelError::Clobbered {
                    tensor: e.id,
                    by: y,
                    op: i as u32,
                    read_by: e.last as u32,
                });
            }
            // e.last == i: op i reads `e` for the last time, and may write over it only as the
            // in-place rules allow (checked op by op).
        }
        let mut last = if y == output { n } else { i };
        for (k, later) in ops.clone().enumerate() {
            if later?.inputs().contains(&Some(y)) {
                last = i + 1 + k;
            }
        }
        if last > i {
            let free = live
                .iter_mut()
                .find(|s| s.is_none())
                .ok_or(ModelError::Invalid {
                    what: "plan: more tensors live at once than the firmware tracks (32)",
                    index: i as u32,
                })?;
            *free = Some(Live {
                id: y,
                tensor: yt,
                last,
            });
        }
        i += 1;
    }
    Ok(())
}
