//! k x k convolution (stride, zero-point padding), and the shifted 1x1 convolution: the shift is
//! an input index offset per channel group, never a shifted copy of the tensor.
//!
//! ```text
//! acc[oy][ox][co] = bias[co] + sum_{ky,kx} sum_{group (dh,dw,c0,c1)} sum_{ci in c0..c1}
//!                   w[co][ky][kx][ci] * X(oy*stride + ky - pad - dh, ox*stride + kx - pad - dw, ci)
//! X(iy, ix, ci)   = x[iy][ix][ci] inside the image, pad_value[ci] outside
//! y[oy][ox][co]   = clamp(zp_y + mbqm(acc, m[co], s[co]), act_min, act_max)
//! ```
//! Without a shift there is one group `(0, 0, 0, cin)`. The accumulator wraps on overflow
//! (as a 32-bit MAC does); a real model stays far from it.
use super::{check_len, Element, I32s, Io, KernelError, Rescale, Shape};
use crate::format::{shift_groups, Shift};

/// Constants of one conv.
#[derive(Clone, Copy, Debug)]
pub struct ConvParams<'a> {
    /// Kernel size (k x k).
    pub k: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Padding on every side, in pixels.
    pub pad: usize,
    /// The shift of a 1x1 conv's input.
    pub shift: Shift,
    /// i8 x `[cout][k][k][cin]` (OHWI), as raw bytes.
    pub weights: &'a [u8],
    /// i32 x cout, input zero point folded in.
    pub bias: I32s<'a>,
    /// cin bytes: the value of an out-of-image tap, read as the input's element type.
    pub pad_value: &'a [u8],
    /// The per-channel output stage.
    pub rescale: Rescale<'a>,
}

/// Output height (or width) of a conv over `n` input pixels, `None` if the window does not fit.
pub fn out_size(n: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    let padded = n.checked_add(pad.checked_mul(2)?)?;
    Some(padded.checked_sub(k)?.checked_div(stride)? + 1)
}

/// `y (ys) = conv(x (xs))`. `x` is the u8 model input or an i8 activation. Output pixels are
/// computed in raster order; each pixel's outputs are written right after that pixel's inputs
/// were read (the order the memory plan's in-place rule assumes for a [`super::Shared`] io).
pub fn forward(io: &mut impl Io, ys: Shape, xs: Shape, p: &ConvParams) -> Result<(), KernelError> {
    check(io, ys, xs, p)?;
    compute(io, ys, xs, p);
    Ok(())
}

/// The entry checks of a conv with `io`: lengths, sizes, weight/bias/pad/rescale counts.
pub fn check(io: &impl Io, ys: Shape, xs: Shape, p: &ConvParams) -> Result<(), KernelError> {
    check_lens(io.x_len(), io.y_len(), ys, xs, p)
}

/// [`check`] with the io's input and output lengths (one copy for every io type).
#[inline(never)]
fn check_lens(
    x_len: usize,
    y_len: usize,
    ys: Shape,
    xs: Shape,
    p: &ConvParams,
) -> Result<(), KernelError> {
    let (k, cin, cout) = (p.k, xs.c, ys.c);
    check_len(x_len, xs, "conv: input length != h*w*c")?;
    check_len(y_len, ys, "conv: output length != h*w*c")?;
    if out_size(xs.h, k, p.stride, p.pad) != Some(ys.h)
        || out_size(xs.w, k, p.stride, p.pad) != Some(ys.w)
    {
        return Err(KernelError(
            "conv: output size does not follow from k, stride and pad",
        ));
    }
    let taps = k.checked_mul(k).and_then(|kk| kk.checked_mul(cin));
    if taps.and_then(|t| t.checked_mul(cout)) != Some(p.weights.len()) {
        return Err(KernelError("conv: weight count != cout*k*k*cin"));
    }
    if p.bias.len() != cout {
        return Err(KernelError("conv: bias count != cout"));
    }
    if p.pad_value.len() != cin {
        return Err(KernelError("conv: pad value count != cin"));
    }
    p.rescale.check(cout)?;
    Ok(())
}

/// The portable kernel (the checks are done).
// `ci` indexes the input, the pad values and the weight row alike: a range loop reads best.
#[allow(clippy::needless_range_loop)]
fn compute<I: Io>(io: &mut I, ys: Shape, xs: Shape, p: &ConvParams) {
    let (k, cin, cout) = (p.k, xs.c, ys.c);
    let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
    let n_groups = shift_groups(p.shift, cin, &mut groups);
    let groups = &groups[..n_groups];

    for oy in 0..ys.h {
        for ox in 0..ys.w {
            for co in 0..cout {
                let mut acc = p.bias.get(co).unwrap_or(0);
                for ky in 0..k {
                    for kx in 0..k {
                        let w_row = &p.weights[((co * k + ky) * k + kx) * cin..][..cin]; // (cin)
                        for &(dh, dw, c0, c1) in groups {
                            // Input pixel of this tap and group; may lie outside the image.
                            let iy = (oy * p.stride + ky) as isize - p.pad as isize - dh as isize;
                            let ix = (ox * p.stride + kx) as isize - p.pad as isize - dw as isize;
                            let inside =
                                iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w;
                            for ci in c0..c1 {
                                let xv = if inside {
                                    io.x(xs.at(iy as usize, ix as usize, ci)).value()
                                } else {
                                    I::X::from_byte(p.pad_value[ci]).value()
                                };
                                acc = acc.wrapping_add(w_row[ci] as i8 as i32 * xv);
                            }
                        }
                    }
                }
                io.set_y(ys.at(oy, ox, co), p.rescale.apply(acc, co));
            }
        }
    }
}
