//! Random conv cases for checking a fast kernel bit-exactly against the portable reference,
//! `no_std` and allocation-free so that the same cases run in host tests (`tests/fast_kernels.rs`,
//! with the emulated MAC units) and on the emulated devices (`boards/kernel-check` under QEMU
//! Cortex-M4/M7/M33, the aarch64 tests under qemu-aarch64), with the real instructions.
//!
//! Each case draws a shape (1..=7 x 1..=7 pixels, 1..=64 input and 1..=72 output channels), a
//! kind (k x k conv with stride and padding, or a 1x1 with no shift, 4C or 8C, centre on or off),
//! u8 or i8 input, and random data, weights, biases and requantisation constants in the ranges a
//! validated model allows; three quarters of the cases draw biases, multipliers and shifts as
//! quantize writes them for real networks, two thirds of those in the single-rounding form (so
//! every channel has it and the DSP unit's wide path of `super::wide` runs) and a third as
//! TFLite's constants (version 3 files), and 1x1 cases often have 16, 32 or 64 input channels.
use super::super::conv::{self, ConvParams};
use super::super::{Element, I32s, Io, KernelError, Rescale, Shape, Shared, Split};
use crate::format::Shift;
use crate::plan_rules;

const MAX_X: usize = 7 * 7 * 64;
/// [`large`]'s 1x1 cases have up to 700 input channels.
const MAX_CIN: usize = 700;
const MAX_Y: usize = 9 * 9 * MAX_COUT; // a 1x1 with padding 1 grows the image by 2
const MAX_W: usize = MAX_CIN * MAX_COUT;
/// Up to 72 output channels: more than one channel chunk of the fast kernel.
const MAX_COUT: usize = 72;

/// A case whose fast output differs from the reference: its seed and first differing index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The case's seed.
    pub case: u32,
    /// The first output element that differs.
    pub index: usize,
    /// The fast kernel's value there.
    pub fast: i8,
    /// The portable kernel's value there.
    pub reference: i8,
}

/// Small PRNG (xorshift64*), fixed seed (also the kernel benches' data).
pub struct Rng(pub u64);
impl Rng {
    /// The next 64 bits (a generator, not an `Iterator`: it never ends).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n` (`0` for `n = 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() >> 33) as usize % n.max(1)
    }
    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        (self.next() >> 40) as u8
    }
    /// A TFLite Q31 mantissa, in `[2^30, 2^31)`.
    pub fn q31(&mut self) -> i32 {
        (1i32 << 30) | ((self.next() >> 34) as i32 & ((1 << 30) - 1))
    }
}

/// The fast kernel under test, called like `fast::conv_with::<M, _>`; `Ok(false)` = not taken.
pub trait FastConv {
    /// Runs the fast conv on `io`; `Ok(false)` when it does not take this shape.
    fn conv<I: Io>(
        &mut self,
        io: &mut I,
        ys: Shape,
        xs: Shape,
        p: &ConvParams,
    ) -> Result<bool, KernelError>;
}

/// The reference and the fast kernel on the same input `x` (u8 or i8) in separate slices;
/// whether both ran.
fn both<X: Element>(
    fast: &mut impl FastConv,
    x: &[X],
    y_ref: &mut [i8],
    y_fast: &mut [i8],
    ys: Shape,
    xs: Shape,
    p: &ConvParams,
) -> bool {
    let r = conv::forward(&mut Split { x, y: y_ref }, ys, xs, p);
    let f = fast.conv(&mut Split { x, y: y_fast }, ys, xs, p);
    r.is_ok() && f == Ok(true)
}

/// Runs `cases` random cases from `seed`; returns how many the fast kernel took, or the first
/// mismatch.
pub fn run(fast: &mut impl FastConv, seed: u64, cases: u32) -> Result<u32, Mismatch> {
    cases_from(fast, seed, cases, false)
}

/// [`run`] with patches longer than [`super::MAX_PATCH`], which the fast kernel takes in
/// segments: 1x1 convs (no shift or 4C) over 577..=700 input channels on up to 2 x 2 pixels, and
/// 3x3 convs (stride 1 or 2) over 65..=77 channels on up to 4 x 4, with 1..=72 output channels.
pub fn large(fast: &mut impl FastConv, seed: u64, cases: u32) -> Result<u32, Mismatch> {
    cases_from(fast, seed, cases, true)
}

