//! What the SIMD MAC units (aarch64 NEON and `sdot`, x86-64 AVX2) share: the packed form of a
//! block, and the walk over the blocks in groups of 4.
//!
//! A block's 4 patch bytes stay as they are, one `u32` ([`super::Mac::Packed`]), read as 4 i8. A
//! u8 input (the stem's 0..255 pixels) is stored as `x - 128` (`x ^ 0x80`), and each accumulator
//! starts with `128 * sum(w)` on top of the bias ([`acc_offset`]), so that
//! `sum(w * x) = sum(w * (x - 128)) + 128 * sum(w)` holds exactly (mod 2^32, as every i32 sum
//! wraps). Every product is then i8 x i8, which the SIMD multiplies take as they are.
//!
//! The driver interleaves the two pixels' blocks: 8 `u32` of `x` are `[p0 b0, p1 b0, p0 b1,
//! p1 b1, p0 b2, p1 b2, p0 b3, p1 b3]`, and a weight row is read 4 blocks (16 bytes) at a time.

/// The [`super::Mac`] impl of a SIMD unit over this packing; `$dot` is the unit's 2x2 product
/// `fn(&[[u32; 2]], &[[u8; 4]], &[[u8; 4]], &mut [i32; 4])`.
#[allow(unused_macros)]
macro_rules! simd_mac {
    ($unit:ty, $dot:expr) => {
        impl super::Mac for $unit {
            type Packed = u32;

            #[inline(always)]
            fn pack(b: [u8; 4], signed: bool) -> u32 {
                super::simd::pack(b, signed)
            }

            #[inline]
            fn acc_offset(w: &[u8], signed: bool) -> i32 {
                super::simd::acc_offset(w, signed)
            }

            #[inline(always)]
            fn dot2x2(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
                ($dot)(x, w0, w1, acc)
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use simd_mac;

/// 4 patch bytes as they are (i8 input) or as `x - 128` (u8 input).
#[inline(always)]
pub fn pack(b: [u8; 4], signed: bool) -> u32 {
    let w = u32::from_le_bytes(b);
    if signed {
        w
    } else {
        w ^ 0x8080_8080
    }
}

/// `128 * sum(w)` for u8 input (undoes the `- 128` of [`pack`]), 0 for i8 input.
#[inline]
pub fn acc_offset(w: &[u8], signed: bool) -> i32 {
    if signed {
        return 0;
    }
    let sum = w.iter().fold(0i32, |s, &b| s.wrapping_add(b as i8 as i32));
    sum.wrapping_mul(128)
}

/// The blocks of `x`, `w0` and `w1` a product covers (the shortest length), in groups of 4
/// blocks, then the last 1..3 blocks zero-padded to a group (`None` if there are none; zero
/// weights add nothing, whatever the input).
#[allow(clippy::type_complexity)]
#[inline(always)]
pub fn groups<'a>(
    x: &'a [[u32; 2]],
    w0: &'a [[u8; 4]],
    w1: &'a [[u8; 4]],
) -> (
    impl Iterator<Item = (&'a [u32; 8], &'a [u8; 16], &'a [u8; 16])>,
    Option<([u32; 8], [u8; 16], [u8; 16])>,
) {
    let n = w0.len().min(w1.len()).min(x.len());
    let (xg, xr) = x[..n].as_flattened().as_chunks::<8>();
    let (w0g, w0r) = w0[..n].as_flattened().as_chunks::<16>();
    let (w1g, w1r) = w1[..n].as_flattened().as_chunks::<16>();
    let last = (!xr.is_empty()).then(|| {
        let (mut xt, mut w0t, mut w1t) = ([0u32; 8], [0u8; 16], [0u8; 16]);
        xt[..xr.len()].copy_from_slice(xr);
        w0t[..w0r.len()].copy_from_slice(w0r);
        w1t[..w1r.len()].copy_from_slice(w1r);
        (xt, w0t, w1t)
    });
    (
        xg.iter().zip(w0g).zip(w1g).map(|((x, a), b)| (x, a, b)),
        last,
    )
}

/// [`super::Mac::dot2x2`] over this packing in plain Rust: what a SIMD unit runs on a CPU
/// without its instructions.
pub fn dot2x2_scalar(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
    let dot = |x: u32, w: [u8; 4]| -> i32 {
        let x = x.to_le_bytes();
        (0..4).fold(0i32, |s, i| s + x[i] as i8 as i32 * w[i] as i8 as i32)
    };
    for ((x, &w0), &w1) in x.iter().zip(w0).zip(w1) {
        acc[0] = acc[0].wrapping_add(dot(x[0], w0));
        acc[1] = acc[1].wrapping_add(dot(x[0], w1));
        acc[2] = acc[2].wrapping_add(dot(x[1], w0));
        acc[3] = acc[3].wrapping_add(dot(x[1], w1));
    }
}
