//! The aarch64 MAC units: [`Neon`] (baseline Advanced SIMD, every aarch64 core) and [`Sdot`]
//! (the dot-product extension, FEAT_DotProd: Cortex-A55/A75 and later, Jetson Orin's A78AE).
//!
//! Both use the shared packing of [`super::simd`]: a block's 4 bytes as 4 i8 in a `u32`, u8 input
//! stored as `x - 128` with `128 * sum(w)` added back through [`super::Mac::acc_offset`], so every
//! product is i8 x i8. 16 bytes of `x` are `[p0 b0, p1 b0, p0 b1, p1 b1]`; each weight row is
//! loaded 4 blocks (16 bytes) at a time and each block doubled (`zip1`/`zip2` of the row with
//! itself: `[b0 b0 b1 b1]`, `[b2 b2 b3 b3]`), so a weight block sits next to both pixels' copies
//! of that block:
//!
//! ```text
//! Sdot, per 4 blocks (64 MACs): 2 x loads (one ld1), 2 weight loads, 4 zips, 4 sdot
//!   sdot a, x, w: a[l] += sum_{i<4} x[4l+i] * w[4l+i]        lanes: [p0, p1, p0, p1]
//! Neon, per 4 blocks (64 MACs): 2 x loads, 2 weight loads, 4 zips, 8 smull(2), 8 sadalp
//!   smull: 8 i8 x i8 products (each fits i16: |x*w| <= 128*128); sadalp adds pairs of them
//!   to i32 lanes                                              lanes: [p0, p0, p1, p1]
//! ```
//! A last group of 1..3 blocks is copied into a zero-padded 4-block buffer (zero weights add
//! nothing, whatever the input). The 4 sums are reduced across lanes once per call.
//!
//! `sdot` goes through `asm!` inside a `#[target_feature(enable = "dotprod")]` fn. A build with
//! `-C target-feature=+dotprod` calls it directly (and picks [`Sdot`] as `Native`); any other
//! aarch64 build runs [`Sdot`] on [`Neon`]'s code until [`Sdot::assume_supported`] is called
//! (after a run-time check such as std's `is_aarch64_feature_detected!("dotprod")`).
use core::arch::aarch64::{
    int8x16_t, uint8x16_t, vaddq_s32, vdupq_n_s32, vget_low_s8, vgetq_lane_s32, vmull_high_s8,
    vmull_s8, vpadalq_s16, vpaddq_s32, vreinterpretq_s8_u32, vreinterpretq_u32_u8, vuzp1q_s32,
    vuzp2q_s32, vzip1q_u32, vzip2q_u32,
};
use core::sync::atomic::{AtomicBool, Ordering};

use super::simd::{groups, simd_mac};

/// NEON MAC unit (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Neon;

/// Dot-product MAC unit (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Sdot;

/// Set once the program has vouched that the CPU has FEAT_DotProd ([`Sdot::assume_supported`]).
static SDOT_SUPPORTED: AtomicBool = AtomicBool::new(false);

impl Sdot {
    /// Lets [`Sdot`] run `sdot` in a build without the compile-time `dotprod` feature.
    ///
    /// # Safety
    /// The CPU running this program must implement the dot-product extension (FEAT_DotProd),
    /// e.g. `std::arch::is_aarch64_feature_detected!("dotprod")` returned `true`.
    #[allow(unsafe_code)]
    pub unsafe fn assume_supported() {
        SDOT_SUPPORTED.store(true, Ordering::Relaxed);
    }

    /// Whether [`Sdot`] runs `sdot` (else it runs [`Neon`]'s code, with the same results).
    pub fn active() -> bool {
        cfg!(target_feature = "dotprod") || SDOT_SUPPORTED.load(Ordering::Relaxed)
    }
}

simd_mac!(Neon, call::neon);

simd_mac!(Sdot, |x: &[[u32; 2]],
                 w0: &[[u8; 4]],
                 w1: &[[u8; 4]],
                 acc: &mut [i32; 4]| {
    if Sdot::active() {
        call::sdot(x, w0, w1, acc)
    } else {
        call::neon(x, w0, w1, acc)
    }
});

