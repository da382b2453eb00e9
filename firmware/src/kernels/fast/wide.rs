//! The DSP unit's wide path: a conv four output pixels by one output channel at a time, with
//! the output stage in the same hand-written loop. It takes every conv with a patch of at most
//! 128 bytes (zero-padded to 3, 4, 8, 16 or 32 blocks of 4 bytes) and at most 64 output
//! channels whose requantisation has the single-rounding form (a shift of 0, which quantize
//! writes for every conv whose multiplier is at least 2^-14) and whose activation range is all of
//! int8: the default network's and ResNet-8-4C's convs. Every other conv takes the 2x2 path of
//! [`super`].
//!
//! ```text
//! for each group of 4 output pixels (raster order; a short last group repeats its last pixel):
//!     x[b] = the 4 pixels' patches, block b (4 bytes) of each packed as the DSP unit reads it:
//!            [p0 even lanes, p0 odd lanes, p1 .., p2 .., p3 ..] (8 words), every lane doubled
//!     for each output channel c (the channel loop, one `asm!` block):
//!         acc[i] = 2 bias[c] + sum over b of x[b][i] . w[c][b]         (`ldm`, `sxtb16`, `smlad`)
//!         out[i][c] = ssat8(smmlar(acc[i], m, zero_point))        (requant::Requantizer)
//!     write the 4 pixels' outputs
//! ```
//!
//! Per block and channel, 16 MACs take 13 instructions: 1 weight load, 2 `sxtb16`, 2 `ldm` of
//! four packed words and 8 `smlad`; the block loop is unrolled (`.rept`: 3, 4 or 8 blocks, or
//! chunks of 16 until the end of the patch), so no register holds a counter and the four
//! pixels' words come in two `ldm`. Each channel then costs 17 instructions for its 4 outputs
//! (constants, requantisation, stores into the output rows, through lane and output pointers
//! kept in r7 and r6, which the loop saves and restores). The lanes are doubled when packed
//! so the accumulator is `2 acc`, the operand `smmlar` needs ([`crate::requant::Requantizer`]'s
//! single form), without a shift per output.
//!
//! The packing: a stride-1 1x1 conv (shifted or not) reads each interior pixel's patch through a
//! pack plan, one or two words per block at fixed offsets in the window of input pixels around
//! it (the shift is those offsets; `PackPlan`); border pixels copy their groups first. An
//! unshifted k x k conv reads its interior pixels' kernel rows, padded to whole words, the same
//! way; any other pixel is gathered byte by byte as the 2x2 path does.
//!
//! On builds without the DSP extension the loops are plain Rust with the same arithmetic (over
//! the emulated instructions of [`super::dsp::arch`]), so the host tests run this path.
use super::dsp::arch;
use super::{gather, Bytes};
use crate::format::shift_groups;
use crate::format::Shift;
use crate::kernels::conv::ConvParams;
use crate::kernels::{copy_i8, Element, Shape, XView};
use crate::plan_rules;
#[cfg(not(shiftkit_dsp))]
use crate::requant::smmlar;

/// Output pixels per group (the in-place block of `plan_rules`).
pub const PIXELS: usize = 4;
/// Most output channels the path takes (its constants and staging rows are on the stack).
pub const MAX_COUT: usize = 64;

/// One output channel's constants, in the order the channel loop loads them (36 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct Lane {
    /// `2 * bias`, once per pixel: the four accumulators' start (one `ldm`).
    bias2: [i32; 4],
    multiplier: i32,
    zero_point: i32,
    /// Non-zero in the last lane only, where the channel loop ends.
    last: u32,
    /// The distance between the pixels' output rows: the conv's number of output channels
    /// ([`Lanes::new`]), at least the number of lanes.
    stride: u32,
    /// `3 * stride`: the fourth pixel's row.
    stride3: u32,
}

/// Output rows for a last group of fewer than 4 pixels, `cout` bytes apart.
type Staging = [i8; PIXELS * MAX_COUT];

/// The output channels' constants, lane c writing channel c.
struct Lanes {
    lanes: [Lane; MAX_COUT],
    n: usize,
    stride: usize,
}

impl Lanes {
    /// Room for `cout` channels, whose output rows are `cout` bytes apart.
    fn new(cout: usize) -> Self {
        Lanes {
            lanes: [Lane::default(); MAX_COUT],
            n: 0,
            stride: cout,
        }
    }

    /// Adds the next output channel; `false` if all `cout` (at most `MAX_COUT`) are taken.
    fn push(&mut self, bias: i32, multiplier: i32, zero_point: i32) -> bool {
        let c = self.n;
        let Some(lane) = self.lanes.get_mut(c).filter(|_| c < self.stride) else {
            return false;
        };
        *lane = Lane {
            bias2: [bias.wrapping_mul(2); 4],
            multiplier,
            zero_point,
            last: 1,
            stride: self.stride as u32,
            stride3: 3 * self.stride as u32,
        };
        if let Some(before) = c.checked_sub(1).and_then(|b| self.lanes.get_mut(b)) {
            before.last = 0;
        }
        self.n += 1;
        true
    }

