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
    for (ch, out) in y.iter_mut().enumerate() {
        let mut sum = 0i32;
        for p in 0..n {
            sum += x[p * xs.c + ch] as i32;
        }
        *out = round_div(sum, n as i32) as i8; // a mean of i8 values is in [-128, 127]
    }
    Ok(())
}