fn cases_from(
    fast: &mut impl FastConv,
    seed: u64,
    cases: u32,
    large: bool,
) -> Result<u32, Mismatch> {
    let mut rng = Rng(seed | 1);
    let mut taken = 0;
    let mut x = [0u8; MAX_X];
    let mut w = [0u8; MAX_W];
    let mut bias = [0u8; 4 * MAX_COUT];
    let mut mult = [0u8; 4 * MAX_COUT];
    let mut shift = [0u8; 4 * MAX_COUT];
    let mut pad = [0u8; MAX_CIN];
    let mut y_fast = [0i8; MAX_Y];
    let mut y_ref = [0i8; MAX_Y];
    for case in 0..cases {
        let (k, stride, pad_px, sh) = match rng.below(8) {
            kind if large => [
                (1, 1, 0, Shift::None),
                (1, 1, 0, Shift::C4 { centre: true }),
                (3, 1, 1, Shift::None),
                (3, 2, 1, Shift::None),
            ][kind % 4],
            0 => (3, 1, 1, Shift::None),
            1 => (3, 2, 1, Shift::None),
            2 => (1, 1 + rng.below(2), 0, Shift::None),
            3 | 4 => (
                1,
                1 + rng.below(2),
                0,
                Shift::C4 {
                    centre: rng.below(2) == 0,
                },
            ),
            5 => (
                1,
                1,
                0,
                Shift::C8 {
                    centre: rng.below(2) == 0,
                },
            ),
            6 => (1 + 2 * rng.below(2), 1, rng.below(2), Shift::None),
            _ => (2, 1, 0, Shift::None),
        };
        let side = if !large {
            7
        } else if k == 1 {
            2
        } else {
            4
        };
        let h = k.max(1 + rng.below(side));
        let wd = k.max(1 + rng.below(side));
        let cin = if large {
            if k == 1 {
                577 + rng.below(124)
            } else {
                65 + rng.below(13)
            }
        } else if k == 1 && rng.below(3) == 0 {
            [16, 32, 64, 4 * (1 + rng.below(16))][rng.below(4)]
        } else {
            1 + rng.below(if k > 1 { 16 } else { 40 })
        };
        // As quantize writes them (0: the single-rounding form, shift 0 with a multiplier of
        // 2^17..2^30; 1: TFLite's constants, as version 3 files hold), with biases well inside
        // the accumulator's range; 2: anything a validated model allows.
        let form = [0, 0, 1, 2][rng.below(4)];
        let wide = rng.below(4) == 0 || large;
        let cout = 1 + rng.below(if wide { MAX_COUT } else { 9 });
        let xs = Shape::new(h, wd, cin);
        let (Some(oh), Some(ow)) = (
            conv::out_size(h, k, stride, pad_px),
            conv::out_size(wd, k, stride, pad_px),
        ) else {
            continue;
        };
        let ys = Shape::new(oh, ow, cout);
        let (nx, ny, nw) = (h * wd * cin, oh * ow * cout, cout * k * k * cin);
        for v in &mut x[..nx] {
            *v = rng.byte();
        }
        for v in &mut w[..nw] {
            // Symmetric int8 weights in [-127, 127], as quantize writes them.
            *v = (rng.below(255) as i32 - 127) as i8 as u8;
        }
        for v in &mut pad[..cin] {
            *v = rng.byte();
        }
        for c in 0..cout {
            let mut m = rng.q31();
            let (b, s) = if form < 2 {
                let b = (rng.next() >> 32) as i32 >> (8 + rng.below(16));
                let e = 1 + rng.below(13) as i32;
                if form == 0 {
                    m >>= e;
                    (b, 0)
                } else {
                    (b, -e)
                }
            } else {
                (
                    (rng.next() >> 32) as i32 >> rng.below(20),
                    rng.below(14) as i32 - 12,
                )
            };
            bias[4 * c..4 * c + 4].copy_from_slice(&b.to_le_bytes());
            mult[4 * c..4 * c + 4].copy_from_slice(&m.to_le_bytes());
            shift[4 * c..4 * c + 4].copy_from_slice(&s.to_le_bytes());
        }
        let zero_point = rng.byte() as i8;
        let act_min = if rng.below(2) == 0 { zero_point } else { -128 };
        let (Some(bias), Some(multiplier), Some(shift)) = (
            I32s::new(&bias[..4 * cout]),
            I32s::new(&mult[..4 * cout]),
            I32s::new(&shift[..4 * cout]),
        ) else {
            continue;
        };
        let p = ConvParams {
            k,
            stride,
            pad: pad_px,
            shift: sh,
            weights: &w[..nw],
            bias,
            pad_value: &pad[..cin],
            rescale: Rescale {
                multiplier,
                shift,
                zero_point,
                act_min,
                act_max: 127,
            },
        };
        y_fast[..ny].fill(0x55);
        let in_place = k == 1 && stride == 1 && pad_px == 0 && rng.below(3) == 0;
        let mut xi = [0i8; MAX_X];
        for (d, &s) in xi.iter_mut().zip(&x[..nx]) {
            *d = s as i8;
        }
        let (ys_, y_ref, y_fast) = (ys, &mut y_ref[..ny], &mut y_fast[..ny]);
        let took = if in_place {
            // The output `lag` bytes below the input in one buffer, as the memory plan places
            // an in-place conv (plan_rules::conv_lag), against the reference on separate slices.
            let reach = plan_rules::reach(sh, wd) as u64;
            let lag =
                plan_rules::conv_lag((h * wd) as u64, cin as u64, cout as u64, reach) as usize;
            let r = conv::forward(
                &mut Split {
                    x: &xi[..nx],
                    y: y_ref,
                },
                ys_,
                xs,
                &p,
            );
            let mut buf = [0i8; MAX_X + MAX_Y];
            let len = (lag + nx).max(ny);
            buf[lag..lag + nx].copy_from_slice(&xi[..nx]);
            let f = match Shared::new(&mut buf[..len], lag..lag + nx, 0..ny) {
                Some(mut io) => fast.conv(&mut io, ys_, xs, &p),
                None => Ok(false),
            };
            y_fast.copy_from_slice(&buf[..ny]);
            r.is_ok() && f == Ok(true)
        } else if rng.below(2) == 0 {
            both(fast, &x[..nx], y_ref, y_fast, ys_, xs, &p)
        } else {
            both(fast, &xi[..nx], y_ref, y_fast, ys_, xs, &p)
        };
        if !took {
            continue;
        }
        taken += 1;
        if let Some(i) = (0..ny).find(|&i| y_fast[i] != y_ref[i]) {
            return Err(Mismatch {
                case,
                index: i,
                fast: y_fast[i],
                reference: y_ref[i],
            });
        }
    }
    Ok(taken)
}

