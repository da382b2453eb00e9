//! 2x2 average pool, stride 2 (output `h/2 x w/2`, a trailing odd row/column is dropped),
//! `y = round_div(sum of 4 taps, 4)`; scale and zero point unchanged.
//!
//! [`forward_io`] reads and writes through an [`Io`], so the engine can run the pool in place
//! (output `c` bytes or more below its input in one buffer, `crate::plan_rules`): output pixels
//! in raster order, each output value written right after its four taps were read.
use super::{check_len, Io, KernelError, Shape, Split, XView};
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
    // One output pixel at a time: its four input pixels' rows summed channel by channel from
    // the input view, then the row written (after every read of this pixel: in-place safe).
    let c = xs.c;
    let mut row = [0i8; ROW];
    if c <= ROW {
        for oy in 0..ys.h {
            for ox in 0..ys.w {
                let XView::I8(x) = io.x_view() else {
                    break; // X = i8: never
                };
                let tap = |dy: usize, dx: usize| {
                    let at = xs.at(2 * oy + dy, 2 * ox + dx, 0);
                    x.get(at..at + c).unwrap_or(&[])
                };
                let (t0, t1, t2, t3) = (tap(0, 0), tap(0, 1), tap(1, 0), tap(1, 1));
                let taps = t0.iter().zip(t1).zip(t2.iter().zip(t3));
                for (o, ((&a, &b), (&d, &e))) in row.iter_mut().zip(taps) {
                    *o = round4(a as i32 + b as i32 + d as i32 + e as i32);
                }
                io.y_bytes(ys.at(oy, ox, 0), &row[..c]);
            }
        }
        return Ok(());
    }
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

/// Channels the row-at-a-time loop takes (its stack row).
const ROW: usize = 256;

/// `round_div(sum, 4)` for a sum of four int8 values: `(sum + 2) >> 2` for a positive sum,
/// `trunc((sum - 2) / 4) = floor((sum + 1) / 4)` otherwise, i.e. `(sum + 2 - [sum <= 0]) >> 2`.
#[inline(always)]
fn round4(sum: i32) -> i8 {
    ((sum + 2 + ((sum - 1) >> 31)) >> 2) as i8
}

#[cfg(test)]
mod tests {
    use super::super::Shared;
    use super::*;

    /// Separate slices and in place (output `c` bytes below the input, the plan's tightest lag)
    /// give the formula's result, for odd and even sizes and for more channels than a row holds.
    #[test]
    fn split_and_in_place_equal_the_formula() {
        let mut seed = 0x2545_f491_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (h, w, c) in [(4, 4, 3), (5, 7, 16), (6, 3, 32), (2, 2, 300), (3, 5, 64)] {
            let xs = Shape::new(h, w, c);
            let ys = out_shape(xs);
            let (nx, ny) = (h * w * c, ys.h * ys.w * c);
            let mut x = [0i8; 2 * 2 * 300 + 5 * 7 * 64];
            for v in &mut x[..nx] {
                *v = next() as i8;
            }
            let mut want = [0i8; 2 * 300 + 4 * 64];
            for oy in 0..ys.h {
                for ox in 0..ys.w {
                    for ch in 0..c {
                        let s: i32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                            .iter()
                            .map(|&(dy, dx)| x[xs.at(2 * oy + dy, 2 * ox + dx, ch)] as i32)
                            .sum();
                        want[ys.at(oy, ox, ch)] = round_div(s, 4) as i8;
                    }
                }
            }
            let mut y = [0i8; 2 * 300 + 4 * 64];
            forward(&mut y[..ny], &x[..nx], xs).unwrap();
            assert_eq!(&y[..ny], &want[..ny], "split {h}x{w}x{c}");
            let mut buf = [0i8; 2 * 2 * 300 + 5 * 7 * 64 + 300];
            buf[c..c + nx].copy_from_slice(&x[..nx]);
            let mut io = Shared::new(&mut buf[..c + nx], c..c + nx, 0..ny).unwrap();
            forward_io(&mut io, xs).unwrap();
            assert_eq!(io.y(), &want[..ny], "in place {h}x{w}x{c}");
        }
    }

    #[test]
    fn round4_is_round_div_by_4() {
        for sum in -512..=508 {
            assert_eq!(super::round4(sum) as i32, super::round_div(sum, 4), "{sum}");
        }
    }
}
