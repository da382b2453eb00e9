//! Where the report goes: one [`Line`] at a time into a [`Sink`]. Two sinks, chosen by the
//! board: [`Semihosting`] (QEMU: text on the host's stdout) and [`Defmt`] (real boards: defmt
//! frames over RTT, decoded by `probe-rs run`). Both print the same text for each line.

use firmware::{Error, ModelError};

/// One report line (shapes in the crate documentation).
#[derive(Clone, Copy, Debug)]
pub enum Line<'a> {
    Start {
        board: &'a str,
        model_bytes: usize,
        arena_bytes: usize,
        arena_align: usize,
        input_len: usize,
        classes: usize,
        ops: usize,
        images: usize,
        unit: &'a str,
        units_per_tick: u32,
    },
    /// A QEMU board's check of its instructions per tick ([`crate::counter::calibrate`]).
    Calibration {
        loop_instructions: u32,
        ticks: u32,
        instructions_per_tick: u32,
    },
    Image {
        index: usize,
        label: u8,
        pred: usize,
        logits: &'a [i8],
    },
    Accuracy {
        correct: usize,
        images: usize,
    },
    /// One op's ticks and units, summed over every image.
    Layer {
        index: usize,
        kind: &'a str,
        ticks: u64,
        unit: &'a str,
        units: u64,
    },
    /// Ticks summed over every image; units per inference (mean).
    Total {
        ticks: u64,
        unit: &'a str,
        per_inference: u64,
    },
    Memory {
        model_bytes: usize,
        arena_bytes: usize,
        stack_bytes: usize,
    },
    ModelError(ModelError),
    RunError {
        image: usize,
        error: Error,
    },
    Failed(&'a str),
}

/// Writes report lines somewhere a host can read them.
pub trait Sink {
    fn emit(&mut self, line: Line<'_>);
}

/// Plain text over semihosting (QEMU `-semihosting-config enable=on,target=native`).
#[cfg(feature = "semihosting")]
pub struct Semihosting;

#[cfg(feature = "semihosting")]
impl Sink for Semihosting {
    fn emit(&mut self, line: Line<'_>) {
        use cortex_m_semihosting::hprintln;
        match line {
            Line::Start {
                board,
                model_bytes,
                arena_bytes,
                arena_align,
                input_len,
                classes,
                ops,
                images,
                unit,
                units_per_tick,
            } => hprintln!(
                "shiftkit {}: model {} B, arena {} B (align {}), input {} B, {} classes, {} ops, {} images, counter {} ({} per tick)",
                board, model_bytes, arena_bytes, arena_align, input_len, classes, ops, images, unit, units_per_tick
            ),
            Line::Calibration {
                loop_instructions,
                ticks,
                instructions_per_tick,
            } => hprintln!(
                "calibration loop_instructions {} ticks {} instructions_per_tick {}",
                loop_instructions,
                ticks,
                instructions_per_tick
            ),
            Line::Image {
                index,
                label,
                pred,
                logits,
            } => hprintln!(
                "image {} label {} pred {} logits {:?}",
                index,
                label,
                pred,
                logits
            ),
            Line::Accuracy { correct, images } => hprintln!("accuracy {}/{}", correct, images),
            Line::Layer {
                index,
                kind,
                ticks,
                unit,
                units,
            } => hprintln!("layer {} {} ticks {} {} {}", index, kind, ticks, unit, units),
            Line::Total {
                ticks,
                unit,
                per_inference,
            } => hprintln!(
                "total ticks {} {}_per_inference {}",
                ticks,
                unit,
                per_inference
            ),
            Line::Memory {
                model_bytes,
                arena_bytes,
                stack_bytes,
            } => hprintln!(
                "memory model_bytes {} arena_bytes {} stack_bytes {}",
                model_bytes,
                arena_bytes,
                stack_bytes
            ),
            Line::ModelError(e) => hprintln!("error: embedded model: {}", e),
            Line::RunError { image, error } => hprintln!("error: image {}: {}", image, error),
            Line::Failed(what) => hprintln!("error: {}", what),
        }
    }
}

/// defmt frames (the board links a global logger, e.g. `defmt-rtt`); `probe-rs run
/// --log-format "{s}"` prints them as the same text lines.
#[cfg(feature = "defmt")]
pub struct Defmt;

#[cfg(feature = "defmt")]
impl Sink for Defmt {
    fn emit(&mut self, line: Line<'_>) {
        use defmt::println;
        match line {
            Line::Start {
                board,
                model_bytes,
                arena_bytes,
                arena_align,
                input_len,
                classes,
                ops,
                images,
                unit,
                units_per_tick,
            } => println!(
                "shiftkit {=str}: model {=usize} B, arena {=usize} B (align {=usize}), input {=usize} B, {=usize} classes, {=usize} ops, {=usize} images, counter {=str} ({=u32} per tick)",
                board, model_bytes, arena_bytes, arena_align, input_len, classes, ops, images, unit, units_per_tick
            ),
            Line::Calibration {
                loop_instructions,
                ticks,
                instructions_per_tick,
            } => println!(
                "calibration loop_instructions {=u32} ticks {=u32} instructions_per_tick {=u32}",
                loop_instructions,
                ticks,
                instructions_per_tick
            ),
            Line::Image {
                index,
                label,
                pred,
                logits,
            } => println!(
                "image {=usize} label {=u8} pred {=usize} logits {}",
                index,
                label,
                pred,
                logits
            ),
            Line::Accuracy { correct, images } => {
                println!("accuracy {=usize}/{=usize}", correct, images)
            }
            Line::Layer {
                index,
                kind,
                ticks,
                unit,
                units,
            } => println!(
                "layer {=usize} {=str} ticks {=u64} {=str} {=u64}",
                index,
                kind,
                ticks,
                unit,
                units
            ),
            Line::Total {
                ticks,
                unit,
                per_inference,
            } => println!(
                "total ticks {=u64} {=str}_per_inference {=u64}",
                ticks,
                unit,
                per_inference
            ),
            Line::Memory {
                model_bytes,
                arena_bytes,
                stack_bytes,
            } => println!(
                "memory model_bytes {=usize} arena_bytes {=usize} stack_bytes {=usize}",
                model_bytes,
                arena_bytes,
                stack_bytes
            ),
            Line::ModelError(e) => println!("error: embedded model: {}", e),
            Line::RunError { image, error } => println!("error: image {=usize}: {}", image, error),
            Line::Failed(what) => println!("error: {=str}", what),
        }
    }
}
