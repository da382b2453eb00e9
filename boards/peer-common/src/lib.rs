//! The harness the peer boards share (`boards/peer-cmsis-nn`, `boards/peer-esp-nn`): every
//! embedded image goes through shiftkit's engine (`firmware::run`, the board's fast kernels) and
//! through the peer's kernels, called the way TFLite Micro's ops call them. Both are timed per
//! layer with the board's [`Counter`] under `-icount shift=0` (QEMU instructions), and every
//! layer's int8 output of the two engines is compared bit for bit: both follow TFLite's integer
//! arithmetic.
//!
//! What the peers share is here: the loop over images and ops, the timing, the comparison, the
//! report lines, the peer's memory layout (one buffer per tensor, as in a TFLite Micro arena
//! without in-place ops), the bias unfolding, and the conventional engine's side of a shifted
//! 1x1 conv: the shift as a tensor (what TFLite's Pad + Slice + Concat produce), written by a
//! plain copy of each channel group per pixel, then the peer's conv. The `copies` column counts
//! that copy (and, for the stem, the u8 -> int8 conversion of the input image, since the peers
//! read int8). Parameters (the unfolded bias, the scratch size) are set up outside the timed
//! windows, as TFLite Micro does in `Prepare`. A board gives only its [`Peer`]: the kernel calls
//! (behind its own safe wrappers), its counter and how it prints.
//!
//! Report lines (`cargo xtask bench peer` parses these; the peer's column is `cmsis` for every
//! peer, so that one parser reads them all):
//! ```text
//! calibration ...
//! NAME: N images, O ops[TAIL]
//! image I label L ours P cmsis P bit-exact yes|no
//! layer I KIND ours U cmsis U copies U        (QEMU instructions per inference)
//! total ours U cmsis U copies U
//! result B/N images bit-exact
//! ```
#![no_std]
#![deny(unsafe_code)]

use app::counter::{calibrate, Calibration, Counter};
use core::fmt::Arguments;
use core::ops::Range;

use firmware::engine::split_arena;
use firmware::format::{shift_groups, Op, Requant, Shift, Span, Tensor};
use firmware::{Model, Profiler};

/// Largest tensor count and class count handled.
pub const MAX_TENSORS: usize = 128;
pub const MAX_CLASSES: usize = 64;

/// Why the run stopped: the op (if any) and what.
pub struct Fail(pub Option<usize>, pub &'static str);

impl From<firmware::model::ModelError> for Fail {
    fn from(_: firmware::model::ModelError) -> Self {
        Fail(
            None,
            "the embedded model does not read back (rebuild the board)",
        )
    }
}

/// Why a peer's wrapper refused a call, or its kernel failed.
pub type LengthError = &'static str;

/// One peer: its name, its counter check, how it prints, and its kernel calls. Each kernel
/// method builds the peer's parameters from the [`Call`]'s arguments, checks them (the board's
/// safe wrapper), times the kernel call alone with [`Stopwatch::time`] and returns its ticks.
pub trait Peer {
    /// The report's header line starts with this (`peer-cmsis-nn`).
    const NAME: &'static str;
    /// And ends with this after the op count (`""`, `", conv ansi"`).
    const TAIL: &'static str;
    /// Whether the kernels take a scratch buffer: the rest of the peer's memory after the bias.
    const SCRATCH: bool;
    /// The error when the counter's calibration is off (`SysTick is not counting ...`).
    const NOT_COUNTING: &'static str;

    /// Writes one report line (with its newline) where the host reads it.
    fn print(&self, line: Arguments<'_>);

    /// Besides its units per tick, whether the calibration shows the counter counting
    /// instructions exactly (a 1-instruction counter: its ticks within a few of the loop's).
    fn counts_exactly(&self, _c: &Calibration) -> bool {
        true
    }

    /// A conv from `x[0]` (`args.x`; the shifted copy for a shifted conv) with the unfolded bias
    /// `x[1]` into `y`.
    fn conv<C: Counter>(&self, call: Call<'_, C, ConvArgs<'_>, 2>) -> Ticks;

    /// TFLite's ADD of `x[0]` and `x[1]` into `y`.
    fn add<C: Counter>(&self, call: Call<'_, C, AddArgs, 2>) -> Ticks;

    /// A pool from `x[0]` into `y`.
    fn pool<C: Counter>(&self, call: Call<'_, C, PoolArgs, 1>) -> Ticks;

    /// A fully connected layer from `x[0]` with the unfolded bias `x[1]` into `y`.
    fn fully_connected<C: Counter>(&self, call: Call<'_, C, ConvArgs<'_>, 2>) -> Ticks;
}

/// A kernel method's ticks, or why it refused or failed.
pub type Ticks = Result<u64, LengthError>;

/// One kernel call: the shared arguments, the buffers, and the clock to time the kernel with.
pub struct Call<'a, C: Counter, A, const N: usize> {
    pub args: &'a A,
    pub buffers: Buffers<'a, N>,
    pub clock: &'a Stopwatch<'a, C>,
}

/// Times one kernel call with the board's counter.
pub struct Stopwatch<'c, C: Counter>(&'c C);

impl<C: Counter> Stopwatch<'_, C> {
    /// Runs `call`; its result and its ticks.
    #[inline(always)]
    pub fn time<R>(&self, call: impl FnOnce() -> R) -> (R, u64) {
        let start = self.0.now();
        let r = call();
        (r, u64::from(self.0.since(start)))
    }
}

/// A conv's or a fully connected layer's arguments, in TFLite's terms: the input and output
/// tensors, the window (`k`, `stride`, `pad`; 1, 1, 0 for a fully connected layer), the
/// offsets (the negated input zero point, the output zero point), the activation clamp, the
/// weights (OHWI; `cout x cin` for a fully connected layer) and the per-channel requantisation.
pub struct ConvArgs<'m> {
    pub x: Tensor,
    pub y: Tensor,
    pub k: u8,
    pub stride: u8,
    pub pad: u8,
    pub input_offset: i32,
    pub output_offset: i32,
    pub act_min: i8,
    pub act_max: i8,
    pub weights: &'m [u8],
    pub quant: Quant<'m>,
}

