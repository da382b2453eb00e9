//! shiftkit next to its peer, in one run on QEMU `virt` (RV32IMC): every embedded image goes
//! through shiftkit's engine (`firmware::run`, this build's fast kernels, the RV32 unit) and
//! through Espressif's ESP-NN portable C kernels (the `_ansi` ones; with `ESP_NN_KERNELS=opt`
//! the conv is `esp_nn_conv_s8_opt`, what `esp_nn.h` picks on a chip without ESP-NN assembly).
//! Both are timed per layer with `minstret` under `-icount shift=0` (QEMU instructions), and
//! every layer's int8 output of the two engines is compared bit for bit: both follow TFLite's
//! integer arithmetic.
//!
//! The harness is `boards/peer-cmsis-nn`'s (same layout, bias unfolding, shift copy, hashing),
//! with ESP-NN's calls in place of CMSIS-NN's: the conventional engine's side of a shifted 1x1
//! conv is the shift as a tensor, written by a plain copy of each channel group per pixel (the
//! `copies` column, with the stem's u8 -> int8 input conversion), then the conv. Every tensor
//! has its own buffer. Parameters (the unfolded bias) are set up outside the timed windows.
//!
//! Report lines (`cargo xtask bench peer --engine esp-nn` parses these; the peer's column keeps
//! the name `cmsis` so that the CMSIS-NN parser reads both):
//! ```text
//! calibration ...
//! peer-esp-nn: N images, O ops, conv ansi|opt
//! image I label L ours P cmsis P bit-exact yes|no
//! layer I KIND ours U cmsis U copies U        (QEMU instructions per inference)
//! total ours U cmsis U copies U
//! result B/N images bit-exact
//! ```
#![no_std]
#![no_main]
// `unsafe` only in `espnn`: the ESP-NN calls, behind safe wrappers.
#![deny(unsafe_code)]

mod espnn;

use app::counter::{calibrate, Counter, Minstret};
use core::ops::Range;
use riscv_rt::entry;
use riscv_semihosting::hprintln;

use firmware::engine::split_arena;
use firmware::format::{shift_groups, Op, Shift, Tensor};
use firmware::{Model, Profiler};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// `minstret` counts one tick per executed instruction.
const INSTRUCTIONS_PER_TICK: u32 = 1;
const OPS: usize = embedded::OPS;
/// Largest tensor count and class count handled.
const MAX_TENSORS: usize = 128;
const MAX_CLASSES: usize = 64;
/// The peer's memory: one buffer per tensor, the shifted copy, the unfolded bias.
const PEER_BYTES: usize = 2 << 20;
static PEER: app::Arena<PEER_BYTES> = app::Arena::new();

/// The conv kernel this build calls (`ESP_NN_KERNELS`, see build.rs).
#[cfg(not(esp_nn_opt))]
const CONV: espnn::Conv = espnn::Conv::Ansi;
#[cfg(esp_nn_opt)]
const CONV: espnn::Conv = espnn::Conv::Opt;

fn conv_name() -> &'static str {
    match CONV {
        espnn::Conv::Ansi => "ansi",
        espnn::Conv::Opt => "opt",
    }
}

/// Why the run stopped: the op (if any) and what.
struct Fail(Option<usize>, &'static str);

impl From<firmware::model::ModelError> for Fail {
    fn from(_: firmware::model::ModelError) -> Self {
        Fail(
            None,
            "the embedded model does not read back (rebuild the board)",
        )
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    app::qemu::panic(info)
}

#[entry]
fn main() -> ! {
    match run() {
        Ok(all_exact) => app::exit(all_exact),
        Err(Fail(op, what)) => {
            match op {
                Some(i) => hprintln!("error: op {}: {}", i, what),
                None => hprintln!("error: {}", what),
            }
            app::exit(false)
        }
    }
}

/// Per-op ticks of shiftkit's engine, summed over the images.
struct Timer<'c> {
    counter: &'c Minstret,
    start: u32,
    ticks: [u64; OPS],
}

impl Profiler for Timer<'_> {
    fn begin(&mut self, _op: usize) {
        self.start = self.counter.now();
    }
    fn end(&mut self, op: usize, _output: &[i8]) {
        let t = self.counter.since(self.start);
        if let Some(sum) = self.ticks.get_mut(op) {
            *sum += u64::from(t);
        }
    }
}

/// An FNV-1a hash of each op's output, for finding the first op where the engines differ.
struct Fingerprints([u32; OPS]);

