//! shiftkit on QEMU `mps2-an386` (Cortex-M4): runs the embedded int8 model on the embedded test
//! digits and prints, over semihosting, one line per image, the accuracy, the per-layer cost
//! and the memory use; exits through semihosting (SYS_EXIT_EXTENDED) with 0 on success.
//!
//! Cost is in *QEMU instructions*: with `-icount shift=0` QEMU advances virtual time 1 ns per
//! executed instruction, and SysTick (core clock, 25 MHz on this machine) counts down once per
//! 40 ns, so one tick = 40 executed instructions, exactly and repeatably. These are not cycles.
//! Resolution is 40 instructions per measured window.
//!
//! Output (parsed by `cargo xtask deploy`, keep the line shapes stable):
//! ```text
//! image I label L pred P logits [..]
//! accuracy C/N
//! layer I KIND ticks T qemu_instructions Q        (summed over the N images)
//! total ticks T qemu_instructions_per_inference Q
//! memory model_bytes M arena_bytes A
//! ```
#![no_std]
#![no_main]

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use firmware::format::Op;
use firmware::{Model, Profiler};
use panic_semihosting as _;

mod consts {
    include!(concat!(env!("OUT_DIR"), "/consts.rs"));
}
use consts::{ARENA_BYTES, IMAGES, INPUT_LEN, MODEL_BYTES, OPS};

/// Executed instructions per SysTick tick under `-icount shift=0` on mps2-an386 (25 MHz).
const INSTRUCTIONS_PER_TICK: u64 = 40;
/// SysTick is a 24-bit down counter.
const SYST_MASK: u32 = 0x00FF_FFFF;

/// 16-byte alignment for the model (weights read as words) and the arena.
#[repr(C, align(16))]
struct Aligned<T: ?Sized>(T);

static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.skq")));
static IMAGE_BYTES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images.bin"));
static LABELS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/labels.bin"));

/// Ticks elapsed between two SysTick readings (down counter, wraps at 2^24).
fn ticks_since(start: u32) -> u32 {
    start.wrapping_sub(SYST::get_current()) & SYST_MASK
}

/// Per-op SysTick ticks, summed over every image run through it.
struct SysTickProfiler {
    start: u32,
    ticks: [u64; OPS],
}

impl Profiler for SysTickProfiler {
    fn begin(&mut self, _op_index: usize) {
        self.start = SYST::get_current();
    }
    fn end(&mut self, op_index: usize, _output: &[i8]) {
        let t = ticks_since(self.start);
        if let Some(sum) = self.ticks.get_mut(op_index) {
            *sum += u64::from(t);
        }
    }
}

fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::Conv {
            k: 1,
            shift: firmware::format::Shift::None,
            ..
        } => "conv1x1",
        Op::Conv { k: 1, .. } => "shift-conv1x1",
        Op::Conv { k: 3, .. } => "conv3x3",
        Op::Conv { .. } => "conv",
        Op::Add { .. } => "add",
        Op::AvgPool2 { .. } => "avgpool2",
        Op::MaxPool3s2 { .. } => "maxpool3s2",
        Op::GlobalAvgPool { .. } => "global-avgpool",
        Op::FullyConnected { .. } => "fc",
    }
}

fn argmax(logits: &[i8]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

fn fail(what: &str) -> ! {
    hprintln!("error: {}", what);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}

#[entry]
fn main() -> ! {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        fail("core peripherals already taken")
    };
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(SYST_MASK);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();

    let model = match Model::from_bytes(&MODEL.0) {
        Ok(m) => m,
        Err(e) => {
            hprintln!("error: embedded model: {}", e);
            fail("invalid model")
        }
    };
    let Some(arena) =
        cortex_m::singleton!(: Aligned<[i8; ARENA_BYTES]> = Aligned([0; ARENA_BYTES]))
    else {
        fail("arena already taken")
    };
    let arena = &mut arena.0;
    hprintln!(
        "shiftkit qemu-an386: model {} B, arena {} B (align {}), input {} B, {} classes, {} ops, {} images",
        MODEL_BYTES,
        model.arena_bytes(),
        model.arena_align(),
        INPUT_LEN,
        model.classes(),
        OPS,
        IMAGES
    );

    let mut prof = SysTickProfiler {
        start: 0,
        ticks: [0; OPS],
    };
    let mut total_ticks: u64 = 0;
    let mut correct = 0usize;
    for (i, (pixels, &label)) in IMAGE_BYTES.chunks_exact(INPUT_LEN).zip(LABELS).enumerate() {
        let start = SYST::get_current();
        let result = firmware::run(&model, pixels, arena, &mut prof);
        let t = ticks_since(start);
        match result {
            Ok(logits) => {
                total_ticks += u64::from(t);
                let pred = argmax(logits);
                correct += usize::from(pred == usize::from(label));
                hprintln!(
                    "image {} label {} pred {} logits {:?}",
                    i,
                    label,
                    pred,
                    logits
                );
            }
            Err(e) => {
                hprintln!("error: image {}: {}", i, e);
                fail("inference failed")
            }
        }
    }
    hprintln!("accuracy {}/{}", correct, IMAGES);
    for (i, op) in model.ops().enumerate() {
        let kind = op.as_ref().map(op_kind).unwrap_or("?");
        let t = prof.ticks.get(i).copied().unwrap_or(0);
        hprintln!(
            "layer {} {} ticks {} qemu_instructions {}",
            i,
            kind,
            t,
            t * INSTRUCTIONS_PER_TICK
        );
    }
    let n = IMAGES.max(1) as u64;
    hprintln!(
        "total ticks {} qemu_instructions_per_inference {}",
        total_ticks,
        total_ticks * INSTRUCTIONS_PER_TICK / n
    );
    hprintln!(
        "memory model_bytes {} arena_bytes {}",
        MODEL_BYTES,
        ARENA_BYTES
    );
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::bkpt();
    }
}
