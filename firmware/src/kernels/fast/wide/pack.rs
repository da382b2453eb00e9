//! The wide path's packing: the pack plans (where each 4-byte block of a pixel's patch lies in
//! its window of input pixels) and the loops that pack four pixels' patches into the lanes the
//! channel loop reads, doubled (plain Rust, or `asm!` on the DSP unit).
use super::channel::PIXELS;
use crate::kernels::fast::dsp_arch as arch;
use crate::kernels::Element;

/// Most 4-channel blocks of a wide patch (128 input channels).
pub(super) const MAX_BLOCKS: usize = 32;

/// How one pixel's patch is read from a byte window: per 4-channel block, the offsets of its
/// bytes from group `lo` and group `hi` (the same for most blocks) and the mask of the `lo` bytes.
/// Every offset + 4 is at most `span`, the window length it was made for.
pub(super) struct PackPlan {
    entries: [[u32; 3]; MAX_BLOCKS],
    blocks: usize,
    pub(super) span: usize,
}

impl PackPlan {
    /// A plan of no blocks, for [`PackPlan::fill`].
    pub(super) const EMPTY: PackPlan = PackPlan {
        entries: [[0; 3]; MAX_BLOCKS],
        blocks: 0,
        span: 0,
    };

    /// Makes this the plan of a patch of `blocks` blocks whose channels are in `groups`
    /// (ascending channel ranges, some maybe empty), with `base[g]` where group g's channel 0 is
    /// in the window. `false` if a block would read three groups (groups of fewer than 3
    /// channels), a channel is in no group, there are too many blocks, or bytes lie outside
    /// `span`. Filled in place: the plan is 392 bytes, and a copy costs more than making it.
    pub(super) fn fill(
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
    pub(super) fn rows(k: usize, rowp: usize, line: usize) -> Option<Self> {
        let words = rowp / 4;
        let blocks = k * words;
        if blocks > MAX_BLOCKS || !rowp.is_multiple_of(4) {
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
    pub(super) fn run4<X: Element>(
        &self,
        win: &[X],
        step: usize,
        x: &mut [[u32; 2 * PIXELS]],
    ) -> bool {
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
    pub(super) fn run<X: Element>(&self, win: &[X], x: &mut [[u32; 2 * PIXELS]], i: usize) {
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