/// One weight group doubled block by block: `([b0 b0 b1 b1], [b2 b2 b3 b3])`.
#[target_feature(enable = "neon")]
#[inline]
fn doubled(w: uint8x16_t) -> (int8x16_t, int8x16_t) {
    let w = vreinterpretq_u32_u8(w);
    (
        vreinterpretq_s8_u32(vzip1q_u32(w, w)),
        vreinterpretq_s8_u32(vzip2q_u32(w, w)),
    )
}

/// [`super::Mac::dot2x2`] with `smull`/`sadalp` (see the module docs).
#[target_feature(enable = "neon")]
#[inline]
fn dot2x2_neon(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
    // (a, b): blocks 0-1 and 2-3 of a group; lanes [p0, p0, p1, p1].
    let (mut a0, mut b0, mut a1, mut b1) = (
        vdupq_n_s32(0),
        vdupq_n_s32(0),
        vdupq_n_s32(0),
        vdupq_n_s32(0),
    );
    let mut step = |x: &[u32; 8], w0: &[u8; 16], w1: &[u8; 16]| {
        let (xa, xb) = load::x_group(x);
        let (xa, xb) = (vreinterpretq_s8_u32(xa), vreinterpretq_s8_u32(xb));
        let (w0a, w0b) = doubled(load::w_group(w0));
        let (w1a, w1b) = doubled(load::w_group(w1));
        a0 = vpadalq_s16(a0, vmull_s8(vget_low_s8(xa), vget_low_s8(w0a)));
        a1 = vpadalq_s16(a1, vmull_s8(vget_low_s8(xa), vget_low_s8(w1a)));
        b0 = vpadalq_s16(b0, vmull_s8(vget_low_s8(xb), vget_low_s8(w0b)));
        b1 = vpadalq_s16(b1, vmull_s8(vget_low_s8(xb), vget_low_s8(w1b)));
        a0 = vpadalq_s16(a0, vmull_high_s8(xa, w0a));
        a1 = vpadalq_s16(a1, vmull_high_s8(xa, w1a));
        b0 = vpadalq_s16(b0, vmull_high_s8(xb, w0b));
        b1 = vpadalq_s16(b1, vmull_high_s8(xb, w1b));
    };
    let (full, last) = groups(x, w0, w1);
    for (x, w0, w1) in full {
        step(x, w0, w1);
    }
    if let Some((x, w0, w1)) = &last {
        step(x, w0, w1);
    }
    // [c0 p0, c0 p1, c1 p0, c1 p1]
    let r = vpaddq_s32(vaddq_s32(a0, b0), vaddq_s32(a1, b1));
    add_lanes(
        acc,
        [
            vgetq_lane_s32::<0>(r),
            vgetq_lane_s32::<2>(r),
            vgetq_lane_s32::<1>(r),
            vgetq_lane_s32::<3>(r),
        ],
    );
}

/// `acc[i] += d[i]`, wrapping.
#[inline(always)]
fn add_lanes(acc: &mut [i32; 4], d: [i32; 4]) {
    for (a, d) in acc.iter_mut().zip(d) {
        *a = a.wrapping_add(d);
    }
}

