//! The report a board prints, one [`Line`] at a time, and its one text writer
//! ([`core::fmt::Display`]): the microcontroller boards' sinks (`boards/app`, semihosting and
//! defmt) and the jetson binary print these lines, and `cargo xtask deploy` parses them back.
//!
//! ```text
//! shiftkit BOARD: model M B, arena A B (align X), input I B, C classes, O ops, N images, counter UNIT (S per tick)
//! calibration loop_instructions L ticks T instructions_per_tick S    (QEMU boards)
//! load ticks T UNIT U plan_check_ticks P UNIT Q   (`Model::from_bytes`; Q of it the plan check)
//! image I label L pred P logits [a, b, ..] class NAME   (` class NAME`: models with names)
//! accuracy C/N
//! layer I KIND ticks T UNIT U                     (summed over the N images; U = T x S)
//! total ticks T UNIT_per_inference U              (whole `run`, mean per image)
//! memory model_bytes M arena_bytes A stack_bytes S
//! error: ..
//! ```
//! With [`Clock::Nanoseconds`] (the jetson binary) the costs are wall-clock nanoseconds: the
//! start line ends `N images; costs in std::time nanoseconds`, `layer I KIND ns T`,
//! `total ns T ns_per_inference Q`, `load ns T plan_check_ns P`, and `memory` has no `stack_bytes`.
use core::fmt;

use crate::{Error, ModelError};

/// What a report's costs count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock<'a> {
    /// A board counter: ticks, each `units_per_tick` units of `unit` (`qemu_instructions`,
    /// `cycles`, `us`).
    Counter {
        /// What a unit is (`qemu_instructions`, `cycles`, `us`).
        unit: &'a str,
        /// Units per counter tick.
        units_per_tick: u32,
    },
    /// Wall-clock nanoseconds (`std::time::Instant`, the jetson binary): one unit per tick.
    Nanoseconds,
}

