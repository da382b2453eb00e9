//! Integer requantisation constants and the TFLite reference arithmetic they feed.
//!
//! [`quantize_multiplier`] is TFLite's `QuantizeMultiplier` (a real multiplier as a Q31 mantissa
//! and a power-of-two exponent); [`srdhm`], [`rdbpot`] and [`mbqm`] are TFLite's
//! `SaturatingRoundingDoublingHighMul`, `RoundingDivideByPOT` and
//! `MultiplyByQuantizedMultiplier`, as `firmware::format` states them. The quantizer uses the first
//! to compute every constant; the reference engine (`reference.rs`) uses the others, and the table
//! tests below pin all of them to values worked out by hand from TFLite's formulas.

/// A real multiplier `M > 0` as `(m, s)` with `M ~ m * 2^(s - 31)`, `m` in `[2^30, 2^31)`
/// (TFLite `QuantizeMultiplier`: `frexp`, round the mantissa to Q31, renormalise 2^31).
/// Returns `None` for `M <= 0`, a non-finite `M`, or one outside the range the format can state
/// (`s` in `[-31, 30]`).
pub fn quantize_multiplier(real: f64) -> Option<(i32, i32)> {
    if !(real.is_finite() && real > 0.0) {
        return None;
    }
    let (q, mut shift) = frexp(real);
    let mut m = (q * (1u64 << 31) as f64).round() as i64;
    if m == 1i64 << 31 {
        m /= 2;
        shift += 1;
    }
    if !(-31..=30).contains(&shift) {
        return None;
    }
    Some((m as i32, shift))
}

/// A multiplier that may be too small to state (a channel whose weights are all ~0): below
/// `2^-32` it is rounded up to the smallest one the format holds, `2^30 * 2^-62 = 2^-32`, which
/// maps any accumulator our layers produce to 0 or +-1 LSB. Larger failures stay `None`.
pub fn quantize_multiplier_or_tiny(real: f64) -> Option<(i32, i32)> {
    if real.is_finite() && real > 0.0 && real < 2f64.powi(-32) {
        return Some((1 << 30, -31));
    }
    quantize_multiplier(real)
}

/// The smallest real multiplier written in the single-rounding form ([`conv_multiplier`]).
pub const SINGLE_ROUNDING_MIN: f64 = 1.0 / (1u32 << 14) as f64;

/// A conv's or FC's real multiplier `M` as `(m, s)`. For `M` in `[2^-14, 1)` this is the
/// single-rounding form `(round(M * 2^31), 0)` (`firmware::format`, version 4): the same TFLite
/// formula, `mbqm(acc, m, 0) = srdhm(acc, m)`, which rounds once, and which the firmware's DSP
/// kernels requantise in two instructions (`smmlar`, `ssat`) instead of four. Any other `M`
/// takes [`quantize_multiplier_or_tiny`]'s TFLite constants.
///
/// Precision: `m / 2^31` is within `2^-32` of `M`, so an output that does not saturate
/// (`|acc * M| < 257`) is off by at most `257 / M * 2^-32 < 2^-9` LSB before its one rounding;
/// TFLite's constants round first at `2^-e` LSB (`e = -s`, 6 to 9 in our networks), then again.
pub fn conv_multiplier(real: f64) -> Option<(i32, i32)> {
    if (SINGLE_ROUNDING_MIN..1.0).contains(&real) {
        let m = (real * (1u64 << 31) as f64).round();
        if m < (1u64 << 31) as f64 {
            return Some((m as i32, 0));
        }
    }
    quantize_multiplier_or_tiny(real)
}

/// `x = q * 2^e` with `q` in `[0.5, 1)` for finite `x > 0` (C's `frexp`).
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale up first.
        let (q, e) = frexp(x * 2f64.powi(64));
        return (q, e - 64);
    }
    let e = exp - 1022;
    let q = f64::from_bits((bits & !(0x7ff << 52)) | (1022u64 << 52));
    (q, e)
}

/// TFLite `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)` with the nudge
/// `1 << 30` (or `1 - (1 << 30)` for a negative product) and truncating division;
/// `i32::MIN * i32::MIN` saturates to `i32::MAX`.
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// TFLite `RoundingDivideByPOT`: `x / 2^e` rounded half away from zero, `e` in `[0, 31]`.
pub fn rdbpot(x: i32, e: i32) -> i32 {
    debug_assert!((0..=31).contains(&e));
    let mask = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> e) + i32::from(remainder > threshold)
}

