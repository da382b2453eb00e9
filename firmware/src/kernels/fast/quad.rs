//! The scalar unit's own path ([`super::scalar`]: RV32, Cortex-M0/M0+): a conv four output pixels
//! at a time, each weight loaded once for the four and multiplied in registers. It takes every
//! conv with a patch (`k*k*cin`) of at most [`MAX_PATCH`] bytes and at most [`MAX_COUT`] output
//! channels (the default network's and ResNet-8-4C's convs, and ResNet-8's stem and 3x3 convs
//! over 16 channels); any other takes the 2x2 path of [`super`].
//!
//! ```text
//! for each group of 4 output pixels (raster order; a short last group repeats its last pixel):
//!     x[t][i] = byte t of pixel i's patch, widened once (pack4: the four pixels together when
//!               they share an output row and read nothing outside the image; else pack, each
//!               shift group read at its offset, the pad value outside the image)
//!     for each output channel c (four, then two, at a time on RV32; one on Cortex-M0):
//!         acc[i] = bias[c] + sum over t of x[t][i] * w[c][t]      (w: the file's int8 row)
//!         y[(p + i) * cout + c] = requantize(acc[i])              (straight into the output)
//! ```
//!
//! Per patch byte and channel the loop loads one weight (`lb` on RV32, `ldrb` + `sxtb` on
//! Thumb-1) and four widened inputs, and does four multiplies and four adds. On RV32 four
//! channels take one `lb` each from the weights interleaved by channel quad (`interleave`,
//! once per conv) and share each `lh` of an input: 40 instructions for 16 MACs. Thumb-1 has 8
//! low registers, so the M0 build takes one channel at a time: the four accumulators stay in
//! registers, and the inputs are widened to words, which `ldr` reads with an immediate offset
//! (`ldrsh` has none). The widened patches take `4 * MAX_PATCH` lanes on the stack.
//!
//! When every channel has the single-rounding form (see [`conv`]), the MAC loop and the output
//! stage are one `asm!` block: `quads4` and `single2` on RV32, `channels1` on Thumb-1.
//! Otherwise the MAC loops alone are `asm!` (`blocks2`, `blocks1`) and the output stage is
//! `Requantizer::apply4`. From plain Rust LLVM hoists a block's loads and spills the products.
//! Everything else, and the loops on other targets, is safe Rust: the host tests run this path
//! with those loops in Rust (`tests/fast_kernels.rs`), and the shared selftest runs it with the
//! `asm!` on QEMU RISC-V and on Cortex-M0 code (`boards/qemu-riscv32`'s and `boards/kernel-check`'s
//! `kernel-check` binaries, in CI).
use super::Bytes;
use crate::format::shift_groups;
use crate::kernels::conv::ConvParams;
use crate::kernels::{Element, Shape, XView};
use crate::plan_rules::IN_PLACE_BLOCK;
use crate::requant::Requantizer;

/// Output pixels per group: the memory plan's in-place block.
pub const PIXELS: usize = IN_PLACE_BLOCK;
/// Most patch bytes (`k*k*cin`) the path takes.
pub const MAX_PATCH: usize = 256;
/// Most output channels the path takes.
pub const MAX_COUT: usize = 64;

/// Bytes of the zero-padded weight copy (the stem's 16 rows of 9 bytes take 192).
const PADDED: usize = 512;

/// Bytes of the weights interleaved by channel quad ([`interleave`]; every conv of the default
/// network fits: its largest, 64 x 64, takes 4096). Not on Thumb-1, which takes one channel at
/// a time.
#[cfg(not(target_arch = "arm"))]
const QUADS: usize = 4096;

/// A widened input byte: a word on Thumb-1 (`ldr` has an immediate offset), else `i16` (`lh`).
#[cfg(target_arch = "arm")]
type Lane = i32;
/// A widened input byte: a word on Thumb-1 (`ldr` has an immediate offset), else `i16` (`lh`).
#[cfg(not(target_arch = "arm"))]
type Lane = i16;

/// One output channel's constants. The first eight fields are the single-rounding output stage
/// (`Requantizer::single_constants`) as the `asm!` blocks read them, at fixed offsets; `rq` is
/// every form, for the Rust output stage.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Channel {
    /// Offset 0.
    bias: i32,
    /// Offset 4: twice the single form's multiplier `m` (below 2^30 on this path), so that
    /// `smmlar(2 acc, m) = smmlar(acc, 2 m)` needs no doubling per output; 0 if the channel is
    /// not in that form.
    multiplier: i32,
    /// Offset 8: `multiplier >> 16`.
    mh: i32,
    /// Offset 12: `multiplier & 0xffff`.
    ml: i32,
    /// Offset 16.
    zero_point: i32,
    /// Offset 20.
    act_min: i32,
    /// Offset 24.
    act_max: i32,
    /// Offset 28: bytes from one pixel's outputs to the next's (the conv's `cout`).
    stride: u32,
    rq: Requantizer,
}

