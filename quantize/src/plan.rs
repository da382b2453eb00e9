//! The first memory plan: every tensor but the input gets a byte offset in one arena.
//!
//! A tensor lives from the op that writes it to the last op that reads it (the model output to
//! the end). Tensors are placed largest first, each at the lowest offset where it overlaps no
//! already placed tensor whose lifetime meets its own (greedy by size, as TFLite Micro's planner).
//! Lifetimes are closed intervals, so an op's output never overlaps its inputs. A later plan may
//! relax that for in-place ops (the residual add, see DESIGN.md).
use crate::quant::{op_inputs, op_output};
use crate::QuantError;
use firmware::format::{Op, Tensor};

/// Writes every tensor's `offset` and returns the arena size in bytes.
pub fn plan(
    tensors: &mut [Tensor],
    ops: &[Op],
    input: usize,
    output: usize,
) -> Result<usize, QuantError> {
    let n = tensors.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (i, op) in ops.iter().enumerate() {
        let y = op_output(op) as usize;
        first[y] = first[y].min(i);
        last[y] = last[y].max(i);
        for x in op_inputs(op) {
            last[x as usize] = last[x as usize].max(i);
        }
    }
    last[output] = ops.len();
    let mut by_time: Vec<usize> = (0..n)
        .filter(|&t| t != input && first[t] != usize::MAX)
        .collect();
    by_time.sort_by_key(|&t| first[t]);
    let mut by_size = by_time.clone();
    by_size.sort_by_key(|&t| (std::cmp::Reverse(tensors[t].bytes()), first[t]));
    let (a, oa) = first_fit(tensors, &by_size, &first, &last);
    let (b, ob) = first_fit(tensors, &by_time, &first, &last);
    let (arena, offsets) = if a <= b { (a, oa) } else { (b, ob) };
    for (t, o) in offsets {
        tensors[t].offset = u32::try_from(o)
            .map_err(|_| QuantError::Unsupported(format!("arena offset {o} exceeds u32")))?;
    }
    Ok(arena)
}

/// Places `order` first-fit; returns the arena size and (tensor, offset) pairs.
fn first_fit(
    tensors: &[Tensor],
    order: &[usize],
    first: &[usize],
    last: &[usize],
) -> (usize, Vec<(usize, usize)>) {
    let mut placed: Vec<(usize, usize, usize)> = Vec::new(); // (tensor, offset, end)
    let mut arena = 0usize;
    for &t in order {
        let size = tensors[t].bytes();
        // Byte ranges of live-overlapping tensors, by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&(u, _, _)| first[u] <= last[t] && first[t] <= last[u])
            .map(|&(_, o, e)| (o, e))
            .collect();
        busy.sort_unstable();
        let mut offset = 0usize;
        for (o, e) in busy {
            if offset + size <= o {
                break;
            }
            offset = offset.max(e);
        }
        placed.push((t, offset, offset + size));
        arena = arena.max(offset + size);
    }
    (arena, placed.iter().map(|&(t, o, _)| (t, o)).collect())
}

/// Checks a plan: offsets in range, and no two tensors whose lifetimes meet share a byte.
pub fn check(
    tensors: &[Tensor],
    ops: &[Op],
    input: usize,
    output: usize,
    arena: usize,
) -> Result<(), String> {
    let n = tensors.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (i, op) in ops.iter().enumerate() {
        let y = op_output(op) as usize;
        first[y] = first[y].min(i);
        for x in op_inputs(op) {
            last[x as usize] = last[x as usize].max(i);
        }
        last[y] = last[y].max(i);
    }
    last[output] = ops.len();
    let live: Vec<usize> = (0..n)
        .filter(|&t| t != input && first[t] != usize::MAX)
        .collect();
    for &t in &live {
        let (o, e) = (
            tensors[t].offset as usize,
            tensors[t].offset as usize + tensors[t].bytes(),
        );
        if e > arena {
            return Err(format!("tensor {t} ends at {e} > arena {arena}"));
        }
        for &u in &live {
            if u <= t || !(first[u] <= last[t] && first[t] <= last[u]) {
                continue;
            }
            let (ou, eu) = (
                tensors[u].offset as usize,
                tensors[u].offset as usize + tensors[u].bytes(),
            );
            if o < eu && ou < e && tensors[t].bytes() > 0 && tensors[u].bytes() > 0 {
                return Err(format!("tensors {t} and {u} are live together and overlap"));
            }
        }
    }
    Ok(())
}
