//! 2x2 average pool, stride 2 (output `h/2 x w/2`, a trailing odd row/column is dropped),
//! `y = round_div(sum of 4 taps, 4)`; scale and zero point unchanged.
//!
//! [`forward_io`] reads and writes through an [`Io`], so the engine can run the pool in place
//! (output `c` bytes or more below its input in one buffer, `crate::plan_rules`): output pixels
//! in raster order, each output value written right after its four taps were read.
use super::{check_len, Io, KernelError, Shape, Split};
use crate::requant::round_div;

/// Output shape for input `xs`.
pub fn out_shape(xs: Shape) -> Shape {
    Shape::new(xs.h / 2, xs.w / 2, xs.c)
}

/// `y (h/2, w/2, c) = avgpool2(x (h, w, c))`.
pub fn forward(y: &mut [i8], x: &[i8], xs: Shape) -> Result<(), KernelError> {
    forward_io(&mut Split { x, y }, xs)
}

/// [`forward`] through an [`Io`] over i8 (separate slices or one shared buffer).
pub fn forward_io(io: &mut impl Io<X = i8>, xs: Shape) -> Result<(), KernelError> {
    let ys = out_shape(xs);
    check_len(io.x_len(), xs, "avg pool: input length != h*w*c")?;
    check_len(io.y_len(), ys, "avg pool: output length != (h/2)*(w/2)*c")?;
    for oy in 0..ys.h {
        for ox in 0..ys.w {
            for ch in 0..xs.c {
                let mut sum = 0i32;
                for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    sum += io.x(xs.at(2 * oy + dy, 2 * ox + dx, ch)) as i32;
                }
                io.set_y(ys.at(oy, ox, ch), round_div(sum, 4) as i8); // in [-128, 127]
            }
        }
    }
    Ok(())
}
