//! The in-place rules of the memory plan: when an op's output may share arena bytes with one of
//! its inputs. One definition, used by quantize's planner to place tensors and by the model
//! validation ([`crate::model`]) to accept a plan; the engine hands such an op one buffer
//! ([`crate::kernels::Shared`]).
//!
//! Three kinds of op may overlap their output with an input ([`in_place`]); every other op's
//! output is disjoint from its inputs:
//!
//! - **Add**: the output coincides exactly with an input (same offset; the shapes are equal), and
//!   the other input either coincides with it too or is disjoint. The kernel reads `a[i]` and
//!   `b[i]` before it writes `y[i]` and never reads index `i` again, so every read sees the
//!   original value.
//! - **Conv** with `k = 1`, `stride = 1`, `pad = 0` (shifted or not), over an int8 input: the
//!   output may overlap the input if it starts at least [`conv_lag`] bytes lower:
//!   `y_offset + lag <= x_offset`.
//! - **AvgPool2**: the output may overlap the input if `y_offset + c <= x_offset` (`c` channels;
//!   [`avg_pool2_lag`]).
//!
//! # The conv rule and its proof
//! Let the input and output have `n = h * w` pixels, `cin` and `cout` channels, and let `reach`
//! be the [`reach`] of the shift: output pixel `p` (raster index) reads input pixels in
//! `[p - reach, p + reach]` only (the shift reads `(h - dh, w - dw)`, raster index
//! `p - dh*w - dw`, with `|dh|, |dw| <= 1`; the 4C shift has `|dh| + |dw| <= 1`, hence
//! `reach = w`; the 8C shift `reach = w + 1`; no shift `0`). Out-of-image taps read pad values,
//! not the input, so they only read less.
//!
//! The contract a conv kernel keeps (portable and fast): it computes output pixels in raster
//! order, in blocks of at most [`IN_PLACE_BLOCK`] consecutive pixels; it finishes every read and
//! write of a block before it touches the next block; within a block it may interleave reads and
//! writes in any order; the writes of block `[p, q)` touch only that block's output bytes
//! `[y + p*cout, y + q*cout)`. (The portable kernel uses blocks of 1 pixel and writes each output
//! channel right after computing it; the fast kernels use blocks of 2 pixels, the DSP unit's
//! wide path blocks of 4.)
//!
//! Claim: if `y + lag <= x` with `lag = max over p in 0..n of
//! (min(p + B, n) * cout - max(p - reach, 0) * cin)` (`B` = [`IN_PLACE_BLOCK`]), no read of the
//! kernel sees a byte the kernel already wrote.
//!
//! Proof: take any read, made while block `[p, q)` runs (`q <= min(p + B, n)`). It reads an
//! input pixel of index `>= max(p - reach, 0)`, so a byte at address
//! `>= x + max(p - reach, 0) * cin`. Every byte written so far belongs to an output pixel `< q`
//! (earlier blocks and this one), so lies below `y + q * cout <= y + min(p + B, n) * cout`. By the
//! choice of `lag` that is `<= x + max(p - reach, 0) * cin`: every written byte lies below every
//! byte the read may touch. The bound holds for any split of the pixels into blocks of at most
//! `B`, so a kernel with smaller blocks (the portable one, `B = 1`) is covered by the same rule.
//!
//! # The average pool rule
//! The pool kernel computes output pixels in raster order, one at a time; within a pixel it may
//! interleave reads and writes in any order; output pixel `q = oy * (w/2) + ox` writes only its
//! own `c` bytes and reads only its 2x2 window, input pixels `r, r+1, r+w, r+w+1` with
//! `r = 2*oy*w + 2*ox`. With `y + c <= x`: the bytes written so far lie below
//! `y + (q+1)*c <= x + q*c`, the reads at or above `x + r*c`, and `q <= r` (as `w/2 <= 2w` and
//! `ox <= 2*ox`). The lag is tight: with `y + c > x` the first output pixel may overwrite the
//! first input pixel before reading it.
//!
//! # Computing the conv lag
//! The maximum over `p` is of a piecewise linear function with breakpoints at `p = reach` and
//! `p = n - B`, so it is attained at one of `0, reach, n - B, n - 1` (clamped to `0..n`);
//! [`conv_lag`] evaluates those. `firmware/tests/plan_rules.rs` checks both rules by brute force:
//! it simulates every read and write of a blocked kernel, byte by byte, on random shapes, shifts
//! and block splits, with the output placed exactly `lag` below the input, and shows that one
//! byte less is caught.
use crate::format::{Op, Shift, Tensor};

/// Largest number of output pixels a conv kernel handles as one block (see the module doc).
pub const IN_PLACE_BLOCK: usize = 4;

/// Backward reach, in raster pixels, of the reads of a stride-1 1x1 conv with `shift` on an
/// image `w` pixels wide: output pixel `p` reads input pixels in `[p - reach, p + reach]`.
pub fn reach(shift: Shift, w: usize) -> usize {
    match shift {
        Shift::None => 0,
        Shift::C4 { .. } => w,
        Shift::C8 { .. } => w + 1,
    }
}

