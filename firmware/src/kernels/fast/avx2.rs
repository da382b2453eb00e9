//! The x86-64 AVX2 MAC unit, for quick host evaluation of large models: [`Avx2`].
//!
//! It uses the shared packing of [`super::simd`] (a block's 4 bytes as 4 i8, u8 input stored as
//! `x - 128` with `128 * sum(w)` added back through [`super::Mac::acc_offset`]). Per group of 4 blocks
//! (64 MACs), with 32 bytes of `x` = `[p0 b0, p1 b0, p0 b1, p1 b1 | p0 b2, p1 b2, p0 b3, p1 b3]`:
//!
//! ```text
//! xa, xb = vpmovsxbw(x[0..16]), vpmovsxbw(x[16..32])      16 i16 each: [p0 b0, p1 b0, p0 b1, p1 b1]
//! w      = vpmovsxbw(w row, 16 bytes)                     [b0, b1, b2, b3]
//! wa, wb = vpermq(w, [0 0 1 1]), vpermq(w, [2 2 3 3])     [b0, b0, b1, b1], [b2, b2, b3, b3]
//! a     += vpmaddwd(xa, wa); b += vpmaddwd(xb, wb)        i32 lanes: [p0 p0 p1 p1 p0 p0 p1 p1]
//! ```
//! (`vpmaddwd` multiplies i16 pairs and adds each pair into an i32: exact, as
//! `|x*w| <= 128*128`.) `vpmaddubsw` would take the bytes directly but saturates its i16 pair
//! sums, so it is not bit-exact. A last group of 1..3 blocks is zero-padded ([`super::simd`]).
//!
//! A build with AVX2 enabled (`-C target-cpu=native` on most x86-64 machines, or
//! `-C target-feature=+avx2`) picks [`Avx2`] as `Native`; any other x86-64 build runs [`Avx2`] on
//! the plain-Rust [`super::simd::dot2x2_scalar`] until [`Avx2::assume_supported`] is called
//! (after std's `is_x86_feature_detected!("avx2")`).
use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_castsi256_si128, _mm256_cvtepi8_epi16,
    _mm256_extracti128_si256, _mm256_hadd_epi32, _mm256_madd_epi16, _mm256_permute4x64_epi64,
    _mm256_setzero_si256, _mm_add_epi32, _mm_extract_epi32,
};
use core::sync::atomic::{AtomicBool, Ordering};

use super::simd::{dot2x2_scalar, groups, simd_mac};

/// AVX2 MAC unit (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Avx2;

/// Set once the program has vouched that the CPU has AVX2 ([`Avx2::assume_supported`]).
static AVX2_SUPPORTED: AtomicBool = AtomicBool::new(false);

impl Avx2 {
    /// Lets [`Avx2`] run AVX2 instructions in a build without the compile-time `avx2` feature.
    ///
    /// # Safety
    /// The CPU running this program must implement AVX2, e.g.
    /// `std::arch::is_x86_feature_detected!("avx2")` returned `true`.
    #[allow(unsafe_code)]
    pub unsafe fn assume_supported() {
        AVX2_SUPPORTED.store(true, Ordering::Relaxed);
    }

    /// Whether [`Avx2`] runs AVX2 code (else plain Rust, with the same results).
    pub fn active() -> bool {
        cfg!(target_feature = "avx2") || AVX2_SUPPORTED.load(Ordering::Relaxed)
    }
}

simd_mac!(Avx2, |x: &[[u32; 2]],
                 w0: &[[u8; 4]],
                 w1: &[[u8; 4]],
                 acc: &mut [i32; 4]| {
    if Avx2::active() {
        call::avx2(x, w0, w1, acc)
    } else {
        dot2x2_scalar(x, w0, w1, acc)
    }
});