impl<'m> ConvArgs<'m> {
    /// The arguments of a layer from `x` (zero point or pad value `z`) to `y` with weights `w`,
    /// window `(k, stride, pad)` and requantisation `r`; `None` if its arrays do not read back.
    fn new(
        model: &Model<'m>,
        (x, y): (Tensor, Tensor),
        (k, stride, pad): (u8, u8, u8),
        z: i32,
        weights: &'m [u8],
        r: &Requant,
    ) -> Option<Self> {
        Some(ConvArgs {
            x,
            y,
            k,
            stride,
            pad,
            input_offset: -z,
            output_offset: i32::from(y.zero_point),
            act_min: r.act_min,
            act_max: r.act_max,
            weights,
            quant: quant(model, r.multiplier, r.shift)?,
        })
    }
}

/// TFLite ADD's constants as the peers' elementwise adds take them (offsets are the negated
/// input zero points and the output zero point).
#[derive(Clone, Copy)]
pub struct AddArgs {
    pub a_offset: i32,
    pub a_multiplier: i32,
    pub a_shift: i32,
    pub b_offset: i32,
    pub b_multiplier: i32,
    pub b_shift: i32,
    pub left_shift: i32,
    pub out_offset: i32,
    pub out_multiplier: i32,
    pub out_shift: i32,
    pub act_min: i32,
    pub act_max: i32,
}

/// Which pooling kernel.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Average,
    Max,
}

/// A pool's arguments: the kind, the window (filter height and width, square stride and
/// padding), the input and output tensors; no activation clamp beyond int8.
pub struct PoolArgs {
    pub kind: Pool,
    pub filter: (u16, u16),
    pub stride: u16,
    pub pad: u16,
    pub x: Tensor,
    pub y: Tensor,
}

/// One kernel call's buffers in the peer's memory: the scratch (empty where the peer takes
/// none), the output, the inputs.
pub struct Buffers<'p, const N: usize> {
    pub scratch: &'p mut [i8],
    pub y: &'p mut [i8],
    pub x: [&'p [i8]; N],
}

/// An i32 array as raw little-endian bytes, checked 4-byte aligned (as the peers read it):
/// `None` if it is not, or its length is not a multiple of 4.
fn words(bytes: &[u8]) -> Option<(*const i32, usize)> {
    let aligned = (bytes.as_ptr() as usize).is_multiple_of(4) && bytes.len().is_multiple_of(4);
    aligned.then(|| (bytes.as_ptr().cast(), bytes.len() / 4))
}

