//! `cargo xtask deploy --board BOARD MODEL.skq [--images N] [--timeout S]`: checks that the
//! model fits the board, builds the board crate with the model and the first N bundled test
//! digits embedded, runs it (QEMU boards) or flashes it (real boards), and compares every int8
//! logit with the host engine's
//! (the same `firmware` crate, run here). Prints the device's lines, a per-layer cost table and
//! a summary; fails if the device's logits differ from the host's.
//!
//! Boards: QEMU ones run here; real ones (`stm32f746g-disco`, `nrf52840-dk`, `rp-pico`) are
//! flashed with `probe-rs run` and their defmt log is read the same way. The budget check (model
//! + images against flash, arena + stack reserve against RAM, from the board's `memory.x`)
//! refuses a model that does not fit before anything is built or flashed.
//!
//! The board's printed line shapes are documented in `boards/app/src/lib.rs`.
use crate::{cargo, root};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A board xtask knows how to deploy to. Its memory budget is the FLASH and RAM `LENGTH` of its
/// crate's `memory.x` (read at deploy time: the one place those figures live).
pub struct Board {
    pub name: &'static str,
    /// Crate folder under the repository root (`boards/<name>`).
    pub dir: &'static str,
    /// What the board's counter measures (printed in the table).
    pub unit: &'static str,
    /// Its rustup target (the crate's `.cargo/config.toml` builds for it).
    pub target: &'static str,
    pub run: Run,
}

/// How a board runs its firmware: both commands live in the crate's `.cargo/config.toml` runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// `qemu-system-arm ... -kernel ELF`, here.
    Qemu,
    /// `probe-rs run --chip CHIP ELF`: flash a board on a debug probe and stream its defmt log.
    Probe { chip: &'static str },
}

pub const BOARDS: &[Board] = &[
    Board {
        name: "qemu-an386",
        dir: "boards/qemu-an386",
        unit: "QEMU instructions",
        target: "thumbv7em-none-eabihf",
        run: Run::Qemu,
    },
    Board {
        name: "qemu-an500",
        dir: "boards/qemu-an500",
        unit: "QEMU instructions",
        target: "thumbv7em-none-eabihf",
        run: Run::Qemu,
    },
    Board {
        name: "qemu-an505",
        dir: "boards/qemu-an505",
        unit: "QEMU instructions",
        target: "thumbv8m.main-none-eabihf",
        run: Run::Qemu,
    },
    Board {
        name: "stm32f746g-disco",
        dir: "boards/stm32f746g-disco",
        unit: "cycles",
        target: "thumbv7em-none-eabihf",
        run: Run::Probe {
            chip: "STM32F746NGHx",
        },
    },
    Board {
        name: "nrf52840-dk",
        dir: "boards/nrf52840-dk",
        unit: "cycles",
        target: "thumbv7em-none-eabihf",
        run: Run::Probe {
            chip: "nRF52840_xxAA",
        },
    },
    Board {
        name: "rp-pico",
        dir: "boards/rp-pico",
        unit: "microseconds",
        target: "thumbv6m-none-eabi",
        run: Run::Probe { chip: "RP2040" },
    },
];

/// Shared by every board build (xtask deploy and test), so each target's dependencies are
/// compiled once: under the repository's `target/`.
pub const BOARDS_TARGET_DIR: &str = "target/boards";
/// How to get probe-rs, printed when it is missing.
pub const PROBE_RS_INSTALL: &str = "cargo install probe-rs-tools --locked";

pub const IDX_IMAGES: &str = "data/mnist/t10k-images-idx3-ubyte";
pub const IDX_LABELS: &str = "data/mnist/t10k-labels-idx1-ubyte";
/// RAM kept free for the stack and the app's own statics when checking the arena budget.
const STACK_RESERVE: u64 = 16 * 1024;