/// Runs the conv on this path if it fits it (see the module docs); `false` = not taken.
#[inline(never)]
pub fn conv(io: &mut dyn Bytes, ys: Shape, xs: Shape, p: &ConvParams) -> bool {
    let patch = p.k * p.k * xs.c;
    let cout = ys.c;
    if patch == 0 || patch > MAX_PATCH || cout == 0 || cout > MAX_COUT {
        return false;
    }
    let Some(file) = p.weights.get(..cout * patch) else {
        return false;
    };
    // A patch that is not whole 4-byte blocks (the 3x3 stem over one channel: 9 bytes) is
    // zero-padded to them, the weight rows in a copy, when the copy is small: the MAC loop then
    // has no tail (the padded inputs stay 0).
    let line = patch.next_multiple_of(4);
    let mut padded: [u8; PADDED];
    let (weights, line) = if line != patch && cout * line <= PADDED {
        padded = [0; PADDED];
        for (d, s) in padded.chunks_exact_mut(line).zip(file.chunks_exact(patch)) {
            d[..patch].copy_from_slice(s);
        }
        (&padded[..cout * line], line)
    } else {
        (file, patch)
    };
    // All zero bytes (one `memset`; the slots past `cout` are never read).
    let mut ch = [Channel {
        bias: 0,
        multiplier: 0,
        mh: 0,
        ml: 0,
        zero_point: 0,
        act_min: 0,
        act_max: 0,
        stride: 0,
        rq: Requantizer::new(0, 0, 0, 0, 0, 0),
    }; MAX_COUT];
    // Whether every channel has the single-rounding form with a multiplier below 2^30 and no
    // clamp above 127 (every quantize-made conv of our networks), the patch is whole blocks
    // and the channels pair up: then the output stage runs inside the MAC `asm!`
    // ([`channels1`], [`quads4`], [`single2`]).
    let mut single = line.is_multiple_of(4) && cout.is_multiple_of(2);
    for (c, slot) in ch[..cout].iter_mut().enumerate() {
        let bias = p.bias.get(c).unwrap_or(0);
        let rq = p.rescale.requantizer(c, bias, patch);
        let form = rq.single_constants();
        let (lo, hi) = rq.act_range();
        let form = form.filter(|&(m, _)| m < 1 << 30);
        single &= form.is_some() && hi == i8::MAX;
        let (m, zero_point) = form.unwrap_or((0, 0));
        let multiplier = 2 * m;
        *slot = Channel {
            bias,
            multiplier,
            mh: multiplier >> 16,
            ml: multiplier & 0xffff,
            zero_point,
            act_min: lo.into(),
            act_max: hi.into(),
            stride: cout as u32,
            rq,
        };
    }
    let ch = &ch[..cout];
    let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
    let n_groups = shift_groups(p.shift, xs.c, &mut groups);
    let groups = &groups[..n_groups];
    // The patch as runs of bytes for [`pack4`] and [`pack`]: `(first patch byte, length, source
    // offset from the pixel's anchor)`, the anchor `(oy * stride - pad, ox * stride - pad)`, which must lie
    // `before` elements inside the image's start and `after` inside its end. A shifted 1x1: a
    // run per shift group, the anchor its own pixel, one pixel of margin each side. An unshifted
    // k x k (k <= 9): a run per kernel row, the anchor its top-left tap.
    let mut segments = [(0usize, 0usize, 0isize); 9];
    let (n_segments, before, after) = if n_groups > 1 {
        if p.k == 1 {
            for (seg, &(dh, dw, c0, c1)) in segments.iter_mut().zip(groups) {
                let o = c0 as isize - (dh as isize * xs.w as isize + dw as isize) * xs.c as isize;
                *seg = (c0, c1 - c0, o);
            }
            (n_groups, 1, 1)
        } else {
            (0, 0, 0)
        }
    } else if p.k <= segments.len() {
        let run = p.k * xs.c;
        for (ky, seg) in segments.iter_mut().enumerate().take(p.k) {
            *seg = (ky * run, run, (ky * xs.w * xs.c) as isize);
        }
        (p.k, 0, p.k - 1)
    } else {
        (0, 0, 0)
    };
    let geometry = Geometry {
        xs,
        groups,
        segments: &segments[..n_segments],
        before,
        after,
    };
    // On the multi-channel cores (RV32, and the host tests), the weights of four channels at a
    // time byte by byte ([`interleave`]), for [`quads4`].
    #[cfg(not(target_arch = "arm"))]
    let mut interleaved = [0u8; QUADS];
    #[cfg(not(target_arch = "arm"))]
    let quads = (single && cout >= 4 && cout * line <= QUADS)
        .then(|| interleave(weights, line, cout / 4, &mut interleaved));
    #[cfg(target_arch = "arm")]
    let quads = None;
    let mut x = [[0 as Lane; PIXELS]; MAX_PATCH];
    let x = &mut x[..line];
    let mut buf = [0i8; PIXELS * MAX_COUT];
    let pixels = ys.h * ys.w;
    let mut px = 0;
    let (mut oy, mut ox) = (0, 0); // pixel px (no division: a library call on Thumb-1)
    while px < pixels {
        // Every pixel of the group is read before any output of it is written (`plan_rules`).
        // A short last group repeats its last pixel.
        let whole = match io.x_view() {
            XView::I8(v) => pack4(v, &geometry, p, oy, ox, ys.w, x),
            XView::U8(v) => pack4(v, &geometry, p, oy, ox, ys.w, x),
        };
        if whole {
            ox += PIXELS;
            if ox == ys.w {
                (oy, ox) = (oy + 1, 0);
            }
        }
        for i in (0..PIXELS).filter(|_| !whole) {
            match io.x_view() {
                XView::I8(v) => pack(v, &geometry, p, oy, ox, x, i),
                XView::U8(v) => pack(v, &geometry, p, oy, ox, x, i),
            }
            if px + i + 1 < pixels {
                ox += 1;
                if ox == ys.w {
                    (oy, ox) = (oy + 1, 0);
                }
            }
        }
        let n = (pixels - px).min(PIXELS);
        // A whole group is written straight into the output, pixel i at `(px + i) * cout`.
        if n == PIXELS {
            if let Some(y) = io.y_mut().get_mut(px * cout..(px + PIXELS) * cout) {
                channels(x, weights, quads, ch, single, y);
                px += PIXELS;
                continue;
            }
        }
        let out = &mut buf[..PIXELS * cout];
        channels(x, weights, quads, ch, single, out);
        io.y_bytes(px * cout, &out[..n * cout]);
        px += PIXELS;
    }
    true
}

/// Where a conv's patch bytes come from: the input shape, the shift groups
/// (`format::shift_groups`), and the patch as runs of bytes with the margins a pixel's anchor
/// needs for all of them to lie inside the image (see [`conv`]; no runs: every pixel takes the
/// general walk of [`pack`]).
struct Geometry<'a> {
    xs: Shape,
    groups: &'a [(i8, i8, usize, usize)],
    segments: &'a [(usize, usize, isize)],
    before: usize,
    after: usize,
}

impl Geometry<'_> {
    /// Whether an anchor coordinate `i` (row or column, wrapped to a huge value when negative)
    /// leaves every run inside an image dimension of `n`.
    #[inline(always)]
    fn inside(&self, i: usize, n: usize) -> bool {
        i.wrapping_sub(self.before) < n.saturating_sub(self.before + self.after)
    }
}

/// Writes the patches of the four pixels `(oy, ox + i)` into `x` at once when they lie in one
/// output row and read nothing outside the image (a 1x1 conv, shifted or not, or an unshifted
/// k x k): per run of [`Geometry::segments`] one source per pixel, four lanes written per patch
/// byte. `false`: not such a group (the caller packs pixel by pixel, over anything written here).
#[inline(always)]
fn pack4<E: Element>(
    v: &[E],
    g: &Geometry,
    p: &ConvParams,
    oy: usize,
    ox: usize,
    ow: usize,
    x: &mut [[Lane; PIXELS]],
) -> bool {
    let xs = g.xs;
    if g.segments.is_empty() || ox + PIXELS > ow {
        return false;
    }
    let iy = (oy * p.stride).wrapping_sub(p.pad);
    let ix0 = (ox * p.stride).wrapping_sub(p.pad);
    let ix3 = ix0.wrapping_add((PIXELS - 1) * p.stride);
    if !(g.inside(iy, xs.h) && g.inside(ix0, xs.w) && g.inside(ix3, xs.w)) {
        return false;
    }
    let base = xs.at(iy, ix0, 0);
    let step = p.stride * xs.c;
    for &(d0, n, o) in g.segments {
        let at = base.wrapping_add_signed(o);
        let src = |i: usize| v.get(at + i * step..at + i * step + n);
        let (Some(s0), Some(s1), Some(s2), Some(s3), Some(dst)) =
            (src(0), src(1), src(2), src(3), x.get_mut(d0..d0 + n))
        else {
            return false;
        };
        for ((((d, a), b), c), e) in dst.iter_mut().zip(s0).zip(s1).zip(s2).zip(s3) {
            *d = [
                a.value() as Lane,
                b.value() as Lane,
                c.value() as Lane,
                e.value() as Lane,
            ];
        }
    }
    true
}

