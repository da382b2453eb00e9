//! `cargo xtask bench firmware [--images N] [--boards B,..] [--nets N,..]`: QEMU instruction
//! counts of the firmware, fast kernels next to the portable ones, in one run.
//!
//! For each network (the default `mnist-flat-4c` from `runs/default`, and MLPerf Tiny's ResNet-8
//! `resnet8` and its 4C shift version `resnet8-4c`) and each QEMU board (Cortex-M4 `qemu-an386`,
//! its ARMv6-M build `qemu-an386-m0` (Cortex-M0/M0+ code on QEMU's Cortex-M4), M7 `qemu-an500`,
//! M33 `qemu-an505`, RV32IMC `qemu-riscv32`), the board is built and run twice
//! through `cargo xtask deploy` (so every int8 logit is also checked against the host engine):
//! once with this build's fast kernels, once with `SHIFTKIT_KERNELS=portable`
//! (firmware/build.rs); on RISC-V and ARMv6-M the fast build runs the scalar unit (`fast::scalar`). Each op's QEMU instructions per inference (SysTick, or
//! `minstret` on RISC-V) are divided by its MACs.
//!
//! The ResNet-8 models are trained for one epoch on synthetic CIFAR-10-shaped data (random
//! pixels, fixed seed) and quantized as usual: instruction counts do not depend on the weights'
//! values, only on the shapes. Everything lands in `target/bench-firmware/` (`results.json`,
//! `results.md`, the table also printed).
use crate::{boards, deploy};
use crate::{pass_through, root, shiftkit_quantize, shiftkit_train};
use firmware::format::Op;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const BOARDS: [&str; 5] = [
    "qemu-an386",
    "qemu-an386-m0",
    "qemu-an500",
    "qemu-an505",
    "qemu-riscv32",
];
pub(crate) const NETS: [&str; 3] = ["default", "resnet8", "resnet8-4c"];
/// Synthetic CIFAR-10 records per training batch file (5 files) and in the test file.
const SYNTH_RECORDS: usize = 128;

/// One network on one board: per-op figures and the whole inference, fast and portable.
#[derive(Debug)]
struct Run {
    net: String,
    board: String,
    layers: Vec<Layer>,
    fast: u64,
    portable: u64,
    elf_flash_bytes: u64,
    model_bytes: usize,
    /// `Model::from_bytes` and its memory-plan check (fast build), from the `load` line.
    load: Option<(u64, u64)>,
}

/// One op of one run: kind, MACs, instructions per inference.
#[derive(Clone, Debug)]
struct Layer {
    kind: String,
    macs: u64,
    fast: u64,
    portable: u64,
}

/// `cargo xtask bench firmware`'s flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Test images per run (positive)
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = positive)]
    images: usize,
    /// QEMU boards, comma-separated
    #[arg(long, value_delimiter = ',', default_values = BOARDS,
          value_parser = clap::builder::PossibleValuesParser::new(BOARDS))]
    boards: Vec<String>,
    /// Networks, comma-separated
    #[arg(long, value_delimiter = ',', default_values = NETS,
          value_parser = clap::builder::PossibleValuesParser::new(NETS))]
    nets: Vec<String>,
}