/// What the device printed, parsed.
#[derive(Debug, Default)]
pub struct DeviceRun {
    /// (label, pred, logits) per image, in order.
    pub images: Vec<(u8, usize, Vec<i8>)>,
    /// (kind, summed units over all images) per op.
    pub layers: Vec<(String, u64)>,
    pub per_inference: u64,
    /// The name of the per-inference figure, e.g. `qemu_instructions_per_inference` or
    /// `cycles_per_inference` (from the `total` line).
    pub per_inference_name: String,
    /// Stack high-water mark, from the `memory` line of boards built on `boards/app`.
    pub stack_bytes: Option<u64>,
}

impl DeviceRun {
    /// (kind, cost per inference) per op: the summed costs divided by the `n` images.
    pub fn per_inference_layers(&self, n: usize) -> Vec<(String, u64)> {
        let n = n.max(1) as u64;
        self.layers
            .iter()
            .map(|(k, v)| (k.clone(), v / n))
            .collect()
    }
}

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

fn usage() -> String {
    let names: Vec<_> = BOARDS.iter().map(|b| b.name).collect();
    format!(
        "usage: cargo xtask deploy --board BOARD MODEL.skq [--images N] [--timeout SECONDS] [--ssh USER@HOST]\n  boards: {}, {} (--ssh: run on that board; without it, under qemu-aarch64)",
        names.join(", "),
        crate::jetson::BOARD
    )
}

/// Time allowed for building and running `images` images.
pub fn default_timeout(images: usize) -> Duration {
    Duration::from_secs(120 + 2 * images as u64)
}

/// Whether the emulator a QEMU board needs is installed (real boards: always true).
pub fn qemu_available(board: &str) -> bool {
    if !board.starts_with("qemu-") {
        return true;
    }
    Command::new("qemu-system-arm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The arguments `deploy` and `measure` share:
/// `--board BOARD MODEL.skq [--images N] [--timeout SECONDS] [--ssh USER@HOST]`.
pub struct Args {
    pub board: String,
    pub model: PathBuf,
    pub images: usize,
    pub timeout: Duration,
    pub ssh: Option<String>,
}

impl Args {
    /// Parses `args`; errors end with `usage`.
    pub fn parse(args: Vec<String>, usage: fn() -> String) -> Result<Args, String> {
        let (mut board, mut model, mut images, mut timeout) = (None, None, 20usize, None);
        let mut ssh = None;
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |what: &str| it.next().ok_or(format!("{a} needs {what}\n{}", usage()));
            match a.as_str() {
                "--board" => board = Some(value("a board name")?),
                "--ssh" => ssh = Some(value("user@host")?),
                "--images" => {
                    let v = value("a whole number")?;
                    images = v
                        .parse()
                        .map_err(|_| format!("--images {v}: expected a whole number"))?;
                }
                "--timeout" => {
                    let v = value("seconds")?;
                    timeout = Some(
                        v.parse()
                            .map_err(|_| format!("--timeout {v}: expected whole seconds"))?,
                    );
                }
                s if s.starts_with("--") => return Err(format!("unknown option {s}\n{}", usage())),
                _ if model.is_none() => model = Some(PathBuf::from(a)),
                _ => return Err(format!("unexpected argument {a}\n{}", usage())),
            }
        }
        Ok(Args {
            board: board.ok_or_else(usage)?,
            model: model.ok_or_else(usage)?,
            timeout: timeout.map_or_else(|| default_timeout(images), Duration::from_secs),
            images,
            ssh,
        })
    }
}

pub fn main(args: Vec<String>) -> Result<(), String> {
    let Args {
        board,
        model,
        images,
        timeout,
        ssh,
    } = Args::parse(args, usage)?;
    if board == crate::jetson::BOARD {
        return crate::jetson::deploy(&model, images, timeout, ssh.as_deref()).map(|_| ());
    }
    if ssh.is_some() {
        return Err(format!(
            "--ssh is for --board {}\n{}",
            crate::jetson::BOARD,
            usage()
        ));
    }
    deploy(&board, &model, images, timeout).map(|_| ())
}

/// What `cargo xtask bench firmware` changes about a deploy: the kernels the firmware is built
/// with (`SHIFTKIT_KERNELS=portable`, firmware/build.rs) and the IDX images/labels (default:
/// the bundled MNIST test digits).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub kernels_portable: bool,
    pub idx: Option<(PathBuf, PathBuf)>,
}

