//! Fully connected layer on a 1x1xcin tensor:
//! `y[co] = clamp(zp_y + mbqm(bias[co] + sum_ci w[co][ci] * x[ci], m[co], s[co]), act_min, act_max)`.
//! The accumulator wraps on overflow, as in the conv.
use super::{I32s, KernelError, Rescale};

/// `y (cout) = W (cout, cin) x (cin) + bias`, requantised.
pub fn forward(
    y: &mut [i8],
    x: &[i8],
    weights: &[u8],
    bias: I32s,
    rescale: &Rescale,
) -> Result<(), KernelError> {
    let (cin, cout) = (x.len(), y.len());
    if cin.checked_mul(cout) != Some(weights.len()) {
        return Err(KernelError("fully connected: weight count != cout*cin"));
    }
    if bias.len() != cout {
        return Err(KernelError("fully connected: bias count != cout"));
    }
    rescale.check(cout)?;
    for (co, out) in y.iter_mut().enumerate() {
        let w_row = &weights[co * cin..][..cin]; // (cin)
        let mut acc = bias.get(co).unwrap_or(0);
        for (&w, &xv) in w_row.iter().zip(x) {
            acc = acc.wrapping_add(w as i8 as i32 * xv as i32);
        }
        *out = rescale.apply(acc, co);
    }
    Ok(())
}
