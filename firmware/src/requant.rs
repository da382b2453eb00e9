//! Integer requantisation and rounding helpers, bit-exact with TFLite's int8 reference kernels
//! (gemmlowp `SaturatingRoundingDoublingHighMul`, `RoundingDivideByPOT`, TFLite
//! `MultiplyByQuantizedMultiplier` without `TFLITE_SINGLE_ROUNDING`) and the rounding average of
//! TFLite's `AveragePool`.
//!
//! Every function is total: no input makes it panic or overflow. Where the C++ reference has
//! undefined behaviour (a left shift that overflows `int32_t`), the result wraps (two's
//! complement), which is what the compiled reference does on every target we build for; model
//! validation keeps real files away from those inputs.

/// `SaturatingRoundingDoublingHighMul(a, b)`: the high 32 bits of `2 * a * b`, rounded
/// (nudge `+2^30` for a non-negative product, `1 - 2^30` otherwise, then divide by `2^31`
/// truncating toward zero). The only overflowing case, `i32::MIN * i32::MIN`, saturates to
/// `i32::MAX`.
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64; // |ab| <= 2^62: no overflow
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // (ab + nudge) / 2^31 is in [-2^31, 2^31) for every pair but MIN * MIN.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `RoundingDivideByPOT(x, exponent)`: `x / 2^exponent`, rounding half away from zero.
/// `exponent` is clamped to `0..=31` (the reference asserts that range).
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let e = exponent.clamp(0, 31) as u32;
    let mask = ((1i64 << e) - 1) as i32; // <= i32::MAX
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    // x >> e is in [-2^(31-e), 2^(31-e)), so adding 1 never overflows for e >= 1; for e = 0 the
    // remainder is 0 and nothing is added.
    (x >> e) + (remainder > threshold) as i32
}

/// TFLite `MultiplyByQuantizedMultiplier(x, multiplier, shift)`: `x * M` with
/// `M = multiplier * 2^(shift - 31)`, computed as
/// `rounding_divide_by_pot(srdhm(x << max(shift, 0), multiplier), max(-shift, 0))`.
/// `shift` is clamped to `-31..=31`; `x << l` wraps on overflow (see the module docs).
pub fn mbqm(x: i32, multiplier: i32, shift: i32) -> i32 {
    let shift = shift.clamp(-31, 31);
    let left = shift.max(0) as u32;
    let right = (-shift).max(0);
    rounding_divide_by_pot(srdhm(x.wrapping_shl(left), multiplier), right)
}

/// Rounded mean of `n` int8 values summing to `sum`, as TFLite's average pool:
/// `sum > 0 ? (sum + n/2) / n : (sum - n/2) / n` with C (truncating) division.
/// Returns 0 for `n <= 0`; saturates instead of overflowing near `i32::MIN`/`i32::MAX`.
pub fn round_div(sum: i32, n: i32) -> i32 {
    if n <= 0 {
        return 0;
    }
    let biased = if sum > 0 {
        sum.saturating_add(n / 2)
    } else {
        sum.saturating_sub(n / 2)
    };
    biased / n // n >= 1: no division by zero, and MIN / n with n >= 1 cannot overflow
}

/// The output stage of a conv, FC or add:
/// `clamp(zero_point + mbqm(acc, multiplier, shift), act_min, act_max)`.
/// The zero-point addition saturates (TFLite adds plainly; the results agree whenever that does
/// not overflow), and the clamp never panics, even for `act_min > act_max`.
pub fn requantize(
    acc: i32,
    multiplier: i32,
    shift: i32,
    zero_point: i8,
    act_min: i8,
    act_max: i8,
) -> i8 {
    let v = mbqm(acc, multiplier, shift).saturating_add(zero_point as i32);
    clamp_i8(v, act_min, act_max)
}

