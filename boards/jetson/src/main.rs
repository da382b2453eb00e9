//! shiftkit on Jetson-class aarch64 Linux boards: a `std` binary around the same `firmware`
//! engine as the microcontroller boards. It reads a `.skq` model and IDX images + labels from
//! files, runs the first N images and prints the same report as `qemu-an386`, with each cost in
//! `std::time::Instant` nanoseconds (wall clock, this process; under `qemu-aarch64` they are the
//! emulator's, not the board's).
//!
//! ```text
//! shiftkit-jetson MODEL.skq IMAGES-IDX LABELS-IDX [--count N]
//! ```
//!
//! Output (written by `firmware::report`, the boards' one report writer, and parsed by
//! `cargo xtask deploy --board jetson`):
//! ```text
//! shiftkit jetson: model M B, arena A B (align X), input I B, C classes, O ops, N images; costs in std::time nanoseconds
//! image I label L pred P logits [..]
//! accuracy C/N
//! layer I KIND ns T                        (summed over the N images)
//! total ns T ns_per_inference Q            (T: all N run() calls; Q = T / N)
//! memory model_bytes M arena_bytes A
//! ```
//! A missing or bad file is one line on stderr naming it, and exit status 1.
#![forbid(unsafe_code)]

mod idx;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use firmware::format::Op;
use firmware::report::{Clock, Line};
use firmware::{Model, Profiler};

const USAGE: &str = "usage: shiftkit-jetson MODEL.skq IMAGES-IDX LABELS-IDX [--count N]
  runs the int8 model on the first N images (default 20) of an IDX images/labels pair
  (e.g. data/mnist/t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte) and prints
  predictions, int8 logits, accuracy, per-layer nanoseconds and memory";

/// Alignment given to the model bytes and the arena (at least what any model asks for).
const ALIGN: usize = 16;

#[derive(Debug, PartialEq)]
struct Args {
    model: PathBuf,
    images: PathBuf,
    labels: PathBuf,
    count: usize,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut files = Vec::new();
    let mut count = 20;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--count" | "-n" => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("{a} needs a number\n{USAGE}"))?;
                count = v
                    .parse()
                    .map_err(|_| format!("{a} {v}: expected a whole number of images"))?;
            }
            "--help" | "-h" => return Err(USAGE.to_string()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => files.push(PathBuf::from(a)),
        }
    }
    match <[PathBuf; 3]>::try_from(files) {
        Ok([model, images, labels]) => Ok(Args {
            model,
            images,
            labels,
            count,
        }),
        Err(f) => Err(format!("expected 3 files, got {}\n{USAGE}", f.len())),
    }
}

/// Per-op nanoseconds, summed over every image run through it.
struct NsProfiler {
    start: Instant,
    ns: Vec<u64>,
}

impl Profiler for NsProfiler {
    fn begin(&mut self, _op_index: usize) {
        self.start = Instant::now();
    }
    fn end(&mut self, op_index: usize, _output: &[i8]) {
        let t = self.start.elapsed().as_nanos() as u64;
        if let Some(sum) = self.ns.get_mut(op_index) {
            *sum += t;
        }
    }
}

/// The layer kind printed in `layer` lines (the same names as the Cortex-M boards).
fn op_kind(op: &Op) -> &'static str {
    op.kind()
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

/// A zeroed buffer of `len` elements starting at an address that is a multiple of `align`:
/// returns the storage and the offset of the aligned start (no `unsafe`, a few spare elements).
fn aligned<T: Copy + Default>(len: usize, align: usize) -> (Vec<T>, usize) {
    let spare = align.div_ceil(std::mem::size_of::<T>().max(1));
    let v = vec![T::default(); len + spare];
    let off = v.as_ptr().align_offset(align.max(1));
    (v, off)
}

