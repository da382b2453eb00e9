//! 3x3 max pool, stride 2, padding 1 (output `(h-1)/2+1`); padded taps never win, so every
//! output is the max of its in-image taps. Scale and zero point unchanged.
use super::{check_len, KernelError, Shape};

/// Output shape for input `xs` (h, w >= 1).
pub fn out_shape(xs: Shape) -> Shape {
    Shape::new(
        xs.h.saturating_sub(1) / 2 + 1,
        xs.w.saturating_sub(1) / 2 + 1,
        xs.c,
    )
}

/// `y = maxpool3s2(x (h, w, c))`.
pub fn forward(y: &mut [i8], x: &[i8], xs: Shape) -> Result<(), KernelError> {
    let ys = out_shape(xs);
    check_len(x.len(), xs, "max pool: input length != h*w*c")?;
    check_len(
        y.len(),
        ys,
        "max pool: output length != ((h-1)/2+1)*((w-1)/2+1)*c",
    )?;
    for oy in 0..ys.h {
        for ox in 0..ys.w {
            // Window rows/cols 2*o-1 ..= 2*o+1, cut to the image (never empty: 2*o < h).
            let (y0, y1) = ((2 * oy).saturating_sub(1), (2 * oy + 2).min(xs.h));
            let (x0, x1) = ((2 * ox).saturating_sub(1), (2 * ox + 2).min(xs.w));
            for ch in 0..xs.c {
                let mut m = i8::MIN;
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        m = m.max(x[xs.at(iy, ix, ch)]);
                    }
                }
                y[ys.at(oy, ox, ch)] = m;
            }
        }
    }
    Ok(())
}
