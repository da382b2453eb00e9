//! The board-agnostic shiftkit app. A board crate supplies the hardware and calls [`run`]:
//! - an embedded-hal [`OutputPin`] held high during each inference (for a logic analyser);
//! - a [`Counter`] (cycles, microseconds or QEMU instructions) that times each layer through
//!   the engine's [`firmware::Profiler`] hooks;
//! - a [`Sink`] for the report: [`sink::Semihosting`] (QEMU) or [`sink::Defmt`] (real boards);
//! - the model, test images and arena that `boards/embed` generated (`embedded.rs`).
//!
//! [`run`] prints the standard report, one line each; `firmware::report` writes their text
//! (its documentation has the shapes) and `cargo xtask deploy` parses it:
//! ```text
//! shiftkit BOARD: model M B, arena A B (align X), input I B, C classes, O ops, N images, counter UNIT (S per tick)
//! load ticks T UNIT U plan_check_ticks P UNIT Q    (`Model::from_bytes` once; Q its plan check)
//! image I label L pred P logits [..] class NAME   (` class NAME` when the model has names)
//! accuracy C/N
//! layer I KIND ticks T UNIT U                     (summed over the N images)
//! total ticks T UNIT_per_inference U              (whole `firmware::run`, mean per image)
//! memory model_bytes M arena_bytes A stack_bytes S
//! ```
//! `UNIT` is the counter's unit (`qemu_instructions`, `cycles`, `us`); `U` = ticks x units per
//! tick. `stack_bytes` is the high-water mark of the whole stack, measured by painting the free
//! stack before the first image and scanning it after the last ([`stack`]).
#![no_std]
#![deny(unsafe_code)]

pub mod counter;
/// The program of the QEMU boards (MPS2 Cortex-M, RISC-V `virt`).
#[cfg(feature = "semihosting")]
pub mod qemu;
pub mod sink;
pub mod stack;

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

pub use counter::Counter;
pub use embedded_hal::digital::OutputPin;
pub use sink::{Clock, Line, Sink};

use firmware::format::Op;
use firmware::{Model, Profiler};

/// 16-byte alignment for the embedded model (weights are read as words).
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);

/// The model and test images a board embedded (`boards/embed` writes `fn data()`).
#[derive(Clone, Copy)]
pub struct Embedded<'a> {
    /// The `.skq` bytes.
    pub model: &'a [u8],
    /// `labels.len()` images of `input_len` u8 pixels each, back to back.
    pub images: &'a [u8],
    pub labels: &'a [u8],
    pub input_len: usize,
}

/// The engine's arena as a static, handed out once (`boards/embed` declares
/// `static ARENA: Arena<ARENA_BYTES>`). 16-byte aligned; lives in `.bss`.
#[repr(C, align(16))]
pub struct Arena<const N: usize> {
    buf: UnsafeCell<[i8; N]>,
    taken: AtomicBool,
}

// SAFETY: the buffer is only reachable through `take`, which hands it out at most once.
#[allow(unsafe_code)]
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena {
            buf: UnsafeCell::new([0; N]),
            taken: AtomicBool::new(false),
        }
    }

    /// The buffer, the first time; `None` after that.
    // A `&mut` from `&self` is what this type is for: the buffer sits in an `UnsafeCell` and
    // `taken` hands it out at most once (see the SAFETY line below).
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut [i8]> {
        // Load + store inside a critical section: the M0+ has no atomic swap.
        let first = critical_section::with(|_| {
            let taken = self.taken.load(Ordering::Relaxed);
            self.taken.store(true, Ordering::Relaxed);
            !taken
        });
        if !first {
            return None;
        }
        // SAFETY: `taken` went from false to true in this call, inside a critical section,
        // so this is the only reference to the buffer ever handed out.
        #[allow(unsafe_code)]
        let buf = unsafe { &mut *self.buf.get() };
        Some(buf)
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-op ticks of the counter, summed over every image run through it.
struct LayerTimer<'c, C: Counter, const OPS: usize> {
    counter: &'c C,
    start: u32,
    ticks: heapless::Vec<u64, OPS>,
}

impl<C: Counter, const OPS: usize> Profiler for LayerTimer<'_, C, OPS> {
    fn begin(&mut self, _op_index: usize) {
        self.start = self.counter.now();
    }
    fn end(&mut self, op_index: usize, _output: &[i8]) {
        let t = self.counter.since(self.start);
        if let Some(sum) = self.ticks.get_mut(op_index) {
            *sum += u64::from(t);
        }
    }
}

/// A short name of the op's kind, as printed in `layer` lines ([`Op::kind`]).
pub fn op_kind(op: &Op) -> &'static str {
    op.kind()
}

/// The report's [`Clock`] of a board counter: its unit and units per tick.
fn clock<C: Counter>(counter: &C) -> Clock<'static> {
    Clock::Counter {
        unit: counter.unit(),
        units_per_tick: counter.units_per_tick(),
    }
}

/// Index of the largest logit (the first one on ties).
pub fn argmax(logits: &[i8]) -> usize {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best
}

/// What [`run`] measured.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub correct: usize,
    pub images: usize,
    /// Counter units per inference (mean over the images).
    pub per_inference: u64,
    pub stack_bytes: usize,
}