pub fn main(args: &Args) -> Result<(), String> {
    let (images, boards, nets) = (args.images, &args.boards, &args.nets);
    for board in boards {
        if !boards::qemu_available(board) {
            let b = boards::find(board)?;
            let program = boards::runner(&root().join(b.dir))?.remove(0);
            return Err(format!(
                "{program} is not installed ({board}; apt-get install {})",
                boards::qemu_package(&program)
            ));
        }
    }
    let work = root().join("target/bench-firmware");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;

    let mut results = Vec::new();
    for net in nets {
        let (model, idx) = prepare(net, &work)?;
        let bytes = std::fs::read(&model).map_err(|e| format!("{}: {e}", model.display()))?;
        let m = firmware::Model::from_bytes(&bytes)
            .map_err(|e| format!("{}: not a valid model: {e}", model.display()))?;
        let macs = op_macs(&m)?;
        for board in boards {
            let fast = run(board, &model, images, idx.as_ref(), false)?;
            let portable = run(board, &model, images, idx.as_ref(), true)?;
            let layers = macs
                .iter()
                .enumerate()
                .map(|(i, (kind, macs))| Layer {
                    kind: kind.clone(),
                    macs: *macs,
                    fast: fast.layers.get(i).map_or(0, |l| l.1),
                    portable: portable.layers.get(i).map_or(0, |l| l.1),
                })
                .collect::<Vec<_>>();
            results.push(Run {
                net: net.clone(),
                board: board.clone(),
                layers,
                fast: fast.per_inference,
                portable: portable.per_inference,
                elf_flash_bytes: fast.elf_flash_bytes,
                model_bytes: fast.model_bytes,
                load: fast.load,
            });
        }
    }
    let md = report(&results, images);
    println!("\n{md}");
    let json: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "net": r.net, "board": r.board, "images": images,
                "fast_per_inference": r.fast, "portable_per_inference": r.portable,
                "elf_flash_bytes": r.elf_flash_bytes, "model_bytes": r.model_bytes,
                "load": r.load.map(|l| l.0), "plan_check": r.load.map(|l| l.1),
                "layers": r.layers.iter().map(|l| serde_json::json!({
                    "kind": l.kind, "macs": l.macs, "fast": l.fast, "portable": l.portable
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let write = |name: &str, text: String| {
        let p = work.join(name);
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    write(
        "results.json",
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())? + "\n",
    )?;
    write("results.md", md)?;
    println!("wrote target/bench-firmware/results.json and results.md");
    Ok(())
}

/// `--images N`: a positive whole number.
pub(crate) fn positive(v: &str) -> Result<usize, String> {
    v.parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| "expected a positive whole number".to_string())
}

/// The model of `net`, and the IDX images/labels it needs (`None`: the bundled MNIST digits).
pub(crate) fn prepare(
    net: &str,
    work: &Path,
) -> Result<(PathBuf, Option<(PathBuf, PathBuf)>), String> {
    if net == "default" {
        let model = root().join("runs/default/model.skq");
        if !model.is_file() {
            return Err(format!(
                "{}: missing (run `cargo xtask pipeline` first)",
                model.display()
            ));
        }
        return Ok((model, None));
    }
    let cifar = work.join("cifar10-synthetic");
    let idx = synthetic_cifar(&cifar)?;
    let dir = work.join(net);
    let model = dir.join("model.skq");
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = dir.display().to_string();
    if !dir.join("weights.safetensors").is_file() {
        println!("== bench firmware: train {net} for one epoch on synthetic CIFAR-10 data");
        let data = format!("cifar10:{}", cifar.display());
        pass_through(shiftkit_train(&s(&[
            "train", "--model", net, "--data", &data, "--epochs", "1", "--batch", "32", "--quiet",
            "--out", &out,
        ])))?;
    }
    // Quantized on every run (seconds), so the model is in this build's format.
    println!("== bench firmware: quantize {net}");
    pass_through(shiftkit_quantize(&s(&["quantize", &out, "--calib", "64"])))?;
    Ok((model, Some(idx)))
}

/// Writes a CIFAR-10 binary folder of random records (fixed seed) if missing, and an IDX copy of
/// its test images (each 32x32x3 record as one 32 x 96 IDX image: the bytes the board embeds) and
/// labels. Returns the IDX paths.
fn synthetic_cifar(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    let (images, labels) = (dir.join("test-images-idx3"), dir.join("test-labels-idx1"));
    if images.is_file() && labels.is_file() {
        return Ok((images, labels));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut byte = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 24) as u8
    };
    let mut records = |n: usize| {
        let mut v = Vec::with_capacity(n * 3073);
        for _ in 0..n {
            v.push(byte() % 10);
            v.extend((0..3072).map(|_| byte()));
        }
        v
    };
    let write =
        |p: PathBuf, b: &[u8]| std::fs::write(&p, b).map_err(|e| format!("{}: {e}", p.display()));
    for i in 1..=5 {
        write(
            dir.join(format!("data_batch_{i}.bin")),
            &records(SYNTH_RECORDS),
        )?;
    }
    let test = records(SYNTH_RECORDS);
    write(dir.join("test_batch.bin"), &test)?;
    let n = SYNTH_RECORDS as u32;
    let mut idx = Vec::new();
    for v in [0x0803u32, n, 32, 96] {
        idx.extend(v.to_be_bytes());
    }
    let mut lab = Vec::new();
    for v in [0x0801u32, n] {
        lab.extend(v.to_be_bytes());
    }
    for r in test.chunks_exact(3073) {
        lab.push(r[0]);
        idx.extend(&r[1..]);
    }
    write(images.clone(), &idx)?;
    write(labels.clone(), &lab)?;
    Ok((images, labels))
}

/// (kind, MACs) per op, from the model's shapes.
pub(crate) fn op_macs(m: &firmware::Model) -> Result<Vec<(String, u64)>, String> {
    let mut v = Vec::new();
    for op in m.ops() {
        let op = op.map_err(|e| e.to_string())?;
        let t = |id: u16| m.tensor(id).map_err(|e| e.to_string());
        let macs = match op {
            Op::Conv { x, y, k, .. } => {
                let (xt, yt) = (t(x)?, t(y)?);
                yt.h as u64 * yt.w as u64 * yt.c as u64 * (k as u64).pow(2) * xt.c as u64
            }
            Op::FullyConnected { x, y, .. } => t(x)?.c as u64 * t(y)?.c as u64,
            _ => 0,
        };
        v.push((op.kind().to_string(), macs));
    }
    Ok(v)
}

/// One deploy with the fast or the portable kernels.
fn run(
    board: &str,
    model: &Path,
    images: usize,
    idx: Option<&(PathBuf, PathBuf)>,
    portable: bool,
) -> Result<deploy::Report, String> {
    println!(
        "== bench firmware: {board}, {}, {} kernels",
        model.display(),
        if portable { "portable" } else { "fast" }
    );
    let overrides = deploy::Overrides {
        kernels_portable: portable,
        idx: idx.cloned(),
    };
    deploy::deploy_with(
        board,
        model,
        images,
        deploy::default_timeout(images * 20),
        &overrides,
    )
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

/// The markdown tables: per network and board the whole inference and the conv kinds, then the
/// per-layer table of the default network on the first board.
fn report(results: &[Run], images: usize) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "QEMU instructions per inference (SysTick or RISC-V minstret under -icount shift=0, mean \
         of {images} images), fast kernels vs portable kernels, same run:\n"
    );
    let _ = writeln!(
        s,
        "| network | board | MACs | fast instr | instr/MAC | portable instr | instr/MAC | speed-up | shift-conv1x1 instr/MAC fast (portable) | ELF flash B |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let macs: u64 = r.layers.iter().map(|l| l.macs).sum();
        let (sm, sf, sp) = r
            .layers
            .iter()
            .filter(|l| l.kind == "shift-conv1x1")
            .fold((0, 0, 0), |a, l| {
                (a.0 + l.macs, a.1 + l.fast, a.2 + l.portable)
            });
        let shift = if sm > 0 {
            format!("{:.2} ({:.1})", ratio(sf, sm), ratio(sp, sm))
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {macs} | {} | {:.2} | {} | {:.1} | {:.2}x | {shift} | {} |",
            r.net,
            r.board,
            r.fast,
            ratio(r.fast, macs),
            r.portable,
            ratio(r.portable, macs),
            ratio(r.portable, r.fast),
            r.elf_flash_bytes,
        );
    }
    let _ = writeln!(
        s,
        "\nLoading the model once (`Model::from_bytes`: checksum, records, dataflow and the \
         memory-plan check), QEMU instructions, fast build:\n"
    );
    let _ = writeln!(
        s,
        "| network | board | model B | load instr | of it the plan check | share | load / inference |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    for r in results {
        let (load, check) = match r.load {
            Some((l, c)) => (l.to_string(), c.to_string()),
            None => ("not reported".into(), "-".into()),
        };
        let (l, c) = r.load.unwrap_or((0, 0));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {load} | {check} | {:.1}% | {:.2} |",
            r.net,
            r.board,
            r.model_bytes,
            100.0 * ratio(c, l),
            ratio(l, r.fast),
        );
    }
    if let Some(r) = results.first() {
        let _ = writeln!(s, "\nPer layer, {} on {}:\n", r.net, r.board);
        let _ = writeln!(
            s,
            "| # | op | MACs | fast instr | instr/MAC | portable instr | instr/MAC | speed-up |"
        );
        let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|---:|");
        for (i, l) in r.layers.iter().enumerate() {
            let per = |v: u64| {
                if l.macs > 0 {
                    format!("{:.2}", ratio(v, l.macs))
                } else {
                    "-".into()
                }
            };
            let _ = writeln!(
                s,
                "| {i} | {} | {} | {} | {} | {} | {} | {:.2}x |",
                l.kind,
                l.macs,
                l.fast,
                per(l.fast),
                l.portable,
                per(l.portable),
                ratio(l.portable, l.fast)
            );
        }
    }
    s
}
