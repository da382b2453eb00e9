//! `cargo xtask deploy --board BOARD MODEL.skq [--images N] [--timeout S] [--ssh USER@HOST]`:
//! checks that the model fits the board, builds the board crate with the model and the first N
//! bundled test digits embedded, runs it (QEMU boards) or flashes it (real boards), and compares
//! every int8 logit with the host engine's (the same `firmware` crate, run here). Prints the
//! device's lines, a per-layer cost table and a summary; fails if the device's logits differ
//! from the host's. `--board jetson` goes to [`jetson`] (an aarch64 Linux binary, over ssh or
//! under qemu-aarch64).
//!
//! Boards ([`crate::boards`]): QEMU ones run here; real ones (`stm32f746g-disco`,
//! `nrf52840-dk`, `rp-pico`) are flashed with `probe-rs run` and their defmt log is read the
//! same way. The budget check (model + images against flash, arena + stack reserve against RAM,
//! from the board's `memory.x`) refuses a model that does not fit before anything is built or
//! flashed. [`build`] builds and runs; [`report`] parses what the board printed (the lines
//! `firmware::report` writes) and checks it against the host engine.
pub mod build;
pub mod jetson;
pub mod report;

use crate::boards::{self, Run, STACK_RESERVE};
use crate::root;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// The paths `cargo xtask test` (xtask/src/test.rs) builds the boards with.
pub use crate::boards::{BOARDS, BOARDS_TARGET_DIR};
pub use build::{build_command, Overrides};

/// Everything a caller (the pipeline's summary.json) needs from one deploy.
#[derive(Debug)]
pub struct Report {
    pub board: String,
    pub images: usize,
    pub device_accuracy: f64,
    pub device_matches_host: bool,
    /// The whole `firmware::run` per image, in the board's unit (`per_inference_name`).
    pub per_inference: u64,
    pub per_inference_name: String,
    /// `per_inference` on QEMU boards; 0 on real boards (their unit is cycles or microseconds).
    pub qemu_instructions_per_inference: u64,
    /// Stack high-water mark the board measured (painted stack).
    pub stack_bytes: Option<u64>,
    /// `Model::from_bytes` on the board, and the memory-plan check's part of it, in the
    /// board's unit (the report's `load` line).
    pub load: Option<(u64, u64)>,
    /// The board's cost unit and (kind, cost per inference) per op, for `measure`.
    pub unit: &'static str,
    pub layers: Vec<(String, u64)>,
    pub model_bytes: usize,
    pub arena_bytes: usize,
    /// From the ELF: bytes placed in flash (code + read-only data + .data image), and RAM
    /// (.data + .bss + .uninit, without the stack).
    pub elf_flash_bytes: u64,
    pub elf_ram_bytes: u64,
}

/// Time allowed for building and running `images` images.
pub fn default_timeout(images: usize) -> Duration {
    Duration::from_secs(120 + 2 * images as u64)
}

/// The arguments `deploy` and `measure` share.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The board to build, run and check against the host engine
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(boards::names()))]
    pub board: String,
    /// The int8 model (`cargo xtask quantize DIR` writes DIR/model.skq)
    #[arg(value_name = "MODEL.skq")]
    pub model: PathBuf,
    /// How many test images to run (the bundled MNIST digits, or the --data test split)
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub images: usize,
    /// The test images to embed: a dataset SPEC (e.g. folder:DIR), resized to the model's input
    /// as in training [default: the data the model was trained on, from train-config.json
    /// beside it; else the bundled MNIST digits]
    #[arg(long, value_name = "SPEC")]
    pub data: Option<String>,
    /// Seconds allowed for building and running [default: 120 + 2 per image]
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Run on this aarch64 Linux board over ssh (--board jetson only; without it, under
    /// qemu-aarch64)
    #[arg(long, value_name = "USER@HOST")]
    pub ssh: Option<String>,
}

impl Args {
    /// `--timeout`, or [`default_timeout`] of `--images`.
    pub fn timeout(&self) -> Duration {
        self.timeout
            .map_or_else(|| default_timeout(self.images), Duration::from_secs)
    }
}

