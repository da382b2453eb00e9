//! Global average pool: `y[c] = round_div(sum over h x w of x[.][.][c], h*w)`; scale and zero
//! point unchanged. The sum is an i32, so `h*w` is limited to [`MAX_PIXELS`].
use super::{check_len, KernelError, Shape};
use crate::requant::round_div;

/// Largest `h*w`: 2^23 * 128 + 2^22 < 2^31, so the rounded sum cannot overflow.
pub const MAX_PIXELS: usize = 1 << 23;

/// `y (c) = mean over (h, w) of x (h, w, c)`.
pub fn forward(y: &mut [i8], x: &[i8], xs: Shape) -> Result<(), KernelError> {
    check_len(x.len(), xs, "global avg pool: input length != h*w*c")?;
    if y.len() != xs.c {
        return Err(KernelError("global avg pool: output length != c"));
    }
    let n = xs.h * xs.w; // cannot overflow: h*w*c = x.len()
    if n == 0 || n > MAX_PIXELS {
        return Err(KernelError("global avg pool: h*w is 0 or above 2^23"));
    }
    // Four channels at a time down the pixels (four sums in registers, each pixel read in
    // order), then the last `c % 4` one at a time.
    let quads = xs.c / 4 * 4;
    for c0 in (0..quads).step_by(4) {
        let (mut s0, mut s1, mut s2, mut s3) = (0i32, 0i32, 0i32, 0i32);
        // Each chunk starts at channel c0 of a pixel and has at least 4 bytes (the last one is
        // c - c0 long).
        for px in x[c0..].chunks(xs.c) {
            if let [a, b, c, d, ..] = *px {
                s0 += a as i32;
                s1 += b as i32;
                s2 += c as i32;
                s3 += d as i32;
            }
        }
        for (out, s) in y[c0..c0 + 4].iter_mut().zip([s0, s1, s2, s3]) {
            *out = round_div(s, n as i32) as i8; // a mean of i8 values is in [-128, 127]
        }
    }
    for (ch, out) in y.iter_mut().enumerate().skip(quads) {
        let sum: i32 = x.chunks_exact(xs.c).map(|px| px[ch] as i32).sum();
        *out = round_div(sum, n as i32) as i8;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one channel at a time.
    fn mean(x: &[i8], xs: Shape, ch: usize) -> i8 {
        let sum: i32 = (0..xs.h * xs.w).map(|p| x[p * xs.c + ch] as i32).sum();
        round_div(sum, (xs.h * xs.w) as i32) as i8
    }

    #[test]
    fn matches_the_definition_for_every_channel_count() {
        let mut seed = 0x1234_5678u32;
        for c in (1..=9).chain([16, 63, 64]) {
            for (h, w) in [(1, 1), (2, 3), (7, 7)] {
                let xs = Shape { h, w, c };
                let mut buf = [0i8; 7 * 7 * 64];
                let x = &mut buf[..h * w * c];
                for (i, v) in x.iter_mut().enumerate() {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    // Every third tensor near the extremes, where rounding and range matter.
                    *v = match (c + h, i % 3) {
                        (k, 0) if k % 3 == 0 => -128,
                        (k, 1) if k % 3 == 0 => 127,
                        _ => (seed >> 24) as i8,
                    };
                }
                let x = &*x;
                let mut ybuf = [0i8; 64];
                let y = &mut ybuf[..c];
                forward(y, x, xs).unwrap();
                for (ch, &v) in y.iter().enumerate() {
                    assert_eq!(v, mean(x, xs, ch), "c {c}, {h}x{w}, channel {ch}");
                }
            }
        }
    }

    #[test]
    fn all_minimum_and_all_maximum_stay_in_range() {
        let xs = Shape { h: 7, w: 7, c: 6 };
        for v in [-128i8, 127] {
            let mut y = [0i8; 6];
            forward(&mut y, &[v; 7 * 7 * 6], xs).unwrap();
            assert_eq!(y, [v; 6]);
        }
    }
}
