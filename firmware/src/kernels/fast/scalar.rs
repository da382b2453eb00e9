//! The scalar MAC unit, for cores with a 32 x 32 multiply and no SIMD: RV32IMC (`mul`) and
//! Cortex-M0/M0+ (thumbv6m: `muls`, no DSP extension). Every MAC is one multiply and one add; the
//! unit's work is keeping everything else out of the loop. One definition for both targets.
//!
//! Packing widens the 4 patch bytes to `i16` (sign- or zero-extended once per pixel and segment,
//! shared by every output channel), so the input is a `lh` per byte and pixel with no extraction;
//! the weights stay int8 in flash in the file's order and are read with `lb`, which sign-extends
//! for free. One 4-byte block of the 2x2 product (16 MACs: 2 pixels x 2 channels x 4) is 8 `lh`,
//! 8 `lb`, 16 `mul` and 16 `add`, the four accumulators in registers, plus the loop's pointer
//! increments and branch: about 3.3 instructions per MAC. Plain safe Rust: LLVM emits exactly
//! that loop for RV32 (no `asm!` needed), and the host tests run the same code.
//!
//! On thumbv6m the same source gives `ldrsh` / `ldrsb` (sign-extending loads with a register
//! offset), `muls` and `adds`; with only 8 low registers for most Thumb-1 instructions some
//! operands are reloaded or spilled, hence more instructions per MAC than on RV32
//! (docs/design.md, Engine and kernels).
use super::{Bytes, Mac};
use crate::kernels::conv::ConvParams;
use crate::kernels::Shape;

/// The scalar MAC unit (RV32IMC, Cortex-M0/M0+; see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Scalar;

impl Mac for Scalar {
    /// The 4 bytes, each sign-extended (i8 input) or zero-extended (u8 input) to `i16`.
    type Packed = [i16; 4];

    #[inline(always)]
    fn pack(b: [u8; 4], signed: bool) -> [i16; 4] {
        if signed {
            b.map(|v| i16::from(v as i8))
        } else {
            b.map(i16::from)
        }
    }

    #[inline(always)]
    fn dot2x2(x: &[[[i16; 4]; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        let mut a = *acc;
        for ((x, w0), w1) in x.iter().zip(w0).zip(w1) {
            // Unrolled by hand: at the engine's opt-level "s" LLVM keeps a 4-step loop here.
            mac(&mut a, x, w0, w1, 0);
            mac(&mut a, x, w0, w1, 1);
            mac(&mut a, x, w0, w1, 2);
            mac(&mut a, x, w0, w1, 3);
        }
        *acc = a;
    }

    /// Convs with up to 256-byte patches and 64 output channels: [`super::quad`].
    fn special(io: &mut dyn Bytes, _signed: bool, ys: Shape, xs: Shape, p: &ConvParams) -> bool {
        super::quad::conv(io, ys, xs, p)
    }
}

/// Byte `k` of one block: `a[2*i + j] += x[i][k] * w_j[k]`, 4 multiplies and 4 adds.
#[inline(always)]
fn mac(a: &mut [i32; 4], x: &[[i16; 4]; 2], w0: &[u8; 4], w1: &[u8; 4], k: usize) {
    let (p0, p1) = (i32::from(x[0][k]), i32::from(x[1][k]));
    let (v0, v1) = (i32::from(w0[k] as i8), i32::from(w1[k] as i8));
    a[0] = a[0].wrapping_add(p0.wrapping_mul(v0));
    a[1] = a[1].wrapping_add(p0.wrapping_mul(v1));
    a[2] = a[2].wrapping_add(p1.wrapping_mul(v0));
    a[3] = a[3].wrapping_add(p1.wrapping_mul(v1));
}
