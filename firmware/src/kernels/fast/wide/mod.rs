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
//! the emulated instructions of [`super::dsp_arch`]), so the host tests run this path.
//!
//! The files: this one is the driver (which convs the path takes, the weight rows, the pixel
//! groups and the border copies); `pack.rs` packs the patches (the pack plans and their
//! loops); `channel.rs` runs the channel loop and its output stage.
mod channel;
mod pack;

pub use self::channel::{MAX_COUT, PIXELS};

use self::channel::Lanes;
use self::pack::{PackPlan, MAX_BLOCKS};
use super::dsp_arch as arch;
use super::{gather, Bytes};
use crate::format::shift_groups;
use crate::format::Shift;
use crate::kernels::conv::ConvParams;
use crate::kernels::{copy_i8, Element, Shape, XView};
use crate::plan_rules;

/// Output rows for a last group of fewer than 4 pixels, `cout` bytes apart.
type Staging = [i8; PIXELS * MAX_COUT];
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
