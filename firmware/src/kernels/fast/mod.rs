//! The fast conv: every conv (k x k, shifted 1x1, plain 1x1) as a patch-times-weights product,
//! two output pixels by two output channels at a time, bit-exact with [`super::conv`].
//!
//! ```text
//! for each pair of output pixels (p0, p1), in raster order:
//!     patch_i = the k*k*cin input bytes output p_i reads (gather), packed for the MAC unit
//!               (each shift group is read at its pointer offset; out-of-image taps read the pad
//!               value, so borders need no halo and no test inside the MAC loop)
//!     for each pair of output channels (c0, c1):
//!         acc[i][j] = bias[c_j] + patch_i . w[c_j]          (the arch's `Mac::dot2x2`)
//!     write the pair's outputs (after both patches were read: in-place safe, see plan_rules)
//! ```
//! A patch longer than [`MAX_PATCH`] bytes is gathered, packed and multiplied in segments, the
//! accumulators carried from one to the next, so the fast path takes every conv and a build with
//! a MAC unit does not link the portable kernel ([`TAKES_EVERY_CONV`]).
//! The gather costs `k*k*cin` byte copies per output pixel, shared by all `cout` channels; the
//! MAC loop reads each packed input word once per channel pair and each weight word once per
//! pixel pair. The arch part is the [`Mac`] trait: [`dsp`] (Cortex-M4/M7/M33 `smlad`/`sxtb16`,
//! emulated in plain Rust elsewhere so its exact code path is tested on the host), [`scalar`] on
//! RISC-V RV32 and Cortex-M0/M0+ (one 32-bit multiply per MAC, int8 weights sign-extended by the
//! load; its own path [`quad`] takes most convs, four pixels per weight load), and on aarch64
//! `aarch64` (NEON `smull`/`sadalp`, and `sdot`), on x86-64 `avx2` (`vpmaddwd`, for quick host
//! evaluation); the SIMD units share their packing ([`simd`]).
#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod dsp;
pub mod dsp_arch;
pub mod quad;
pub mod scalar;
pub mod selftest;
pub mod simd;
pub mod wide;

use super::conv::{self, ConvParams};
use super::{Element, Io, KernelError, Shape, XView};
use crate::format::shift_groups;
use crate::requant;

/// Bytes of a patch (`k*k*cin`) the fast path gathers at a time; a larger patch is taken in
/// segments of this size. It sizes the kernel's stack buffers (`MAX_PATCH` bytes + two packed
/// patches).
pub const MAX_PATCH: usize = 576;

/// Output channels whose constants are decoded at a time (stack: about 2 KB).
const CHANNELS: usize = 64;

/// One output channel's decoded constants.
#[derive(Clone, Copy, Debug)]
struct Channel {
    rq: requant::Requantizer,
    bias: i32,
    /// The weight row's last partial 4-byte block, zero-padded.
    tail: [u8; 4],
}

impl Default for Channel {
    fn default() -> Self {
        Channel {
            rq: requant::Requantizer::new(0, 0, 0, -128, 127, 0),
            bias: 0,
            tail: [0; 4],
        }
    }
}