/// Writes pixel `(oy, ox)`'s patch into lane `i` of `x`, in weight order (`[ky][kx][ci]`): each
/// shift group read at its offset, the pad value outside the image.
#[inline(always)]
fn pack<E: Element>(
    v: &[E],
    g: &Geometry,
    p: &ConvParams,
    oy: usize,
    ox: usize,
    x: &mut [[Lane; PIXELS]],
    i: usize,
) {
    let (xs, groups) = (g.xs, g.groups);
    let cin = xs.c;
    let ix0 = (ox * p.stride).wrapping_sub(p.pad);
    let unshifted = groups.len() == 1;
    let iy0 = (oy * p.stride).wrapping_sub(p.pad);
    // A pixel that reads nothing outside the image: its runs at their fixed offsets.
    if !g.segments.is_empty() && g.inside(iy0, xs.h) && g.inside(ix0, xs.w) {
        let base = xs.at(iy0, ix0, 0);
        let mut done = true;
        for &(d0, n, o) in g.segments {
            let at = base.wrapping_add_signed(o);
            match (v.get(at..at.wrapping_add(n)), x.get_mut(d0..d0 + n)) {
                (Some(src), Some(dst)) => widen(dst, src, i),
                _ => done = false,
            }
        }
        if done {
            return;
        }
    }
    for ky in 0..p.k {
        // Off the image, a row or column wraps to a huge usize.
        let iy = (oy * p.stride + ky).wrapping_sub(p.pad);
        if unshifted && iy < xs.h && ix0 < xs.w && xs.w - ix0 >= p.k {
            // The row's k taps lie side by side in the input, in weight order: one run.
            let at = xs.at(iy, ix0, 0);
            let run = p.k * cin;
            if let Some(src) = v.get(at..at + run) {
                widen(&mut x[ky * run..][..run], src, i);
                continue;
            }
        }
        for kx in 0..p.k {
            let ix = ix0.wrapping_add(kx);
            let tap = &mut x[(ky * p.k + kx) * cin..][..cin];
            for &(dh, dw, c0, c1) in groups {
                let (sy, sx) = (
                    iy.wrapping_sub(dh as isize as usize),
                    ix.wrapping_sub(dw as isize as usize),
                );
                let dst = &mut tap[c0..c1];
                let inside = sy < xs.h && sx < xs.w;
                let at = if inside { xs.at(sy, sx, 0) } else { usize::MAX };
                match v.get(at.saturating_add(c0)..at.saturating_add(c1)) {
                    Some(src) => widen(dst, src, i),
                    None => {
                        for (d, &b) in dst.iter_mut().zip(&p.pad_value[c0..c1]) {
                            d[i] = E::from_byte(b).value() as Lane;
                        }
                    }
                }
            }
        }
    }
}

/// `dst[t][i] = src[t]`, widened: a byte a step on Thumb-1 (whose `ldrsb` takes no immediate
/// offset, so unrolling only adds address arithmetic).
#[cfg(target_arch = "arm")]
#[inline(always)]
fn widen<E: Element>(dst: &mut [[Lane; PIXELS]], src: &[E], i: usize) {
    for (d, s) in dst.iter_mut().zip(src) {
        d[i] = s.value() as Lane;
    }
}

/// `dst[t][i] = src[t]`, widened: four bytes a step.
#[cfg(not(target_arch = "arm"))]
#[inline(always)]
fn widen<E: Element>(dst: &mut [[Lane; PIXELS]], src: &[E], i: usize) {
    let (d4, dt) = dst.as_chunks_mut::<4>();
    let (s4, st) = src.as_chunks::<4>();
    for (d, s) in d4.iter_mut().zip(s4) {
        d[0][i] = s[0].value() as Lane;
        d[1][i] = s[1].value() as Lane;
        d[2][i] = s[2].value() as Lane;
        d[3][i] = s[3].value() as Lane;
    }
    for (d, s) in dt.iter_mut().zip(st) {
        d[i] = s.value() as Lane;
    }
}

/// The channel loop: every channel's four accumulators over the widened patches `x` (`weights`:
/// one row of `x.len()` int8 bytes per channel), requantised into `out[i * cout + c]`
/// (`cout = ch.len()`; `out` holds the four pixels). `single`: every channel has the
/// single-rounding form, `x` is whole blocks and `cout` is even (see [`conv`]).
#[inline(never)]
fn channels(
    x: &[[Lane; PIXELS]],
    weights: &[u8],
    quads: Option<&[u8]>,
    ch: &[Channel],
    single: bool,
    out: &mut [i8],
) {
    let (x4, xt) = x.as_chunks::<4>();
    let mut rows = ch.iter().zip(weights.chunks_exact(x.len())).enumerate();
    #[cfg(target_arch = "arm")]
    let _ = quads; // Thumb-1 takes one channel at a time
    if single && xt.is_empty() && !x4.is_empty() {
        #[cfg(target_arch = "arm")]
        channels1(x4, weights, ch, out);
        #[cfg(not(target_arch = "arm"))]
        {
            // Four channels at a time while the interleaved weights last, then pairs.
            let mut c = 0;
            if let Some(wq) = quads {
                let n = (ch.len() / 4).min(wq.len() / (16 * x4.len()));
                quads4(x4, &wq[..16 * x4.len() * n], &ch[..4 * n], out);
                c = 4 * n;
            }
            let mut rows = rows.skip(c);
            while let (Some((c, (k0, r0))), Some((_, (k1, r1)))) = (rows.next(), rows.next()) {
                single2(x4, [r0, r1], [k0, k1], out, c);
            }
        }
        return;
    }
    #[cfg(target_arch = "arm")]
    for (c, (k, r)) in &mut rows {
        let mut a = [k.bias; PIXELS];
        dot1(x4, xt, r, &mut a);
        store(&k.rq, a, out, ch.len(), c);
    }
    #[cfg(not(target_arch = "arm"))]
    while let Some((c0, (k0, r0))) = rows.next() {
        // An odd last channel is computed twice.
        let (c1, (k1, r1)) = rows.next().unwrap_or((c0, (k0, r0)));
        let (mut a0, mut a1) = ([k0.bias; PIXELS], [k1.bias; PIXELS]);
        dot2(x4, xt, r0, r1, &mut a0, &mut a1);
        store(&k0.rq, a0, out, ch.len(), c0);
        store(&k1.rq, a1, out, ch.len(), c1);
    }
}

/// The single-rounding output stage in Rust (what the `asm!` blocks compute):
/// `clamp(smmlar(acc, 2 m, zero_point))`, as `Requantizer::apply` in that form.
#[cfg(not(shiftkit_scalar))]
#[inline(always)]
fn single_out(k: &Channel, acc: i32) -> i8 {
    let q = crate::requant::form_smmlar(acc, k.multiplier, k.zero_point);
    q.max(k.act_min).min(k.act_max) as i8
}