/// [`FastConv`] for a [`super::Mac`] unit.
pub struct With<M>(pub core::marker::PhantomData<M>);

impl<M: super::Mac> FastConv for With<M> {
    /// Runs the fast conv on `io`; `Ok(false)` when it does not take this shape.
    fn conv<I: Io>(
        &mut self,
        io: &mut I,
        ys: Shape,
        xs: Shape,
        p: &ConvParams,
    ) -> Result<bool, KernelError> {
        super::conv_with::<M, _>(io, ys, xs, p)
    }
}

/// [`FastConv`] for the DSP unit's wide path alone (`super::wide`): a case it does not take
/// counts as not taken, so [`run`] returns how many cases the wide path computed, all checked.
pub struct Wide;

impl FastConv for Wide {
    /// Runs the fast conv on `io`; `Ok(false)` when it does not take this shape.
    fn conv<I: Io>(
        &mut self,
        io: &mut I,
        ys: Shape,
        xs: Shape,
        p: &ConvParams,
    ) -> Result<bool, KernelError> {
        conv::check(io, ys, xs, p)?;
        Ok(super::wide::conv(io, I::X::SIGNED, ys, xs, p))
    }
}

/// Random 2x2 average pools (1..=9 x 1..=9 pixels, 1..=72 channels, random data with the int8
/// extremes often) through `avg_pool2::forward_io`, apart and in place (output `c` bytes below
/// the input, the plan's tightest lag), against the formula `round_div(sum of 4, 4)`. On the
/// DSP unit this checks its four-channels-a-word loop. `Ok(cases)` or the first mismatch.
pub fn avg_pool(seed: u64, cases: u32) -> Result<u32, Mismatch> {
    use super::super::avg_pool2::{forward_io, out_shape};
    use crate::requant::round_div;
    const MAX_C: usize = 72;
    let mut rng = Rng(seed);
    let mut x = [0i8; 9 * 9 * MAX_C];
    let mut y = [0i8; 4 * 4 * MAX_C];
    let mut want = [0i8; 4 * 4 * MAX_C];
    let mut buf = [0i8; 9 * 9 * MAX_C + MAX_C];
    for case in 0..cases {
        let xs = Shape::new(1 + rng.below(9), 1 + rng.below(9), 1 + rng.below(MAX_C));
        let ys = out_shape(xs);
        let (nx, ny) = (xs.elements().unwrap_or(0), ys.elements().unwrap_or(0));
        for v in &mut x[..nx] {
            *v = match rng.below(4) {
                0 => [-128, 127, -1, 0][rng.below(4)],
                _ => rng.byte() as i8,
            };
        }
        for oy in 0..ys.h {
            for ox in 0..ys.w {
                for ch in 0..xs.c {
                    let s: i32 = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .iter()
                        .map(|&(dy, dx)| x[xs.at(2 * oy + dy, 2 * ox + dx, ch)] as i32)
                        .sum();
                    want[ys.at(oy, ox, ch)] = round_div(s, 4) as i8;
                }
            }
        }
        // A kernel error (never, on these shapes) is a mismatch at index usize::MAX.
        let differ = |ran: bool, got: &[i8]| match ran {
            false => Some(Mismatch {
                case,
                index: usize::MAX,
                fast: 0,
                reference: 0,
            }),
            true => got
                .iter()
                .zip(&want[..ny])
                .position(|(g, w)| g != w)
                .map(|index| Mismatch {
                    case,
                    index,
                    fast: got[index],
                    reference: want[index],
                }),
        };
        let ran = forward_io(
            &mut Split {
                x: &x[..nx],
                y: &mut y[..ny],
            },
            xs,
        )
        .is_ok();
        if let Some(m) = differ(ran, &y[..ny]) {
            return Err(m);
        }
        let c = xs.c;
        buf[c..c + nx].copy_from_slice(&x[..nx]);
        let ran = match Shared::new(&mut buf[..c + nx], c..c + nx, 0..ny) {
            Some(mut io) => forward_io(&mut io, xs).is_ok(),
            None => false,
        };
        if let Some(m) = differ(ran, &buf[..ny]) {
            return Err(m);
        }
    }
    Ok(cases)
}