/// Runs every embedded image through the model and writes the report to `sink`. `OPS` is the
/// model's op count (`embedded::OPS`), the length of the per-layer buffer. `None` if anything
/// failed (an `error:` line says what).
pub fn run<const OPS: usize, C: Counter, P: OutputPin, S: Sink>(
    board: &str,
    data: &Embedded<'_>,
    arena: Option<&mut [i8]>,
    counter: &C,
    pin: &mut P,
    sink: &mut S,
) -> Option<Summary> {
    let Some(arena) = arena else {
        sink.emit(Line::Failed("the arena was already taken"));
        return None;
    };
    let load_start = counter.now();
    let model = match Model::from_bytes(data.model) {
        Ok(m) => m,
        Err(e) => {
            sink.emit(Line::ModelError(e));
            return None;
        }
    };
    let load_ticks = counter.since(load_start);
    let check_start = counter.now();
    if let Err(e) = model.check_plan() {
        sink.emit(Line::ModelError(e));
        return None;
    }
    let plan_check_ticks = counter.since(check_start);
    let ops = model.header().ops as usize;
    if ops > OPS {
        sink.emit(Line::Failed(
            "the model has more ops than the board was built for (rebuild with this model)",
        ));
        return None;
    }
    let images = data.labels.len();
    sink.emit(Line::Start {
        board,
        model_bytes: data.model.len(),
        arena_bytes: model.arena_bytes(),
        arena_align: model.arena_align(),
        input_len: model.input_len(),
        classes: model.classes(),
        ops,
        images,
        clock: clock(counter),
    });
    sink.emit(Line::Load {
        ticks: u64::from(load_ticks),
        plan_check_ticks: u64::from(plan_check_ticks),
        clock: clock(counter),
    });

    let mut timer = LayerTimer::<C, OPS> {
        counter,
        start: 0,
        ticks: heapless::Vec::new(),
    };
    // Cannot fail: ops <= OPS was checked above.
    let _ = timer.ticks.resize(ops, 0);
    let stack = stack::Stack::paint();
    let mut total_ticks: u64 = 0;
    let mut correct = 0;
    for (i, (pixels, &label)) in data
        .images
        .chunks_exact(data.input_len)
        .zip(data.labels)
        .enumerate()
    {
        if pin.set_high().is_err() {
            sink.emit(Line::Failed("could not drive the inference pin high"));
            return None;
        }
        let start = counter.now();
        let result = firmware::run(&model, pixels, arena, &mut timer);
        total_ticks += u64::from(counter.since(start));
        if pin.set_low().is_err() {
            sink.emit(Line::Failed("could not drive the inference pin low"));
            return None;
        }
        match result {
            Ok(logits) => {
                let pred = argmax(logits);
                correct += usize::from(pred == usize::from(label));
                sink.emit(Line::Image {
                    index: i,
                    label,
                    pred,
                    logits,
                    name: model.class_name(pred),
                });
            }
            Err(error) => {
                sink.emit(Line::RunError { image: i, error });
                return None;
            }
        }
    }
    let stack_bytes = stack.high_water();

    sink.emit(Line::Accuracy { correct, images });
    for (i, op) in model.ops().enumerate() {
        sink.emit(Line::Layer {
            index: i,
            kind: op.as_ref().map(op_kind).unwrap_or("?"),
            ticks: timer.ticks.get(i).copied().unwrap_or(0),
            clock: clock(counter),
        });
    }
    let scale = u64::from(counter.units_per_tick());
    let per_inference = total_ticks * scale / images.max(1) as u64;
    sink.emit(Line::Total {
        ticks: total_ticks,
        per_inference,
        clock: clock(counter),
    });
    sink.emit(Line::Memory {
        model_bytes: data.model.len(),
        arena_bytes: model.arena_bytes(),
        stack_bytes: Some(stack_bytes),
    });
    Some(Summary {
        correct,
        images,
        per_inference,
        stack_bytes,
    })
}

/// Ends the program through semihosting (SYS_EXIT): QEMU exits with 0 or 1, `probe-rs run`
/// stops and returns the same status. Without a debugger attached the semihosting call traps.
#[cfg(not(target_arch = "riscv32"))]
pub fn exit(success: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::bkpt();
    }
}

/// Ends the program through RISC-V semihosting (the RISC-V semihosting specification: the
/// `slli x0, x0, 0x1f; ebreak; srai x0, x0, 7` sequence, uncompressed and in one aligned
/// group): `SYS_EXIT_EXTENDED` (0x20) with `ADP_Stopped_ApplicationExit` and the exit code, which
/// `probe-rs run` and QEMU turn into their exit status. Without a debugger the `ebreak` traps.
#[cfg(target_arch = "riscv32")]
pub fn exit(success: bool) -> ! {
    // `ADP_Stopped_ApplicationExit`, then the exit code (the block `a1` points to).
    let block: [usize; 2] = [0x20026, usize::from(!success)];
    loop {
        // SAFETY: the semihosting trap sequence: a0 = operation, a1 = the address of `block`,
        // which lives across the call; the debugger (or QEMU) reads it and ends the program.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                ".balign 16",
                ".option push",
                ".option norvc",
                "slli x0, x0, 0x1f",
                "ebreak",
                "srai x0, x0, 7",
                ".option pop",
                inout("a0") 0x20usize => _,
                in("a1") block.as_ptr(),
                options(nostack),
            )
        };
    }
}
