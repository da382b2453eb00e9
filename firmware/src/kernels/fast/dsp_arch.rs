//! The Cortex-M DSP unit's instructions that the fast kernels use ([`super::dsp`] and
//! [`super::wide`]): `sxtb16`, `uxtb16` (each also with `ror #8`), `sadd16`, `smlad`, and the
//! hand-scheduled 2x2 block product. On Cortex-M builds with the DSP extension each is one
//! `asm!` (the only `unsafe` of the 2x2 DSP path); elsewhere the same functions are plain Rust
//! with the instructions' documented semantics, so the host tests run the kernels' exact code.
#[cfg(shiftkit_dsp)]
pub use asm::*;
#[cfg(not(shiftkit_dsp))]
pub use emulated::*;

/// [`super::Mac::dot2x2`] in plain Rust over the intrinsics (the emulated path, and the
/// reference the hand-scheduled loop of the DSP build's `dot2x2` follows).
#[inline(always)]
#[allow(dead_code)]
fn dot2x2_rust(x: &[[[u32; 2]; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
    let [mut a00, mut a01, mut a10, mut a11] = *acc;
    for ((x, w0), w1) in x.iter().zip(w0).zip(w1) {
        let w0 = u32::from_le_bytes(*w0);
        let (w0e, w0o) = (sxtb16(w0), sxtb16_ror8(w0));
        let w1 = u32::from_le_bytes(*w1);
        let (w1e, w1o) = (sxtb16(w1), sxtb16_ror8(w1));
        a00 = smlad(x[0][0], w0e, a00);
        a00 = smlad(x[0][1], w0o, a00);
        a01 = smlad(x[0][0], w1e, a01);
        a01 = smlad(x[0][1], w1o, a01);
        a10 = smlad(x[1][0], w0e, a10);
        a10 = smlad(x[1][1], w0o, a10);
        a11 = smlad(x[1][0], w1e, a11);
        a11 = smlad(x[1][1], w1o, a11);
    }
    *acc = [a00, a01, a10, a11];
}

/// The instructions, one `asm!` each.
#[cfg(shiftkit_dsp)]
#[allow(unsafe_code)]
mod asm {
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
mod emulated {
    #[inline(always)]
    fn lanes(lo: u32, hi: u32) -> u32 {
        (lo & 0xFFFF) | (hi << 16)
    }

    #[inline(always)]
    /// `sxtb16`: bytes 0 and 2 sign-extended to two 16-bit lanes.
    pub fn sxtb16(w: u32) -> u32 {
        lanes(
            w as u8 as i8 as i32 as u32,
            (w >> 16) as u8 as i8 as i32 as u32,
        )
    }

    #[inline(always)]
    /// `sxtb16` of `w` rotated right by 8: bytes 1 and 3.
    pub fn sxtb16_ror8(w: u32) -> u32 {
        sxtb16(w.rotate_right(8))
    }

    #[inline(always)]
    /// `uxtb16`: bytes 0 and 2 zero-extended to two 16-bit lanes.
    pub fn uxtb16(w: u32) -> u32 {
        w & 0x00FF_00FF
    }

    #[inline(always)]
    /// `uxtb16` of `w` rotated right by 8: bytes 1 and 3.
    pub fn uxtb16_ror8(w: u32) -> u32 {
        uxtb16(w.rotate_right(8))
    }

    #[inline(always)]
    /// `sadd16`: two wrapping 16-bit lane sums.
    pub fn sadd16(a: u32, b: u32) -> u32 {
        lanes(
            (a as i16).wrapping_add(b as i16) as u16 as u32,
            ((a >> 16) as i16).wrapping_add((b >> 16) as i16) as u16 as u32,
        )
    }

    #[inline(always)]
    /// `smlad`: `acc` plus the two 16-bit lane products.
    pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let lo = (a as i16 as i32) * (b as i16 as i32);
        let hi = ((a >> 16) as i16 as i32) * ((b >> 16) as i16 as i32);
        acc.wrapping_add(lo).wrapping_add(hi)
    }

    #[inline(always)]
    /// The 2x2 block product (two pixels by two output channels) in Rust.
    pub fn dot2x2(x: &[[[u32; 2]; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        super::dot2x2_rust(x, w0, w1, acc)
    }
}