    /// Runs every channel over the packed patches `x` (weights: `n` rows of `4 * x.len()`
    /// bytes) and writes pixel i's output channel c to `out[i * stride + c]`; nothing if `out`
    /// or `weights` is too short.
    fn run(&self, x: &[[u32; 2 * PIXELS]], weights: &[u8], out: &mut [i8]) {
        let lanes = &self.lanes[..self.n];
        let n = lanes.len();
        if x.is_empty()
            || weights.len() < n * 4 * x.len()
            || out.len() < (PIXELS - 1) * self.stride + n
        {
            return;
        }
        channels(x, weights, lanes, out);
    }
}

/// Runs the conv on the wide path if it fits it (see the module docs); `false` = not taken.
pub fn conv(io: &mut dyn Bytes, signed: bool, ys: Shape, xs: Shape, p: &ConvParams) -> bool {
    let cin = xs.c;
    let cout = ys.c;
    // A k x k conv's kernel rows are zero-padded to whole words when they are not (the stem's
    // 3 bytes to 4): each row of the patch is then read from the input as whole words (the
    // extra bytes meet zero weights). The patch is then zero-padded to the channel loop's
    // blocks: 3 (the 3x3 stem over one channel), 4, 8 or a multiple of 16.
    let row = p.k * cin;
    let rowp = if p.k > 1 && p.shift == Shift::None {
        row.next_multiple_of(4)
    } else {
        row
    };
    let patch = p.k * rowp;
    let blocks = match patch.div_ceil(4) {
        0 => return false,
        3 => 3,
        1..=4 => 4,
        5..=8 => 8,
        b => b.next_multiple_of(16),
    };
    let fits = blocks <= MAX_BLOCKS
        && (1..=MAX_COUT).contains(&cout)
        && p.rescale.act_min == i8::MIN
        && p.rescale.act_max == i8::MAX;
    if !fits {
        return false;
    }
    let mut lanes = Lanes::new(cout);
    for c in 0..cout {
        let r = &p.rescale;
        let bias = p.bias.get(c).unwrap_or(0);
        let rq = r.requantizer(c, bias, p.k * row);
        let Some((multiplier, zero_point)) = rq.single_constants() else {
            return false; // a channel without the single form: the 2x2 path handles every case
        };
        if !lanes.push(bias, multiplier, zero_point) {
            return false;
        }
    }
    // The weight rows as the channel loop reads them: the file's, or zero-padded copies.
    let mut padded: [u8; PADDED]; // zeroed only when a copy is made
    let file_patch = p.k * row;
    let weights = if file_patch == 4 * blocks {
        match p.weights.get(..cout * file_patch) {
            Some(w) => w,
            None => return false,
        }
    } else {
        let line = 4 * blocks;
        padded = [0u8; PADDED];
        let (Some(dst), Some(src)) = (
            padded.get_mut(..cout * line),
            p.weights.get(..cout * file_patch),
        ) else {
            return false;
        };
        for (d, s) in dst.chunks_exact_mut(line).zip(src.chunks_exact(file_patch)) {
            for (dr, sr) in d.chunks_exact_mut(rowp).zip(s.chunks_exact(row)) {
                dr[..row].copy_from_slice(sr);
            }
        }
        &padded[..cout * line]
    };
    let window = p.k == 1 && p.stride == 1 && p.pad == 0 && patch == 4 * blocks && signed;
    if !window {
        return conv_gathered(io, signed, ys, xs, p, rowp, blocks, weights, &lanes);
    }

    let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
    let n_groups = shift_groups(p.shift, cin, &mut groups);
    let groups = &groups[..n_groups];
    // An interior pixel reads raster pixels within `reach` of its own: the window of
    // `2 reach + 1` pixels around it holds every group's source. A border pixel's sources (or
    // pad values) are copied to `border`, its channels in order, as an unshifted pixel's.
    let reach = plan_rules::reach(p.shift, xs.w);
    let window = (2 * reach + 1) * cin;
    let mut inner = [0usize; 9];
    for (g, &(dh, dw, _, _)) in groups.iter().enumerate() {
        let shift = dh as isize * xs.w as isize + dw as isize; // |shift| <= reach
        inner[g] = (reach as isize - shift) as usize * cin;
    }
    let (mut inner_plan, mut outer_plan) = (PackPlan::EMPTY, PackPlan::EMPTY);
    if !inner_plan.fill(groups, &inner, blocks, window)
        || !outer_plan.fill(groups, &[0; 9], blocks, cin)
    {
        // Groups of fewer than 3 channels: a block would read three. Gather instead.
        return conv_gathered(io, signed, ys, xs, p, rowp, blocks, weights, &lanes);
    }
    let (inner, outer) = (&inner_plan, &outer_plan);
    let mut border = [0i8; 4 * MAX_BLOCKS + 4];
    let mut pad = [0i8; 4 * MAX_BLOCKS + 4];
    for (d, &v) in pad.iter_mut().zip(p.pad_value) {
        *d = v as i8;
    }
    // The output pixels whose every group source lies inside the image.
    let (mut rows, mut cols) = (0..ys.h, 0..ys.w);
    for &(dh, dw, _, _) in groups {
        let (dh, dw) = (dh as isize, dw as isize);
        rows.start = rows.start.max(dh.max(0) as usize);
        rows.end = rows.end.min((ys.h as isize + dh.min(0)).max(0) as usize);
        cols.start = cols.start.max(dw.max(0) as usize);
        cols.end = cols.end.min((ys.w as isize + dw.min(0)).max(0) as usize);
    }
    if !matches!(io.x_view(), XView::I8(_)) {
        return false; // u8 input: only a stem reads it, never a wide shape
    }
    // A border pixel's copies, per group: the shift, the channels and the bytes copied (whole
    // words: up to 3 bytes past the group, which the next group's copy overwrites; past the
    // last group they meet no plan entry).
    let mut copies = [(0i8, 0i8, 0usize, 0usize, 0usize); 9];
    for (c, &(dh, dw, c0, c1)) in copies.iter_mut().zip(groups) {
        *c = (dh, dw, c0, c1, (c1 - c0).div_ceil(4) * 4);
    }
    let mut packed = [0u32; 2 * PIXELS * MAX_BLOCKS]; // flat: one memclr
    let x = &mut packed.as_chunks_mut::<{ 2 * PIXELS }>().0[..blocks];
    let pixels = ys.h * ys.w;
    let last = pixels - 1;
    let mut px = 0;
    while px < pixels {
        let XView::I8(v) = io.x_view() else {
            return false; // checked above
        };
        // Four interior pixels in one row: one pass packs them (windows `cin` bytes apart).
        let (oy, ox) = (px / ys.w, px % ys.w);
        let four = px + PIXELS <= pixels
            && rows.contains(&oy)
            && ox >= cols.start
            && ox + PIXELS <= cols.end
            && (px * cin)
                .checked_sub(reach * cin)
                .and_then(|start| v.get(start..))
                .is_some_and(|win| inner.run4(win, cin, x));
        for i in (0..PIXELS).filter(|_| !four) {
            let q = (px + i).min(last);
            let (oy, ox) = (q / ys.w, q % ys.w);
            let start = (q * cin).wrapping_sub(reach * cin);
            match v.get(start..start.wrapping_add(window)) {
                Some(win) if rows.contains(&oy) && cols.contains(&ox) => inner.run(win, x, i),
                _ => {
                    for &(dh, dw, c0, c1, n) in &copies[..n_groups] {
                        // Off the image, the row or column wraps to a huge usize.
                        let iy = oy.wrapping_sub(dh as usize);
                        let ix = ox.wrapping_sub(dw as usize);
                        let dst = &mut border[c0..c0 + n];
                        if iy >= xs.h || ix >= xs.w {
                            copy_words_i8(dst, &pad[c0..c0 + n]);
                            continue;
                        }
                        let at = (iy * xs.w + ix) * cin;
                        match v.get(at + c0..at + c0 + n) {
                            Some(src) => copy_words_i8(dst, src),
                            // The input's last bytes: no whole word past them.
                            None => copy_i8(&mut dst[..c1 - c0], &v[at + c0..at + c1]),
                        }
                    }
                    outer.run(&border[..cin], x, i);
                }
            }
        }
        write_group(io, px, pixels, cout, x, weights, &lanes);
        px += PIXELS;
    }
    true
}

