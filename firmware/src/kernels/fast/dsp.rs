//! The Cortex-M DSP MAC unit (M4, M7, M33 with the DSP extension): `sxtb16` sign-extends bytes 0
//! and 2 of a word into two 16-bit lanes (`ror #8` first: bytes 1 and 3), `smlad` multiplies
//! both lane pairs and adds them to an accumulator, 2 MACs in one instruction.
//!
//! Packing 4 patch bytes `[x0 x1 x2 x3]` gives the lane pairs `(x0, x2)` and `(x1, x3)`; the
//! weights are extended the same way when loaded, so `smlad` pairs matching channels without any
//! reordering, and the weights stay int8 in flash in the file's order. One 4-channel block of the
//! 2x2 product (16 MACs: 2 pixels x 2 channels x 4) is 2 weight loads, 4 `sxtb16`, 3 `ldrd` of
//! packed input (pixel 0's pair is loaded twice: registers are short) and 8 `smlad`.
//!
//! On Cortex-M builds with the DSP extension the four intrinsics are single instructions through
//! `asm!` ([`super::dsp_arch`]); elsewhere the same functions are plain Rust with the
//! instructions' documented semantics, so the host tests run this exact kernel code.
use super::dsp_arch as arch;
use super::{Bytes, Mac};
use crate::kernels::conv::ConvParams;
use crate::kernels::Shape;

/// The DSP MAC unit (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Dsp;

impl Mac for Dsp {
    /// `[sxtb16(w), sxtb16(w ror 8)]` (or the unsigned `uxtb16` for u8 input).
    type Packed = [u32; 2];

    #[inline(always)]
    fn pack(b: [u8; 4], signed: bool) -> [u32; 2] {
        let w = u32::from_le_bytes(b);
        if signed {
            [arch::sxtb16(w), arch::sxtb16_ror8(w)]
        } else {
            [arch::uxtb16(w), arch::uxtb16_ror8(w)]
        }
    }

    #[inline(always)]
    fn dot2x2(x: &[[[u32; 2]; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        arch::dot2x2(x, w0, w1, acc)
    }

    /// Convs with up to 128-byte patches and 64 output channels: [`super::wide`].
    fn special(io: &mut dyn Bytes, signed: bool, ys: Shape, xs: Shape, p: &ConvParams) -> bool {
        super::wide::conv(io, signed, ys, xs, p)
    }
}
