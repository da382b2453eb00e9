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
                let at = xs.at(2 * oy, 2 * ox, 0);
                let done = mean4_words(&mut row[..c], x, at, c, xs.w * c);
                if done < c {
                    let tap = |dy: usize, dx: usize| {
                        let at = xs.at(2 * oy + dy, 2 * ox + dx, done);
                        x.get(at..at + c - done).unwrap_or(&[])
                    };
                    let (t0, t1, t2, t3) = (tap(0, 0), tap(0, 1), tap(1, 0), tap(1, 1));
                    let taps = t0.iter().zip(t1).zip(t2.iter().zip(t3));
                    for (o, ((&a, &b), (&d, &e))) in row[done..c].iter_mut().zip(taps) {
                        *o = round4(a as i32 + b as i32 + d as i32 + e as i32);
                    }
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

/// The first `4 * (c / 4)` values of one output pixel, four channels a word (DSP unit): `o[i]`
/// = `round4` of the taps `x[at + i]`, `x[at + c + i]`, `x[at + line + i]`,
/// `x[at + line + c + i]`. Returns how many it wrote (0: the caller does them all).
#[cfg(shiftkit_dsp)]
#[allow(unsafe_code)]
fn mean4_words(o: &mut [i8], x: &[i8], at: usize, c: usize, line: usize) -> usize {
    let words = c / 4;
    let last = at
        .checked_add(line)
        .and_then(|v| v.checked_add(c + 4 * words));
    if words == 0 || o.len() < 4 * words || last.is_none_or(|end| end > x.len()) {
        return 0;
    }
    let (t0, t2) = (x[at..].as_ptr(), x[at + line..].as_ptr());
    // SAFETY: `words >= 1` turns; turn j reads the words at t0 + 4j, t0 + c + 4j, t2 + 4j and
    // t2 + c + 4j (all below `at + line + c + 4 words <= x.len()`: checked; `ldr` may be
    // unaligned on v7-M/v8-M) and writes the word at o + 4j (`o.len() >= 4 words`: checked).
    // No stack. Per lane: s = the four taps' sum in [-512, 508] (16-bit lanes: `sxtab16`), then
    // t = s + 1 + [s > 0] (`ssub16` sets GE where s - 1 >= 0, `sel` picks 2 or 1), whose bits
    // 2..9 are round4(s) (t >> 2 lies in [-128, 127]): `lsr #2` and the byte mask.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr r8, [r0, r2]",
            "ldr r5, [r0], #4",
            "sxtb16 r9, r5",
            "sxtb16 r10, r5, ror #8",
            "sxtab16 r9, r9, r8",
            "sxtab16 r10, r10, r8, ror #8",
            "ldr r8, [r1, r2]",
            "ldr r5, [r1], #4",
            "sxtab16 r9, r9, r5",
            "sxtab16 r10, r10, r5, ror #8",
            "sxtab16 r9, r9, r8",
            "sxtab16 r10, r10, r8, ror #8",
            "ssub16 r5, r9, r11",
            "sel r5, r12, r11",
            "sadd16 r9, r9, r5",
            "ssub16 r5, r10, r11",
            "sel r5, r12, r11",
            "sadd16 r10, r10, r5",
            "and r9, lr, r9, lsr #2",
            "and r10, lr, r10, lsr #2",
            "orr r9, r9, r10, lsl #8",
            "str r9, [r3], #4",
            "subs r4, r4, #1",
            "bne 2b",
            inout("r0") t0 => _,
            inout("r1") t2 => _,
            in("r2") c,
            inout("r3") o.as_mut_ptr() => _,
            inout("r4") words => _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            in("r11") 0x0001_0001u32,
            in("r12") 0x0002_0002u32,
            in("lr") 0x00FF_00FFu32,
            options(nostack),
        );
    }
    4 * words
}

/// Without the DSP unit the caller's loop does every channel.
#[cfg(not(shiftkit_dsp))]
#[inline(always)]
fn mean4_words(_o: &mut [i8], _x: &[i8], _at: usize, _c: usize, _line: usize) -> usize {
    0
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