/// [`requantize`] for one output channel (or one add), with its constants decoded once. It has
/// two fast forms, which take five and three instructions on the Cortex-M DSP unit (the last,
/// `ssat`, is the saturation; [`Requantizer::apply`] clamps to the activation range instead,
/// which lies within it).
///
/// **Double rounding** (`add`, `smmlar`, `add ..., asr #31`, `asr`, `ssat`): TFLite's own
/// constants, a multiplier in `[2^30, 2^31)` with a right shift `e` in `1..=23`, and
/// `|acc| <= 2^29` (the caller's bound). Then, with `R = 2^(e-1) + zero_point * 2^e`:
///
/// 1. `srdhm(acc, m) = floor((acc*m + 2^30) / 2^31)` exactly, for any `m` (a non-negative
///    product gets nudge `2^30` and floor division; a negative one `1 - 2^30` and truncating
///    division, and `ceil((p + 1 - 2^30) / 2^31) = floor((p + 2^30) / 2^31)`), which is
///    `h = floor((2acc * m + 2^31) / 2^32)`, the rounded high word `smmlar` computes, and
///    `smmlar(2acc, m, R) = R + h`.
/// 2. `rounding_divide_by_pot(h, e)` rounds half away from zero: `floor((h + 2^(e-1) - [h < 0])
///    / 2^e)`. `[h < 0]` may be replaced by `[acc < 0]`: they differ only when `h = 0` (for
///    `acc < 0`, `acc*m + 2^30 <= 0`, so `h <= 0`), and then both give `floor(2^(e-1) / 2^e) = 0`
///    and `floor((2^(e-1) - 1) / 2^e) = 0`. The added `zero_point * 2^e` passes through the floor
///    as `+ zero_point`.
/// 3. `|h| <= 2^29` and `|R| <= 2^30 + 2^22`: nothing overflows, and clamping to `[-128, 127]`
///    (`ssat`) then to `[act_min, act_max]` is the reference's saturating add and clamp.
///
/// **Single rounding** (`add`, `smmlar`, `ssat`): a shift of 0 with any positive multiplier (the
/// form quantize writes for convs, `crate::format`), and `|acc| <= 2^29`. `rounding_divide_by_pot`
/// by 0 is the identity, so the output is `zero_point + h` (step 1), which is
/// `smmlar(2acc, m, zero_point)`; `|h| <= 2^29` again, so nothing overflows.
///
/// Anything else falls back to [`requantize`], so the result always equals it (tested on random
/// and edge constants).
#[derive(Clone, Copy, Debug)]
pub struct Requantizer {
    multiplier: i32,
    shift: i32,
    /// `R` above; the zero point in the single form.
    round: i32,
    /// The right shift `e`; 0 in the single form.
    right: u32,
    /// Whether one of the fast forms holds.
    fast: bool,
    zero_point: i8,
    act_min: i8,
    act_max: i8,
}

impl Requantizer {
    /// The output stage `requantize(acc, multiplier, shift, zero_point, act_min, act_max)` for
    /// accumulators with `|acc| <= acc_bound`.
    #[inline(always)]
    pub fn new(
        multiplier: i32,
        shift: i32,
        zero_point: i8,
        act_min: i8,
        act_max: i8,
        acc_bound: u32,
    ) -> Self {
        let bounded = acc_bound <= 1 << 29;
        let double = bounded && multiplier >= 1 << 30 && (-23..=-1).contains(&shift);
        let single = bounded && multiplier > 0 && shift == 0;
        let right = if double { (-shift) as u32 } else { 0 };
        let round = if double {
            (1i32 << (right - 1)) + ((zero_point as i32) << right)
        } else {
            zero_point as i32
        };
        Requantizer {
            multiplier,
            shift,
            round,
            right,
            fast: double || single,
            zero_point,
            act_min,
            act_max,
        }
    }

    /// `(multiplier, R, e)` of the double-rounding fast form, if it holds (see the type's docs).
    #[inline(always)]
    pub fn fast_constants(&self) -> Option<(i32, i32, u32)> {
        (self.fast && self.right != 0).then_some((self.multiplier, self.round, self.right))
    }

    /// `(multiplier, zero_point)` of the single-rounding fast form, if it holds: the output is
    /// `ssat8(smmlar(2 acc, multiplier, zero_point))` (see the type's docs).
    #[inline(always)]
    pub fn single_constants(&self) -> Option<(i32, i32)> {
        (self.fast && self.right == 0).then_some((self.multiplier, self.round))
    }

    /// The activation range `(act_min, act_max)`, the clamp after the output stage.
    #[inline(always)]
    pub fn act_range(&self) -> (i8, i8) {
        (self.act_min, self.act_max)
    }

    /// Whether the activation range is all of int8 (no clamp besides the saturation).
    #[inline(always)]
    pub fn full_range(&self) -> bool {
        self.act_min == i8::MIN && self.act_max == i8::MAX
    }