impl Overrides {
    fn idx(&self) -> (PathBuf, PathBuf) {
        self.idx
            .clone()
            .unwrap_or_else(|| (root().join(IDX_IMAGES), root().join(IDX_LABELS)))
    }
}

/// Builds, runs and checks; prints as it goes. `Err` if anything fails or the device's logits
/// differ from the host's (the report is printed first).
pub fn deploy(
    board: &str,
    model: &Path,
    images: usize,
    timeout: Duration,
) -> Result<Report, String> {
    deploy_with(board, model, images, timeout, &Overrides::default())
}

/// [`deploy`] with [`Overrides`].
pub fn deploy_with(
    board: &str,
    model: &Path,
    images: usize,
    timeout: Duration,
    over: &Overrides,
) -> Result<Report, String> {
    let b = BOARDS
        .iter()
        .find(|b| b.name == board)
        .ok_or_else(|| format!("unknown board '{board}'\n{}", usage()))?;
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
    let (digits, labels) = read_idx(&idx_images, &idx_labels, images)?;
    let n = labels.len();

    // Budget check before building, flashing or running anything (and before the input check,
    // so that any model too big for the board is refused with the numbers).
    let memory_x_path = board_dir.join("memory.x");
    let (flash, ram) = memory_x(&memory_x_path)?;
    println!(
        "== deploy {board}: {} ({} B model, {} B arena), {n} images",
        model.display(),
        bytes.len(),
        m.arena_bytes()
    );
    let budget = check_budget(
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
            "{}: takes {} input bytes, the bundled test digits are 28x28x1 ({} bytes)",
            model.display(),
            m.input_len(),
            digits[0].len()
        ));
    }

    let started = Instant::now();
    let elf = build(b, &model, n, over)?;
    let (elf_flash, elf_ram) = elf_sizes(&elf)?;
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
        Run::Qemu => run_qemu(&board_dir, &elf, timeout)?,
        Run::Probe { chip } => run_probe(&board_dir, chip, &elf, timeout)?,
    };
    let dev = parse(&out, n)?;

    let check = check_with_host(&m, &digits, &labels, &dev)?;
    print_layers(&m, &dev, b.unit, n);
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
    let how = match b.run {
        Run::Qemu => "SysTick ticks x instructions per tick under -icount shift=0; not cycles",
        Run::Probe { .. } => "measured on the board",
    };
    println!(
        "{}: {} (whole run(); {how})",
        report.per_inference_name, report.per_inference
    );
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

/// The host engine's verdict on a device run (every board, jetson included).
pub struct HostCheck {
    /// Images the device predicted right.
    pub correct: usize,
    /// One line per image whose device int8 logits differ from the host engine's.
    pub mismatches: Vec<String>,
}

impl HostCheck {
    /// `Err` (after printing the first few mismatches) if any logit differed.
    pub fn result(&self, n: usize) -> Result<(), String> {
        if self.mismatches.is_empty() {
            return Ok(());
        }
        for m in self.mismatches.iter().take(5) {
            eprintln!("mismatch {m}");
        }
        Err(format!(
            "{} of {n} images: device int8 logits differ from the host engine's",
            self.mismatches.len()
        ))
    }
}

/// Runs the host engine (the same `firmware` crate) on the same pixels and compares every int8
/// logit and label with the device's.
pub fn check_with_host(
    m: &firmware::Model,
    digits: &[Vec<u8>],
    labels: &[u8],
    dev: &DeviceRun,
) -> Result<HostCheck, String> {
    let mut arena = vec![0i8; m.arena_bytes() + m.arena_align().max(1)];
    let off = arena.as_ptr().align_offset(m.arena_align().max(1));
    let mut check = HostCheck {
        correct: 0,
        mismatches: Vec::new(),
    };
    for (i, (pixels, &label)) in digits.iter().zip(labels).enumerate() {
        let host = firmware::run(m, pixels, &mut arena[off..], &mut firmware::NoProfiler)
            .map_err(|e| format!("host engine, image {i}: {e}"))?;
        let (dlabel, pred, logits) = dev
            .images
            .get(i)
            .ok_or_else(|| format!("the board printed no line for image {i}"))?;
        if *dlabel != label {
            return Err(format!(
                "image {i}: device label {dlabel}, host label {label}: the board ran other images"
            ));
        }
        check.correct += usize::from(*pred == label as usize);
        if logits.as_slice() != host {
            check
                .mismatches
                .push(format!("image {i}: device {logits:?} host {host:?}"));
        }
    }
    Ok(check)
}