/// [`super::Mac::dot2x2`] with `vpmaddwd` (see the module docs).
#[target_feature(enable = "avx2")]
#[inline]
fn dot2x2_avx2(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
    // (a, b): blocks 0-1 and 2-3 of a group; lanes [p0 p0 p1 p1 p0 p0 p1 p1].
    let (mut a0, mut b0, mut a1, mut b1) = (
        _mm256_setzero_si256(),
        _mm256_setzero_si256(),
        _mm256_setzero_si256(),
        _mm256_setzero_si256(),
    );
    let mut step = |x: &[u32; 8], w0: &[u8; 16], w1: &[u8; 16]| {
        let (xa, xb) = load::x_group(x);
        let (xa, xb) = (_mm256_cvtepi8_epi16(xa), _mm256_cvtepi8_epi16(xb));
        let (w0a, w0b) = doubled(_mm256_cvtepi8_epi16(load::w_group(w0)));
        let (w1a, w1b) = doubled(_mm256_cvtepi8_epi16(load::w_group(w1)));
        a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(xa, w0a));
        a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(xa, w1a));
        b0 = _mm256_add_epi32(b0, _mm256_madd_epi16(xb, w0b));
        b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(xb, w1b));
    };
    let (full, last) = groups(x, w0, w1);
    for (x, w0, w1) in full {
        step(x, w0, w1);
    }
    if let Some((x, w0, w1)) = &last {
        step(x, w0, w1);
    }
    // Per 128-bit half: [c0 p0, c0 p1, c1 p0, c1 p1]; then the halves summed.
    let h = _mm256_hadd_epi32(_mm256_add_epi32(a0, b0), _mm256_add_epi32(a1, b1));
    let r = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h));
    let d = [
        _mm_extract_epi32::<0>(r),
        _mm_extract_epi32::<2>(r),
        _mm_extract_epi32::<1>(r),
        _mm_extract_epi32::<3>(r),
    ];
    for (a, d) in acc.iter_mut().zip(d) {
        *a = a.wrapping_add(d);
    }
}

/// One weight group (16 i16) doubled block by block: `([b0 b0 b1 b1], [b2 b2 b3 b3])`.
#[target_feature(enable = "avx2")]
#[inline]
fn doubled(w: __m256i) -> (__m256i, __m256i) {
    (
        _mm256_permute4x64_epi64::<0b01_01_00_00>(w),
        _mm256_permute4x64_epi64::<0b11_11_10_10>(w),
    )
}

/// The call into the `#[target_feature]` fn, which needs the CPU to have AVX2.
#[allow(unsafe_code)]
mod call {
    /// Only when [`super::Avx2::active`].
    #[inline(always)]
    pub fn avx2(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        // SAFETY: called only when `Avx2::active()`: either the whole build targets AVX2
        // (`cfg(target_feature = "avx2")`) or `Avx2::assume_supported` was called, whose caller
        // guarantees that the CPU has it.
        unsafe { super::dot2x2_avx2(x, w0, w1, acc) }
    }
}

/// Vector loads from arrays (the intrinsics take raw pointers).
#[allow(unsafe_code)]
mod load {
    use core::arch::x86_64::{__m128i, _mm_loadu_si128};

    /// The 32 bytes of a group of `x`, as two 16-byte halves.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub fn x_group(x: &[u32; 8]) -> (__m128i, __m128i) {
        let (lo, hi) = x.split_at(4);
        // SAFETY: `vmovdqu` reads 16 bytes (no alignment needed) from each half of `x`, which
        // holds 4 u32 = 16 bytes.
        unsafe {
            (
                _mm_loadu_si128(lo.as_ptr().cast()),
                _mm_loadu_si128(hi.as_ptr().cast()),
            )
        }
    }

    /// 4 weight blocks (16 i8).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub fn w_group(w: &[u8; 16]) -> __m128i {
        // SAFETY: `vmovdqu` reads the 16 bytes of `w` (no alignment needed).
        unsafe { _mm_loadu_si128(w.as_ptr().cast()) }
    }
}
