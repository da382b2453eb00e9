//! The wide path's channel loop: every output channel's constants ([`Lanes`]) and the loop over
//! them, four pixels' accumulators per channel and the output stage (`smmlar`, saturate,
//! store), in plain Rust or as one `asm!` block on the DSP unit.
#[cfg(not(shiftkit_dsp))]
use crate::kernels::fast::dsp_arch as arch;
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
/// The output channels' constants, lane c writing channel c.
pub(super) struct Lanes {
    lanes: [Lane; MAX_COUT],
    n: usize,
    stride: usize,
}

impl Lanes {
    /// Room for `cout` channels, whose output rows are `cout` bytes apart.
    pub(super) fn new(cout: usize) -> Self {
        Lanes {
            lanes: [Lane::default(); MAX_COUT],
            n: 0,
            stride: cout,
        }
    }

    /// Adds the next output channel; `false` if all `cout` (at most `MAX_COUT`) are taken.
    pub(super) fn push(&mut self, bias: i32, multiplier: i32, zero_point: i32) -> bool {
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
    pub(super) fn run(&self, x: &[[u32; 2 * PIXELS]], weights: &[u8], out: &mut [i8]) {
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

/// The channel loop on the DSP unit: 3, 4 or 8 blocks unrolled, or chunks of 16 ([`super::conv`]
/// pads the patch to one of these).
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
    if lanes.is_empty()
        || chunks == 0
        || !x.len().is_multiple_of(CHUNK)
        || (ONE == 1 && chunks != 1)
    {
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