/// The wide path for any other conv (k x k, strided, padded, u8 input): each pixel's patch
/// gathered as the 2x2 path does, zero-padded to `blocks` and packed here.
#[allow(clippy::too_many_arguments)]
fn conv_gathered(
    io: &mut dyn Bytes,
    signed: bool,
    ys: Shape,
    xs: Shape,
    p: &ConvParams,
    rowp: usize,
    blocks: usize,
    weights: &[u8],
    lanes: &Lanes,
) -> bool {
    let cout = ys.c;
    let row = p.k * xs.c;
    let patch = p.k * rowp;
    let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
    let n_groups = shift_groups(p.shift, xs.c, &mut groups);
    let groups = &groups[..n_groups];
    let mut bytes = [0u8; 4 * MAX_BLOCKS]; // bytes past the patch stay 0
    let mut packed = [0u32; 2 * PIXELS * MAX_BLOCKS]; // flat: one memclr
    let x = &mut packed.as_chunks_mut::<{ 2 * PIXELS }>().0[..blocks];
    let pixels = ys.h * ys.w;
    let last = pixels - 1;
    // An unshifted conv's interior pixels read their kernel rows straight from the input.
    let rows = match p.shift {
        Shift::None => PackPlan::rows(p.k, rowp, xs.w * xs.c),
        _ => None,
    };
    let mut px = 0;
    while px < pixels {
        // Four interior pixels in one row: one pass packs them (windows `stride * cin` apart).
        let (oy, ox) = (px / ys.w, px % ys.w);
        let (iy, ix) = (oy * p.stride, ox * p.stride);
        let four = match &rows {
            Some(plan)
                if px + PIXELS <= pixels
                    && ox + PIXELS <= ys.w
                    && iy >= p.pad
                    && ix >= p.pad
                    && iy + p.k <= xs.h + p.pad
                    && ix + (PIXELS - 1) * p.stride + p.k <= xs.w + p.pad =>
            {
                let (at, step) = (xs.at(iy - p.pad, ix - p.pad, 0), p.stride * xs.c);
                match io.x_view() {
                    XView::U8(v) => v.get(at..).is_some_and(|w| plan.run4(w, step, x)),
                    XView::I8(v) => v.get(at..).is_some_and(|w| plan.run4(w, step, x)),
                }
            }
            _ => false,
        };
        for i in (0..PIXELS).filter(|_| !four) {
            let q = (px + i).min(last);
            let (oy, ox) = (q / ys.w, q % ys.w);
            let (iy, ix) = (oy * p.stride, ox * p.stride); // the top-left tap, + pad
            if let Some(plan) = &rows {
                let inside = iy >= p.pad
                    && ix >= p.pad
                    && iy + p.k <= xs.h + p.pad
                    && ix + p.k <= xs.w + p.pad;
                let taken = inside && {
                    let at = xs.at(iy - p.pad, ix - p.pad, 0);
                    match io.x_view() {
                        XView::U8(v) => v.get(at..at + plan.span).map(|w| plan.run(w, x, i)),
                        XView::I8(v) => v.get(at..at + plan.span).map(|w| plan.run(w, x, i)),
                    }
                    .is_some()
                };
                if taken {
                    continue;
                }
            }
            if rowp == row {
                gather(io, xs, p, groups, oy, ox, 0, &mut bytes[..patch]);
            } else {
                match io.x_view() {
                    XView::U8(v) => gather_rows(v, xs, p, oy, ox, rowp, &mut bytes[..patch]),
                    XView::I8(v) => gather_rows(v, xs, p, oy, ox, rowp, &mut bytes[..patch]),
                }
            }
            let (words, _) = bytes[..4 * blocks].as_chunks::<4>();
            for (dst, w) in x.iter_mut().zip(words) {
                let w = u32::from_le_bytes(*w);
                let (even, odd) = if signed {
                    (arch::sxtb16(w), arch::sxtb16_ror8(w))
                } else {
                    (arch::uxtb16(w), arch::uxtb16_ror8(w))
                };
                dst[2 * i] = arch::sadd16(even, even);
                dst[2 * i + 1] = arch::sadd16(odd, odd);
            }
        }
        write_group(io, px, pixels, cout, x, weights, lanes);
        px += PIXELS;
    }
    true
}

