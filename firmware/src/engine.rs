//! The engine: runs a validated [`Model`] on one image, op by op, in a caller-provided arena. A
//! conv or FC goes to this build's fast conv kernels ([`crate::kernels::fast`]) when it has a
//! MAC unit ([`crate::kernels::fast::NATIVE_UNIT`]: they take every conv, and the portable conv
//! is then not linked), else to the portable one; adds and pools go to their kernels in
//! [`crate::kernels`] (on the DSP unit the add and the 2x2 average pool run `asm!` loops there).
//! No heap, no recursion, no panics: anything that does not fit is an [`Error`].
//!
//! Every activation tensor lives at its planned offset in the arena (`&mut [i8]`). Where an op's
//! output is disjoint from its inputs, [`split_arena`] hands out the inputs as shared slices and
//! the output as a mutable one, without copies and without `unsafe`. Where it overlaps an input
//! (an in-place op, allowed at load only as `crate::plan_rules` says), the kernel gets one
//! buffer: a [`Shared`] io for a conv or an average pool, the in-place add for an add. On the
//! DSP unit every conv, FC and average pool gets a [`Shared`] io (`ONE_IO`).
use core::fmt;
use core::ops::Range;

use crate::format::{Op, Requant, Shift, Tensor};
use crate::kernels::{
    self, add::AddParams, add::Over, conv::ConvParams, KernelError, Rescale, Shape, Shared, Split,
};
use crate::model::{Model, ModelError};

/// Per-op hooks: a board times layers, quantize compares each op's output with float.
pub trait Profiler {
    /// Called before op `op_index` runs.
    fn begin(&mut self, op_index: usize) {
        let _ = op_index;
    }
    /// Called after op `op_index` ran, with the int8 tensor it wrote.
    fn end(&mut self, op_index: usize, output: &[i8]) {
        let _ = (op_index, output);
    }
}

/// A profiler that does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProfiler;

impl Profiler for NoProfiler {}

/// Why a run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The input slice is not `h * w * c` bytes of the model's input tensor.
    InputSize {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The arena is shorter than the model's `arena_bytes`.
    ArenaTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The arena's address is not a multiple of the model's `arena_align`.
    ArenaMisaligned {
        /// The alignment the model needs, in bytes.
        align: usize,
    },
    /// The model is invalid (cannot happen for a model from `Model::from_bytes`).
    Model(ModelError),
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        Error::Model(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InputSize { need, have } => {
                write!(
                    f,
                    "input is {have} bytes, the model takes {need} (h * w * c u8 pixels, HWC)"
                )
            }
            Error::ArenaTooSmall { need, have } => {
                write!(
                    f,
                    "arena is {have} bytes, the model needs {need} (Model::arena_bytes)"
                )
            }
            Error::ArenaMisaligned { align } => write!(
                f,
                "arena must be aligned to {align} bytes (Model::arena_align)"
            ),
            Error::Model(e) => e.fmt(f),
        }
    }
}

/// Runs `model` on `input` (u8 pixels, HWC) using `arena` (at least `model.arena_bytes()`
/// long, aligned to `model.arena_align()`), and returns the int8 logits (`classes` values,
/// borrowed from the arena).
pub fn run<'r>(
    model: &Model,
    input: &[u8],
    arena: &'r mut [i8],
    profiler: &mut impl Profiler,
) -> Result<&'r [i8], Error> {
    let need = model.input_len();
    if input.len() != need {
        return Err(Error::InputSize {
            need,
            have: input.len(),
        });
    }
    if arena.len() < model.arena_bytes() {
        return Err(Error::ArenaTooSmall {
            need: model.arena_bytes(),
            have: arena.len(),
        });
    }
    // Pointer-to-address cast: safe, only inspects the address.
    if !(arena.as_ptr() as usize).is_multiple_of(model.arena_align().max(1)) {
        return Err(Error::ArenaMisaligned {
            align: model.arena_align(),
        });
    }
    for (i, op) in model.ops().enumerate() {
        let op = op?;
        profiler.begin(i);
        let y_range = run_op(model, &op, i, input, arena)?;
        let y = arena
            .get(y_range)
            .ok_or(invalid("op: output outside the arena", i))?;
        profiler.end(i, y);
    }
    let out = range(model.output()).ok_or(invalid(
        "tensor: output outside the arena",
        model.header().output as usize,
    ))?;
    let arena: &'r [i8] = arena;
    arena.get(out).ok_or(invalid(
        "tensor: output outside the arena",
        model.header().output as usize,
    ))
}

fn invalid(what: &'static str, index: usize) -> Error {
    Error::Model(ModelError::Invalid {
        what,
        index: index as u32,
    })
}