/// A multiply-accumulate unit: how 4 patch bytes are packed, and the 2x2 dot product.
pub trait Mac {
    /// The packed form of 4 consecutive patch bytes.
    type Packed: Copy + Default;
    /// Packs 4 patch bytes, read as i8 (`signed`) or u8.
    fn pack(b: [u8; 4], signed: bool) -> Self::Packed;
    /// What each accumulator of an output channel with weight row `w` (i8) starts with besides
    /// the bias: a unit whose [`Mac::pack`] offsets the input corrects for it here. 0 by default.
    fn acc_offset(w: &[u8], signed: bool) -> i32 {
        let _ = (w, signed);
        0
    }
    /// `acc[2*i + j] += x_i . w_j` where block `b` of pixel `i` is `x[b][i]`, over as many
    /// blocks as `w0` and `w1` hold (`x` has at least as many; `w` holds i8 weights).
    fn dot2x2(x: &[[Self::Packed; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]);
    /// Runs the conv on a unit-specific path if the unit has one and the conv fits it
    /// (`false`: not taken; the 2x2 path runs).
    fn special(io: &mut dyn Bytes, signed: bool, ys: Shape, xs: Shape, p: &ConvParams) -> bool {
        let _ = (io, signed, ys, xs, p);
        false
    }
}

/// The arch's MAC unit, chosen at compile time.
#[cfg(shiftkit_scalar)]
pub type Native = scalar::Scalar;
/// The name of this build's MAC unit.
#[cfg(shiftkit_scalar)]
pub const NATIVE_UNIT: &str = "scalar";
/// The arch's MAC unit, chosen at compile time.
#[cfg(shiftkit_dsp)]
pub type Native = dsp::Dsp;
/// The name of this build's MAC unit (`"none"`: portable kernels only).
#[cfg(shiftkit_dsp)]
pub const NATIVE_UNIT: &str = "dsp";
/// The MAC unit the engine's convs run on in this build.
#[cfg(all(
    target_arch = "aarch64",
    target_feature = "dotprod",
    not(feature = "portable")
))]
pub type Native = aarch64::Sdot;
/// The name of this build's MAC unit.
#[cfg(all(
    target_arch = "aarch64",
    target_feature = "dotprod",
    not(feature = "portable")
))]
pub const NATIVE_UNIT: &str = "sdot";
/// The MAC unit the engine's convs run on in this build.
#[cfg(all(
    target_arch = "aarch64",
    not(target_feature = "dotprod"),
    not(feature = "portable")
))]
pub type Native = aarch64::Neon;
/// The name of this build's MAC unit.
#[cfg(all(
    target_arch = "aarch64",
    not(target_feature = "dotprod"),
    not(feature = "portable")
))]
pub const NATIVE_UNIT: &str = "neon";
/// The MAC unit the engine's convs run on in this build.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    not(feature = "portable")
))]
pub type Native = avx2::Avx2;
/// The name of this build's MAC unit.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    not(feature = "portable")
))]
pub const NATIVE_UNIT: &str = "avx2";
#[cfg(not(any(
    shiftkit_dsp,
    shiftkit_scalar,
    all(
        not(feature = "portable"),
        any(
            target_arch = "aarch64",
            all(target_arch = "x86_64", target_feature = "avx2")
        )
    )
)))]
/// This build's MAC unit: none, the portable kernels run.
pub const NATIVE_UNIT: &str = "none";

/// Whether this build has a native fast unit. It then takes every conv ([`conv()`] returns
/// `Ok(true)`), and the engine does not link the portable conv kernel.
pub const TAKES_EVERY_CONV: bool = !matches!(NATIVE_UNIT.as_bytes(), b"none");

/// Runs the conv with the native fast kernel if this build has one (every conv then);
/// `Ok(false)` means "no unit in this build, run the portable kernel".
pub fn conv(io: &mut impl Io, ys: Shape, xs: Shape, p: &ConvParams) -> Result<bool, KernelError> {
    #[cfg(any(
        shiftkit_dsp,
        shiftkit_scalar,
        all(
            not(feature = "portable"),
            any(
                target_arch = "aarch64",
                all(target_arch = "x86_64", target_feature = "avx2")
            )
        )
    ))]
    {
        conv_with::<Native, _>(io, ys, xs, p)
    }
    #[cfg(not(any(
        shiftkit_dsp,
        shiftkit_scalar,
        all(
            not(feature = "portable"),
            any(
                target_arch = "aarch64",
                all(target_arch = "x86_64", target_feature = "avx2")
            )
        )
    )))]
    {
        let _ = (io, ys, xs, p);
        Ok(false)
    }
}

/// The fast conv with MAC unit `M`, for every conv (`Ok(true)`).
pub fn conv_with<M: Mac, I: Io>(
    io: &mut I,
    ys: Shape,
    xs: Shape,
    p: &ConvParams,
) -> Result<bool, KernelError> {
    conv::check(io, ys, xs, p)?;
    // The unit's own path first, outside `conv_bytes`, whose stack buffers (about 7 KB) are
    // then only allocated when the 2x2 path runs.
    if !M::special(io, I::X::SIGNED, ys, xs, p) {
        conv_bytes::<M>(io, I::X::SIGNED, ys, xs, p);
    }
    Ok(true)
}

/// The byte access the fast kernel needs, object-safe: one copy of the kernel serves every
/// [`Io`] (the u8 model input, separate slices, one shared buffer), which keeps the firmware
/// small; the two calls per gathered group or written pixel cost nothing next to the MACs.
pub trait Bytes {
    /// Copies input bytes from element `at` into `dst` (the raw bytes, u8 or i8).
    fn x_bytes(&self, at: usize, dst: &mut [u8]);
    /// The whole input, typed.
    fn x_view(&self) -> XView<'_>;
    /// The whole output.
    fn y_mut(&mut self) -> &mut [i8];
    /// Writes `src` to the output from element `at`.
    fn y_bytes(&mut self, at: usize, src: &[i8]);
}