/// Prints the per-layer cost table (per inference, mean of `n` images) with output shapes.
pub fn print_layers(m: &firmware::Model, dev: &DeviceRun, unit: &str, n: usize) {
    let ops: Vec<String> = m
        .ops()
        .map(|op| {
            op.map(|op| describe(m, &op))
                .unwrap_or_else(|e| e.to_string())
        })
        .collect();
    println!("\nper layer ({unit}, per inference, mean of {n} images):");
    println!(
        "{:>3}  {:<15} {:<28} {:>14} {:>7}",
        "op", "kind", "output", "cost", "share"
    );
    let layer_total: u64 = dev.layers.iter().map(|l| l.1).sum();
    for (i, (kind, sum)) in dev.layers.iter().enumerate() {
        let share = 100.0 * *sum as f64 / layer_total.max(1) as f64;
        let shape = ops.get(i).map(String::as_str).unwrap_or("");
        println!(
            "{i:>3}  {kind:<15} {shape:<28} {:>14} {share:>6.1}%",
            sum / n.max(1) as u64
        );
    }
    println!(
        "{:>3}  {:<15} {:<28} {:>14}",
        "",
        "layers",
        "",
        layer_total / n.max(1) as u64
    );
}

/// Checks embedded data (model + test images) against flash and the arena plus a stack reserve
/// against RAM; `Ok` is the budget line to print, `Err` the refusal with the numbers.
fn check_budget(
    board: &str,
    (flash, ram): (u64, u64),
    model: u64,
    images: u64,
    arena: u64,
) -> Result<String, String> {
    let flash_need = model + images;
    let ram_need = arena + STACK_RESERVE;
    if flash_need > flash || ram_need > ram {
        let verdict = |need: u64, have: u64| {
            if need > have {
                format!("{} B over", need - have)
            } else {
                "fits".to_string()
            }
        };
        return Err(format!(
            "the model does not fit {board}: flash needs {flash_need} B (model {model} + images {images}) \
             of {flash} B ({}), RAM needs {ram_need} B (arena {arena} + stack reserve {STACK_RESERVE}) \
             of {ram} B ({}); use a smaller model or fewer --images",
            verdict(flash_need, flash),
            verdict(ram_need, ram)
        ));
    }
    Ok(format!(
        "budget: flash {flash_need} B (model {model} + images {images}) of {flash} B, \
         RAM {ram_need} B (arena {arena} + stack reserve {STACK_RESERVE}) of {ram} B"
    ))
}

/// One op's kind-independent description: output shape.
fn describe(m: &firmware::Model, op: &firmware::format::Op) -> String {
    let y = firmware::model::op_output(op);
    match m.tensor(y) {
        Ok(t) => format!("-> {}x{}x{}", t.h, t.w, t.c),
        Err(e) => e.to_string(),
    }
}