/// Per-channel multipliers and shifts, borrowed from the model's weight section (two i32 arrays
/// of one length, each 4-byte aligned).
#[derive(Clone, Copy)]
pub struct Quant<'a> {
    multiplier: &'a [u8],
    shift: &'a [u8],
    channels: usize,
}

impl<'a> Quant<'a> {
    /// `None` if an array is not 4-byte aligned or the two lengths differ.
    pub fn new(multiplier: &'a [u8], shift: &'a [u8]) -> Option<Self> {
        let ((_, m), (_, s)) = (words(multiplier)?, words(shift)?);
        (m == s).then_some(Quant {
            multiplier,
            shift,
            channels: m,
        })
    }

    /// The channels (i32s in each array).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The multipliers, `channels` aligned i32s.
    pub fn multiplier(&self) -> *const i32 {
        self.multiplier.as_ptr().cast()
    }

    /// The shifts, `channels` aligned i32s.
    pub fn shift(&self) -> *const i32 {
        self.shift.as_ptr().cast()
    }
}

/// Writes `Fail`'s `error:` line and ends the program, or ends it with the run's result.
pub fn exit<P: Peer>(peer: &P, result: Result<bool, Fail>) -> ! {
    match result {
        Ok(all_exact) => app::exit(all_exact),
        Err(Fail(op, what)) => {
            match op {
                Some(i) => peer.print(format_args!("error: op {}: {}", i, what)),
                None => peer.print(format_args!("error: {}", what)),
            }
            app::exit(false)
        }
    }
}

/// Per-op ticks of shiftkit's engine, summed over the images.
struct Timer<'c, C: Counter, const OPS: usize> {
    counter: &'c C,
    start: u32,
    ticks: [u64; OPS],
}

impl<C: Counter, const OPS: usize> Profiler for Timer<'_, C, OPS> {
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
struct Fingerprints<const OPS: usize>([u32; OPS]);

impl<const OPS: usize> Profiler for Fingerprints<OPS> {
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

/// The whole run: calibrates `counter`, runs every image of `data` through both engines
/// (shiftkit's in `arena`, the peer's in `memory`), prints the report; `Ok(true)` if every
/// image was bit-exact. `OPS` is the build's largest op count (`embedded::OPS`).
pub fn run<const OPS: usize, P: Peer, C: Counter>(
    peer: &P,
    counter: &C,
    data: app::Embedded<'_>,
    arena: Option<&mut [i8]>,
    memory: Option<&mut [i8]>,
) -> Result<bool, Fail> {
    let c = calibrate(counter, 100_000);
    peer.print(format_args!(
        "calibration loop_instructions {} ticks {} instructions_per_tick {}",
        c.loop_instructions, c.ticks, c.instructions_per_tick
    ));
    if c.instructions_per_tick != counter.units_per_tick() || !peer.counts_exactly(&c) {
        return Err(Fail(None, P::NOT_COUNTING));
    }
    let model = Model::from_bytes(data.model)?;
    let ops = model.header().ops as usize;
    let images = data.labels.len();
    if ops > OPS || model.classes() > MAX_CLASSES {
        return Err(Fail(
            None,
            "the model is larger than this build (rebuild with it)",
        ));
    }
    peer.print(format_args!(
        "{}: {} images, {} ops{}",
        P::NAME,
        images,
        ops,
        P::TAIL
    ));
    let arena = arena.ok_or(Fail(None, "the arena was already taken"))?;
    let memory = memory.ok_or(Fail(None, "the peer memory was already taken"))?;
    let layout = Layout::new(&model, memory.len(), P::SCRATCH)?;

    let mut ours = Timer {
        counter,
        start: 0,
        ticks: [0; OPS],
    };
    let mut theirs = [0u64; OPS];
    let mut copies = [0u64; OPS];
    let (mut ours_total, mut theirs_total) = (0u64, 0u64);
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

        let mut run = PeerRun {
            model: &model,
            layout: &layout,
            memory,
            clock: Stopwatch(counter),
            kernels: &mut theirs,
            copies: &mut copies,
        };
        let (peer_ticks, peer_logits) = run.image(peer, pixels)?;
        theirs_total += peer_ticks;
        // Untimed: every op's output of both engines, compared.
        let mut prints = Fingerprints([0; OPS]);
        firmware::run(&model, pixels, arena, &mut prints)
            .map_err(|_| Fail(None, "shiftkit's engine failed on an image"))?;
        let mut first_diff = None;
        for (j, op) in model.ops().enumerate() {
            let y = op?.output();
            let (t, at) = (model.tensor(y)?, layout.tensor[usize::from(y)]);
            if first_diff.is_none() && fnv(&memory[at..at + t.bytes()]) != prints.0[j] {
                first_diff = Some(j);
            }
        }
        let same = ours_logits[..classes] == peer_logits[..classes] && first_diff.is_none();
        exact += usize::from(same);
        peer.print(format_args!(
            "image {} label {} ours {} cmsis {} bit-exact {}",
            i,
            label,
            app::argmax(&ours_logits[..classes]),
            app::argmax(&peer_logits[..classes]),
            match first_diff {
                None if same => "yes",
                _ => "no",
            }
        ));
        if let Some(j) = first_diff {
            peer.print(format_args!(
                "image {}: the engines first differ at op {}",
                i, j
            ));
        }
    }
    let unit = u64::from(counter.units_per_tick());
    let per = |ticks: u64| ticks * unit / images.max(1) as u64;
    for (i, op) in model.ops().enumerate() {
        let kind = op.as_ref().map(|o| o.kind()).unwrap_or("?");
        peer.print(format_args!(
            "layer {} {} ours {} cmsis {} copies {}",
            i,
            kind,
            per(ours.ticks[i]),
            per(theirs[i]),
            per(copies[i])
        ));
    }
    peer.print(format_args!(
        "total ours {} cmsis {} copies {}",
        per(ours_total),
        per(theirs_total),
        per(copies.iter().sum())
    ));
    peer.print(format_args!("result {}/{} images bit-exact", exact, images));
    Ok(exact == images)
}