/// The Thumb-1 MAC loop of [`blocks1`] and [`channels1`]: `r0` the widened patch (64-byte
/// blocks), `r1` the weight row, `r4`..`r7` the four pixels' accumulators, `r2`, `r3` scratch,
/// `r8` the patch's end; 14 instructions per 4 MACs and 4 per block.
#[cfg(all(target_arch = "arm", shiftkit_scalar))]
macro_rules! thumb1_loop {
    () => {
        concat!(
            "2:\n",
            ".irp k, 0, 1, 2, 3\n",
            "ldrb r2, [r1, #\\k]\n",
            "sxtb r2, r2\n",
            "ldr r3, [r0, #(16 * \\k)]\n",
            "muls r3, r2, r3\n",
            "adds r4, r4, r3\n",
            "ldr r3, [r0, #(16 * \\k + 4)]\n",
            "muls r3, r2, r3\n",
            "adds r5, r5, r3\n",
            "ldr r3, [r0, #(16 * \\k + 8)]\n",
            "muls r3, r2, r3\n",
            "adds r6, r6, r3\n",
            "ldr r3, [r0, #(16 * \\k + 12)]\n",
            "muls r3, r2, r3\n",
            "adds r7, r7, r3\n",
            ".endr\n",
            "adds r0, #64\n",
            "adds r1, #4\n",
            "cmp r0, r8\n",
            "bne 2b",
        )
    };
}

/// The RV32 MAC loop of [`blocks2`] and [`single2`], over the `asm!` operands `px` (the widened
/// patch, 32-byte blocks) to `end`, `pw0`, `pw1` (the two weight rows), `p0`..`p3`, `q0`..`q3`
/// (the accumulators) and the scratch `w0`, `w1`, `x0`..`x3`, `t`: 22 instructions per 8 MACs
/// (the second channel's products overwrite the inputs) and 4 per block.
#[cfg(all(target_arch = "riscv32", shiftkit_scalar))]
macro_rules! rv32_pair_loop {
    () => {
        concat!(
            "2:\n",
            ".irp k, 0, 1, 2, 3\n",
            "lb {w0}, \\k({pw0})\n",
            "lb {w1}, \\k({pw1})\n",
            "lh {x0}, (8 * \\k)({px})\n",
            "lh {x1}, (8 * \\k + 2)({px})\n",
            "lh {x2}, (8 * \\k + 4)({px})\n",
            "lh {x3}, (8 * \\k + 6)({px})\n",
            "mul {t}, {x0}, {w0}\n",
            "add {p0}, {p0}, {t}\n",
            "mul {x0}, {x0}, {w1}\n",
            "add {q0}, {q0}, {x0}\n",
            "mul {t}, {x1}, {w0}\n",
            "add {p1}, {p1}, {t}\n",
            "mul {x1}, {x1}, {w1}\n",
            "add {q1}, {q1}, {x1}\n",
            "mul {t}, {x2}, {w0}\n",
            "add {p2}, {p2}, {t}\n",
            "mul {x2}, {x2}, {w1}\n",
            "add {q2}, {q2}, {x2}\n",
            "mul {t}, {x3}, {w0}\n",
            "add {p3}, {p3}, {t}\n",
            "mul {x3}, {x3}, {w1}\n",
            "add {q3}, {q3}, {x3}\n",
            ".endr\n",
            "addi {px}, {px}, 32\n",
            "addi {pw0}, {pw0}, 4\n",
            "addi {pw1}, {pw1}, 4\n",
            "bne {px}, {end}, 2b",
        )
    };
}

/// Channel `c` (constants `k`, weight row `r`) of the four pixels into
/// `out[i * k.stride + c]`, the patch whole blocks, the channel in the single-rounding form:
/// Rust (on Cortex-M cores with DSP, where the scalar unit runs only in tests).
#[cfg(all(target_arch = "arm", not(shiftkit_scalar)))]
#[inline(always)]
fn single1(x4: &[Block], r: &[u8], k: &Channel, out: &mut [i8], c: usize) {
    let mut a = [k.bias; PIXELS];
    blocks1(x4, r.as_chunks::<4>().0, &mut a);
    for (i, acc) in a.into_iter().enumerate() {
        if let Some(o) = out.get_mut(i * k.stride as usize + c) {
            *o = single_out(k, acc);
        }
    }
}

/// Every channel of `k` (weight rows of `4 x4.len()` bytes in `w`, one after the other) of the
/// four pixels into `out[i * stride + c]`, one at a time ([`single1`]): Rust (on Cortex-M cores
/// with DSP, where the scalar unit runs only in tests).
#[cfg(all(target_arch = "arm", not(shiftkit_scalar)))]
#[inline(always)]
fn channels1(x4: &[Block], w: &[u8], k: &[Channel], out: &mut [i8]) {
    for (c, (r, kc)) in w.chunks_exact(4 * x4.len().max(1)).zip(k).enumerate() {
        single1(x4, r, kc, out, c);
    }
}

/// [`channels1`] on Cortex-M0/M0+, its loop over the channels inside one `asm!` block: per
/// channel the MAC loop (`thumb1_loop!`), then the output stage with
/// [`crate::requant::smmlar_halves`] in registers (about 24 instructions per output: four
/// `muls`, the rounding from `asrs`'s carry by `adcs`, the clamp as two compares, the upper one
/// with `#127`). The weight rows follow each other, so their pointer runs on from channel to
/// channel; the patch's start, the channels' end, the next channel's constants and outputs are
/// on the stack.
#[cfg(all(target_arch = "arm", shiftkit_scalar))]
#[allow(unsafe_code)]
#[inline(always)]
fn channels1(x4: &[Block], w: &[u8], k: &[Channel], out: &mut [i8]) {
    let n = x4.len();
    let stride = k.first().map_or(0, |k| k.stride as usize);
    if n == 0 || w.len() < 4 * n * k.len() || out.len() < 3 * stride + k.len() {
        // Not reached from `channels`; the general loop gives the same outputs.
        for (c, (r, kc)) in w.chunks_exact(4 * n.max(1)).zip(k).enumerate() {
            let mut a = [kc.bias; PIXELS];
            dot1(x4, &[], r, &mut a);
            store(&kc.rq, a, out, stride, c);
        }
        return;
    }
    let args: [usize; 3] = [
        x4.as_ptr() as usize,
        x4[n..].as_ptr() as usize,
        k[k.len()..].as_ptr() as usize,
    ];
    // SAFETY: for each of the `k.len() >= 1` channels, reads the `n >= 1` blocks of `x4` (64
    // bytes each, word-aligned) from `args[0]` to `args[1]` and the next `4 n` bytes of `w`
    // (`4 n k.len()` in all, checked above), and the first 32 bytes of its `Channel`
    // (`repr(C)`, word-aligned, the offsets of `Channel`'s docs; the pointer steps through `k`
    // to `args[2]`, its end); writes the four bytes `out[i * stride + c]`, `i < 4` (checked
    // above to lie inside `out`, from whose pointer the output pointer derives, stepping by 1).
    // Reads the three words of `args`. r6, r7 and r8, which LLVM keeps as base and frame
    // pointers or callee-saved and which cannot be operands, are pushed first (r8 through r6)
    // and restored last; every byte pushed between is popped or dropped.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "mov r6, r8",
            "push {{r2, r3, r4, r6}}", // [sp] = k, [sp, #4] = out, [sp, #8] = args, [sp, #12] = r8
            "ldr r6, [r4, #4]",
            "mov r8, r6", // the end of x4
            "1:",
            "ldr r2, [sp]",
            "ldr r4, [r2, #0]", // bias
            "mov r5, r4",
            "mov r6, r4",
            "mov r7, r4",
            "ldr r0, [sp, #8]",
            "ldr r0, [r0]", // the start of x4
            thumb1_loop!(),
            "ldr r2, [sp]",
            "ldr r3, [sp, #4]",
            "push {{r1, r4, r5, r6, r7}}", // [sp] = the next row, [sp, #4 + 4 i] = pixel i's sum
            "ldr r6, [r2, #20]",           // act_min
            "ldr r7, [r2, #28]",           // the output stride
            ".irp i, 0, 1, 2, 3",
            "ldr r4, [sp, #(4 + 4 * \\i)]",
            "sxth r0, r4",      // al (a = acc, b = 2 m)
            "subs r4, r4, r0",
            "asrs r4, r4, #16", // ah
            "ldr r1, [r2, #12]", // bl
            "mov r5, r1",
            "muls r5, r0, r5", // ll = al bl
            "asrs r5, r5, #16",
            "muls r1, r4, r1", // ah bl
            "adds r5, r5, r1",
            "ldr r1, [r2, #8]", // bh
            "muls r0, r1, r0",  // al bh
            "adds r5, r5, r0",  // S
            "muls r1, r4, r1",  // ah bh
            "asrs r5, r5, #16", // carry = bit 15 of S
            "adcs r5, r1",      // smmlar(a, b, 0)
            "ldr r0, [r2, #16]",
            "adds r5, r5, r0", // + zero point
            "cmp r5, r6",
            "bge 3f",
            "mov r5, r6",
            "3:",
            "cmp r5, #127", // act_max is 127 (see `conv`)
            "ble 4f",
            "movs r5, #127",
            "4:",
            "strb r5, [r3]",
            "adds r3, r3, r7", // the next pixel
            ".endr",
            "ldr r1, [sp]",
            "add sp, #20",
            "adds r2, #({ch})", // the next channel
            "str r2, [sp]",
            "ldr r3, [sp, #4]",
            "adds r3, #1",
            "str r3, [sp, #4]",
            "ldr r0, [sp, #8]",
            "ldr r0, [r0, #8]",
            "cmp r2, r0",
            "beq 5f",
            "b 1b", // the loop is past a conditional branch's reach
            "5:",
            "add sp, #12",
            "pop {{r4}}",
            "mov r8, r4",
            "pop {{r6, r7}}",
            ch = const core::mem::size_of::<Channel>(),
            inout("r1") w.as_ptr() => _,
            inout("r2") k.as_ptr() => _,
            inout("r3") out.as_mut_ptr() => _,
            inout("r4") args.as_ptr() => _,
            out("r0") _,
            out("r5") _,
        );
    }
}