/// The lag of an in-place stride-1 1x1 conv over `pixels` pixels: the output may overlap the
/// input if `y_offset + lag <= x_offset` (module doc). `pixels = 0` gives 0.
pub fn conv_lag(pixels: u64, cin: u64, cout: u64, reach: u64) -> u64 {
    // Every product is below 2^32 * 2^16 (pixels and channels of a valid tensor): i64 is exact.
    let b = IN_PLACE_BLOCK as i64;
    let (n, cin, cout, reach) = (pixels as i64, cin as i64, cout as i64, reach as i64);
    if n == 0 {
        return 0;
    }
    let g = |p: i64| (p + b).min(n) * cout - (p - reach).max(0) * cin;
    let lag = [0, reach, n - b, n - 1]
        .into_iter()
        .map(|p| g(p.clamp(0, n - 1)))
        .max()
        .unwrap_or(0);
    lag.max(0) as u64
}

/// The lag of an in-place 2x2 average pool over `c` channels (module doc).
pub fn avg_pool2_lag(c: u64) -> u64 {
    c
}

/// How an op's output may overlap its arena input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace {
    /// Only exactly: same offset (an add).
    Exact,
    /// Anywhere with `y_offset + lag <= x_offset` (a 1x1 stride-1 conv, a 2x2 average pool).
    Below {
        /// Bytes the output must start below the input (`crate::plan_rules::conv_lag`).
        lag: u64,
    },
}

/// How `op` may write its output `y` over its arena input `x`, `None` if it may not.
pub fn in_place(op: &Op, x: &Tensor, y: &Tensor) -> Option<InPlace> {
    match *op {
        Op::Add { .. } => Some(InPlace::Exact),
        Op::Conv {
            k: 1,
            stride: 1,
            pad: 0,
            shift,
            ..
        } if (x.h, x.w) == (y.h, y.w) => {
            let pixels = x.h as u64 * x.w as u64;
            let lag = conv_lag(
                pixels,
                x.c as u64,
                y.c as u64,
                reach(shift, x.w as usize) as u64,
            );
            Some(InPlace::Below { lag })
        }
        Op::AvgPool2 { .. } => Some(InPlace::Below {
            lag: avg_pool2_lag(x.c as u64),
        }),
        _ => None,
    }
}

/// Whether the arena byte ranges of two tensors intersect.
pub fn overlaps(a: &Tensor, b: &Tensor) -> bool {
    let (a0, b0) = (a.offset as u64, b.offset as u64);
    a0 < b0 + a_len(b) && b0 < a0 + a_len(a)
}

fn a_len(t: &Tensor) -> u64 {
    t.h as u64 * t.w as u64 * t.c as u64
}

/// Whether `op` may write its output `y` over bytes of its arena input `x` (input slot `slot`,
/// 0 or 1) as placed. `other` is the add's other input (ignored for other ops). Disjoint tensors
/// always may; this answers for overlapping ones.
pub fn output_may_overlap(
    op: &Op,
    slot: usize,
    x: &Tensor,
    other: Option<&Tensor>,
    y: &Tensor,
) -> bool {
    if !overlaps(x, y) {
        return true;
    }
    let same = |a: &Tensor, b: &Tensor| a.offset == b.offset && a_len(a) == a_len(b);
    match in_place(op, x, y) {
        Some(InPlace::Exact) => {
            let other_ok = match other {
                Some(o) => !overlaps(o, y) || same(o, y),
                None => false,
            };
            slot < 2 && same(x, y) && other_ok
        }
        Some(InPlace::Below { lag }) => y.offset as u64 + lag <= x.offset as u64,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form equals the maximum over every block start.
    #[test]
    fn lag_closed_form_is_the_maximum_over_all_block_starts() {
        for n in 1..40u64 {
            for reach in [0u64, 1, 3, 7, 12, 50] {
                for (cin, cout) in [(1u64, 1u64), (3, 8), (8, 3), (5, 5), (16, 32), (32, 16)] {
                    let b = IN_PLACE_BLOCK as u64;
                    let brute = (0..n)
                        .map(|p| {
                            ((p + b).min(n) * cout) as i64 - (p.saturating_sub(reach) * cin) as i64
                        })
                        .max()
                        .unwrap() as u64;
                    assert_eq!(
                        conv_lag(n, cin, cout, reach),
                        brute,
                        "n {n} reach {reach} {cin}->{cout}"
                    );
                }
            }
        }
    }

    #[test]
    fn reach_is_one_row_for_4c_and_one_row_and_a_pixel_for_8c() {
        assert_eq!(reach(Shift::None, 28), 0);
        assert_eq!(reach(Shift::C4 { centre: true }, 28), 28);
        assert_eq!(reach(Shift::C8 { centre: false }, 28), 29);
    }
}