/// Where the peer keeps each tensor and its scratch, as byte offsets into its memory.
struct Layout {
    tensor: [usize; MAX_TENSORS],
    /// The shifted copy of a shifted conv's input (largest tensor).
    shifted: usize,
    /// The unfolded bias, i32 x the largest channel count.
    bias: usize,
    /// The kernels' scratch buffer, from here to the end of the peer's memory.
    scratch: usize,
}

impl Layout {
    fn new(model: &Model, len: usize, scratch_needed: bool) -> Result<Layout, Fail> {
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
        let scratch = bias + (4 * channels).next_multiple_of(16);
        let fits = if scratch_needed {
            scratch < len
        } else {
            bias + 4 * channels <= len
        };
        if !fits {
            return Err(Fail(
                None,
                "the model's tensors do not fit the peer's memory",
            ));
        }
        Ok(Layout {
            tensor,
            shifted,
            bias,
            scratch: scratch.min(len),
        })
    }

    /// Tensor `id`'s bytes in the peer's memory.
    fn range(&self, id: u16, t: &Tensor) -> Range<usize> {
        let at = self.tensor[usize::from(id)];
        at..at + t.bytes()
    }

    /// The unfolded bias of an op writing `y`: `4 * y.c` bytes.
    fn bias_range(&self, y: &Tensor) -> Range<usize> {
        self.bias..self.bias + 4 * y.c as usize
    }

    /// The scratch (to the end of the peer's memory), the output `out` and the inputs `ins`,
    /// borrowed from the peer's memory at once; `None` if an input overlaps the output or a
    /// range is outside the memory before the scratch.
    fn split<'p, const N: usize>(
        &self,
        memory: &'p mut [i8],
        out: Range<usize>,
        ins: [Range<usize>; N],
    ) -> Option<Buffers<'p, N>> {
        let (buffers, scratch) = memory.split_at_mut(self.scratch);
        let (y, x) = split_arena(buffers, out, ins)?;
        Some(Buffers { scratch, y, x })
    }
}

/// One image through the peer: the model, the peer's memory and what its ops' ticks add to.
struct PeerRun<'r, 'c, C: Counter, const OPS: usize> {
    model: &'r Model<'r>,
    layout: &'r Layout,
    memory: &'r mut [i8],
    clock: Stopwatch<'c, C>,
    /// Each op's ticks (the kernel and the copies).
    kernels: &'r mut [u64; OPS],
    /// Each op's copies: the conventional engine's data movement.
    copies: &'r mut [u64; OPS],
}