impl<I: Io> Bytes for I {
    #[inline]
    fn x_bytes(&self, at: usize, dst: &mut [u8]) {
        Io::x_bytes(self, at, dst)
    }
    #[inline]
    fn x_view(&self) -> XView<'_> {
        Io::x_view(self)
    }
    #[inline]
    fn y_mut(&mut self) -> &mut [i8] {
        Io::y_mut(self)
    }
    #[inline]
    fn y_bytes(&mut self, at: usize, src: &[i8]) {
        Io::y_bytes(self, at, src)
    }
}

/// [`conv_with`] after the checks: every conv. A patch (`k*k*cin` bytes) longer than
/// [`MAX_PATCH`] is taken in segments of `MAX_PATCH` bytes, each gathered and packed in turn
/// (again for each chunk of output channels), the accumulators carried from one to the next.
#[inline(never)]
fn conv_bytes<M: Mac>(io: &mut dyn Bytes, signed: bool, ys: Shape, xs: Shape, p: &ConvParams) {
    let patch_len = p.k * p.k * xs.c; // no overflow: equals weights.len() / cout after check
    let segments = patch_len.div_ceil(MAX_PATCH).max(1);
    let mut bytes = [0u8; MAX_PATCH + 3];
    // Both pixels' packed segments, interleaved by block: packed[b] = [pixel 0, pixel 1].
    let mut packed = [[M::Packed::default(); 2]; MAX_PATCH / 4 + 1];
    let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
    let n_groups = shift_groups(p.shift, xs.c, &mut groups);
    let groups = &groups[..n_groups];
    let cout = ys.c;
    let pixels = ys.h * ys.w;
    let full = patch_len / 4;

    // Output channels in chunks of CHANNELS; with one chunk (cout <= CHANNELS) its constants are
    // decoded once per conv, else once per chunk and pixel pair. Pixel pairs stay the outer loop:
    // a pair is finished (every channel written) before the next pair is read, the order the
    // in-place rule of `plan_rules` relies on (which also lets a pair's input be read again
    // after some of its outputs are written).
    let decode = |ch: &mut [Channel; CHANNELS], c_start: usize, n_ch: usize| {
        for (j, c) in ch[..n_ch].iter_mut().enumerate() {
            let co = c_start + j;
            c.bias = p.bias.get(co).unwrap_or(0);
            c.rq = p.rescale.requantizer(co, c.bias, patch_len);
            let row = p
                .weights
                .get(co * patch_len..(co + 1) * patch_len)
                .unwrap_or(&[]);
            let tail = row.get(full * 4..).unwrap_or(&[]);
            c.tail = [0; 4];
            c.tail[..tail.len()].copy_from_slice(tail);
            c.bias = c.bias.wrapping_add(M::acc_offset(row, signed));
        }
    };
    let single = cout <= CHANNELS;
    let mut ch = [Channel::default(); CHANNELS];
    if single {
        decode(&mut ch, 0, cout);
    }

    // Accumulators carried from one segment to the next, per channel pair.
    let mut carry = [[0i32; 4]; CHANNELS / 2];
    let mut px = 0;
    while px < pixels {
        // The pixel pair; an odd last pixel is paired with itself and written once.
        let pair = [px, (px + 1).min(pixels - 1)];
        let mut c_start = 0;
        while c_start < cout {
            let n_ch = CHANNELS.min(cout - c_start);
            if !single {
                decode(&mut ch, c_start, n_ch);
            }
            // The pair's outputs of this chunk, written to the io once the chunk is done.
            let mut out = [[0i8; CHANNELS]; 2];
            let weights = p
                .weights
                .get(c_start * patch_len..(c_start + n_ch) * patch_len)
                .unwrap_or(&[]);
            for seg in 0..segments {
                let s0 = seg * MAX_PATCH;
                let len = MAX_PATCH.min(patch_len - s0);
                let (b0, n_full) = (s0 / 4, len / 4);
                let last = seg + 1 == segments;
                // One segment: the pair is packed once, for every chunk.
                if segments > 1 || c_start == 0 {
                    for (i, &q) in pair.iter().enumerate() {
                        let (oy, ox) = (q / ys.w, q % ys.w);
                        // Bytes past the patch in its last block meet zero weights.
                        gather(io, xs, p, groups, oy, ox, s0, &mut bytes[..len]);
                        let (chunks, _) = bytes[..len.div_ceil(4) * 4].as_chunks::<4>();
                        for (dst, &b) in packed.iter_mut().zip(chunks) {
                            dst[i] = M::pack(b, signed);
                        }
                    }
                }
                let x = &packed[..n_full];
                // The patch's last partial block, with the weights' zero-padded tails.
                let tail = (last && !len.is_multiple_of(4)).then(|| &packed[n_full..]);
                for (jp, j) in (0..n_ch).step_by(2).enumerate() {
                    let j1 = (j + 1).min(n_ch - 1);
                    let (c0, c1) = (&ch[j], &ch[j1]);
                    // [c0 p0, c1 p0, c0 p1, c1 p1], from the biases on, carried between segments.
                    let mut acc = match seg {
                        0 => [c0.bias, c1.bias, c0.bias, c1.bias],
                        _ => carry[jp],
                    };
                    let row = |c: usize| {
                        let w = weights.get(c * patch_len + 4 * b0..).unwrap_or(&[]);
                        let (w, _) = w.as_chunks::<4>();
                        &w[..n_full.min(w.len())]
                    };
                    M::dot2x2(x, row(j), row(j1), &mut acc);
                    if let Some(t) = tail {
                        M::dot2x2(t, &[c0.tail], &[c1.tail], &mut acc);
                    }
                    if !last {
                        carry[jp] = acc;
                        continue;
                    }
                    // j1 == j for an odd last channel: the second pair of writes repeats the
                    // first.
                    let [o0, o1] = &mut out;
                    o0[j] = c0.rq.apply(acc[0]);
                    o1[j] = c0.rq.apply(acc[2]);
                    o0[j1] = c1.rq.apply(acc[1]);
                    o1[j1] = c1.rq.apply(acc[3]);
                }
            }
            io.y_bytes(pair[0] * cout + c_start, &out[0][..n_ch]);
            if pair[1] != pair[0] {
                io.y_bytes(pair[1] * cout + c_start, &out[1][..n_ch]);
            }
            c_start += n_ch;
        }
        px += 2;
    }
}