impl Profiler for Fingerprints {
    fn end(&mut self, op: usize, output: &[i8]) {
        if let Some(h) = self.0.get_mut(op) {
            *h = fnv(output);
        }
    }
}

fn fnv(bytes: &[i8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b as u8)).wrapping_mul(0x0100_0193)
    })
}

fn run() -> Result<bool, Fail> {
    let counter = Minstret::new("qemu_instructions");
    let c = calibrate(&counter, 100_000);
    hprintln!(
        "calibration loop_instructions {} ticks {} instructions_per_tick {}",
        c.loop_instructions,
        c.ticks,
        c.instructions_per_tick
    );
    if c.instructions_per_tick != INSTRUCTIONS_PER_TICK
        || c.ticks.abs_diff(c.loop_instructions) > 64
    {
        return Err(Fail(
            None,
            "minstret is not counting instructions: run QEMU with -icount shift=0",
        ));
    }
    let data = embedded::data();
    let model = Model::from_bytes(data.model)?;
    let ops = model.header().ops as usize;
    let images = data.labels.len();
    if ops > OPS || model.classes() > MAX_CLASSES {
        return Err(Fail(
            None,
            "the model is larger than this build (rebuild with it)",
        ));
    }
    hprintln!(
        "peer-esp-nn: {} images, {} ops, conv {}",
        images,
        ops,
        conv_name()
    );
    let arena = embedded::ARENA
        .take()
        .ok_or(Fail(None, "the arena was already taken"))?;
    let peer = PEER
        .take()
        .ok_or(Fail(None, "the peer memory was already taken"))?;
    let layout = Layout::new(&model, peer.len())?;

    let mut ours = Timer {
        counter: &counter,
        start: 0,
        ticks: [0; OPS],
    };
    let mut cmsis = [0u64; OPS];
    let mut copies = [0u64; OPS];
    let (mut ours_total, mut cmsis_total) = (0u64, 0u64);
    let mut exact = 0;
    for (i, (pixels, &label)) in data
        .images
        .chunks_exact(data.input_len)
        .zip(data.labels)
        .enumerate()
    {
        let start = counter.now();
        let logits = firmware::run(&model, pixels, arena, &mut ours)
            .map_err(|_| Fail(None, "shiftkit's engine failed on an image"))?;
        ours_total += u64::from(counter.since(start));
        let mut ours_logits = [0i8; MAX_CLASSES];
        ours_logits[..logits.len()].copy_from_slice(logits);
        let classes = logits.len();

        let (peer_ticks, peer_logits) = run_peer(
            &model,
            &layout,
            peer,
            pixels,
            &counter,
            &mut cmsis,
            &mut copies,
        )?;
        cmsis_total += peer_ticks;
        // Untimed: every op's output of both engines, compared.
        let mut prints = Fingerprints([0; OPS]);
        firmware::run(&model, pixels, arena, &mut prints)
            .map_err(|_| Fail(None, "shiftkit's engine failed on an image"))?;
        let mut first_diff = None;
        for (j, op) in model.ops().enumerate() {
            let y = op?.output();
            let (t, at) = (model.tensor(y)?, layout.tensor[usize::from(y)]);
            if first_diff.is_none() && fnv(&peer[at..at + t.bytes()]) != prints.0[j] {
                first_diff = Some(j);
            }
        }
        let same = ours_logits[..classes] == peer_logits[..classes] && first_diff.is_none();
        exact += usize::from(same);
        hprintln!(
            "image {} label {} ours {} cmsis {} bit-exact {}",
            i,
            label,
            app::argmax(&ours_logits[..classes]),
            app::argmax(&peer_logits[..classes]),
            match first_diff {
                None if same => "yes",
                _ => "no",
            }
        );
        if let Some(j) = first_diff {
            hprintln!("image {}: the engines first differ at op {}", i, j);
        }
    }
    let per = |ticks: u64| ticks * u64::from(INSTRUCTIONS_PER_TICK) / images.max(1) as u64;
    for (i, op) in model.ops().enumerate() {
        let kind = op.as_ref().map(|o| o.kind()).unwrap_or("?");
        hprintln!(
            "layer {} {} ours {} cmsis {} copies {}",
            i,
            kind,
            per(ours.ticks[i]),
            per(cmsis[i]),
            per(copies[i])
        );
    }
    hprintln!(
        "total ours {} cmsis {} copies {}",
        per(ours_total),
        per(cmsis_total),
        per(copies.iter().sum())
    );
    hprintln!("result {}/{} images bit-exact", exact, images);
    Ok(exact == images)
}