/// `cargo xtask deploy`: the board's deploy, jetson's included.
pub fn main(args: &Args) -> Result<(), String> {
    let b = boards::find(&args.board)?;
    let over = data_overrides(&args.model, args.data.as_deref(), args.images)?;
    if b.run == Run::Linux && over.idx.is_some() {
        return Err(format!(
            "--board {}: runs the bundled MNIST digits only; --data (or a model trained on other data) is for the microcontroller boards",
            boards::JETSON.name
        ));
    }
    if b.run == Run::Linux {
        return jetson::deploy(
            &args.model,
            args.images,
            args.timeout(),
            args.ssh.as_deref(),
        )
        .map(|_| ());
    }
    if args.ssh.is_some() {
        return Err(format!("--ssh is for --board {}", boards::JETSON.name));
    }
    deploy_with(&args.board, &args.model, args.images, args.timeout(), &over).map(|_| ())
}

/// The data a model's run folder says it was trained on (`train-config.json` beside it), when
/// that is not the bundled MNIST.
fn trained_on(model: &Path) -> Option<String> {
    let dir = model.parent()?;
    let text = std::fs::read_to_string(dir.join("train-config.json")).ok()?;
    let cfg: serde_json::Value = serde_json::from_str(&text).ok()?;
    let data = cfg.get("data")?.as_str()?.to_string();
    (data != "mnist").then_some(data)
}

/// The test images to embed: with `--data`, or for a model trained on other data than the
/// bundled MNIST, its first `images` test images at the model's input, written as an IDX pair
/// by `shiftkit-quantize test-idx` (which decodes and resizes folder images as in training).
pub fn data_overrides(
    model: &Path,
    data: Option<&str>,
    images: usize,
) -> Result<Overrides, String> {
    let spec = match data {
        Some(d) => Some(d.to_string()),
        None => trained_on(model),
    };
    let Some(spec) = spec else {
        return Ok(Overrides::default());
    };
    let out = root().join("target/deploy-data");
    let mut args = vec![
        "test-idx".to_string(),
        model.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--images".into(),
        images.to_string(),
    ];
    if data.is_some() {
        args.extend(["--data".into(), spec.clone()]);
    }
    println!("== deploy: the test images of {spec}");
    crate::pass_through(crate::shiftkit_quantize(&args))?;
    Ok(Overrides {
        idx: Some((out.join("test-images-idx3"), out.join("test-labels-idx1"))),
        ..Overrides::default()
    })
}