/// Arena byte range of a tensor.
fn range(t: &Tensor) -> Option<Range<usize>> {
    let start = t.offset as usize;
    Some(start..start.checked_add(shape(t).elements()?)?)
}

fn shape(t: &Tensor) -> Shape {
    Shape::new(t.h as usize, t.w as usize, t.c as usize)
}

/// Borrows `out` mutably and each of `ins` immutably from one arena. `None` if a range is out
/// of bounds or an input overlaps the output (inputs may overlap each other).
pub fn split_arena<'a, const N: usize>(
    arena: &'a mut [i8],
    out: Range<usize>,
    ins: [Range<usize>; N],
) -> Option<(&'a mut [i8], [&'a [i8]; N])> {
    let len = out.end.checked_sub(out.start)?;
    if out.end > arena.len() {
        return None;
    }
    let (before, rest) = arena.split_at_mut(out.start);
    let (y, after) = rest.split_at_mut(len);
    let (before, after): (&'a [i8], &'a [i8]) = (before, after);
    let mut xs: [&'a [i8]; N] = [&[]; N];
    for (x, r) in xs.iter_mut().zip(ins) {
        *x = if r.end <= out.start {
            before.get(r)?
        } else if r.start >= out.end {
            after.get(r.start - out.end..r.end.checked_sub(out.end)?)?
        } else {
            return None;
        };
    }
    Some((y, xs))
}

/// A conv: the fast kernels of this build where it has a unit (they take every conv, and the
/// portable kernel is then not linked), else the portable one.
fn conv(
    io: &mut impl kernels::Io,
    ys: Shape,
    xs: Shape,
    p: &ConvParams,
) -> Result<(), KernelError> {
    if kernels::fast::TAKES_EVERY_CONV {
        return match kernels::fast::conv(io, ys, xs, p)? {
            true => Ok(()),
            false => Err(KernelError("conv: the fast kernels did not take it")), // never
        };
    }
    kernels::conv::forward(io, ys, xs, p)
}

/// Whether every conv, FC and average pool gets the arena as one [`Shared`] io, apart or in
/// place (the DSP unit: one instance of each kernel in the image, and its fast paths read through
/// `x_view`/`y_mut` at the same cost), or only in-place ones do (elsewhere the portable kernels'
/// per-element reads are cheaper through a [`Split`]).
const ONE_IO: bool = cfg!(shiftkit_dsp);

/// Whether two arena tensors share bytes.
fn overlap(a: &Tensor, b: &Tensor) -> bool {
    crate::plan_rules::overlaps(a, b)
}

/// Runs op `i`; returns the arena range of its output.
fn run_op(
    model: &Model,
    op: &Op,
    i: usize,
    input: &[u8],
    arena: &mut [i8],
) -> Result<Range<usize>, Error> {
    // After `Model::from_bytes` none of these errors can happen; they keep the engine total.
    let fail = |what: &'static str| invalid(what, i);
    let kernel = |KernelError(what)| invalid(what, i);
    let tensor = |id: u16| model.tensor(id).map_err(Error::Model);
    let range = |t: &Tensor| range(t).ok_or(fail("op: tensor range overflows"));
    let spans = fail("op: a span is outside the weight section");
    let split = fail("op: tensors outside the arena or overlapping");
    let rescale = |r: &Requant, zero_point: i8| -> Option<Rescale> {
        Some(Rescale {
            multiplier: model.i32_span(r.multiplier)?,
            shift: model.i32_span(r.shift)?,
            zero_point,
            act_min: r.act_min,
            act_max: r.act_max,
        })
    };
    match *op {
        Op::Conv {
            x,
            y,
            k,
            stride,
            pad,
            shift,
            weights,
            bias,
            requant,
            pad_value,
        } => {
            let (xt, yt) = (tensor(x)?, tensor(y)?);
            let (Some(weights), Some(bias), Some(pad_value), Some(rescale)) = (
                model.span_bytes(weights, 1),
                model.i32_span(bias),
                model.span_bytes(pad_value, 1),
                rescale(&requant, yt.zero_point),
            ) else {
                return Err(spans);
            };
            let p = ConvParams {
                k: k as usize,
                stride: stride as usize,
                pad: pad as usize,
                shift,
                weights,
                bias,
                pad_value,
                rescale,
            };
            let yr = range(&yt)?;
            let (ys, xs) = (shape(&yt), shape(&xt));
            if x == model.header().input {
                // The stem reads the caller's u8 pixels.
                let y = arena.get_mut(yr.clone()).ok_or(split)?;
                conv(&mut Split { x: input, y }, ys, xs, &p).map_err(kernel)?;
            } else if ONE_IO || overlap(&xt, &yt) {
                // In place, the output starts at least the rule's lag below the input.
                let mut io = Shared::new(arena, range(&xt)?, yr.clone()).ok_or(split)?;
                conv(&mut io, ys, xs, &p).map_err(kernel)?;
            } else {
                let (y, [x]) = split_arena(arena, yr.clone(), [range(&xt)?]).ok_or(split)?;
                conv(&mut Split { x, y }, ys, xs, &p).map_err(kernel)?;
            }
            Ok(yr)
        }
        Op::FullyConnected {
            x,
            y,
            weights,
            bias,
            requant,
        } => {
            let (xt, yt) = (tensor(x)?, tensor(y)?);
            let (Some(weights), Some(bias), Some(rescale)) = (
                model.span_bytes(weights, 1),
                model.i32_span(bias),
                rescale(&requant, yt.zero_point),
            ) else {
                return Err(spans);
            };
            // A 1x1 conv on a 1x1 image (weights `[cout][cin]` are OHWI with k = 1), so it
            // takes this build's fast conv kernels. It has no out-of-image taps: the pad values
            // are never read, and any `cin` bytes serve (the first weight row).
            let (cin, cout) = (xt.bytes(), yt.c as usize);
            let p = ConvParams {
                k: 1,
                stride: 1,
                pad: 0,
                shift: Shift::None,
                weights,
                bias,
                pad_value: weights.get(..cin).ok_or(spans)?,
                rescale,
            };
            let one = |c| Shape { h: 1, w: 1, c };
            let yr = range(&yt)?;
            if ONE_IO {
                let mut io = Shared::new(arena, range(&xt)?, yr.clone()).ok_or(split)?;
                conv(&mut io, one(cout), one(cin), &p).map_err(kernel)?;
            } else {
                let (y, [x]) = split_arena(arena, yr.clone(), [range(&xt)?]).ok_or(split)?;
                conv(&mut Split { x, y }, one(cout), one(cin), &p).map_err(kernel)?;
            }
            Ok(yr)
        }
        Op::Add {
            a,
            b,
            y,
            left_shift,
            multipliers: m,
            act_min,
            act_max,
        } => {
            let (at, bt, yt) = (tensor(a)?, tensor(b)?, tensor(y)?);
            let p = AddParams {
                a_zero_point: at.zero_point,
                b_zero_point: bt.zero_point,
                y_zero_point: yt.zero_point,
                left_shift,
                a_multiplier: m.a_multiplier,
                a_shift: m.a_shift,
                b_multiplier: m.b_multiplier,
                b_shift: m.b_shift,
                out_multiplier: m.out_multiplier,
                out_shift: m.out_shift,
                act_min,
                act_max,
            };
            let yr = range(&yt)?;
            let (ar, br) = (range(&at)?, range(&bt)?);
            // In place the output coincides with an input (plan_rules); the other is disjoint
            // or coincides too.
            if ar == yr && br == yr {
                let yv = arena.get_mut(yr.clone()).ok_or(split)?;
                kernels::add::forward_in_place(yv, Over::Both, &p).map_err(kernel)?;
            } else if ar == yr {
                let (yv, [bv]) = split_arena(arena, yr.clone(), [br]).ok_or(split)?;
                kernels::add::forward_in_place(yv, Over::A { b: bv }, &p).map_err(kernel)?;
            } else if br == yr {
                let (yv, [av]) = split_arena(arena, yr.clone(), [ar]).ok_or(split)?;
                kernels::add::forward_in_place(yv, Over::B { a: av }, &p).map_err(kernel)?;
            } else {
                let (yv, [av, bv]) = split_arena(arena, yr.clone(), [ar, br]).ok_or(split)?;
                kernels::add::forward(yv, av, bv, &p).map_err(kernel)?;
            }
            Ok(yr)
        }
        Op::AvgPool2 { x, y } | Op::MaxPool3s2 { x, y } | Op::GlobalAvgPool { x, y } => {
            let (xt, yt) = (tensor(x)?, tensor(y)?);
            let yr = range(&yt)?;
            let xs = shape(&xt);
            if let (Op::AvgPool2 { .. }, true) = (op, ONE_IO || overlap(&xt, &yt)) {
                // In place, the output starts at least `c` bytes below the input.
                let mut io = Shared::new(arena, range(&xt)?, yr.clone()).ok_or(split)?;
                kernels::avg_pool2::forward_io(&mut io, xs).map_err(kernel)?;
                return Ok(yr);
            }
            let (yv, [xv]) = split_arena(arena, yr.clone(), [range(&xt)?]).ok_or(split)?;
            match op {
                Op::AvgPool2 { .. } => kernels::avg_pool2::forward(yv, xv, xs),
                Op::MaxPool3s2 { .. } => kernels::max_pool3s2::forward(yv, xv, xs),
                _ => kernels::global_avg_pool::forward(yv, xv, xs),
            }
            .map_err(kernel)?;
            Ok(yr)
        }
    }
}