/// Where the peer keeps each tensor, as byte offsets into its memory.
struct Layout {
    tensor: [usize; MAX_TENSORS],
    /// The shifted copy of a shifted conv's input (largest tensor).
    shifted: usize,
    /// The unfolded bias, i32 x the largest channel count.
    bias: usize,
}

impl Layout {
    fn new(model: &Model, len: usize) -> Result<Layout, Fail> {
        let mut tensor = [0; MAX_TENSORS];
        let mut at = 0usize;
        let mut largest = 0;
        let mut channels = 0;
        for (id, t) in model.tensors().enumerate() {
            let t = t?;
            let slot = tensor
                .get_mut(id)
                .ok_or(Fail(None, "more tensors than this build handles"))?;
            *slot = at;
            at += t.bytes().next_multiple_of(16);
            largest = largest.max(t.bytes());
            channels = channels.max(t.c as usize);
        }
        let shifted = at;
        let bias = shifted + largest.next_multiple_of(16);
        if bias + 4 * channels > len {
            return Err(Fail(
                None,
                "the model's tensors do not fit the peer's memory",
            ));
        }
        Ok(Layout {
            tensor,
            shifted,
            bias,
        })
    }
}

/// Runs one image through the ESP-NN kernels; adds each op's ticks to `cmsis` (the kernel)
/// and `copies` (the conventional engine's data movement). Returns the ticks of the whole
/// inference and the logits.
fn run_peer(
    model: &Model,
    layout: &Layout,
    peer: &mut [i8],
    pixels: &[u8],
    counter: &Minstret,
    cmsis: &mut [u64; OPS],
    copies: &mut [u64; OPS],
) -> Result<(u64, [i8; MAX_CLASSES]), Fail> {
    let header = *model.header();
    let mut total = 0u64;

    // The input as int8 (x - 128), which is how a TFLite Micro int8 model takes an image.
    let input_at = layout.tensor[header.input as usize];
    let start = counter.now();
    for (d, &p) in peer[input_at..input_at + pixels.len()]
        .iter_mut()
        .zip(pixels)
    {
        *d = (p ^ 0x80) as i8;
    }
    let t = u64::from(counter.since(start));
    copies[0] += t;
    cmsis[0] += t;
    total += t;

    for (i, op) in model.ops().enumerate() {
        let op = op?;
        let fail = |what| Fail(Some(i), what);
        let (kernel, copy) = match op {
            Op::Conv {
                x,
                y,
                k,
                stride,
                pad,
                shift,
                weights,
                bias,
                requant,
                pad_value,
            } => {
                let (tx, ty) = (model.tensor(x)?, model.tensor(y)?);
                let w = model.span_bytes(weights, 1).ok_or(fail("weights"))?;
                let pads = model.span_bytes(pad_value, 1).ok_or(fail("pad values"))?;
                // CMSIS-NN has one input offset, and pads with it: the stem's pad value (a u8
                // pixel, less 128 as the input was converted) or the int8 zero point.
                let p0 = *pads.first().ok_or(fail("pad values"))?;
                let z = if x == header.input {
                    i32::from(p0) - 128
                } else {
                    i32::from(tx.zero_point)
                };
                if pads.iter().any(|&p| p != p0) || (x != header.input && p0 as i8 != tx.zero_point)
                {
                    return Err(fail(
                        "per-channel padding values: CMSIS-NN has one input offset",
                    ));
                }
                // Out-of-image taps read the pad value (a u8 pixel for the stem).
                let pad_read = if x == header.input { i32::from(p0) } else { z };
                unfold_bias(model, layout, peer, bias, w, ty.c as usize, pad_read)
                    .ok_or(fail("bias"))?;
                let mut copy = 0;
                if shift != Shift::None {
                    let start = counter.now();
                    shift_copy(peer, layout.tensor[x as usize], layout.shifted, &tx, shift);
                    copy = u64::from(counter.since(start));
                }
                let src = match shift {
                    Shift::None => layout.range(x, &tx),
                    _ => layout.shifted..layout.shifted + tx.bytes(),
                };
                let params = espnn::conv_params_t {
                    in_offset: -z,
                    out_offset: i32::from(ty.zero_point),
                    stride: espnn::data_2d_t::square(i32::from(stride)),
                    padding: espnn::data_2d_t::square(i32::from(pad)),
                    dilation: espnn::data_2d_t::square(1),
                    activation: act(requant.act_min, requant.act_max),
                };
                let quant =
                    quant(model, requant.multiplier, requant.shift).ok_or(fail("requant"))?;
                let (k, cin) = (i32::from(k), i32::from(tx.c));
                let dx = dims(&tx);
                let dw = espnn::data_dims_t::new(k, k, cin);
                let dy = dims(&ty);
                let (y, [x, bias]) = layout
                    .split(peer, layout.range(y, &ty), [src, layout.bias_range(&ty)])
                    .ok_or(fail("the peer's buffers overlap"))?;
                let call = espnn::convolve(CONV, &params, quant, &dx, x, &dw, w, &dy, bias, y)
                    .map_err(fail)?;
                let start = counter.now();
                call();
                (u64::from(counter.since(start)), copy)
            }
            Op::Add {
                a,
                b,
                y,
                left_shift,
                multipliers: m,
                act_min,
                act_max,
            } => {
                let (ta, tb, ty) = (model.tensor(a)?, model.tensor(b)?, model.tensor(y)?);
                let args = espnn::AddArgs {
                    a_offset: -i32::from(ta.zero_point),
                    a_multiplier: m.a_multiplier,
                    a_shift: m.a_shift,
                    b_offset: -i32::from(tb.zero_point),
                    b_multiplier: m.b_multiplier,
                    b_shift: m.b_shift,
                    left_shift: i32::from(left_shift),
                    out_offset: i32::from(ty.zero_point),
                    out_multiplier: m.out_multiplier,
                    out_shift: m.out_shift,
                    act_min: i32::from(act_min),
                    act_max: i32::from(act_max),
                };
                let (yv, [av, bv]) = layout
                    .split(
                        peer,
                        layout.range(y, &ty),
                        [layout.range(a, &ta), layout.range(b, &tb)],
                    )
                    .ok_or(fail("the peer's buffers overlap"))?;
                let call = espnn::elementwise_add(av, bv, yv, args).map_err(fail)?;
                let start = counter.now();
                call();
                (u64::from(counter.since(start)), 0)
            }
            Op::AvgPool2 { x, y } | Op::GlobalAvgPool { x, y } | Op::MaxPool3s2 { x, y } => {
                let (tx, ty) = (model.tensor(x)?, model.tensor(y)?);
                let (f, s, p) = match op {
                    Op::AvgPool2 { .. } => ((2, 2), 2, 0),
                    Op::MaxPool3s2 { .. } => ((3, 3), 2, 1),
                    _ => ((tx.h, tx.w), 1, 0),
                };
                let win = espnn::Window {
                    filter: f,
                    stride: s,
                    pad: p,
                };
                let (dx, dy) = (dims(&tx), dims(&ty));
                let kind = match op {
                    Op::MaxPool3s2 { .. } => espnn::Pool::Max,
                    _ => espnn::Pool::Average,
                };
                let (yv, [xv]) = layout
                    .split(peer, layout.range(y, &ty), [layout.range(x, &tx)])
                    .ok_or(fail("the peer's buffers overlap"))?;
                let call = espnn::pool(kind, win, &dx, xv, &dy, yv).map_err(fail)?;
                let start = counter.now();
                call();
                (u64::from(counter.since(start)), 0)
            }
            Op::FullyConnected {
                x,
                y,
                weights,
                bias,
                requant,
            } => {
                let (tx, ty) = (model.tensor(x)?, model.tensor(y)?);
                let w = model.span_bytes(weights, 1).ok_or(fail("weights"))?;
                let z = i32::from(tx.zero_point);
                unfold_bias(model, layout, peer, bias, w, ty.c as usize, z).ok_or(fail("bias"))?;
                let quant =
                    quant(model, requant.multiplier, requant.shift).ok_or(fail("requant"))?;
                let (yv, [xv, bias]) = layout
                    .split(
                        peer,
                        layout.range(y, &ty),
                        [layout.range(x, &tx), layout.bias_range(&ty)],
                    )
                    .ok_or(fail("the peer's buffers overlap"))?;
                let call = espnn::fully_connected(
                    -z,
                    i32::from(ty.zero_point),
                    act(requant.act_min, requant.act_max),
                    quant,
                    xv,
                    w,
                    bias,
                    yv,
                )
                .map_err(fail)?;
                let start = counter.now();
                call();
                (u64::from(counter.since(start)), 0)
            }
        };
        cmsis[i] += kernel + copy;
        copies[i] += copy;
        total += kernel + copy;
    }
    let out = model.output();
    let at = layout.tensor[header.output as usize];
    let mut logits = [0i8; MAX_CLASSES];
    let n = out.bytes().min(MAX_CLASSES);
    logits[..n].copy_from_slice(&peer[at..at + n]);
    Ok((total, logits))
}