/// TFLite `MultiplyByQuantizedMultiplier`: `x * m * 2^(s - 31)`, rounded as TFLite does
/// (`x` shifted left first for `s > 0`, wrapping as the i32 product of C would not be checked).
pub fn mbqm(x: i32, m: i32, s: i32) -> i32 {
    let l = s.max(0);
    let r = (-s).max(0);
    rdbpot(srdhm(x.wrapping_shl(l as u32), m), r)
}

/// Average-pool rounding (TFLite): `sum / n` rounded half away from zero with C division.
pub fn round_div(sum: i32, n: i32) -> i32 {
    if sum > 0 {
        (sum + n / 2) / n
    } else {
        (sum - n / 2) / n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (real multiplier, expected Q31 mantissa, expected exponent), each worked out by hand:
    /// `frexp` gives `q in [0.5, 1)`, the mantissa is `round(q * 2^31)`.
    const MULTIPLIERS: &[(f64, i32, i32)] = &[
        // 0.5 = 0.5 * 2^0 -> 2^30, exponent 0.
        (0.5, 1 << 30, 0),
        // 1.0 = 0.5 * 2^1.
        (1.0, 1 << 30, 1),
        // 0.75 = 0.75 * 2^0 -> 0.75 * 2^31 = 1610612736.
        (0.75, 1_610_612_736, 0),
        // 0.1 = 0.8 * 2^-3 -> round(0.8 * 2^31) = round(1717986918.4) = 1717986918.
        (0.1, 1_717_986_918, -3),
        // 3.0 = 0.75 * 2^2.
        (3.0, 1_610_612_736, 2),
        // 1/3 = 0.6666.. * 2^-1 -> round(1431655765.33) = 1431655765.
        (1.0 / 3.0, 1_431_655_765, -1),
        // 0.0003 = 0.6144 * 2^-11 -> round(0.6144 * 2^31) = round(1319413953.3) = 1319413953.
        (0.0003, 1_319_413_953, -11),
        // Just below 1: the mantissa rounds to 2^31 and renormalises to (2^30, exponent + 1).
        (1.0 - 1e-12, 1 << 30, 1),
    ];

    #[test]
    fn conv_multiplier_table() {
        let t: &[(f64, Option<(i32, i32)>)] = &[
            // 0.75 * 2^31, shift 0 (TFLite's constants too).
            (0.75, Some((1_610_612_736, 0))),
            // 0.1 * 2^31 = 214748364.8 -> 214748365 (TFLite: 1717986918 with shift -3).
            (0.1, Some((214_748_365, 0))),
            // 0.0003 * 2^31 = 644245.09 -> 644245.
            (0.0003, Some((644_245, 0))),
            // 2^-14 exactly: the smallest single-rounding multiplier, 2^17.
            (SINGLE_ROUNDING_MIN, Some((1 << 17, 0))),
            // Below 2^-14, at or above 1, or rounding to 2^31: TFLite's constants.
            (SINGLE_ROUNDING_MIN / 2.0, Some((1 << 30, -14))),
            (1.0, Some((1 << 30, 1))),
            (1.0 - 1e-12, Some((1 << 30, 1))),
            (2f64.powi(-40), Some((1 << 30, -31))),
            (0.0, None),
            (f64::NAN, None),
        ];
        for &(real, want) in t {
            assert_eq!(conv_multiplier(real), want, "M = {real}");
        }
        // Every single-rounding multiplier m has m / 2^31 within 2^-32 of M, and mbqm with it
        // rounds acc * m / 2^31 once (to within 0.5), on accumulators within +-2^23.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let real = 2f64.powf(-14.0 * (state % 10_000) as f64 / 10_000.0) * 0.999_999;
            let (m, s) = conv_multiplier(real).unwrap();
            assert_eq!(s, 0, "M = {real}");
            assert!((m as f64 / (1u64 << 31) as f64 - real).abs() <= 2f64.powi(-32));
            let acc = ((state >> 40) as i32) - (1 << 23);
            let exact = acc as f64 * m as f64 / (1u64 << 31) as f64;
            let got = mbqm(acc, m, s) as f64;
            assert!(
                (got - exact).abs() <= 0.5,
                "acc {acc} m {m}: {got} vs {exact}"
            );
        }
    }

    #[test]
    fn quantize_multiplier_table() {
        for &(real, m, s) in MULTIPLIERS {
            assert_eq!(quantize_multiplier(real), Some((m, s)), "M = {real}");
            let back = m as f64 * 2f64.powi(s - 31);
            assert!((back - real).abs() <= real * 1e-9, "M = {real} -> {back}");
        }
        assert_eq!(quantize_multiplier(0.0), None);
        assert_eq!(quantize_multiplier(-1.0), None);
        assert_eq!(quantize_multiplier(f64::NAN), None);
        // 2^-40 is below the smallest stateable multiplier; 2^40 above the largest.
        assert_eq!(quantize_multiplier(2f64.powi(-40)), None);
        assert_eq!(
            quantize_multiplier_or_tiny(2f64.powi(-40)),
            Some((1 << 30, -31))
        );
        assert_eq!(quantize_multiplier(2f64.powi(40)), None);
    }

    #[test]
    fn srdhm_table() {
        // (a, b, expected) by hand: round(a*b / 2^31) with the nudge, truncating toward zero.
        let cases: &[(i32, i32, i32)] = &[
            (1 << 30, 1 << 30, 1 << 29),        // 2^60 / 2^31 = 2^29 exactly
            (100, 1 << 30, 50),                 // 100 * 0.5
            (3, 1 << 30, 2),                    // 1.5 -> 2 (half away from zero)
            (-3, 1 << 30, -1),                  // -1.5 -> -1: the negative nudge is 1 - 2^30
            (5, 1_610_612_736, 4),              // 5 * 0.75 = 3.75 -> 4
            (-5, 1_610_612_736, -4),            // -3.75 -> -4
            (1, 1_073_741_823, 0),              // 0.49999 -> 0
            (i32::MIN, i32::MIN, i32::MAX),     // the one overflow: saturates
            (i32::MAX, i32::MAX, i32::MAX - 1), // (2^31-1)^2 / 2^31 = 2^31 - 2 + tiny -> 2^31-2
        ];
        for &(a, b, want) in cases {
            assert_eq!(srdhm(a, b), want, "srdhm({a}, {b})");
        }
    }

    #[test]
    fn rdbpot_table() {
        let cases: &[(i32, i32, i32)] = &[
            (5, 1, 3),   // 2.5 -> 3
            (-5, 1, -3), // -2.5 -> -3
            (7, 2, 2),   // 1.75 -> 2
            (6, 2, 2),   // 1.5 -> 2
            (5, 2, 1),   // 1.25 -> 1
            (-6, 2, -2), // -1.5 -> -2
            (-5, 2, -1), // -1.25 -> -1
            (9, 0, 9),
            (i32::MAX, 31, 1),  // 0.99999.. -> 1
            (i32::MIN, 31, -1), // -1 exactly
        ];
        for &(x, e, want) in cases {
            assert_eq!(rdbpot(x, e), want, "rdbpot({x}, {e})");
        }
    }

    #[test]
    fn mbqm_table() {
        // M = 0.1 as (1717986918, -3): 1000 * 0.1 = 100; 15 * 0.1 = 1.5 -> 2 (TFLite rounds the
        // Q31 product first: srdhm(15, m) = 12, then 12 / 8 = 1.5 -> 2).
        assert_eq!(mbqm(1000, 1_717_986_918, -3), 100);
        assert_eq!(mbqm(15, 1_717_986_918, -3), 2);
        assert_eq!(mbqm(-15, 1_717_986_918, -3), -2);
        // M = 3.0 as (1610612736, 2): x << 2 first, then * 0.75.
        assert_eq!(mbqm(7, 1_610_612_736, 2), 21);
        assert_eq!(mbqm(-7, 1_610_612_736, 2), -21);
        // Tiny multiplier 2^-32: anything below 2^31 rounds to 0.
        assert_eq!(mbqm(1 << 30, 1 << 30, -31), 0);
    }

    #[test]
    fn round_div_table() {
        assert_eq!(round_div(10, 4), 3); // 2.5 -> 3
        assert_eq!(round_div(-10, 4), -3); // -2.5 -> -3
        assert_eq!(round_div(9, 4), 2); // 2.25 -> 2
        assert_eq!(round_div(-9, 4), -2);
        assert_eq!(round_div(0, 4), 0);
        assert_eq!(round_div(-127 * 49, 49), -127);
    }
}