impl<C: Counter, const OPS: usize> PeerRun<'_, '_, C, OPS> {
    /// Runs one image through the peer's kernels; adds each op's ticks to `kernels` and
    /// `copies`. Returns the ticks of the whole inference and the logits.
    fn image<P: Peer>(
        &mut self,
        peer: &P,
        pixels: &[u8],
    ) -> Result<(u64, [i8; MAX_CLASSES]), Fail> {
        let (model, layout) = (self.model, self.layout);
        let header = *model.header();
        let mut total = 0u64;

        // The input as int8 (x - 128), which is how a TFLite Micro int8 model takes an image.
        let input_at = layout.tensor[header.input as usize];
        let ((), t) = self.clock.time(|| {
            for (d, &p) in self.memory[input_at..input_at + pixels.len()]
                .iter_mut()
                .zip(pixels)
            {
                *d = (p ^ 0x80) as i8;
            }
        });
        self.copies[0] += t;
        self.kernels[0] += t;
        total += t;

        for (i, op) in model.ops().enumerate() {
            let op = op?;
            let (kernel, copy) = self.op(peer, i, op, header.input)?;
            self.kernels[i] += kernel + copy;
            self.copies[i] += copy;
            total += kernel + copy;
        }
        let out = model.output();
        let at = layout.tensor[header.output as usize];
        let mut logits = [0i8; MAX_CLASSES];
        let n = out.bytes().min(MAX_CLASSES);
        logits[..n].copy_from_slice(&self.memory[at..at + n]);
        Ok((total, logits))
    }

    /// One op through the peer: the kernel's ticks and the copies'.
    fn op<P: Peer>(&mut self, peer: &P, i: usize, op: Op, input: u16) -> Result<(u64, u64), Fail> {
        let (model, layout) = (self.model, self.layout);
        let fail = |what| Fail(Some(i), what);
        let overlap = fail("the peer's buffers overlap");
        let tensor = |id| model.tensor(id);
        match op {
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
                let (tx, ty) = (tensor(x)?, tensor(y)?);
                let w = model.span_bytes(weights, 1).ok_or(fail("weights"))?;
                let pads = model.span_bytes(pad_value, 1).ok_or(fail("pad values"))?;
                // The peers have one input offset, and pad with it: the stem's pad value (a u8
                // pixel, less 128 as the input was converted) or the int8 zero point.
                let p0 = *pads.first().ok_or(fail("pad values"))?;
                let z = if x == input {
                    i32::from(p0) - 128
                } else {
                    i32::from(tx.zero_point)
                };
                if pads.iter().any(|&p| p != p0) || (x != input && p0 as i8 != tx.zero_point) {
                    return Err(fail(
                        "per-channel padding values: CMSIS-NN has one input offset",
                    ));
                }
                // Out-of-image taps read the pad value (a u8 pixel for the stem).
                let pad_read = if x == input { i32::from(p0) } else { z };
                self.unfold_bias(bias, w, ty.c as usize, pad_read)
                    .ok_or(fail("bias"))?;
                let mut copy = 0;
                if shift != Shift::None {
                    let memory = &mut *self.memory;
                    let ((), t) = self.clock.time(|| {
                        shift_copy(
                            memory,
                            layout.tensor[x as usize],
                            layout.shifted,
                            &tx,
                            shift,
                        )
                    });
                    copy = t;
                }
                let src = match shift {
                    Shift::None => layout.range(x, &tx),
                    _ => layout.shifted..layout.shifted + tx.bytes(),
                };
                let args = ConvArgs::new(model, (tx, ty), (k, stride, pad), z, w, &requant)
                    .ok_or(fail("requant"))?;
                let b = layout
                    .split(
                        self.memory,
                        layout.range(y, &ty),
                        [src, layout.bias_range(&ty)],
                    )
                    .ok_or(overlap)?;
                Ok((
                    peer.conv(Call {
                        args: &args,
                        buffers: b,
                        clock: &self.clock,
                    })
                    .map_err(fail)?,
                    copy,
                ))
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
                let (ta, tb, ty) = (tensor(a)?, tensor(b)?, tensor(y)?);
                let args = AddArgs {
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
                let b = layout
                    .split(
                        self.memory,
                        layout.range(y, &ty),
                        [layout.range(a, &ta), layout.range(b, &tb)],
                    )
                    .ok_or(overlap)?;
                Ok((
                    peer.add(Call {
                        args: &args,
                        buffers: b,
                        clock: &self.clock,
                    })
                    .map_err(fail)?,
                    0,
                ))
            }
            Op::AvgPool2 { x, y } | Op::GlobalAvgPool { x, y } | Op::MaxPool3s2 { x, y } => {
                let (tx, ty) = (tensor(x)?, tensor(y)?);
                let (filter, stride, pad) = match op {
                    Op::AvgPool2 { .. } => ((2, 2), 2, 0),
                    Op::MaxPool3s2 { .. } => ((3, 3), 2, 1),
                    _ => ((tx.h, tx.w), 1, 0),
                };
                let kind = match op {
                    Op::MaxPool3s2 { .. } => Pool::Max,
                    _ => Pool::Average,
                };
                let args = PoolArgs {
                    kind,
                    filter,
                    stride,
                    pad,
                    x: tx,
                    y: ty,
                };
                let b = layout
                    .split(self.memory, layout.range(y, &ty), [layout.range(x, &tx)])
                    .ok_or(overlap)?;
                Ok((
                    peer.pool(Call {
                        args: &args,
                        buffers: b,
                        clock: &self.clock,
                    })
                    .map_err(fail)?,
                    0,
                ))
            }
            Op::FullyConnected {
                x,
                y,
                weights,
                bias,
                requant,
            } => {
                let (tx, ty) = (tensor(x)?, tensor(y)?);
                let w = model.span_bytes(weights, 1).ok_or(fail("weights"))?;
                let z = i32::from(tx.zero_point);
                self.unfold_bias(bias, w, ty.c as usize, z)
                    .ok_or(fail("bias"))?;
                let args = ConvArgs::new(model, (tx, ty), (1, 1, 0), z, w, &requant)
                    .ok_or(fail("requant"))?;
                let b = layout
                    .split(
                        self.memory,
                        layout.range(y, &ty),
                        [layout.range(x, &tx), layout.bias_range(&ty)],
                    )
                    .ok_or(overlap)?;
                Ok((
                    peer.fully_connected(Call {
                        args: &args,
                        buffers: b,
                        clock: &self.clock,
                    })
                    .map_err(fail)?,
                    0,
                ))
            }
        }
    }