/// First `n` images (each h*w bytes) and labels of an IDX3/IDX1 pair.
pub fn read_idx(images: &Path, labels: &Path, n: usize) -> Result<(Vec<Vec<u8>>, Vec<u8>), String> {
    let img = std::fs::read(images).map_err(|e| format!("{}: {e}", images.display()))?;
    let lab = std::fs::read(labels).map_err(|e| format!("{}: {e}", labels.display()))?;
    let be = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
    };
    if be(&img, 0) != Some(0x803) || be(&lab, 0) != Some(0x801) {
        return Err(format!(
            "{} / {}: not IDX3 images / IDX1 labels",
            images.display(),
            labels.display()
        ));
    }
    let count = be(&img, 4).unwrap_or(0).min(be(&lab, 4).unwrap_or(0));
    let px = be(&img, 8).unwrap_or(0) * be(&img, 12).unwrap_or(0);
    let n = n.min(count);
    let pixels = img
        .get(16..16 + n * px)
        .ok_or_else(|| format!("{}: truncated", images.display()))?;
    let labels = lab
        .get(8..8 + n)
        .ok_or_else(|| format!("{}: truncated", labels.display()))?;
    Ok((
        pixels.chunks(px).map(<[u8]>::to_vec).collect(),
        labels.to_vec(),
    ))
}

/// FLASH and RAM LENGTH from a memory.x (`LENGTH = 4M`, `256K`, `0x40000` or decimal).
fn memory_x(path: &Path) -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let length = |region: &str| -> Option<u64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(region) && l.contains("LENGTH"))?;
        let v = line
            .split("LENGTH")
            .nth(1)?
            .trim_start_matches([' ', '='])
            .trim();
        let v = v.trim_end_matches([',', ';', ' ']);
        let (num, mul) = match v.as_bytes().last()? {
            b'K' | b'k' => (&v[..v.len() - 1], 1024),
            b'M' | b'm' => (&v[..v.len() - 1], 1024 * 1024),
            _ => (v, 1),
        };
        let n = match num.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok()?,
            None => num.parse().ok()?,
        };
        Some(n * mul)
    };
    match (length("FLASH"), length("RAM")) {
        (Some(f), Some(r)) => Ok((f, r)),
        _ => Err(format!("{}: no FLASH/RAM LENGTH found", path.display())),
    }
}

/// `cargo build --release` in the board crate with the model and images; returns the ELF path.
fn build(b: &Board, model: &Path, images: usize, over: &Overrides) -> Result<PathBuf, String> {
    let board_dir = root().join(b.dir);
    let mut c = build_command(b, model, images);
    let (idx_images, idx_labels) = over.idx();
    c.env("SHIFTKIT_IDX_IMAGES", idx_images)
        .env("SHIFTKIT_IDX_LABELS", idx_labels);
    if over.kernels_portable {
        c.env("SHIFTKIT_KERNELS", "portable");
    } else {
        c.env_remove("SHIFTKIT_KERNELS");
    }
    let hint = format!("is the target installed? rustup target add {}", b.target);
    build_executable(c, &board_dir, &hint)
}

