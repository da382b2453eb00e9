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
//! `asm!` ([`arch`]); elsewhere the same functions are plain Rust with the instructions'
//! documented semantics, so the host tests run this exact kernel code.
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

/// [`Mac::dot2x2`] in plain Rust over the intrinsics (the emulated path, and the reference the
/// hand-scheduled loop of `arch::dot2x2` follows).
#[inline(always)]
#[allow(dead_code)]
fn dot2x2_rust(x: &[[[u32; 2]; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
    let [mut a00, mut a01, mut a10, mut a11] = *acc;
    for ((x, w0), w1) in x.iter().zip(w0).zip(w1) {
        let w0 = u32::from_le_bytes(*w0);
        let (w0e, w0o) = (arch::sxtb16(w0), arch::sxtb16_ror8(w0));
        let w1 = u32::from_le_bytes(*w1);
        let (w1e, w1o) = (arch::sxtb16(w1), arch::sxtb16_ror8(w1));
        a00 = arch::smlad(x[0][0], w0e, a00);
        a00 = arch::smlad(x[0][1], w0o, a00);
        a01 = arch::smlad(x[0][0], w1e, a01);
        a01 = arch::smlad(x[0][1], w1o, a01);
        a10 = arch::smlad(x[1][0], w0e, a10);
        a10 = arch::smlad(x[1][1], w0o, a10);
        a11 = arch::smlad(x[1][0], w1e, a11);
        a11 = arch::smlad(x[1][1], w1o, a11);
    }
    *acc = [a00, a01, a10, a11];
}

/// The instructions, one `asm!` each (the only `unsafe` of the DSP path).
#[cfg(shiftkit_dsp)]
#[allow(unsafe_code)]
pub mod arch {
    use core::arch::asm;

    /// `sxtb16`: lanes `(sext(w[7:0]), sext(w[23:16]))`.
    #[inline(always)]
    pub fn sxtb16(w: u32) -> u32 {
        let r;
        // SAFETY: one register-to-register instruction; no memory, stack or flags touched.
        unsafe {
            asm!("sxtb16 {r}, {w}", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// `sxtb16 ror #8`: lanes `(sext(w[15:8]), sext(w[31:24]))`.
    #[inline(always)]
    pub fn sxtb16_ror8(w: u32) -> u32 {
        let r;
        // SAFETY: one register-to-register instruction; no memory, stack or flags touched.
        unsafe {
            asm!("sxtb16 {r}, {w}, ror #8", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// `uxtb16`: lanes `(w[7:0], w[23:16])`, zero-extended.
    #[inline(always)]
    pub fn uxtb16(w: u32) -> u32 {
        let r;
        // SAFETY: one register-to-register instruction; no memory, stack or flags touched.
        unsafe {
            asm!("uxtb16 {r}, {w}", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// `uxtb16 ror #8`: lanes `(w[15:8], w[31:24])`, zero-extended.
    #[inline(always)]
    pub fn uxtb16_ror8(w: u32) -> u32 {
        let r;
        // SAFETY: one register-to-register instruction; no memory, stack or flags touched.
        unsafe {
            asm!("uxtb16 {r}, {w}, ror #8", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// `sadd16`: lane-wise `a + b` (signed 16-bit lanes, wrapping; sets the GE flags, which
    /// nothing reads).
    #[inline(always)]
    pub fn sadd16(a: u32, b: u32) -> u32 {
        let r;
        // SAFETY: one register-to-register instruction; no memory or stack touched.
        unsafe {
            asm!("sadd16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack))
        };
        r
    }

    /// `smlad`: `acc + lo(a)*lo(b) + hi(a)*hi(b)` (signed 16-bit lanes, wrapping add; it may set
    /// the sticky Q flag, which nothing reads).
    #[inline(always)]
    pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let r;
        // SAFETY: one register-to-register instruction; no memory or stack touched.
        unsafe {
            asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
        };
        r
    }

    /// The 2x2 block product, scheduled by hand into the 12 registers inline asm may use
    /// (compiled Rust spills here): per 4-channel block, 2 weight loads, 4 `sxtb16`, 3 `ldrd` of
    /// packed input and 8 `smlad`, 19 instructions for 16 MACs with the loop.
    #[inline(always)]
    pub fn dot2x2(x: &[[[u32; 2]; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        let n = w0.len().min(w1.len()).min(x.len());
        if n == 0 {
            return;
        }
        let [mut a00, mut a01, mut a10, mut a11] = *acc;
        // SAFETY: the loop runs `n >= 1` times and reads `n` blocks of 16 bytes from `x` (u32
        // aligned, as `ldrd` needs) and `n` words from each of `w0` and `w1` (`ldr` may be
        // unaligned on v7-M/v8-M), all in bounds since `n` is the shortest length; it writes only
        // its register operands and the flags, and touches no stack.
        unsafe {
            asm!(
                "2:",
                "ldr {we}, [{w0}], #4",
                "sxtb16 {wo}, {we}, ror #8",
                "sxtb16 {we}, {we}",
                "ldrd {xa}, {xb}, [{x}]",
                "smlad {a00}, {xa}, {we}, {a00}",
                "smlad {a00}, {xb}, {wo}, {a00}",
                "ldrd {xa}, {xb}, [{x}, #8]",
                "smlad {a10}, {xa}, {we}, {a10}",
                "smlad {a10}, {xb}, {wo}, {a10}",
                "ldr {we}, [{w1}], #4",
                "sxtb16 {wo}, {we}, ror #8",
                "sxtb16 {we}, {we}",
                "smlad {a11}, {xa}, {we}, {a11}",
                "smlad {a11}, {xb}, {wo}, {a11}",
                "ldrd {xa}, {xb}, [{x}], #16",
                "smlad {a01}, {xa}, {we}, {a01}",
                "smlad {a01}, {xb}, {wo}, {a01}",
                "subs {n}, {n}, #1",
                "bne 2b",
                a00 = inout(reg) a00,
                a01 = inout(reg) a01,
                a10 = inout(reg) a10,
                a11 = inout(reg) a11,
                x = inout(reg) x.as_ptr() => _,
                w0 = inout(reg) w0.as_ptr() => _,
                w1 = inout(reg) w1.as_ptr() => _,
                n = inout(reg) n => _,
                we = out(reg) _,
                wo = out(reg) _,
                xa = out(reg) _,
                xb = out(reg) _,
                options(nostack, readonly),
            );
        }
        *acc = [a00, a01, a10, a11];
    }
}

/// The instructions' semantics in plain Rust (hosts and cores without the DSP extension).
#[cfg(not(shiftkit_dsp))]
pub mod arch {
    #[inline(always)]
    fn lanes(lo: u32, hi: u32) -> u32 {
        (lo & 0xFFFF) | (hi << 16)
    }

    #[inline(always)]
    pub fn sxtb16(w: u32) -> u32 {
        lanes(
            w as u8 as i8 as i32 as u32,
            (w >> 16) as u8 as i8 as i32 as u32,
        )
    }

    #[inline(always)]
    pub fn sxtb16_ror8(w: u32) -> u32 {
        sxtb16(w.rotate_right(8))
    }

    #[inline(always)]
    pub fn uxtb16(w: u32) -> u32 {
        w & 0x00FF_00FF
    }

    #[inline(always)]
    pub fn uxtb16_ror8(w: u32) -> u32 {
        uxtb16(w.rotate_right(8))
    }

    #[inline(always)]
    pub fn sadd16(a: u32, b: u32) -> u32 {
        lanes(
            (a as i16).wrapping_add(b as i16) as u16 as u32,
            ((a >> 16) as i16).wrapping_add((b >> 16) as i16) as u16 as u32,
        )
    }

    #[inline(always)]
    pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let lo = (a as i16 as i32) * (b as i16 as i32);
        let hi = ((a >> 16) as i16 as i32) * ((b >> 16) as i16 as i32);
        acc.wrapping_add(lo).wrapping_add(hi)
    }

    #[inline(always)]
    pub fn dot2x2(x: &[[[u32; 2]; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        super::dot2x2_rust(x, w0, w1, acc)
    }
}