    /// The output for `acc` (`|acc|` within the bound given to [`Requantizer::new`]).
    #[inline(always)]
    pub fn apply(&self, acc: i32) -> i8 {
        if !self.fast {
            return requantize_cold(
                acc,
                self.multiplier,
                self.shift,
                self.zero_point,
                self.act_min,
                self.act_max,
            );
        }
        let q = if self.right == 0 {
            single_form(acc, self.multiplier, self.round)
        } else {
            double_form(acc, self.multiplier, self.round, self.right)
        };
        self.clamp(q)
    }

    /// The clamp to the activation range, which lies in [-128, 127]: the saturation too.
    #[inline(always)]
    fn clamp(&self, q: i32) -> i8 {
        q.max(self.act_min as i32).min(self.act_max as i32) as i8
    }

    /// [`Requantizer::apply`] for four accumulators of one channel, the form chosen once for
    /// the four (a kernel then has no select per output).
    #[inline(always)]
    pub fn apply4(&self, acc: [i32; 4]) -> [i8; 4] {
        let [a0, a1, a2, a3] = acc;
        if !self.fast {
            return [
                self.apply(a0),
                self.apply(a1),
                self.apply(a2),
                self.apply(a3),
            ];
        }
        let (m, r) = (self.multiplier, self.round);
        if self.right == 0 {
            let f = |a: i32| self.clamp(single_form(a, m, r));
            [f(a0), f(a1), f(a2), f(a3)]
        } else {
            let e = self.right;
            let f = |a: i32| self.clamp(double_form(a, m, r, e));
            [f(a0), f(a1), f(a2), f(a3)]
        }
    }
}

/// The single form before the clamp: `smmlar(2 acc, m, zero_point)` (two instructions on the
/// DSP unit; `smmlar` is one, see below).
#[inline(always)]
fn single_form(acc: i32, m: i32, zero_point: i32) -> i32 {
    form_smmlar(acc.wrapping_add(acc), m, zero_point)
}

/// The fast forms' `smmlar` (`|a| <= 2^30`, `b > 0`): on Thumb-1 (Cortex-M0/M0+, no 64-bit
/// multiply) the 32-bit [`smmlar_halves`], which those bounds allow; elsewhere [`smmlar`].
#[inline(always)]
pub(crate) fn form_smmlar(a: i32, b: i32, r: i32) -> i32 {
    #[cfg(all(target_arch = "arm", shiftkit_scalar))]
    {
        smmlar_halves(a, b, r)
    }
    #[cfg(not(all(target_arch = "arm", shiftkit_scalar)))]
    {
        smmlar(a, b, r)
    }
}

/// [`smmlar`] for `|a| <= 2^30` and `b > 0` (the fast forms: `a = 2 acc` with `|acc| <= 2^29`,
/// a positive multiplier) from four 16 x 16-bit products, every sum within 32 bits. With
/// `a = ah 2^16 + al` (`al` the *signed* low half, `ah = (a - al) / 2^16`, exact) and
/// `b = bh 2^16 + bl` (`bl` the unsigned low half), `ll = al bl` is exact in 32 bits
/// (`|al| <= 2^15`, `bl < 2^16`) and
/// `floor((a b + 2^31) / 2^32) = ah bh + floor((S + 2^15) / 2^16)`,
/// `S = ah bl + al bh + floor(ll / 2^16)`: write `ll = floor(ll / 2^16) 2^16 + z` with
/// `0 <= z < 2^16`; then `a b + 2^31 = ah bh 2^32 + (S + 2^15) 2^16 + z`, and `z` cannot move
/// the floor. `|ah| <= 2^14`, so `|ah bl| < 2^30`, `|al bh| < 2^30`, and `S + 2^15` stays within
/// `(-2^31 + 2^14, 2^31 - 2^14)`. `floor((S + 2^15) / 2^16)` is `(S >> 16) + bit 15 of S`: on
/// Thumb-1 an `asrs #16`, whose carry out is bit 15, then `adcs`. About 20 instructions on
/// Thumb-1, where the 64-bit product is a call to `__aeabi_lmul`.
#[inline(always)]
pub fn smmlar_halves(a: i32, b: i32, r: i32) -> i32 {
    let al = a as i16 as i32;
    let ah = a.wrapping_sub(al) >> 16;
    let (bh, bl) = (b >> 16, b & 0xffff);
    let ll = al.wrapping_mul(bl);
    let s = (ll >> 16)
        .wrapping_add(ah.wrapping_mul(bl))
        .wrapping_add(al.wrapping_mul(bh));
    ah.wrapping_mul(bh)
        .wrapping_add((s >> 16) + ((s >> 15) & 1))
        .wrapping_add(r)
}