/// The weight rows (`line` bytes each) of the first `4 quads` channels into `buf`, four channels
/// at a time and byte by byte: quad `q`'s byte `t` of channel `j` at `4 line q + 4 t + j`
/// (each quad `4 line` bytes), so that [`single4`] reads a patch byte's four weights with one
/// pointer. Once per conv.
#[cfg(not(target_arch = "arm"))]
fn interleave<'a>(weights: &[u8], line: usize, quads: usize, buf: &'a mut [u8]) -> &'a [u8] {
    let n = (4 * quads * line).min(buf.len());
    for ((dst, rows), _) in buf[..n]
        .chunks_exact_mut(4 * line)
        .zip(weights.chunks_exact(4 * line))
        .zip(0..quads)
    {
        let (r0, rest) = rows.split_at(line);
        let (r1, rest) = rest.split_at(line);
        let (r2, r3) = rest.split_at(line);
        for ((((d, &a), &b), &c), &e) in dst.chunks_exact_mut(4).zip(r0).zip(r1).zip(r2).zip(r3) {
            d.copy_from_slice(&[a, b, c, e]);
        }
    }
    &buf[..n]
}

/// Channels `c..c + 4` (constants `k`, weights `w` interleaved by [`interleave`]) of the four
/// pixels into `out[i * k[0].stride + c + j]`, the patch whole blocks, every channel in the
/// single-rounding form: Rust (every target but RV32).
#[cfg(not(any(target_arch = "arm", all(target_arch = "riscv32", shiftkit_scalar))))]
#[inline(always)]
fn single4(x4: &[Block], w: &[u8], k: &[Channel; 4], out: &mut [i8], c: usize) {
    let mut a = [[0i32; PIXELS]; 4];
    for (aj, kj) in a.iter_mut().zip(k) {
        *aj = [kj.bias; PIXELS];
    }
    for (xb, wb) in x4.iter().flatten().zip(w.chunks_exact(4)) {
        for (aj, &wj) in a.iter_mut().zip(wb) {
            mac(aj, xb, wj);
        }
    }
    let stride = k[0].stride as usize;
    for (j, (aj, kj)) in a.iter().zip(k).enumerate() {
        for (i, &acc) in aj.iter().enumerate() {
            if let Some(o) = out.get_mut(i * stride + c + j) {
                *o = single_out(kj, acc);
            }
        }
    }
}

/// Channels `0..k.len()` (a multiple of 4; the constants `k`, the weights `w` interleaved by
/// [`interleave`]) of the four pixels into `out[i * stride + c]`, four at a time
/// ([`single4`]): Rust (every target but RV32).
#[cfg(not(any(target_arch = "arm", all(target_arch = "riscv32", shiftkit_scalar))))]
#[inline(always)]
fn quads4(x4: &[Block], w: &[u8], k: &[Channel], out: &mut [i8]) {
    let mut c = 0;
    for (wq, kq) in w.chunks_exact(16 * x4.len()).zip(k.chunks_exact(4)) {
        if let Ok(kq) = <&[Channel; 4]>::try_from(kq) {
            single4(x4, wq, kq, out, c);
        }
        c += 4;
    }
}