fn run(args: &Args, out: &mut impl Write) -> Result<(), String> {
    let mp = args.model.display();
    let file = std::fs::read(&args.model).map_err(|e| format!("{mp}: {e}"))?;
    // The model is read in place (zero-copy), so give it the alignment it would have in flash.
    let (mut storage, at) = aligned::<u8>(file.len(), ALIGN);
    storage[at..at + file.len()].copy_from_slice(&file);
    let bytes = &storage[at..at + file.len()];
    let load_start = Instant::now();
    let model = Model::from_bytes(bytes).map_err(|e| format!("{mp}: not a valid model: {e}"))?;
    let load_ns = load_start.elapsed().as_nanos() as u64;
    let check_start = Instant::now();
    model
        .check_plan()
        .map_err(|e| format!("{mp}: not a valid model: {e}"))?;
    let plan_check_ns = check_start.elapsed().as_nanos() as u64;

    let images = idx::read(&args.images, &args.labels, args.count)?;
    if images.image_len != model.input_len() {
        let dims: Vec<String> = images.dims.iter().map(usize::to_string).collect();
        return Err(format!(
            "{}: images are {} ({} bytes), {mp} takes {} bytes per image",
            args.images.display(),
            dims.join("x"),
            images.image_len,
            model.input_len()
        ));
    }
    let n = images.count();
    let ops: Vec<Op> = model
        .ops()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{mp}: {e}"))?;

    let align = model.arena_align().max(ALIGN);
    let (mut arena_storage, off) = aligned::<i8>(model.arena_bytes(), align);
    let arena = &mut arena_storage[off..off + model.arena_bytes()];

    let io = |e: std::io::Error| format!("stdout: {e}");
    let mut emit = |line: Line<'_>| writeln!(out, "{line}").map_err(io);
    emit(Line::Start {
        board: "jetson",
        model_bytes: file.len(),
        arena_bytes: model.arena_bytes(),
        arena_align: model.arena_align(),
        input_len: model.input_len(),
        classes: model.classes(),
        ops: ops.len(),
        images: n,
        clock: Clock::Nanoseconds,
    })?;
    emit(Line::Load {
        ticks: load_ns,
        plan_check_ticks: plan_check_ns,
        clock: Clock::Nanoseconds,
    })?;

    let mut prof = NsProfiler {
        start: Instant::now(),
        ns: vec![0; ops.len()],
    };
    let (mut total_ns, mut correct) = (0u64, 0usize);
    for (i, (pixels, label)) in images.iter().enumerate() {
        let start = Instant::now();
        let result = firmware::run(&model, pixels, arena, &mut prof);
        total_ns += start.elapsed().as_nanos() as u64;
        let logits = result.map_err(|e| format!("{mp}: image {i}: {e}"))?;
        let pred = argmax(logits);
        correct += usize::from(pred == usize::from(label));
        emit(Line::Image {
            index: i,
            label,
            pred,
            logits,
            name: model.class_name(pred),
        })?;
    }
    emit(Line::Accuracy { correct, images: n })?;
    for (i, (op, &ns)) in ops.iter().zip(&prof.ns).enumerate() {
        emit(Line::Layer {
            index: i,
            kind: op_kind(op),
            ticks: ns,
            clock: Clock::Nanoseconds,
        })?;
    }
    emit(Line::Total {
        ticks: total_ns,
        per_inference: total_ns / n.max(1) as u64,
        clock: Clock::Nanoseconds,
    })?;
    emit(Line::Memory {
        model_bytes: file.len(),
        arena_bytes: model.arena_bytes(),
        stack_bytes: None,
    })?;
    out.flush().map_err(io)
}

fn main() -> ExitCode {
    let result = parse_args(std::env::args().skip(1)).and_then(|args| {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        run(&args, &mut out)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments() {
        let a = args(&["m.skq", "i", "l", "--count", "5"]).unwrap();
        assert_eq!(a.model, PathBuf::from("m.skq"));
        assert_eq!((a.images.to_str(), a.count), (Some("i"), 5));
        assert_eq!(args(&["m", "i", "l"]).unwrap().count, 20);
        assert!(args(&["m", "i"])
            .unwrap_err()
            .starts_with("expected 3 files, got 2"));
        assert!(args(&["m", "i", "l", "--count", "x"])
            .unwrap_err()
            .contains("--count x: expected a whole number"));
        assert!(args(&["--fast"])
            .unwrap_err()
            .starts_with("unknown option --fast"));
    }

    #[test]
    fn bad_model_files_are_one_line_errors_naming_the_file() {
        let d = std::env::temp_dir().join(format!("jetson-model-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let a = |model: &str| Args {
            model: d.join(model),
            images: d.join("images"),
            labels: d.join("labels"),
            count: 1,
        };
        let mut out = Vec::new();
        std::fs::write(d.join("text.skq"), b"hello, not a model").unwrap();
        std::fs::write(d.join("cut.skq"), b"SKQ\x01\x01\x00").unwrap();
        let missing = format!("{}: ", d.join("missing.skq").display());
        for (file, expected) in [
            ("missing.skq", missing.as_str()),
            ("text.skq", "text.skq: not a valid model: not a .skq model"),
            ("cut.skq", "cut.skq: not a valid model: truncated"),
        ] {
            let e = run(&a(file), &mut out).unwrap_err();
            assert!(e.contains(expected), "{file}: {e}");
            assert!(!e.contains('\n'), "{file}: one line: {e}");
        }
        assert!(out.is_empty(), "nothing printed before the error");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn buffers_are_aligned() {
        for align in [1, 4, 16, 64] {
            let (v, off) = aligned::<i8>(100, align);
            assert_eq!(v[off..].as_ptr() as usize % align, 0);
            assert!(v.len() - off >= 100);
        }
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[-3, 5, 5, -128]), 1);
        assert_eq!(argmax(&[-128]), 0);
    }
}