/// The double form before the clamp: `(smmlar(2 acc, m, R) + (acc >> 31)) >> e`.
#[cfg(not(shiftkit_dsp))]
#[inline(always)]
fn double_form(acc: i32, m: i32, round: i32, e: u32) -> i32 {
    form_smmlar(acc.wrapping_add(acc), m, round).wrapping_add(acc >> 31) >> e
}

/// [`double_form`] in four instructions, as one `asm!` block: the compiler would otherwise
/// compute both forms for every output of the 2x2 path and select one (ResNet-8 +0.5%).
#[cfg(shiftkit_dsp)]
#[allow(unsafe_code)]
#[inline(always)]
fn double_form(acc: i32, m: i32, round: i32, e: u32) -> i32 {
    let out;
    // SAFETY: register-to-register instructions only; no memory, stack or flags. `asr` by a
    // register reads its low byte (`e` <= 23).
    unsafe {
        core::arch::asm!(
            "add {g}, {acc}, {acc}",
            "smmlar {g}, {g}, {m}, {r}",
            "add {g}, {g}, {acc}, asr #31",
            "asr {g}, {g}, {e}",
            g = out(reg) out,
            acc = in(reg) acc,
            m = in(reg) m,
            r = in(reg) round,
            e = in(reg) e,
            options(pure, nomem, nostack, preserves_flags),
        )
    };
    out
}

/// `smmlar`: `floor((r * 2^32 + a * b + 2^31) / 2^32)`, wrapping (one instruction on the DSP
/// unit).
#[cfg(shiftkit_dsp)]
#[allow(unsafe_code)]
#[inline(always)]
pub fn smmlar(a: i32, b: i32, r: i32) -> i32 {
    let out;
    // SAFETY: one register-to-register instruction; no memory, stack or flags touched.
    unsafe {
        core::arch::asm!("smmlar {o}, {a}, {b}, {r}", o = lateout(reg) out, a = in(reg) a, b = in(reg) b, r = in(reg) r, options(pure, nomem, nostack, preserves_flags))
    };
    out
}

/// `smmlar`: `floor((r * 2^32 + a * b + 2^31) / 2^32)`, wrapping (portable form).
#[cfg(not(shiftkit_dsp))]
#[inline(always)]
pub fn smmlar(a: i32, b: i32, r: i32) -> i32 {
    ((((r as i64) << 32).wrapping_add(a as i64 * b as i64) + (1 << 31)) >> 32) as i32
}

/// [`requantize`] out of line, for [`Requantizer`]'s never-taken fallback (keeps each inlined
/// use small).
#[cold]
#[inline(never)]
fn requantize_cold(
    acc: i32,
    multiplier: i32,
    shift: i32,
    zero_point: i8,
    act_min: i8,
    act_max: i8,
) -> i8 {
    requantize(acc, multiplier, shift, zero_point, act_min, act_max)
}