/// [`quads4`] on RV32, its loop over the quads inside one `asm!` block. Per quad: per patch
/// byte 4 `lb` (one pointer into the interleaved weights, which run on from quad to quad) and
/// per pixel one `lh`, 4 `mul` and 4 `add`, 40 instructions for 16 MACs (the pair loop of
/// [`single2`] takes 22 for 8), and 3 per block; then [`single2`]'s output stage for the 16
/// outputs. Its 25 registers are all the allocatable ones but one, so what the quads share
/// (the patch's start and end, the next quad's constants and outputs, the stride) is in
/// `args`, whose pointer is kept on the stack; its register serves as the fourth weight.
#[cfg(all(target_arch = "riscv32", shiftkit_scalar))]
#[allow(unsafe_code)]
#[inline(always)]
fn quads4(x4: &[Block], w: &[u8], k: &[Channel], out: &mut [i8]) {
    let n = x4.len();
    let quads = k.len() / 4;
    let stride = k.first().map_or(0, |k| k.stride as usize);
    if n == 0 || quads == 0 || w.len() < 16 * n * quads || out.len() < 3 * stride + 4 * quads {
        return; // not reached from `channels`
    }
    let mut args: [usize; 6] = [
        x4.as_ptr() as usize,
        x4[n..].as_ptr() as usize,
        k.as_ptr() as usize,
        out.as_mut_ptr() as usize,
        stride,
        k[4 * quads..].as_ptr() as usize,
    ];
    // SAFETY: for each of the `quads >= 1` quads, reads the `n >= 1` blocks of `x4` (32 bytes
    // each, halfword-aligned) from `args[0]` to `args[1]` and the next `16 n` bytes of `w`
    // (`16 n quads` in all, checked above), and the first 28 bytes of each of the quad's four
    // `Channel`s (`repr(C)`, word-aligned, contiguous at `size_of::<Channel>()`, the offsets of
    // `Channel`'s docs; `args[2]` steps through `k` to `args[5]`, its end); writes the bytes
    // `out[i * stride + 4 q + j]`, `i, j < 4` (checked above to lie inside `out`, from whose
    // pointer `args[3]` derives, stepping by 4). Reads and writes the six words of `args`. It
    // stores one word below the stack pointer, which it moves down 16 bytes (the ABI's
    // alignment) and back.
    unsafe {
        core::arch::asm!(
            "addi sp, sp, -16",
            "sw {args}, 12(sp)",
            "1:",
            "lw {t}, 12(sp)",
            "lw {px}, 0({t})",
            "lw {end}, 4({t})",
            "lw {t}, 8({t})",
            "lw {u0}, 0({t})",
            "lw {v0}, ({ch})({t})",
            "lw {y0}, (2 * {ch})({t})",
            "lw {z0}, (3 * {ch})({t})",
            "mv {u1}, {u0}",
            "mv {u2}, {u0}",
            "mv {u3}, {u0}",
            "mv {v1}, {v0}",
            "mv {v2}, {v0}",
            "mv {v3}, {v0}",
            "mv {y1}, {y0}",
            "mv {y2}, {y0}",
            "mv {y3}, {y0}",
            "mv {z1}, {z0}",
            "mv {z2}, {z0}",
            "mv {z3}, {z0}",
            // Pixel `i`'s byte `k` times the four weights `w0`, `w1`, `w2`, `args`.
            ".macro shiftkit_px4 k, i, a, b, c, d",
            "lh {x}, (8 * \\k + 2 * \\i)({px})",
            "mul {t}, {x}, {w0}",
            "add \\a, \\a, {t}",
            "mul {t}, {x}, {w1}",
            "add \\b, \\b, {t}",
            "mul {t}, {x}, {w2}",
            "add \\c, \\c, {t}",
            "mul {x}, {x}, {args}",
            "add \\d, \\d, {x}",
            ".endm",
            "2:",
            ".irp k, 0, 1, 2, 3",
            "lb {w0}, (4 * \\k)({pw})",
            "lb {w1}, (4 * \\k + 1)({pw})",
            "lb {w2}, (4 * \\k + 2)({pw})",
            "lb {args}, (4 * \\k + 3)({pw})",
            "shiftkit_px4 \\k, 0, {u0}, {v0}, {y0}, {z0}",
            "shiftkit_px4 \\k, 1, {u1}, {v1}, {y1}, {z1}",
            "shiftkit_px4 \\k, 2, {u2}, {v2}, {y2}, {z2}",
            "shiftkit_px4 \\k, 3, {u3}, {v3}, {y3}, {z3}",
            ".endr",
            "addi {px}, {px}, 32",
            "addi {pw}, {pw}, 16",
            "bne {px}, {end}, 2b",
            ".purgem shiftkit_px4",
            "lw {t}, 12(sp)",
            "lw {px}, 8({t})",  // the quad's constants
            "lw {x}, 12({t})",  // its first output
            "lw {end}, 16({t})", // the stride
            // One output: accumulator `a` requantised (w0, w1, w2, args: the channel's doubled
            // multiplier, zero point and range) and stored at `off(o)`.
            ".macro shiftkit_rq4 a, o, off",
            "mul {t}, \\a, {w0}",
            "mulh \\a, \\a, {w0}",
            "srli {t}, {t}, 31",
            "add \\a, \\a, {t}",
            "add \\a, \\a, {w1}",
            "bge \\a, {w2}, 3f",
            "mv \\a, {w2}",
            "3:",
            "bge {args}, \\a, 4f",
            "mv \\a, {args}",
            "4:",
            "sb \\a, \\off(\\o)",
            ".endm",
            // The constants of channel `j` of the quad.
            ".macro shiftkit_k4 j",
            "lw {w0}, (\\j * {ch} + 4)({px})",
            "lw {w1}, (\\j * {ch} + 16)({px})",
            "lw {w2}, (\\j * {ch} + 20)({px})",
            "lw {args}, (\\j * {ch} + 24)({px})",
            ".endm",
            // Channel 0; each of its registers then holds its pixel's output pointer.
            "shiftkit_k4 0",
            "shiftkit_rq4 {u0}, {x}, 0",
            "mv {u0}, {x}",
            "add {x}, {x}, {end}",
            "shiftkit_rq4 {u1}, {x}, 0",
            "mv {u1}, {x}",
            "add {x}, {x}, {end}",
            "shiftkit_rq4 {u2}, {x}, 0",
            "mv {u2}, {x}",
            "add {x}, {x}, {end}",
            "shiftkit_rq4 {u3}, {x}, 0",
            "mv {u3}, {x}",
            "shiftkit_k4 1",
            "shiftkit_rq4 {v0}, {u0}, 1",
            "shiftkit_rq4 {v1}, {u1}, 1",
            "shiftkit_rq4 {v2}, {u2}, 1",
            "shiftkit_rq4 {v3}, {u3}, 1",
            "shiftkit_k4 2",
            "shiftkit_rq4 {y0}, {u0}, 2",
            "shiftkit_rq4 {y1}, {u1}, 2",
            "shiftkit_rq4 {y2}, {u2}, 2",
            "shiftkit_rq4 {y3}, {u3}, 2",
            "shiftkit_k4 3",
            "shiftkit_rq4 {z0}, {u0}, 3",
            "shiftkit_rq4 {z1}, {u1}, 3",
            "shiftkit_rq4 {z2}, {u2}, 3",
            "shiftkit_rq4 {z3}, {u3}, 3",
            ".purgem shiftkit_rq4",
            ".purgem shiftkit_k4",
            // The next quad: its constants and its first output.
            "lw {t}, 12(sp)",
            "addi {px}, {px}, (4 * {ch})",
            "sw {px}, 8({t})",
            "lw {x}, 12({t})",
            "addi {x}, {x}, 4",
            "sw {x}, 12({t})",
            "lw {x}, 20({t})",
            "bne {px}, {x}, 1b",
            "addi sp, sp, 16",
            ch = const core::mem::size_of::<Channel>(),
            args = inout(reg) args.as_mut_ptr() => _,
            pw = inout(reg) w.as_ptr() => _,
            px = out(reg) _,
            end = out(reg) _,
            w0 = out(reg) _,
            w1 = out(reg) _,
            w2 = out(reg) _,
            x = out(reg) _,
            t = out(reg) _,
            u0 = out(reg) _,
            u1 = out(reg) _,
            u2 = out(reg) _,
            u3 = out(reg) _,
            v0 = out(reg) _,
            v1 = out(reg) _,
            v2 = out(reg) _,
            v3 = out(reg) _,
            y0 = out(reg) _,
            y1 = out(reg) _,
            y2 = out(reg) _,
            y3 = out(reg) _,
            z0 = out(reg) _,
            z1 = out(reg) _,
            z2 = out(reg) _,
            z3 = out(reg) _,
            options(preserves_flags),
        );
    }
}