    /// Writes the TFLite bias into the peer's bias slot. Ours reads out-of-image taps as `pad`
    /// and has the input zero point folded in; the peers add their input offset to in-image
    /// inputs only and skip padded taps, so their bias is ours plus `pad * sum(w)` per channel.
    fn unfold_bias(&mut self, bias: Span, w: &[u8], cout: usize, pad: i32) -> Option<()> {
        let b = self.model.i32_span(bias)?;
        let per = w.len() / cout;
        for c in 0..cout {
            let sum: i32 = w[c * per..(c + 1) * per]
                .iter()
                .map(|&v| i32::from(v as i8))
                .sum();
            let v = b.get(c)? + pad * sum;
            let at = self.layout.bias + 4 * c;
            for (d, s) in self.memory[at..at + 4].iter_mut().zip(v.to_le_bytes()) {
                *d = s as i8;
            }
        }
        Some(())
    }
}

/// The per-channel multipliers and shifts, straight from the model's weight section (spans
/// are 4-byte aligned in a 16-byte aligned model).
fn quant<'m>(model: &Model<'m>, multiplier: Span, shift: Span) -> Option<Quant<'m>> {
    Quant::new(
        model.span_bytes(multiplier, 4)?,
        model.span_bytes(shift, 4)?,
    )
}

/// The shift as a tensor, the way a conventional engine must materialise it: output pixel
/// (h, w), channel group `c0..c1` = input pixel (h - dh, w - dw), the zero point outside.
// Not inlined: the copies column then measures this function's own code, whatever the
// harness around it.
#[inline(never)]
fn shift_copy(memory: &mut [i8], from: usize, to: usize, t: &Tensor, shift: Shift) {
    let (h, w, c) = (t.h as isize, t.w as isize, t.c as usize);
    let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
    let n = shift_groups(shift, c, &mut groups);
    let (src, dst) = memory.split_at_mut(to);
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