/// One kernel call's buffers in the peer's memory: the output, the inputs.
type Buffers<'p, const N: usize> = (&'p mut [i8], [&'p [i8]; N]);

impl Layout {
    /// Tensor `id`'s bytes in the peer's memory.
    fn range(&self, id: u16, t: &Tensor) -> Range<usize> {
        let at = self.tensor[usize::from(id)];
        at..at + t.bytes()
    }

    /// The unfolded bias of an op writing `y`: `4 * y.c` bytes.
    fn bias_range(&self, y: &Tensor) -> Range<usize> {
        self.bias..self.bias + 4 * y.c as usize
    }

    /// The output `out` and the inputs `ins`, borrowed from the peer's memory at once; `None`
    /// if an input overlaps the output or a range is outside the memory.
    fn split<'p, const N: usize>(
        &self,
        peer: &'p mut [i8],
        out: Range<usize>,
        ins: [Range<usize>; N],
    ) -> Option<Buffers<'p, N>> {
        split_arena(peer, out, ins)
    }
}

fn act(min: i8, max: i8) -> espnn::act_params_t {
    espnn::act_params_t {
        min: i32::from(min),
        max: i32::from(max),
    }
}

fn dims(t: &Tensor) -> espnn::data_dims_t {
    espnn::data_dims_t::new(i32::from(t.h), i32::from(t.w), i32::from(t.c))
}