/// Channels `c` and `c + 1` (constants `k`, weight rows `r`) of the four pixels into
/// `out[i * k[0].stride + c + j]`, the patch whole blocks, both channels in the single-rounding
/// form: Rust (every target but RV32).
#[cfg(not(any(target_arch = "arm", all(target_arch = "riscv32", shiftkit_scalar))))]
#[inline(always)]
fn single2(x4: &[Block], r: [&[u8]; 2], k: [&Channel; 2], out: &mut [i8], c: usize) {
    let (mut a0, mut a1) = ([k[0].bias; PIXELS], [k[1].bias; PIXELS]);
    blocks2(
        x4,
        r[0].as_chunks::<4>().0,
        r[1].as_chunks::<4>().0,
        &mut a0,
        &mut a1,
    );
    let stride = k[0].stride as usize;
    for (i, (p0, p1)) in a0.into_iter().zip(a1).enumerate() {
        if let Some([v0, v1]) = out
            .get_mut(i * stride + c..)
            .and_then(|o| o.first_chunk_mut())
        {
            *v0 = single_out(k[0], p0);
            *v1 = single_out(k[1], p1);
        }
    }
}

/// [`single2`] on RV32: the MAC loop of [`blocks2`], then per output `mul` and `mulh` for
/// `smmlar` (its rounding is bit 31 of the low word), the zero point and the clamp as two
/// branches, 9 instructions, one `asm!` block per channel pair.
#[cfg(all(target_arch = "riscv32", shiftkit_scalar))]
#[allow(unsafe_code)]
#[inline(always)]
fn single2(x4: &[Block], r: [&[u8]; 2], k: [&Channel; 2], out: &mut [i8], c: usize) {
    let n = x4.len();
    let stride = k[0].stride as usize;
    if n == 0 || r[0].len() < 4 * n || r[1].len() < 4 * n || out.len() <= 3 * stride + c + 1 {
        // Not reached from `channels`; the general loop gives the same outputs.
        let (mut a0, mut a1) = ([k[0].bias; PIXELS], [k[1].bias; PIXELS]);
        dot2(x4, &[], r[0], r[1], &mut a0, &mut a1);
        store(&k[0].rq, a0, out, stride, c);
        return store(&k[1].rq, a1, out, stride, c + 1);
    }
    let x_end = x4[n..].as_ptr();
    // Written out: `array::map` here goes through the stack.
    let o0 = out.as_mut_ptr().wrapping_add(c);
    let o1 = o0.wrapping_add(stride);
    let o2 = o1.wrapping_add(stride);
    let o3 = o2.wrapping_add(stride);
    // SAFETY: reads `n >= 1` blocks of `x4` (32 bytes each, halfword-aligned) from its start to
    // `x_end`, the first `4 n` bytes of `r[0]` and of `r[1]` (checked above) and the first 28
    // bytes of `*k[0]` and `*k[1]` (`repr(C)`, word-aligned, the offsets of `Channel`'s docs);
    // writes the bytes `out[i * stride + c + j]`, `i < 4`, `j < 2`, at `o_i + j` (checked
    // above to lie inside `out`, from whose pointer every `o_i` derives). No stack.
    unsafe {
        core::arch::asm!(
            "lw {p0}, 0({k0})",
            "mv {p1}, {p0}",
            "mv {p2}, {p0}",
            "mv {p3}, {p0}",
            "lw {q0}, 0({k1})",
            "mv {q1}, {q0}",
            "mv {q2}, {q0}",
            "mv {q3}, {q0}",
            rv32_pair_loop!(),
            // One output: accumulator `a` requantised (x0..x3: the channel's multiplier, zero
            // point and range) and stored at `off(o)`.
            ".macro shiftkit_rq a, o, off",
            "mul {t}, \\a, {x0}",
            "mulh \\a, \\a, {x0}",
            "srli {t}, {t}, 31",
            "add \\a, \\a, {t}",
            "add \\a, \\a, {x1}",
            "bge \\a, {x2}, 3f",
            "mv \\a, {x2}",
            "3:",
            "bge {x3}, \\a, 4f",
            "mv \\a, {x3}",
            "4:",
            "sb \\a, \\off(\\o)",
            ".endm",
            "lw {x0}, 4({k0})",
            "lw {x1}, 16({k0})",
            "lw {x2}, 20({k0})",
            "lw {x3}, 24({k0})",
            "shiftkit_rq {p0}, {o0}, 0",
            "shiftkit_rq {p1}, {o1}, 0",
            "shiftkit_rq {p2}, {o2}, 0",
            "shiftkit_rq {p3}, {o3}, 0",
            "lw {x0}, 4({k1})",
            "lw {x1}, 16({k1})",
            "lw {x2}, 20({k1})",
            "lw {x3}, 24({k1})",
            "shiftkit_rq {q0}, {o0}, 1",
            "shiftkit_rq {q1}, {o1}, 1",
            "shiftkit_rq {q2}, {o2}, 1",
            "shiftkit_rq {q3}, {o3}, 1",
            ".purgem shiftkit_rq",
            px = inout(reg) x4.as_ptr() => _,
            pw0 = inout(reg) r[0].as_ptr() => _,
            pw1 = inout(reg) r[1].as_ptr() => _,
            end = in(reg) x_end,
            k0 = in(reg) core::ptr::from_ref(k[0]),
            k1 = in(reg) core::ptr::from_ref(k[1]),
            o0 = in(reg) o0,
            o1 = in(reg) o1,
            o2 = in(reg) o2,
            o3 = in(reg) o3,
            w0 = out(reg) _,
            w1 = out(reg) _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            x2 = out(reg) _,
            x3 = out(reg) _,
            t = out(reg) _,
            p0 = out(reg) _,
            p1 = out(reg) _,
            p2 = out(reg) _,
            p3 = out(reg) _,
            q0 = out(reg) _,
            q1 = out(reg) _,
            q2 = out(reg) _,
            q3 = out(reg) _,
            options(nostack, preserves_flags),
        );
    }
}

/// Requantises channel `c`'s four accumulators into `out[i * stride + c]`.
#[inline(always)]
fn store(rq: &Requantizer, a: [i32; PIXELS], out: &mut [i8], stride: usize, c: usize) {
    let q = rq.apply4(a);
    for (i, q) in q.into_iter().enumerate() {
        if let Some(o) = out.get_mut(i * stride + c) {
            *o = q;
        }
    }
}

/// Four patch bytes of the four pixels: `x[k][i]`.
type Block = [[Lane; PIXELS]; 4];

/// `a[i] += x[t][i] * r[t]` over the patch (`x4`: its whole blocks, [`blocks1`]; `xt` the rest).
#[cfg(target_arch = "arm")]
#[inline(always)]
fn dot1(x4: &[Block], xt: &[[Lane; PIXELS]], r: &[u8], a: &mut [i32; PIXELS]) {
    let (r4, rt) = r.as_chunks::<4>();
    blocks1(x4, r4, a);
    for (xk, &wk) in xt.iter().zip(rt) {
        mac(a, xk, wk);
    }
}