/// Runs `cargo build` command `c` (in `board_dir`) with JSON messages and returns the path of
/// the executable it built; `hint` says what to check if the build fails.
pub fn build_executable(mut c: Command, board_dir: &Path, hint: &str) -> Result<PathBuf, String> {
    c.arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    let out = c.output().map_err(|e| {
        format!(
            "could not start cargo build in {}: {e}",
            board_dir.display()
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "cargo build --release in {} failed ({hint})",
            board_dir.display()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .next_back()
        .ok_or_else(|| {
            format!(
                "cargo build in {} produced no executable",
                board_dir.display()
            )
        })
}

/// `cargo build --release` in the board's crate with `model` and the first `images` bundled test
/// digits embedded (`boards/embed` reads these variables), into the shared [`BOARDS_TARGET_DIR`].
pub fn build_command(b: &Board, model: &Path, images: usize) -> Command {
    build_command_in(&root().join(b.dir), model, images)
}

/// [`build_command`] for the board crate in `dir` (also the benchmark boards, which are not
/// deploy targets).
pub fn build_command_in(dir: &Path, model: &Path, images: usize) -> Command {
    let mut c = cargo();
    c.current_dir(dir)
        .args(["build", "--release"])
        .env("CARGO_TARGET_DIR", root().join(BOARDS_TARGET_DIR))
        .env("SHIFTKIT_MODEL", model)
        .env("SHIFTKIT_IMAGES", images.to_string())
        .env("SHIFTKIT_IDX_IMAGES", root().join(IDX_IMAGES))
        .env("SHIFTKIT_IDX_LABELS", root().join(IDX_LABELS));
    c
}

/// The runner from the board's `.cargo/config.toml` (the one place its QEMU or probe-rs
/// command lives), split into words.
pub fn runner(board_dir: &Path) -> Result<Vec<String>, String> {
    let path = board_dir.join(".cargo/config.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cmd = text
        .lines()
        .find(|l| l.trim_start().starts_with("runner"))
        .and_then(|l| l.split_once('='))
        .map(|x| x.1.trim().trim_matches('"'))
        .ok_or_else(|| format!("{}: no runner", path.display()))?;
    let argv: Vec<String> = cmd.split_whitespace().map(String::from).collect();
    if argv.is_empty() {
        return Err(format!("{}: empty runner", path.display()));
    }
    Ok(argv)
}

/// Runs the ELF under the board's QEMU runner, killing it after `timeout`; returns stdout.
fn run_qemu(board_dir: &Path, elf: &Path, timeout: Duration) -> Result<String, String> {
    let argv = runner(board_dir)?;
    run_captured(
        &argv,
        elf,
        timeout,
        "install QEMU: apt-get install qemu-system-arm",
    )
}

/// Flashes the ELF with the board's `probe-rs run --chip ..` runner and returns the defmt log,
/// printed message-only (`--log-format {s}`) so that it has the QEMU boards' line shapes.
/// Without probe-rs, says how to install it (the build and budget are already printed).
fn run_probe(
    board_dir: &Path,
    chip: &str,
    elf: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let installed = Command::new("probe-rs")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return Err(format!(
            "probe-rs is not installed, so {} was built but not flashed: install it with \
             `{PROBE_RS_INSTALL}` (about 6 minutes), connect the board ({chip}) over its debug \
             probe, and run this command again",
            elf.display()
        ));
    }
    let mut argv = runner(board_dir)?;
    argv.extend(["--log-format".to_string(), "{s}".to_string()]);
    println!("flashing with: {} {}", argv.join(" "), elf.display());
    run_captured(&argv, elf, timeout, PROBE_RS_INSTALL)
}

/// Runs `argv` + `elf` through [`run_timed`].
fn run_captured(
    argv: &[String],
    elf: &Path,
    timeout: Duration,
    install: &str,
) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the board's runner is empty".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args).arg(elf);
    run_timed(cmd, timeout, install)
}

/// Runs `cmd` with stdout captured and stderr passed through, killing it after `timeout`;
/// prints the device's header, image, calibration and error lines and returns all of stdout.
/// `install` is the hint if the program cannot be started.
pub fn run_timed(mut cmd: Command, timeout: Duration, install: &str) -> Result<String, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {program}: {e} ({install})"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("{program}: {e}"))? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let text = reader.join().unwrap_or_default();
            return Err(format!(
                "{program} did not exit within {} s (raise --timeout); its output:\n{text}",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap_or_default();
    for l in text.lines().filter(|l| {
        ["image ", "shiftkit ", "calibration ", "error"]
            .iter()
            .any(|p| l.starts_with(p))
    }) {
        println!("{l}");
    }
    if !status.success() {
        return Err(format!(
            "{program} exited with {status} after {:.1} s; its output:\n{text}",
            start.elapsed().as_secs_f64()
        ));
    }
    println!("({program} ran {:.1} s)", start.elapsed().as_secs_f64());
    Ok(text)
}

/// Parses the board's report lines (shapes in `boards/app/src/lib.rs`; the cost is the
/// last number of a `layer`/`total` line, so `layer I KIND ns T` from `boards/jetson` parses too).
pub fn parse(out: &str, n: usize) -> Result<DeviceRun, String> {
    let mut d = DeviceRun::default();
    let bad = |l: &str| format!("cannot parse the board's line: {l}");
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.first().copied() {
            Some("image") => {
                // image I label L pred P logits [a, b, ..]
                let (label, pred) = match (w.get(3), w.get(5)) {
                    (Some(l), Some(p)) => (l.parse().ok(), p.parse().ok()),
                    _ => (None, None),
                };
                let list = l
                    .trim_end()
                    .split_once('[')
                    .and_then(|x| x.1.strip_suffix(']'));
                let logits: Option<Vec<i8>> =
                    list.map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect());
                match (label, pred, logits) {
                    (Some(a), Some(b), Some(c)) => d.images.push((a, b, c)),
                    _ => return Err(bad(l)),
                }
            }
            Some("layer") => {
                // layer I KIND ticks T qemu_instructions Q  |  layer I KIND ns T
                let q = w
                    .last()
                    .filter(|_| w.len() >= 5)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(l))?;
                d.layers.push((w.get(2).unwrap_or(&"?").to_string(), q));
            }
            Some("total") => {
                // total ticks T qemu_instructions_per_inference Q  |  total ns T ns_per_inference Q
                d.per_inference = w
                    .last()
                    .filter(|_| w.len() >= 5)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(l))?;
                d.per_inference_name = w.get(3).unwrap_or(&"per_inference").to_string();
            }
            Some("memory") => {
                // memory model_bytes M arena_bytes A stack_bytes S
                if let Some(i) = w.iter().position(|&k| k == "stack_bytes") {
                    d.stack_bytes = Some(
                        w.get(i + 1)
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| bad(l))?,
                    );
                }
            }
            _ => {}
        }
    }
    if d.images.len() != n {
        return Err(format!(
            "the board printed {} image lines, expected {n}; its output:\n{out}",
            d.images.len()
        ));
    }
    Ok(d)
}

