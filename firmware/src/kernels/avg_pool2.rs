//! 2x2 average pool, stride 2 (output `h/2 x w/2`, a trailing odd row/column is dropped),
//! `y = round_div(sum of 4 taps, 4)`; scale and zero point unchanged.
use super::{check_len, KernelError, Shape};
use crate::requant::round_div;

/// Output shape for input `xs`.
pub fn out_shape(xs: Shape) -> Shape {
    Shape::new(xs.h / 2, xs.w / 2, xs.c)
}

/// `y (h/2, w/2, c) = avgpool2(x (h, w, c))`.
pub fn forward(y: &mut [i8], x: &[i8], xs: Shape) -> Result<(), KernelError> {
    let ys = out_shape(xs);
    check_len(x.len(), xs, "avg pool: input length != h*w*c")?;
    check_len(y.len(), ys, "avg pool: output length != (h/2)*(w/2)*c")?;
    for oy in 0..ys.h {
        for ox in 0..ys.w {
            for ch in 0..xs.c {
                let mut sum = 0i32;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    sum += x[xs.at(2 * oy + dy, 2 * ox + dx, ch)] as i32;
                }
                y[ys.at(oy, ox, ch)] = round_div(sum, 4) as i8; // in [-128, 127]
            }
        }
    }
    Ok(())
}