/// [`dot1`]'s whole blocks in plain Rust (unrolled by hand: LLVM keeps the loop otherwise).
#[cfg(all(target_arch = "arm", not(shiftkit_scalar)))]
#[inline(always)]
fn blocks1(x: &[Block], w: &[[u8; 4]], a: &mut [i32; PIXELS]) {
    for (xb, wb) in x.iter().zip(w) {
        mac(a, &xb[0], wb[0]);
        mac(a, &xb[1], wb[1]);
        mac(a, &xb[2], wb[2]);
        mac(a, &xb[3], wb[3]);
    }
}

/// [`dot1`]'s whole blocks on Cortex-M0/M0+: per patch byte `ldrb` + `sxtb` for the weight and
/// per pixel `ldr`, `muls`, `adds`, 14 instructions for 4 MACs, and 4 per block for the
/// pointers and the loop's end (in r8: the four accumulators, the weight, a product and the two
/// pointers take all 8 low registers, the only ones most Thumb-1 instructions reach).
#[cfg(all(target_arch = "arm", shiftkit_scalar))]
#[allow(unsafe_code)]
#[inline(always)]
fn blocks1(x: &[Block], w: &[[u8; 4]], a: &mut [i32; PIXELS]) {
    let n = x.len().min(w.len());
    if n == 0 {
        return;
    }
    // SAFETY: reads `n >= 1` blocks of `x` (64 bytes each: `[[i32; 4]; 4]`, word-aligned as
    // `ldr` needs on v6-M) from its start, and the first `4 n` bytes of `w`; both slices hold
    // at least that much (`n` is the shorter length). Reads and writes the 16 bytes of `a`
    // (`ldm`/`stm`: `[i32; 4]` is word-aligned). r6, r7 and r8, which LLVM keeps as base and
    // frame pointers or callee-saved and which cannot be operands, are pushed first (r8 through
    // r4) and restored last, so they hold their values again when the block ends.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "mov r4, r8",
            "push {{r3, r4}}", // [sp] = a, [sp, #4] = r8
            "lsls r2, r2, #6",
            "adds r2, r0, r2",
            "mov r8, r2", // the end of x
            "ldm r3!, {{r4, r5, r6, r7}}",
            thumb1_loop!(),
            "pop {{r2, r3}}",
            "mov r8, r3",
            "stm r2!, {{r4, r5, r6, r7}}",
            "pop {{r6, r7}}",
            inout("r0") x.as_ptr() => _,
            inout("r1") w.as_ptr() => _,
            inout("r2") n => _,
            inout("r3") a.as_mut_ptr() => _,
            out("r4") _,
            out("r5") _,
        );
    }
}

/// `a0[i] += x[t][i] * r0[t]` and `a1[i] += x[t][i] * r1[t]` over the patch (`x4`: its whole
/// blocks, [`blocks2`]; `xt` the rest).
#[cfg(not(target_arch = "arm"))]
#[inline(always)]
fn dot2(
    x4: &[Block],
    xt: &[[Lane; PIXELS]],
    r0: &[u8],
    r1: &[u8],
    a0: &mut [i32; 4],
    a1: &mut [i32; 4],
) {
    let (r04, r0t) = r0.as_chunks::<4>();
    let (r14, r1t) = r1.as_chunks::<4>();
    blocks2(x4, r04, r14, a0, a1);
    for ((xk, &u0), &u1) in xt.iter().zip(r0t).zip(r1t) {
        mac(a0, xk, u0);
        mac(a1, xk, u1);
    }
}

/// [`dot2`]'s whole blocks in plain Rust (unrolled by hand: LLVM keeps the loop otherwise).
#[cfg(not(any(target_arch = "arm", all(target_arch = "riscv32", shiftkit_scalar))))]
#[inline(always)]
fn blocks2(x: &[Block], w0: &[[u8; 4]], w1: &[[u8; 4]], a0: &mut [i32; 4], a1: &mut [i32; 4]) {
    for ((xb, u0), u1) in x.iter().zip(w0).zip(w1) {
        for k in 0..4 {
            mac(a0, &xb[k], u0[k]);
            mac(a1, &xb[k], u1[k]);
        }
    }
}

/// [`dot2`]'s whole blocks on RV32: per patch byte 2 `lb` and 4 `lh`, 8 `mul` and 8 `add` (the
/// second channel's products overwrite the inputs), 22 instructions for 8 MACs, and 4 per
/// block for the pointers and the branch. The scheduler of plain Rust hoists every load of a
/// block and spills the products, hence the `asm!`.
#[cfg(all(target_arch = "riscv32", shiftkit_scalar))]
#[allow(unsafe_code)]
#[inline(always)]
fn blocks2(x: &[Block], w0: &[[u8; 4]], w1: &[[u8; 4]], a0: &mut [i32; 4], a1: &mut [i32; 4]) {
    let n = x.len().min(w0.len()).min(w1.len());
    if n == 0 {
        return;
    }
    let x_end = x[n..].as_ptr();
    let [mut p0, mut p1, mut p2, mut p3] = *a0;
    let [mut q0, mut q1, mut q2, mut q3] = *a1;
    // SAFETY: reads `n >= 1` blocks of `x` (32 bytes each: `[[i16; 4]; 4]`, halfword-aligned)
    // from its start to `x_end`, and the first `4 n` bytes of `w0` and of `w1`; every slice
    // holds at least that much (`n` is the shortest length). Registers only besides these reads.
    unsafe {
        core::arch::asm!(
            rv32_pair_loop!(),
            px = inout(reg) x.as_ptr() => _,
            pw0 = inout(reg) w0.as_ptr() => _,
            pw1 = inout(reg) w1.as_ptr() => _,
            end = in(reg) x_end,
            w0 = out(reg) _,
            w1 = out(reg) _,
            x0 = out(reg) _,
            x1 = out(reg) _,
            x2 = out(reg) _,
            x3 = out(reg) _,
            t = out(reg) _,
            p0 = inout(reg) p0,
            p1 = inout(reg) p1,
            p2 = inout(reg) p2,
            p3 = inout(reg) p3,
            q0 = inout(reg) q0,
            q1 = inout(reg) q1,
            q2 = inout(reg) q2,
            q3 = inout(reg) q3,
            options(readonly, nostack, preserves_flags),
        );
    }
    *a0 = [p0, p1, p2, p3];
    *a1 = [q0, q1, q2, q3];
}

/// One patch byte of one channel: `a[i] += x[i] * w` for the four pixels (`w`: an int8 weight).
#[inline(always)]
fn mac(a: &mut [i32; PIXELS], x: &[Lane; PIXELS], w: u8) {
    // Written out: LLVM keeps a loop over the array in memory.
    let w = i32::from(w as i8);
    a[0] = a[0].wrapping_add(wide(x[0]).wrapping_mul(w));
    a[1] = a[1].wrapping_add(wide(x[1]).wrapping_mul(w));
    a[2] = a[2].wrapping_add(wide(x[2]).wrapping_mul(w));
    a[3] = a[3].wrapping_add(wide(x[3]).wrapping_mul(w));
}

/// A lane as `i32` (it is one on Thumb-1).
#[allow(clippy::useless_conversion)]
#[inline(always)]
fn wide(x: Lane) -> i32 {
    i32::from(x)
}