/// Builds, runs and checks with [`Overrides`] (the test images, portable kernels); prints as it
/// goes. `Err` if anything fails or the device's logits differ from the host's (the report is
/// printed first).
pub fn deploy_with(
    board: &str,
    model: &Path,
    images: usize,
    timeout: Duration,
    over: &Overrides,
) -> Result<Report, String> {
    let b = boards::find(board)?;
    if b.run == Run::Linux {
        return Err(format!(
            "{board}: not a microcontroller board (its deploy is deploy::jetson::deploy)"
        ));
    }
    let board_dir = root().join(b.dir);
    let model = std::path::absolute(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let bytes = std::fs::read(&model).map_err(|e| {
        format!(
            "{}: {e} (quantize a run first: cargo xtask quantize runs/default)",
            model.display()
        )
    })?;
    let m = firmware::Model::from_bytes(&bytes)
        .map_err(|e| format!("{}: not a valid model: {e}", model.display()))?;

    let (idx_images, idx_labels) = over.idx();
    let (digits, labels) = report::read_idx(&idx_images, &idx_labels, images)?;
    let n = labels.len();

    // Budget check before building, flashing or running anything (and before the input check,
    // so that any model too big for the board is refused with the numbers).
    let memory_x_path = boards::memory_file(&board_dir);
    let (flash, ram) = boards::memory_x(&memory_x_path)?;
    println!(
        "== deploy {board}: {} ({} B model, {} B arena), {n} images",
        model.display(),
        bytes.len(),
        m.arena_bytes()
    );
    let budget = boards::check_budget(
        board,
        (flash, ram),
        bytes.len() as u64,
        (n * m.input_len() + n) as u64,
        m.arena_bytes() as u64,
    )
    .map_err(|e| format!("{e} (memory from {})", memory_x_path.display()))?;
    println!("{budget}");
    if digits.first().is_some_and(|d| d.len() != m.input_len()) {
        return Err(format!(
            "{}: takes {} input bytes, the test images in {} are {} bytes; pass the data it was trained on with --data SPEC",
            model.display(),
            m.input_len(),
            idx_images.display(),
            digits[0].len()
        ));
    }

    let started = Instant::now();
    let elf = build::build(b, &model, n, over)?;
    let (elf_flash, elf_ram) = build::elf_sizes(&elf)?;
    println!(
        "ELF {}: flash {elf_flash} B, RAM {elf_ram} B (static, without stack); built in {:.1} s",
        elf.display(),
        started.elapsed().as_secs_f64()
    );
    if elf_flash > flash || elf_ram + STACK_RESERVE > ram {
        return Err(format!(
            "{}: flash {elf_flash} B of {flash} B, RAM {elf_ram} B + {STACK_RESERVE} B stack of {ram} B: does not fit",
            elf.display()
        ));
    }

    let out = match b.run {
        Run::Qemu => build::run_qemu(&board_dir, &elf, timeout)?,
        Run::Probe { chip } => build::run_probe(&board_dir, chip, &elf, timeout)?,
        Run::Linux => unreachable!("refused above"),
    };
    let dev = report::parse(&out, n)?;

    let check = report::check_with_host(&m, &digits, &labels, &dev)?;
    report::print_layers(&m, &dev, b.unit, n);
    let report = Report {
        board: board.to_string(),
        images: n,
        device_accuracy: check.correct as f64 / n.max(1) as f64,
        device_matches_host: check.mismatches.is_empty(),
        per_inference: dev.per_inference,
        per_inference_name: dev.per_inference_name.clone(),
        qemu_instructions_per_inference: if b.run == Run::Qemu {
            dev.per_inference
        } else {
            0
        },
        stack_bytes: dev.stack_bytes,
        load: dev.load,
        unit: b.unit,
        layers: dev.per_inference_layers(n),
        model_bytes: bytes.len(),
        arena_bytes: m.arena_bytes(),
        elf_flash_bytes: elf_flash,
        elf_ram_bytes: elf_ram,
    };
    println!("\nboard: {board}");
    println!(
        "device_accuracy: {}/{n} ({:.2}%)",
        check.correct,
        100.0 * report.device_accuracy
    );
    println!("device_matches_host: {}", report.device_matches_host);
    if dev.names.iter().any(Option::is_some) {
        let shown: Vec<String> = dev
            .images
            .iter()
            .zip(&dev.names)
            .take(5)
            .map(|((label, _, _), name)| {
                let truth = m.class_name(*label as usize).unwrap_or("?");
                format!("{} (true: {truth})", name.as_deref().unwrap_or("?"))
            })
            .collect();
        println!(
            "device classes: {}{}",
            shown.join(", "),
            if n > 5 { ", .." } else { "" }
        );
    }
    let how = match b.run {
        Run::Qemu => {
            "counter ticks (SysTick, RISC-V minstret) x instructions per tick under -icount shift=0; not cycles"
        }
        Run::Probe { .. } | Run::Linux => "measured on the board",
    };
    println!(
        "{}: {} (whole run(); {how})",
        report.per_inference_name, report.per_inference
    );
    if let Some((load, check)) = report.load {
        println!(
            "model_load: {load} {} (Model::from_bytes, once; the memory-plan check {check} of it, {:.1}%)",
            b.unit,
            100.0 * check as f64 / load.max(1) as f64
        );
    }
    println!(
        "model_bytes: {}  arena_bytes: {}  stack_bytes: {}",
        report.model_bytes,
        report.arena_bytes,
        report
            .stack_bytes
            .map_or("not reported".to_string(), |s| s.to_string())
    );
    println!("elf_flash_bytes: {elf_flash}  elf_ram_bytes: {elf_ram} (static; stack not included)");
    check.result(n)?;
    Ok(report)
}