/// [`super::Mac::dot2x2`] with `sdot` (see the module docs).
#[target_feature(enable = "dotprod")]
#[inline]
fn dot2x2_sdot(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
    // (a, b): blocks 0-1 and 2-3 of a group; lanes [p0, p1, p0, p1].
    let (mut a0, mut b0, mut a1, mut b1) = (
        vdupq_n_s32(0),
        vdupq_n_s32(0),
        vdupq_n_s32(0),
        vdupq_n_s32(0),
    );
    let mut step = |x: &[u32; 8], w0: &[u8; 16], w1: &[u8; 16]| {
        let (xa, xb) = load::x_group(x);
        let (xa, xb) = (vreinterpretq_s8_u32(xa), vreinterpretq_s8_u32(xb));
        let (w0a, w0b) = doubled(load::w_group(w0));
        let (w1a, w1b) = doubled(load::w_group(w1));
        a0 = dot::sdot(a0, xa, w0a);
        a1 = dot::sdot(a1, xa, w1a);
        b0 = dot::sdot(b0, xb, w0b);
        b1 = dot::sdot(b1, xb, w1b);
    };
    let (full, last) = groups(x, w0, w1);
    for (x, w0, w1) in full {
        step(x, w0, w1);
    }
    if let Some((x, w0, w1)) = &last {
        step(x, w0, w1);
    }
    let (c0, c1) = (vaddq_s32(a0, b0), vaddq_s32(a1, b1));
    // [c0 p0, c1 p0, c0 p1, c1 p1]: the lanes of pixel 0, then of pixel 1, summed pairwise.
    let r = vpaddq_s32(vuzp1q_s32(c0, c1), vuzp2q_s32(c0, c1));
    add_lanes(
        acc,
        [
            vgetq_lane_s32::<0>(r),
            vgetq_lane_s32::<1>(r),
            vgetq_lane_s32::<2>(r),
            vgetq_lane_s32::<3>(r),
        ],
    );
}

/// The calls into the `#[target_feature]` fns: the CPU must have the features, which these
/// wrappers establish.
#[allow(unsafe_code)]
mod call {
    #[cfg(not(target_feature = "neon"))]
    compile_error!("the aarch64 MAC units need NEON (every aarch64 target but *-softfloat)");

    #[inline(always)]
    pub fn neon(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        // SAFETY: the whole build targets NEON (`cfg(target_feature = "neon")`, checked above).
        unsafe { super::dot2x2_neon(x, w0, w1, acc) }
    }

    /// Only when [`super::Sdot::active`].
    #[inline(always)]
    pub fn sdot(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        // SAFETY: called only when `Sdot::active()`: either the whole build targets FEAT_DotProd
        // (`cfg(target_feature = "dotprod")`) or `Sdot::assume_supported` was called, whose
        // caller guarantees that the CPU has it.
        unsafe { super::dot2x2_sdot(x, w0, w1, acc) }
    }
}

/// The `sdot` instruction (the only `asm!` here).
#[allow(unsafe_code)]
mod dot {
    use core::arch::aarch64::{int32x4_t, int8x16_t};
    use core::arch::asm;

    /// `sdot a.4s, x.16b, w.16b`: `a[l] += sum_{i<4} x[4l+i] * w[4l+i]` (i8 products, i32 lanes,
    /// wrapping).
    #[target_feature(enable = "dotprod")]
    #[inline]
    pub fn sdot(a: int32x4_t, x: int8x16_t, w: int8x16_t) -> int32x4_t {
        let mut a = a;
        // SAFETY: one register-to-register instruction, present on every CPU this fn may run on
        // (its target feature); no memory, stack or flags touched.
        unsafe {
            asm!(
                "sdot {a:v}.4s, {x:v}.16b, {w:v}.16b",
                a = inout(vreg) a,
                x = in(vreg) x,
                w = in(vreg) w,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        a
    }
}

/// Vector loads from arrays (the intrinsics take raw pointers).
#[allow(unsafe_code)]
mod load {
    use core::arch::aarch64::{uint32x4_t, uint8x16_t, vld1q_u32_x2, vld1q_u8};

    /// Two blocks of both pixels, twice: `([p0 b0, p1 b0, p0 b1, p1 b1], [.. b2 .., .. b3 ..])`.
    #[target_feature(enable = "neon")]
    #[inline]
    pub fn x_group(x: &[u32; 8]) -> (uint32x4_t, uint32x4_t) {
        // SAFETY: `ld1 {v0.4s, v1.4s}` reads the 32 bytes of `x` (u32 aligned, as it needs).
        let v = unsafe { vld1q_u32_x2(x.as_ptr()) };
        (v.0, v.1)
    }

    /// 4 weight blocks (16 i8).
    #[target_feature(enable = "neon")]
    #[inline]
    pub fn w_group(w: &[u8; 16]) -> uint8x16_t {
        // SAFETY: `ld1 {v.16b}` reads the 16 bytes of `w` (no alignment needed).
        unsafe { vld1q_u8(w.as_ptr()) }
    }
}