/// The per-channel multipliers and shifts, straight from the model's weight section (spans
/// are 4-byte aligned in a 16-byte aligned model).
fn quant<'m>(
    model: &Model<'m>,
    multiplier: firmware::format::Span,
    shift: firmware::format::Span,
) -> Option<espnn::Quant<'m>> {
    espnn::Quant::new(
        model.span_bytes(multiplier, 4)?,
        model.span_bytes(shift, 4)?,
    )
}

/// Writes the TFLite bias into the peer's bias slot. Ours reads out-of-image taps as `pad`
/// and has the input zero point folded in; ESP-NN adds its input offset to in-image inputs
/// only and skips padded taps (as CMSIS-NN), so its bias is ours plus `pad * sum(w)` per channel.
fn unfold_bias(
    model: &Model,
    layout: &Layout,
    peer: &mut [i8],
    bias: firmware::format::Span,
    w: &[u8],
    cout: usize,
    pad: i32,
) -> Option<()> {
    let b = model.i32_span(bias)?;
    let per = w.len() / cout;
    for c in 0..cout {
        let sum: i32 = w[c * per..(c + 1) * per]
            .iter()
            .map(|&v| i32::from(v as i8))
            .sum();
        let v = b.get(c)? + pad * sum;
        let at = layout.bias + 4 * c;
        for (d, s) in peer[at..at + 4].iter_mut().zip(v.to_le_bytes()) {
            *d = s as i8;
        }
    }
    Some(())
}

/// The shift as a tensor, the way a conventional engine must materialise it: output pixel
/// (h, w), channel group `c0..c1` = input pixel (h - dh, w - dw), the zero point outside.
fn shift_copy(peer: &mut [i8], from: usize, to: usize, t: &Tensor, shift: Shift) {
    let (h, w, c) = (t.h as isize, t.w as isize, t.c as usize);
    let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
    let n = shift_groups(shift, c, &mut groups);
    let (src, dst) = peer.split_at_mut(to);
    let src = &src[from..from + t.bytes()];
    for r in 0..h {
        for q in 0..w {
            let out = &mut dst[(r * w + q) as usize * c..][..c];
            for &(dh, dw, c0, c1) in &groups[..n] {
                let (sr, sq) = (r - dh as isize, q - dw as isize);
                if sr < 0 || sr >= h || sq < 0 || sq >= w {
                    out[c0..c1].fill(t.zero_point);
                } else {
                    out[c0..c1].copy_from_slice(&src[(sr * w + sq) as usize * c + c0..][..c1 - c0]);
                }
            }
        }
    }
}