/// Writes bytes `start..start + dst.len()` of the `k*k*cin` input bytes output pixel
/// `(oy, ox)` reads into `dst`, in weight order (`[ky][kx][ci]`), with each shift group read at
/// its offset and the pad value outside.
#[allow(clippy::too_many_arguments)]
pub(super) fn gather(
    io: &dyn Bytes,
    xs: Shape,
    p: &ConvParams,
    groups: &[(i8, i8, usize, usize)],
    oy: usize,
    ox: usize,
    start: usize,
    dst: &mut [u8],
) {
    let cin = xs.c;
    let row_len = p.k * cin;
    let end = start + dst.len();
    let unshifted = groups.len() == 1;
    for ky in 0..p.k {
        let r0 = ky * row_len;
        if r0 + row_len <= start || r0 >= end {
            continue; // a kernel row outside the range
        }
        let iy = (oy * p.stride + ky) as isize - p.pad as isize;
        let ix0 = (ox * p.stride) as isize - p.pad as isize;
        if unshifted
            && r0 >= start
            && r0 + row_len <= end
            && iy >= 0
            && (iy as usize) < xs.h
            && ix0 >= 0
            && ix0 as usize + p.k <= xs.w
        {
            // The k taps of this row lie side by side in the input, in weight order: one copy.
            io.x_bytes(
                xs.at(iy as usize, ix0 as usize, 0),
                &mut dst[r0 - start..r0 - start + row_len],
            );
            continue;
        }
        for kx in 0..p.k {
            let t0 = r0 + kx * cin; // the tap's first byte in the patch
            for &(dh, dw, c0, c1) in groups {
                // The group's channels of this tap within the range.
                let (a, b) = ((t0 + c0).max(start), (t0 + c1).min(end));
                if a >= b {
                    continue;
                }
                let out = &mut dst[a - start..b - start];
                let (iy, ix) = (iy - dh as isize, ix0 + kx as isize - dw as isize);
                if iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w {
                    io.x_bytes(xs.at(iy as usize, ix as usize, a - t0), out);
                } else {
                    out.copy_from_slice(&p.pad_value[a - t0..b - t0]);
                }
            }
        }
    }
}