/// One report line (the shapes are in the module documentation).
#[derive(Clone, Copy, Debug)]
pub enum Line<'a> {
    /// The first line: the board, the model's sizes, the number of images, the clock.
    Start {
        /// The board's name.
        board: &'a str,
        /// The model file's bytes.
        model_bytes: usize,
        /// [`crate::Model::arena_bytes`].
        arena_bytes: usize,
        /// [`crate::Model::arena_align`].
        arena_align: usize,
        /// [`crate::Model::input_len`].
        input_len: usize,
        /// [`crate::Model::classes`].
        classes: usize,
        /// Number of ops.
        ops: usize,
        /// Number of images the board runs.
        images: usize,
        /// What the costs count.
        clock: Clock<'a>,
    },
    /// A QEMU board's check of its instructions per tick.
    Calibration {
        /// Instructions of the calibration loop.
        loop_instructions: u32,
        /// Ticks it took.
        ticks: u32,
        /// The instructions per tick that follow.
        instructions_per_tick: u32,
    },
    /// The ticks of `Model::from_bytes` (once), and of its memory-plan check alone (run once
    /// more through `Model::check_plan`).
    Load {
        /// Ticks of `Model::from_bytes`.
        ticks: u64,
        /// Ticks of `Model::check_plan`.
        plan_check_ticks: u64,
        /// What a tick counts.
        clock: Clock<'a>,
    },
    /// One image's result.
    Image {
        /// The image's index.
        index: usize,
        /// Its true label.
        label: u8,
        /// The predicted class (argmax of `logits`, the first on ties).
        pred: usize,
        /// The int8 logits.
        logits: &'a [i8],
        /// The predicted class's name, when the model has names (format 5).
        name: Option<&'a str>,
    },
    /// Images predicted right, of all.
    Accuracy {
        /// Images whose prediction is their label.
        correct: usize,
        /// Images run.
        images: usize,
    },
    /// One op's ticks, summed over every image.
    Layer {
        /// The op's index.
        index: usize,
        /// Its kind ([`crate::format::Op::kind`]).
        kind: &'a str,
        /// Ticks summed over every image.
        ticks: u64,
        /// What a tick counts.
        clock: Clock<'a>,
    },
    /// Ticks summed over every image; units per inference (mean).
    Total {
        /// Ticks summed over every image.
        ticks: u64,
        /// Units per inference, the mean over the images.
        per_inference: u64,
        /// What a tick counts.
        clock: Clock<'a>,
    },
    /// `stack_bytes`: the high-water mark where the board measures it.
    Memory {
        /// The model file's bytes.
        model_bytes: usize,
        /// The arena's bytes.
        arena_bytes: usize,
        /// The stack's high-water mark, where measured.
        stack_bytes: Option<usize>,
    },
    /// The embedded model did not load.
    ModelError(ModelError),
    /// An image did not run.
    RunError {
        /// The image's index.
        image: usize,
        /// Why.
        error: Error,
    },
    /// Any other failure, as a message.
    Failed(&'a str),
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Line::Start {
                board,
                model_bytes,
                arena_bytes,
                arena_align,
                input_len,
                classes,
                ops,
                images,
                clock,
            } => {
                write!(
                    f,
                    "shiftkit {board}: model {model_bytes} B, arena {arena_bytes} B (align {arena_align}), input {input_len} B, {classes} classes, {ops} ops, {images} images"
                )?;
                match clock {
                    Clock::Counter {
                        unit,
                        units_per_tick,
                    } => write!(f, ", counter {unit} ({units_per_tick} per tick)"),
                    Clock::Nanoseconds => f.write_str("; costs in std::time nanoseconds"),
                }
            }
            Line::Calibration {
                loop_instructions,
                ticks,
                instructions_per_tick,
            } => write!(
                f,
                "calibration loop_instructions {loop_instructions} ticks {ticks} instructions_per_tick {instructions_per_tick}"
            ),
            Line::Load {
                ticks,
                plan_check_ticks,
                clock,
            } => match clock {
                Clock::Counter {
                    unit,
                    units_per_tick,
                } => {
                    let s = u64::from(units_per_tick);
                    write!(
                        f,
                        "load ticks {ticks} {unit} {} plan_check_ticks {plan_check_ticks} {unit} {}",
                        ticks * s,
                        plan_check_ticks * s
                    )
                }
                Clock::Nanoseconds => write!(f, "load ns {ticks} plan_check_ns {plan_check_ticks}"),
            },
            Line::Image {
                index,
                label,
                pred,
                logits,
                name,
            } => {
                write!(f, "image {index} label {label} pred {pred} logits [")?;
                for (i, v) in logits.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")?;
                match name {
                    Some(n) => write!(f, " class {n}"),
                    None => Ok(()),
                }
            }
            Line::Accuracy { correct, images } => write!(f, "accuracy {correct}/{images}"),
            Line::Layer {
                index,
                kind,
                ticks,
                clock,
            } => match clock {
                Clock::Counter {
                    unit,
                    units_per_tick,
                } => write!(
                    f,
                    "layer {index} {kind} ticks {ticks} {unit} {}",
                    ticks * u64::from(units_per_tick)
                ),
                Clock::Nanoseconds => write!(f, "layer {index} {kind} ns {ticks}"),
            },
            Line::Total {
                ticks,
                per_inference,
                clock,
            } => match clock {
                Clock::Counter { unit, .. } => {
                    write!(f, "total ticks {ticks} {unit}_per_inference {per_inference}")
                }
                Clock::Nanoseconds => write!(f, "total ns {ticks} ns_per_inference {per_inference}"),
            },
            Line::Memory {
                model_bytes,
                arena_bytes,
                stack_bytes,
            } => {
                write!(f, "memory model_bytes {model_bytes} arena_bytes {arena_bytes}")?;
                match stack_bytes {
                    Some(s) => write!(f, " stack_bytes {s}"),
                    None => Ok(()),
                }
            }
            Line::ModelError(e) => write!(f, "error: embedded model: {e}"),
            Line::RunError { image, error } => write!(f, "error: image {image}: {error}"),
            Line::Failed(what) => write!(f, "error: {what}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    /// A line's text in a fixed buffer (the crate is `no_std`, its tests have no `String`).
    struct Buf {
        bytes: [u8; 256],
        len: usize,
    }

    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.len + s.len();
            self.bytes
                .get_mut(self.len..end)
                .ok_or(fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }

    fn text(line: Line<'_>, want: &str) {
        let mut b = Buf {
            bytes: [0; 256],
            len: 0,
        };
        write!(b, "{line}").unwrap();
        assert_eq!(core::str::from_utf8(&b.bytes[..b.len]).unwrap(), want);
    }

    const COUNTER: Clock<'static> = Clock::Counter {
        unit: "qemu_instructions",
        units_per_tick: 40,
    };

    #[test]
    fn every_line_has_its_shape() {
        let start = |clock| Line::Start {
            board: "qemu-an386",
            model_bytes: 9,
            arena_bytes: 8,
            arena_align: 16,
            input_len: 784,
            classes: 10,
            ops: 3,
            images: 2,
            clock,
        };
        text(
            start(COUNTER),
            "shiftkit qemu-an386: model 9 B, arena 8 B (align 16), input 784 B, 10 classes, 3 ops, 2 images, counter qemu_instructions (40 per tick)",
        );
        text(
            start(Clock::Nanoseconds),
            "shiftkit qemu-an386: model 9 B, arena 8 B (align 16), input 784 B, 10 classes, 3 ops, 2 images; costs in std::time nanoseconds",
        );
        text(
            Line::Calibration {
                loop_instructions: 200_000,
                ticks: 5000,
                instructions_per_tick: 40,
            },
            "calibration loop_instructions 200000 ticks 5000 instructions_per_tick 40",
        );
        text(
            Line::Image {
                index: 1,
                label: 7,
                pred: 3,
                logits: &[-1, 2, 127, -128],
                name: None,
            },
            "image 1 label 7 pred 3 logits [-1, 2, 127, -128]",
        );
        text(
            Line::Image {
                index: 1,
                label: 7,
                pred: 3,
                logits: &[-1, 2],
                name: Some("tabby cat"),
            },
            "image 1 label 7 pred 3 logits [-1, 2] class tabby cat",
        );
        text(
            Line::Image {
                index: 0,
                label: 0,
                pred: 0,
                logits: &[],
                name: None,
            },
            "image 0 label 0 pred 0 logits []",
        );
        text(
            Line::Accuracy {
                correct: 1,
                images: 2,
            },
            "accuracy 1/2",
        );
        let load = |clock| Line::Load {
            ticks: 30,
            plan_check_ticks: 4,
            clock,
        };
        text(
            load(COUNTER),
            "load ticks 30 qemu_instructions 1200 plan_check_ticks 4 qemu_instructions 160",
        );
        text(load(Clock::Nanoseconds), "load ns 30 plan_check_ns 4");
        let layer = |clock| Line::Layer {
            index: 2,
            kind: "conv3x3",
            ticks: 10,
            clock,
        };
        text(
            layer(COUNTER),
            "layer 2 conv3x3 ticks 10 qemu_instructions 400",
        );
        text(layer(Clock::Nanoseconds), "layer 2 conv3x3 ns 10");
        let total = |clock| Line::Total {
            ticks: 12,
            per_inference: 240,
            clock,
        };
        text(
            total(COUNTER),
            "total ticks 12 qemu_instructions_per_inference 240",
        );
        text(
            total(Clock::Nanoseconds),
            "total ns 12 ns_per_inference 240",
        );
        let memory = |stack_bytes| Line::Memory {
            model_bytes: 9,
            arena_bytes: 8,
            stack_bytes,
        };
        text(
            memory(Some(4032)),
            "memory model_bytes 9 arena_bytes 8 stack_bytes 4032",
        );
        text(memory(None), "memory model_bytes 9 arena_bytes 8");
        text(
            Line::ModelError(ModelError::BadMagic),
            "error: embedded model: not a .skq model: the file does not start with \"SKQ\\x01\"",
        );
        text(
            Line::RunError {
                image: 4,
                error: Error::ArenaMisaligned { align: 16 },
            },
            "error: image 4: arena must be aligned to 16 bytes (Model::arena_align)",
        );
        text(Line::Failed("no arena"), "error: no arena");
    }
}