/// [`gather`] for a conv without shift whose kernel rows are padded to `rowp` bytes (a multiple
/// of 4): row ky of the patch at `ky * rowp`, read as whole words when it lies inside the image
/// and the input (the bytes past the row meet zero weights), else tap by tap with the pad
/// values and zeros after.
fn gather_rows<X: Element>(
    v: &[X],
    xs: Shape,
    p: &ConvParams,
    oy: usize,
    ox: usize,
    rowp: usize,
    dst: &mut [u8],
) {
    let (k, cin) = (p.k, xs.c);
    for (ky, d) in dst.chunks_exact_mut(rowp).enumerate() {
        let iy = (oy * p.stride + ky) as isize - p.pad as isize;
        let ix0 = (ox * p.stride) as isize - p.pad as isize;
        if iy >= 0
            && (iy as usize) < xs.h
            && ix0 >= 0
            && ix0 as usize + k <= xs.w
            && copy_words(v, xs.at(iy as usize, ix0 as usize, 0), d)
        {
            continue;
        }
        for kx in 0..k {
            let tap = &mut d[kx * cin..][..cin];
            let ix = ix0 + kx as isize;
            let at = if iy >= 0 && ix >= 0 && (iy as usize) < xs.h && (ix as usize) < xs.w {
                xs.at(iy as usize, ix as usize, 0)
            } else {
                usize::MAX
            };
            match v.get(at..at.saturating_add(cin)) {
                Some(s) => tap.iter_mut().zip(s).for_each(|(t, s)| *t = s.byte()),
                None => tap.copy_from_slice(&p.pad_value[..cin]),
            }
        }
        d[k * cin..].fill(0);
    }
}

/// Copies `v[at..at + d.len()]` into `d` as raw bytes, a word at a time; `false` if that range
/// is not all in `v` (`d.len()` is a multiple of 4).
#[inline(always)]
fn copy_words<X: Element>(v: &[X], at: usize, d: &mut [u8]) -> bool {
    let Some(s) = v.get(at..at + d.len()) else {
        return false;
    };
    for (dc, sc) in d.chunks_exact_mut(4).zip(s.chunks_exact(4)) {
        dc.copy_from_slice(&[sc[0].byte(), sc[1].byte(), sc[2].byte(), sc[3].byte()]);
    }
    true
}

/// Runs the channel loop for the pixel group at `px` and writes its outputs.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn write_group(
    io: &mut dyn Bytes,
    px: usize,
    pixels: usize,
    cout: usize,
    x: &[[u32; 2 * PIXELS]],
    weights: &[u8],
    lanes: &Lanes,
) {
    if px + PIXELS <= pixels {
        // Straight into the output: pixels px..px+4 are `4 * cout` consecutive bytes.
        let y = io.y_mut();
        lanes.run(x, weights, y.get_mut(px * cout..).unwrap_or(&mut []));
    } else {
        // Made only here, once per conv at most: zeroing it costs as much as a group's packing.
        let mut staging: Staging = [0; PIXELS * MAX_COUT];
        lanes.run(x, weights, &mut staging);
        for (q, row) in (px..pixels).zip(staging.chunks_exact(cout)) {
            io.y_bytes(q * cout, row);
        }
    }
}