/// Bytes in flash and in RAM of an ELF32 (little-endian) from its section headers: allocated
/// sections that are not NOBITS occupy flash, writable or NOBITS ones occupy RAM (.data both).
fn elf_sizes(path: &Path) -> Result<(u64, u64), String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || format!("{}: not a 32-bit little-endian ELF", path.display());
    if b.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 1, 1][..]) {
        return Err(bad());
    }
    let u16_at = |o: usize| {
        b.get(o..o + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
    };
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64)
    };
    let shoff = u32_at(0x20).ok_or_else(bad)? as usize;
    let shentsize = u16_at(0x2e).ok_or_else(bad)?;
    let shnum = u16_at(0x30).ok_or_else(bad)?;
    let (mut flash, mut ram) = (0, 0);
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let kind = u32_at(h + 4).ok_or_else(bad)?;
        let flags = u32_at(h + 8).ok_or_else(bad)?;
        let size = u32_at(h + 0x14).ok_or_else(bad)?;
        const SHF_WRITE: u64 = 1;
        const SHF_ALLOC: u64 = 2;
        const SHT_NOBITS: u64 = 8;
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        if kind != SHT_NOBITS {
            flash += size;
        }
        if kind == SHT_NOBITS || flags & SHF_WRITE != 0 {
            ram += size;
        }
    }
    Ok((flash, ram))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_x_lengths() {
        let dir = std::env::temp_dir().join(format!("xtask-memx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("memory.x");
        std::fs::write(
            &p,
            "MEMORY\n{\n  FLASH : ORIGIN = 0x08000000, LENGTH = 1M\n  RAM : ORIGIN = 0x20000000, LENGTH = 0x50000\n}\n",
        )
        .unwrap();
        assert_eq!(memory_x(&p).unwrap(), (1 << 20, 0x50000));
        let _ = std::fs::remove_dir_all(&dir);
        let board = root().join("boards/qemu-an386/memory.x");
        assert_eq!(memory_x(&board).unwrap(), (4 << 20, 4 << 20));
    }

    #[test]
    fn every_board_has_its_datasheet_memory() {
        // (flash, RAM) of the image: QEMU machine maps and the chips' datasheets; the RP2040's
        // flash is the Pico's 2 MiB less the 256-byte second-stage bootloader.
        let want = [
            ("qemu-an386", 4 << 20, 4 << 20),
            ("qemu-an500", 4 << 20, 4 << 20),
            ("qemu-an505", 4 << 20, 4 << 20),
            ("stm32f746g-disco", 1 << 20, 320 << 10),
            ("nrf52840-dk", 1 << 20, 256 << 10),
            ("rp-pico", (2 << 20) - 256, 256 << 10),
        ];
        assert_eq!(BOARDS.len(), want.len());
        for (b, (name, flash, ram)) in BOARDS.iter().zip(want) {
            assert_eq!(b.name, name);
            assert_eq!(b.dir, format!("boards/{name}"));
            let got = memory_x(&root().join(b.dir).join("memory.x")).unwrap();
            assert_eq!(got, (flash, ram), "{name}");
            let runner = runner(&root().join(b.dir)).unwrap();
            match b.run {
                Run::Qemu => assert_eq!(runner[0], "qemu-system-arm", "{name}"),
                Run::Probe { chip } => {
                    assert_eq!(runner[..4], ["probe-rs", "run", "--chip", chip], "{name}")
                }
            }
        }
    }

    #[test]
    fn a_big_model_is_refused_for_the_real_boards() {
        // The figures of a quantized cifar-flat-4c (1135604-byte .skq, 198784-byte arena) with
        // 20 CIFAR images (3072 pixels + 1 label each); each board's numbers are its memory.x.
        let budget = |name: &str| {
            let b = BOARDS.iter().find(|b| b.name == name).unwrap();
            let mem = memory_x(&root().join(b.dir).join("memory.x")).unwrap();
            check_budget(name, mem, 1_135_604, 20 * 3073, 198_784)
        };
        let e = budget("stm32f746g-disco").unwrap_err();
        assert!(
            e.contains(
                "flash needs 1197064 B (model 1135604 + images 61460) of 1048576 B (148488 B over)"
            ),
            "{e}"
        );
        assert!(e.contains("of 327680 B (fits)"), "{e}");
        let e = budget("nrf52840-dk").unwrap_err();
        assert!(e.contains("of 1048576 B (148488 B over)"), "{e}");
        assert!(
            e.contains(
                "RAM needs 215168 B (arena 198784 + stack reserve 16384) of 262144 B (fits)"
            ),
            "{e}"
        );
        // The Pico has 2 MiB of flash: this one fits.
        assert!(budget("rp-pico").is_ok());
    }

    #[test]
    fn too_big_is_refused_with_numbers() {
        let e = check_budget("tiny", (64 * 1024, 32 * 1024), 41436, 15700, 43904).unwrap_err();
        assert!(e.contains("does not fit tiny"), "{e}");
        assert!(e.contains("RAM needs 60288 B (arena 43904"), "{e}");
        assert!(check_budget("big", (4 << 20, 4 << 20), 41436, 15700, 43904).is_ok());
    }

    #[test]
    fn parses_board_lines() {
        let out = "shiftkit qemu-an386: ...\n\
                   image 0 label 7 pred 7 logits [-1, 2, 127, -128]\n\
                   accuracy 1/1\n\
                   layer 0 conv3x3 ticks 10 qemu_instructions 400\n\
                   total ticks 12 qemu_instructions_per_inference 480\n\
                   memory model_bytes 9 arena_bytes 8 stack_bytes 4032\n";
        let d = parse(out, 1).unwrap();
        assert_eq!(d.images, vec![(7, 7, vec![-1, 2, 127, -128])]);
        assert_eq!(d.layers, vec![("conv3x3".to_string(), 400)]);
        assert_eq!(d.per_inference, 480);
        assert_eq!(d.per_inference_name, "qemu_instructions_per_inference");
        assert_eq!(d.stack_bytes, Some(4032));
        assert!(parse(out, 2).is_err());
        // probe-rs prints the defmt frames of the real boards the same way (--log-format {s}).
        let real = "image 0 label 7 pred 7 logits [-1, 2, 127, -128] \n\
                    total ticks 1200 cycles_per_inference 1200\n";
        let d = parse(real, 1).unwrap();
        assert_eq!(d.images[0].2, vec![-1, 2, 127, -128]);
        assert_eq!(d.per_inference_name, "cycles_per_inference");
    }
}