/// Random residual adds (1..=300 elements, so every remainder of the four-element loop; the
/// constants quantize makes, the fast form, with a clamp now and then) through `add::forward`
/// and `add::forward_in_place` over either input and over both, against the formula element by
/// element. On the DSP unit this checks its element loop. `Ok(cases)` or the first mismatch.
pub fn add(seed: u64, cases: u32) -> Result<u32, Mismatch> {
    use super::super::add::{add as formula, forward, forward_in_place, AddParams, Over};
    const MAX_N: usize = 300;
    let mut rng = Rng(seed);
    let (mut a, mut b) = ([0i8; MAX_N], [0i8; MAX_N]);
    let (mut y, mut want) = ([0i8; MAX_N], [0i8; MAX_N]);
    for case in 0..cases {
        let n = 1 + rng.below(MAX_N);
        let mut byte = || match rng.below(4) {
            0 => [-128, 127, -1, 0][rng.below(4)],
            _ => rng.byte() as i8,
        };
        for (va, vb) in a[..n].iter_mut().zip(&mut b[..n]) {
            (*va, *vb) = (byte(), byte());
        }
        let y_zero_point = rng.byte() as i8;
        let p = AddParams {
            a_zero_point: rng.byte() as i8,
            b_zero_point: rng.byte() as i8,
            y_zero_point,
            left_shift: 20,
            a_multiplier: rng.q31(),
            a_shift: -(rng.below(4) as i32),
            b_multiplier: rng.q31(),
            b_shift: -(rng.below(4) as i32),
            out_multiplier: rng.q31(),
            out_shift: -17 - rng.below(7) as i32,
            act_min: if rng.below(4) == 0 {
                y_zero_point
            } else {
                -128
            },
            act_max: 127,
        };
        // 0: apart; 1: over a; 2: over b; 3: over both (b = a).
        let how = case % 4;
        for i in 0..n {
            let qb = if how == 3 { a[i] } else { b[i] };
            want[i] = formula(a[i], qb, &p);
        }
        let ran = match how {
            0 => forward(&mut y[..n], &a[..n], &b[..n], &p),
            1 => {
                y[..n].copy_from_slice(&a[..n]);
                forward_in_place(&mut y[..n], Over::A { b: &b[..n] }, &p)
            }
            2 => {
                y[..n].copy_from_slice(&b[..n]);
                forward_in_place(&mut y[..n], Over::B { a: &a[..n] }, &p)
            }
            _ => {
                y[..n].copy_from_slice(&a[..n]);
                forward_in_place(&mut y[..n], Over::Both, &p)
            }
        };
        let bad = match ran {
            Err(_) => Some(usize::MAX), // never, on these lengths: a mismatch at usize::MAX
            Ok(()) => y[..n].iter().zip(&want[..n]).position(|(g, w)| g != w),
        };
        if let Some(index) = bad {
            return Err(Mismatch {
                case,
                index,
                fast: y.get(index).copied().unwrap_or(0),
                reference: want.get(index).copied().unwrap_or(0),
            });
        }
    }
    Ok(cases)
}