/// Bytes of the zero-padded weight copy (a stem's 3x3 rows, padded to 16 bytes).
const PADDED: usize = 2048;

/// Copies `src` to `dst` (equal lengths, a multiple of 4) a word at a time.
#[cfg(not(shiftkit_dsp))]
fn copy_words_i8(dst: &mut [i8], src: &[i8]) {
    dst.copy_from_slice(src);
}

/// [`copy_words_i8`] as an `ldr`/`str` loop (a call to `memcpy` costs more than these short
/// rows: 4 to 16 bytes).
#[cfg(shiftkit_dsp)]
#[allow(unsafe_code)]
fn copy_words_i8(dst: &mut [i8], src: &[i8]) {
    let n = dst.len().min(src.len()) / 4;
    if n == 0 {
        return;
    }
    // SAFETY: `n >= 1` words read from `src` and written to `dst`, both at least `4n` bytes
    // long (`ldr`/`str` may be unaligned on v7-M/v8-M); the slices cannot overlap (`dst` is
    // borrowed mutably). No stack.
    unsafe {
        core::arch::asm!(
            "2:",
            "ldr {t}, [{s}], #4",
            "str {t}, [{d}], #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            s = inout(reg) src.as_ptr() => _,
            d = inout(reg) dst.as_mut_ptr() => _,
            n = inout(reg) n => _,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Most 4-channel blocks of a wide patch (128 input channels).
const MAX_BLOCKS: usize = 32;

/// How one pixel's patch is read from a byte window: per 4-channel block, the offsets of its
/// bytes from group `lo` and group `hi` (the same for most blocks) and the mask of the `lo` bytes.
/// Every offset + 4 is at most `span`, the window length it was made for.
struct PackPlan {
    entries: [[u32; 3]; MAX_BLOCKS],
    blocks: usize,
    span: usize,
}

impl PackPlan {
    /// A plan of no blocks, for [`PackPlan::fill`].
    const EMPTY: PackPlan = PackPlan {
        entries: [[0; 3]; MAX_BLOCKS],
        blocks: 0,
        span: 0,
    };

    /// Makes this the plan of a patch of `blocks` blocks whose channels are in `groups`
    /// (ascending channel ranges, some maybe empty), with `base[g]` where group g's channel 0 is
    /// in the window. `false` if a block would read three groups (groups of fewer than 3
    /// channels), a channel is in no group, there are too many blocks, or bytes lie outside
    /// `span`. Filled in place: the plan is 392 bytes, and a copy costs more than making it.
    fn fill(
        &mut self,
        groups: &[(i8, i8, usize, usize)],
        base: &[usize; 9],
        blocks: usize,
        span: usize,
    ) -> bool {
        let Some(entries) = self.entries.get_mut(..blocks) else {
            return false;
        };
        let mut g = 0; // the group of the block's first channel, found by walking up
        for (b, e) in entries.iter_mut().enumerate() {
            let c = 4 * b;
            while groups.get(g).is_some_and(|&(_, _, _, c1)| c1 <= c) {
                g += 1;
            }
            let Some(&(_, _, _, c1)) = groups.get(g).filter(|gr| gr.2 <= c) else {
                return false;
            };
            // The block's first `n` channels are in group g; the rest must all be in the next
            // group that has channels.
            let n = (c1 - c).min(4);
            let mut h = g;
            if n < 4 {
                h += 1;
                while groups.get(h).is_some_and(|&(_, _, d0, d1)| d1 <= d0) {
                    h += 1;
                }
                if !groups
                    .get(h)
                    .is_some_and(|&(_, _, d0, d1)| d0 == c1 && d1 >= c + 4)
                {
                    return false;
                }
            }
            let (Some(&lo), Some(&hi)) = (base.get(g), base.get(h)) else {
                return false;
            };
            let (off_lo, off_hi) = (lo + c, hi + c);
            if off_lo.max(off_hi) + 4 > span {
                return false;
            }
            let mask = u32::MAX >> (8 * (4 - n));
            *e = [off_lo as u32, off_hi as u32, mask];
        }
        self.blocks = blocks;
        self.span = span;
        true
    }

    /// The plan of an unshifted k x k conv's patch read from the input at its top-left tap:
    /// kernel row ky is `rowp` bytes (whole words) at `ky * line` (`line`: bytes per input row).
    /// `None` if that is more than the plan holds.
    fn rows(k: usize, rowp: usize, line: usize) -> Option<Self> {
        let words = rowp / 4;
        let blocks = k * words;
        if blocks > MAX_BLOCKS || rowp % 4 != 0 {
            return None;
        }
        let mut entries = [[0u32; 3]; MAX_BLOCKS];
        for (b, e) in entries[..blocks].iter_mut().enumerate() {
            let off = (b / words) * line + 4 * (b % words);
            *e = [off as u32, off as u32, u32::MAX];
        }
        Some(PackPlan {
            entries,
            blocks,
            span: (k - 1) * line + rowp,
        })
    }

    /// Packs the patches of all [`PIXELS`] pixels of a group whose windows start `step` bytes
    /// apart in `win` (pixel i's window is `win[i * step..]`). `false` (nothing written) if `win`
    /// is too short for the last one.
    #[inline(always)]
    fn run4<X: Element>(&self, win: &[X], step: usize, x: &mut [[u32; 2 * PIXELS]]) -> bool {
        let entries = &self.entries[..self.blocks];
        let need = step
            .checked_mul(PIXELS - 1)
            .and_then(|v| v.checked_add(self.span));
        if need.is_none_or(|n| win.len() < n) || x.len() < entries.len() {
            return false;
        }
        pack4(win, step, entries, x);
        true
    }

    /// Packs the patch the plan reads from `win` into pixel `i`'s words of `x` (its first
    /// `blocks` blocks; the rest of `x` is left as it is).
    #[inline(always)]
    fn run<X: Element>(&self, win: &[X], x: &mut [[u32; 2 * PIXELS]], i: usize) {
        let entries = &self.entries[..self.blocks];
        if win.len() < self.span || x.len() < entries.len() || i >= PIXELS {
            return;
        }
        pack(win, entries, x, i);
    }
}

/// Plain-Rust packing (what the DSP build's `asm!` does): each block's word is `lo` bytes
/// `(word at off_lo) & mask | (word at off_hi) & !mask`, split into the even and odd 16-bit lanes
/// `sxtb16` (i8 input) or `uxtb16` (u8) gives, doubled.
#[cfg_attr(shiftkit_dsp, allow(dead_code))]
#[inline(always)]
fn pack_rust<X: Element>(win: &[X], entries: &[[u32; 3]], x: &mut [[u32; 2 * PIXELS]], i: usize) {
    let word = |at: u32| -> u32 {
        let at = at as usize;
        match win.get(at..at + 4) {
            Some(b) => u32::from_le_bytes([b[0].byte(), b[1].byte(), b[2].byte(), b[3].byte()]),
            None => 0,
        }
    };
    for (dst, &[lo, hi, mask]) in x.iter_mut().zip(entries) {
        let w = (word(lo) & mask) | (word(hi) & !mask);
        let (even, odd) = if X::SIGNED {
            (arch::sxtb16(w), arch::sxtb16_ror8(w))
        } else {
            (arch::uxtb16(w), arch::uxtb16_ror8(w))
        };
        dst[2 * i] = arch::sadd16(even, even);
        dst[2 * i + 1] = arch::sadd16(odd, odd);
    }
}

#[cfg(not(shiftkit_dsp))]
#[inline(always)]
fn pack<X: Element>(win: &[X], entries: &[[u32; 3]], x: &mut [[u32; 2 * PIXELS]], i: usize) {
    pack_rust(win, entries, x, i)
}

/// [`pack_rust`] on the DSP unit, 12 instructions per block.
#[cfg(shiftkit_dsp)]
#[inline(always)]
fn pack<X: Element>(win: &[X], entries: &[[u32; 3]], x: &mut [[u32; 2 * PIXELS]], i: usize) {
    let n = entries.len().min(x.len());
    if n == 0 || i >= PIXELS {
        return;
    }
    let (w, d) = (
        win.as_ptr().cast::<u8>(),
        x.as_mut_ptr().cast::<u32>().wrapping_add(2 * i),
    );
    if X::SIGNED {
        pack_sxtb16(w, entries.as_ptr(), d, n);
    } else {
        pack_uxtb16(w, entries.as_ptr(), d, n);
    }
}

/// [`pack`] for the [`PIXELS`] pixels of a group, windows `step` bytes apart.
#[cfg(not(shiftkit_dsp))]
#[inline(always)]
fn pack4<X: Element>(win: &[X], step: usize, entries: &[[u32; 3]], x: &mut [[u32; 2 * PIXELS]]) {
    for i in 0..PIXELS {
        pack_rust(&win[i * step..], entries, x, i);
    }
}

/// [`pack4`] on the DSP unit: one pass over the blocks, 9 instructions per block and pixel.
#[cfg(shiftkit_dsp)]
#[inline(always)]
fn pack4<X: Element>(win: &[X], step: usize, entries: &[[u32; 3]], x: &mut [[u32; 2 * PIXELS]]) {
    let n = entries.len().min(x.len());
    if n == 0 {
        return;
    }
    let (w, d) = (win.as_ptr().cast::<u8>(), x.as_mut_ptr().cast::<u32>());
    if X::SIGNED {
        pack4_sxtb16(w, step, entries.as_ptr(), d, n);
    } else {
        pack4_uxtb16(w, step, entries.as_ptr(), d, n);
    }
}

/// The four-pixel packing loop, one copy per byte extension. Callers ([`pack4`]) pass `n >= 1`
/// entries, windows `w + i * step` (i < 4) each at least `PackPlan::span` long, and `d` at
/// `x[0][0]` of an `x` with at least `n` blocks.
#[cfg(shiftkit_dsp)]
macro_rules! pack4_loop {
    ($name:ident, $ext:literal) => {
        #[allow(unsafe_code)]
        #[inline(never)]
        fn $name(w: *const u8, step: usize, e: *const [u32; 3], d: *mut u32, n: usize) {
            // SAFETY: the loop runs `n >= 1` times. Per block it reads one entry (12 bytes, the
            // caller's slice has `n`) and, for each pixel i < 4, two words at
            // `w + i * step + off` with `off + 4 <= span` (`PackPlan::fill`/`rows` made every
            // entry so; `PackPlan::run4` checked `3 step + span` against the window; `ldr` may
            // be unaligned on v7-M/v8-M), and writes the 32 bytes of `x[b]` (u32-aligned for
            // `strd`, in bounds: `b < n <= x.len()`). No stack.
            unsafe {
                core::arch::asm!(
                    "add r9, r8, r10",
                    "add r11, r9, r10",
                    "add r10, r11, r10",
                    "2:",
                    "ldm r0!, {{r3, r4, r5}}",
                    // GE[i] = byte i of the mask is 0xFF (from group lo): 0xFF + 0xFF carries.
                    "uadd8 r2, r5, r5",
                    ".irp base, r8, r9, r11, r10",
                    "ldr r2, [\\base, r3]",
                    "ldr r12, [\\base, r4]",
                    "sel r2, r2, r12",
                    concat!($ext, " r12, r2"),
                    concat!($ext, " r2, r2, ror #8"),
                    // Doubled without touching GE (`sadd16` would set it); never saturates.
                    "qadd16 r12, r12, r12",
                    "qadd16 r2, r2, r2",
                    "strd r12, r2, [r1], #8",
                    ".endr",
                    "subs lr, lr, #1",
                    "bne 2b",
                    inout("r0") e => _,
                    inout("r1") d => _,
                    out("r2") _,
                    out("r3") _,
                    out("r4") _,
                    out("r5") _,
                    in("r8") w,
                    out("r9") _,
                    inout("r10") step => _,
                    out("r11") _,
                    out("r12") _,
                    inout("lr") n => _,
                    options(nostack),
                );
            }
        }
    };
}
#[cfg(shiftkit_dsp)]
pack4_loop!(pack4_sxtb16, "sxtb16");
#[cfg(shiftkit_dsp)]
pack4_loop!(pack4_uxtb16, "uxtb16");

/// The packing loop, one copy per byte extension. Callers ([`pack`]) pass `n >= 1` entries,
/// a window `w` (one byte per element) at least `PackPlan::span` long, and `d` at pixel i's
/// words of an `x` with at least `n` blocks.
#[cfg(shiftkit_dsp)]
macro_rules! pack_loop {
    ($name:ident, $ext:literal) => {
        #[allow(unsafe_code)]
        #[inline(never)]
        fn $name(w: *const u8, e: *const [u32; 3], d: *mut u32, n: usize) {
            // SAFETY: the loop runs `n >= 1` times. Per block it reads one entry (12 bytes, the
            // caller's slice has `n`) and two words at `w + off` with `off + 4 <= span <= the
            // window's length` (`PackPlan::fill`/`rows` made every entry so, `PackPlan::run`
            // checked the window; `ldr` may be unaligned), and writes 8 bytes at `x[b][2i]`
            // (u32-aligned for `strd`, in bounds: `b < n <= x.len()`, `2i + 1 < 8`). No stack.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldm {e}!, {{r3, r4, r5}}",
                    // GE[i] = byte i of the mask is 0xFF (from group lo): 0xFF + 0xFF carries.
                    "uadd8 {a}, r5, r5",
                    "ldr {a}, [{w}, r3]",
                    "ldr {t}, [{w}, r4]",
                    "sel {a}, {a}, {t}",
                    concat!($ext, " {t}, {a}"),
                    concat!($ext, " {a}, {a}, ror #8"),
                    // Doubled without touching GE; never saturates (|2 x| <= 510).
                    "qadd16 {t}, {t}, {t}",
                    "qadd16 {a}, {a}, {a}",
                    "strd {t}, {a}, [{d}], #32",
                    "subs {n}, {n}, #1",
                    "bne 2b",
                    e = inout(reg) e => _,
                    w = in(reg) w,
                    d = inout(reg) d => _,
                    n = inout(reg) n => _,
                    a = out(reg) _,
                    t = out(reg) _,
                    out("r3") _,
                    out("r4") _,
                    out("r5") _,
                    options(nostack),
                );
            }
        }
    };
}
#[cfg(shiftkit_dsp)]
pack_loop!(pack_sxtb16, "sxtb16");
#[cfg(shiftkit_dsp)]
pack_loop!(pack_uxtb16, "uxtb16");

/// The channel loop in plain Rust: what the DSP build's `asm!` computes.
#[cfg(not(shiftkit_dsp))]
#[inline(always)]
fn channels_rust(x: &[[u32; 2 * PIXELS]], weights: &[u8], lanes: &[Lane], out: &mut [i8]) {
    let blocks = x.len();
    for (c, (lane, w)) in lanes
        .iter()
        .zip(weights.chunks_exact(4 * blocks))
        .enumerate()
    {
        let mut acc = lane.bias2;
        let (wc, _) = w.as_chunks::<4>();
        for (xb, wb) in x.iter().zip(wc) {
            let w = u32::from_le_bytes(*wb);
            let (we, wo) = (arch::sxtb16(w), arch::sxtb16_ror8(w));
            for (i, a) in acc.iter_mut().enumerate() {
                *a = arch::smlad(xb[2 * i], we, *a);
                *a = arch::smlad(xb[2 * i + 1], wo, *a);
            }
        }
        for (i, a) in acc.into_iter().enumerate() {
            let g = smmlar(a, lane.multiplier, lane.zero_point);
            if let Some(o) = out.get_mut(i * lane.stride as usize + c) {
                *o = g.clamp(-128, 127) as i8;
            }
        }
    }
}

#[cfg(not(shiftkit_dsp))]
fn channels(x: &[[u32; 2 * PIXELS]], weights: &[u8], lanes: &[Lane], out: &mut [i8]) {
    channels_rust(x, weights, lanes, out)
}

/// The channel loop on the DSP unit: 3, 4 or 8 blocks unrolled, or chunks of 16 ([`conv`] pads
/// the patch to one of these).
#[cfg(shiftkit_dsp)]
fn channels(x: &[[u32; 2 * PIXELS]], weights: &[u8], lanes: &[Lane], out: &mut [i8]) {
    match x.len() {
        3 => channels_asm::<3, 1>(x, weights, lanes, out),
        4 => channels_asm::<4, 1>(x, weights, lanes, out),
        8 => channels_asm::<8, 1>(x, weights, lanes, out),
        // [`conv`] pads every patch to 3, 4, 8 or a multiple of 16 blocks.
        _ => channels_asm::<16, 0>(x, weights, lanes, out),
    }
}

/// `CHUNK` blocks unrolled; `ONE` = 1: the patch is exactly one chunk, else `x.len() / CHUNK`
/// chunks, looped until the end of `x`.
#[cfg(shiftkit_dsp)]
#[allow(unsafe_code)]
#[inline(never)]
fn channels_asm<const CHUNK: usize, const ONE: usize>(
    x: &[[u32; 2 * PIXELS]],
    weights: &[u8],
    lanes: &[Lane],
    out: &mut [i8],
) {
    let chunks = x.len() / CHUNK;
    if lanes.is_empty() || chunks == 0 || x.len() % CHUNK != 0 || (ONE == 1 && chunks != 1) {
        return;
    }
    let x_end = x.as_ptr_range().end;
    // SAFETY: the loop runs once per lane (r7 walks `lanes`, 36 bytes per lane: the `repr(C)`
    // layout of `Lane`) and stops after the lane whose `last` is non-zero, which `Lanes::push`
    // leaves in the last lane it pushed, and only there. Per lane it reads the lane, all of `x`
    // (r12, from its start to `x_end`, `CHUNK` blocks of 32 bytes at a time) and the next
    // `x.len() * 4` bytes of `weights` (`Lanes::run` checked that all lanes' rows are in bounds;
    // `ldr` may be unaligned on v7-M/v8-M, `ldm` needs the u32 alignment `x` and `Lane` have).
    // Lane c writes 4 bytes, at `out + c + i * stride` for i < 4 (r6 = `out + c`; `stride` and
    // `3 * stride` are the lane's fields, the same in every lane); `Lanes::run` checked
    // `out.len() >= 3 * stride + n`, so all lie in `out`, which is borrowed mutably here. r6
    // and r7, which LLVM keeps as base and frame pointers and which cannot be operands, are
    // pushed first and popped last, so they hold their values again when the block ends; the
    // 8 bytes pushed between are popped too.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "mov r7, r0",
            "mov r6, r1",
            // [sp] = end of x, [sp, #4] = x
            "push {{r3, r12}}",
            "1:",
            "ldm r7!, {{r0, r1, r2, r3}}",
            ".if {one} == 0",
            "3:",
            ".endif",
            ".rept {chunk}",
            "ldr r10, [lr], #4",
            "sxtb16 r11, r10, ror #8",
            "sxtb16 r10, r10",
            "ldm r12!, {{r4, r5, r8, r9}}",
            "smlad r0, r4, r10, r0",
            "smlad r0, r5, r11, r0",
            "smlad r1, r8, r10, r1",
            "smlad r1, r9, r11, r1",
            "ldm r12!, {{r4, r5, r8, r9}}",
            "smlad r2, r4, r10, r2",
            "smlad r2, r5, r11, r2",
            "smlad r3, r8, r10, r3",
            "smlad r3, r9, r11, r3",
            ".endr",
            ".if {one} == 0",
            "ldr r10, [sp]",
            "cmp r12, r10",
            "bne 3b",
            ".endif",
            "ldr r12, [sp, #4]",
            "ldm r7!, {{r4, r5, r8, r9, r11}}", // multiplier, zero point, last, stride, 3 stride
            "smmlar r0, r0, r4, r5",
            "ssat r0, #8, r0",
            "smmlar r1, r1, r4, r5",
            "ssat r1, #8, r1",
            "smmlar r2, r2, r4, r5",
            "ssat r2, #8, r2",
            "smmlar r3, r3, r4, r5",
            "ssat r3, #8, r3",
            "strb r1, [r6, r9]",
            "strb r2, [r6, r9, lsl #1]",
            "strb r3, [r6, r11]",
            "strb r0, [r6], #1",
            "cmp r8, #0",
            "beq 1b",
            "add sp, sp, #8",
            "pop {{r6, r7}}",
            chunk = const CHUNK,
            one = const ONE,
            inout("r0") lanes.as_ptr() => _,
            inout("r1") out.as_mut_ptr() => _,
            out("r2") _,
            inout("r3") x_end => _,
            inout("r12") x.as_ptr() => _,
            inout("lr") weights.as_ptr() => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
        );
    }
}