/// `v` clamped to `[lo, hi]` (to `hi` if `lo > hi`), as i8.
pub fn clamp_i8(v: i32, lo: i8, hi: i8) -> i8 {
    v.max(lo as i32).min(hi as i32).clamp(-128, 127) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xorshift64 generator from `state` (non-zero).
    fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    // Each expected value below is worked by hand from the reference formulas; the comment gives
    // the real value and the rounding rule that picks the result.
    #[test]
    fn requantizer_equals_requantize() {
        let mut next = xorshift(0x1234_5678_9abc_def0);
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -1,
            0,
            1,
            i32::MAX,
            1 << 30,
            -(1 << 30),
        ];
        for i in 0..200_000u32 {
            let r = next();
            let acc = if i % 7 == 0 {
                edges[(r % 8) as usize]
            } else if i % 2 == 0 {
                (r >> 32) as i32 >> (r % 24)
            } else {
                (r >> 32) as i32
            };
            let m = match i % 6 {
                0 => 0,
                1 => 1 << 30,
                2 => i32::MAX,
                3 => (r >> 16) as i32, // any multiplier, including negative ones (fallback)
                _ => (1 << 30) | ((r >> 8) as i32 & ((1 << 30) - 1)),
            };
            // A quarter of the shifts are 0: the single form, with any multiplier.
            let s = if i % 4 == 3 { 0 } else { (r % 63) as i32 - 31 };
            let zp = (r >> 40) as i8;
            let (lo, hi) = if i % 3 == 0 { (-128, 127) } else { (zp, 127) };
            // The bound the caller promises; the accumulator is kept inside it.
            let bound = if i % 5 == 0 { u32::MAX } else { 1 << 29 };
            let acc = if bound == 1 << 29 {
                acc.clamp(-(1 << 29), 1 << 29)
            } else {
                acc
            };
            let rq = Requantizer::new(m, s, zp, lo, hi, bound);
            let want = requantize(acc, m, s, zp, lo, hi);
            assert_eq!(rq.apply(acc), want, "acc {acc} m {m} s {s} zp {zp}");
            // The four-output form, this accumulator and three others within the bound.
            let mut four = [
                acc,
                0,
                acc.wrapping_neg().clamp(-(1 << 29), 1 << 29),
                acc >> 3,
            ];
            four.rotate_left(i as usize % 4);
            let each = [0, 1, 2, 3].map(|k| rq.apply(four[k]));
            assert_eq!(rq.apply4(four), each, "apply4 {four:?} m {m} s {s} zp {zp}");
        }
    }

    #[test]
    fn smmlar_halves_equals_smmlar_within_its_bounds() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let edges = [
            0,
            1,
            -1,
            1 << 30,
            -(1 << 30),
            0xffff,
            -0x10000,
            0x8000,
            0x7fff,
            -0x8000,
            -0x8001,
            (1 << 30) - 0x8000,
        ];
        for i in 0..300_000u32 {
            let r = next();
            let a = match i % 5 {
                0 => edges[(r % 12) as usize],
                1 => ((r >> 32) as i32) >> 1 >> (r % 20),
                _ => (((r >> 32) as i32) >> 1).clamp(-(1 << 30), 1 << 30),
            };
            let b = match i % 4 {
                0 => {
                    [1, i32::MAX, 1 << 30, 0xffff, 0x10000, 0x7fff_ffff - 0xffff][(r % 6) as usize]
                }
                _ => ((r >> 8) as i32 & i32::MAX).max(1),
            };
            let z = (r >> 48) as i8 as i32;
            assert_eq!(smmlar_halves(a, b, z), smmlar(a, b, z), "a {a} b {b} r {z}");
        }
    }

    #[test]
    fn srdhm_table() {
        let t: &[(i32, i32, i32)] = &[
            (i32::MIN, i32::MIN, i32::MAX),     // the one saturating case
            (i32::MIN, i32::MAX, -i32::MAX),    // -(2^31-1)*2^31*2/2^32 = -(2^31-1), exact
            (i32::MAX, i32::MAX, i32::MAX - 1), // (2^31-1)^2/2^31 = 2^31 - 2 + 2^-31 -> 2^31-2
            (1 << 30, 1 << 30, 1 << 29),        // 2^60/2^31 = 2^29, exact
            (3, 1 << 30, 2),                    // 1.5: positive tie rounds up
            (-3, 1 << 30, -1),                  // -1.5: negative tie rounds up too (toward +inf)
            (-5, 1 << 30, -2),                  // -2.5 -> -2
            (-7, 1 << 29, -2),                  // -1.75 -> -2
            (7, 1 << 29, 2),                    // 1.75 -> 2
            (100, 1 << 30, 50),                 // 50, exact
            (0, i32::MIN, 0),
            (1, 1, 0),                       // 2^-30 -> 0
            (i32::MIN, 1 << 30, -(1 << 30)), // -2^30, exact
        ];
        for &(a, b, want) in t {
            assert_eq!(srdhm(a, b), want, "srdhm({a}, {b})");
        }
    }

    #[test]
    fn rounding_divide_by_pot_table() {
        let t: &[(i32, i32, i32)] = &[
            (5, 0, 5), // exponent 0 is the identity
            (-5, 0, -5),
            (5, 1, 3),   // 2.5 -> 3 (half away from zero)
            (-5, 1, -3), // -2.5 -> -3
            (-4, 1, -2),
            (7, 2, 2),            // 1.75
            (-6, 2, -2),          // -1.5 -> -2
            (-7, 2, -2),          // -1.75
            (6, 2, 2),            // 1.5 -> 2
            (-1, 1, -1),          // -0.5 -> -1
            (1, 1, 1),            // 0.5 -> 1
            (1, 2, 0),            // 0.25 -> 0
            (-1, 2, 0),           // -0.25 -> 0
            (1 << 30, 31, 1),     // 0.5 -> 1
            (-(1 << 30), 31, -1), // -0.5 -> -1
            (i32::MIN, 31, -1),
            (i32::MAX, 31, 1),      // 0.99.. -> 1
            (i32::MAX, 1, 1 << 30), // 2^30 - 0.5 -> 2^30
            (i32::MIN, 1, -(1 << 30)),
        ];
        for &(x, e, want) in t {
            assert_eq!(rounding_divide_by_pot(x, e), want, "rdbpot({x}, {e})");
        }
    }

    #[test]
    fn mbqm_table() {
        let m_075 = 3 << 29; // 0.75 * 2^31
        let t: &[(i32, i32, i32, i32)] = &[
            (100, 1 << 30, 0, 50),  // 100 * 0.5
            (100, 1 << 30, -1, 25), // 100 * 0.25
            // 101 * 0.25 = 25.25, but TFLite rounds twice: srdhm -> 50.5 -> 51, then 25.5 -> 26.
            (101, 1 << 30, -1, 26),
            (-101, 1 << 30, -1, -25), // srdhm: -50.5 -> -50 (tie up), then -25.0
            (3, 1 << 30, 2, 6),       // left shift: srdhm(12, 2^30) = 6
            (1000, m_075, -3, 94),    // 1000 * 0.75 / 8 = 93.75; srdhm = 750 exactly, 750/8 -> 94
            (-1000, m_075, -3, -94),
            (1, 1 << 30, 30, 1 << 29), // large left shift: srdhm(2^30, 2^30) = 2^29
            (2, 1 << 30, 30, -(1 << 30)), // 2 << 30 wraps to i32::MIN; srdhm(MIN, 2^30) = -2^30
            (i32::MIN, i32::MIN, 0, i32::MAX), // saturation passes through a shift of 0
            (12345, 0, -5, 0),         // multiplier 0
            (i32::MAX, i32::MAX, -31, 1), // srdhm = 2^31 - 2, then / 2^31 -> 1
        ];
        for &(x, m, s, want) in t {
            assert_eq!(mbqm(x, m, s), want, "mbqm({x}, {m}, {s})");
        }
    }

    #[test]
    fn round_div_table() {
        let t: &[(i32, i32, i32)] = &[
            (5, 2, 3),   // 2.5 -> 3
            (-5, 2, -3), // -2.5 -> -3
            (3, 4, 1),   // 0.75
            (-3, 4, -1),
            (2, 4, 1),   // 0.5 -> 1
            (-2, 4, -1), // -0.5 -> -1
            (1, 4, 0),
            (-1, 4, 0),
            (0, 4, 0),
            (24, 49, 0), // 0.49
            (25, 49, 1), // 0.51
            (-25, 49, -1),
            (-128 * 49, 49, -128),
            (127 * 4, 4, 127),
            (7, 0, 0),                    // n = 0 is defined as 0
            (i32::MAX, 2, (1 << 30) - 1), // the bias saturates: MAX / 2
            (i32::MIN, 1, i32::MIN),
        ];
        for &(s, n, want) in t {
            assert_eq!(round_div(s, n), want, "round_div({s}, {n})");
        }
    }

    #[test]
    fn requantize_clamps_and_adds_the_zero_point() {
        assert_eq!(requantize(100, 1 << 30, 0, -10, -128, 127), 40);
        assert_eq!(requantize(1000, 1 << 30, 0, 0, -128, 127), 127);
        assert_eq!(requantize(-1000, 1 << 30, 0, 5, 5, 127), 5); // ReLU at the zero point
        assert_eq!(requantize(0, 1 << 30, 0, 0, 10, -10), -10); // bad range: no panic
                                                                // MAX << 31 wraps to MIN; srdhm(MIN, MAX) = -MAX; + 127 clamps to -128. Defined, no panic.
        assert_eq!(requantize(i32::MAX, i32::MAX, 31, 127, -128, 127), -128);
    }
}
