//! Residual add, TFLite ADD semantics, element by element over equal shapes:
//! ```text
//! a' = (qa - zp_a) << left_shift          b' = (qb - zp_b) << left_shift
//! sum = mbqm(a', a_m, a_s) + mbqm(b', b_m, b_s)
//! y  = clamp(zp_y + mbqm(sum, out_m, out_s), act_min, act_max)
//! ```
//! The shifted inputs wrap for `left_shift > 23` (model validation rejects that) and the sum
//! saturates (TFLite adds plainly; both agree when it does not overflow).
//!
//! [`forward_in_place`] writes the sum over one of the inputs (the memory plan's in-place add,
//! `crate::plan_rules`): element `i` is read before it is written and never read again.
use super::KernelError;
use crate::requant::{mbqm, requantize};

/// Constants of one add (zero points from the three tensors, the rest from the op).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddParams {
    pub a_zero_point: i8,
    pub b_zero_point: i8,
    pub y_zero_point: i8,
    pub left_shift: u8,
    pub a_multiplier: i32,
    pub a_shift: i32,
    pub b_multiplier: i32,
    pub b_shift: i32,
    pub out_multiplier: i32,
    pub out_shift: i32,
    pub act_min: i8,
    pub act_max: i8,
}

/// `y = a + b`, all three of the same length.
pub fn forward(y: &mut [i8], a: &[i8], b: &[i8], p: &AddParams) -> Result<(), KernelError> {
    if a.len() != y.len() || b.len() != y.len() {
        return Err(KernelError("add: input and output lengths differ"));
    }
    for ((out, &qa), &qb) in y.iter_mut().zip(a).zip(b) {
        *out = add(qa, qb, p);
    }
    Ok(())
}

/// Which inputs of an in-place add the output buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over<'a> {
    /// `y` holds `a`; `b` is separate.
    A { b: &'a [i8] },
    /// `y` holds `b`; `a` is separate.
    B { a: &'a [i8] },
    /// `y` holds both (the two inputs are the same bytes).
    Both,
}

/// `y = a + b` with `y` holding one input (or both) on entry, as `over` says.
pub fn forward_in_place(y: &mut [i8], over: Over, p: &AddParams) -> Result<(), KernelError> {
    let other = match over {
        Over::A { b: o } | Over::B { a: o } => o,
        Over::Both => &[],
    };
    if over != Over::Both && other.len() != y.len() {
        return Err(KernelError("add: input and output lengths differ"));
    }
    for (i, out) in y.iter_mut().enumerate() {
        let o = other.get(i).copied().unwrap_or(0);
        *out = match over {
            Over::A { .. } => add(*out, o, p),
            Over::B { .. } => add(o, *out, p),
            Over::Both => add(*out, *out, p),
        };
    }
    Ok(())
}

/// One element.
#[inline]
fn add(qa: i8, qb: i8, p: &AddParams) -> i8 {
    let ls = p.left_shift as u32;
    let a1 = (qa as i32 - p.a_zero_point as i32).wrapping_shl(ls);
    let b1 = (qb as i32 - p.b_zero_point as i32).wrapping_shl(ls);
    let sum =
        mbqm(a1, p.a_multiplier, p.a_shift).saturating_add(mbqm(b1, p.b_multiplier, p.b_shift));
    requantize(
        sum,
        p.out_multiplier,
        p.out_shift,
        p.y_zero_point,
        p.act_min,
        p.act_max,
    )
}
