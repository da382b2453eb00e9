//! `cargo xtask bench peer [--images N] [--opt 3,2,s] [--nets ..] [--cmsis-nn DIR]`: shiftkit
//! next to Arm's CMSIS-NN, the kernels TFLite Micro runs on a Cortex-M, in one QEMU run per
//! network and C optimisation level (`boards/peer-cmsis-nn`, mps2-an386, Cortex-M4). The
//! networks are those of `bench firmware`: the default `mnist-flat-4c` and MLPerf Tiny's
//! ResNet-8 and its 4C shift version (trained there on synthetic data if missing).
//!
//! The board runs every image through both engines, times each layer in QEMU instructions, and
//! compares every layer's output bit for bit; a difference fails the benchmark. CMSIS-NN comes
//! from `--cmsis-nn DIR`, else `CMSIS_NN_DIR`, else `target/peers/CMSIS-NN`, which this command
//! clones at tag [`CMSIS_NN_TAG`] the first time (git and network access needed). It is compiled
//! with `arm-none-eabi-gcc` (Debian: `gcc-arm-none-eabi libnewlib-arm-none-eabi`).
//! Results land in `target/bench-peer/results.md` (the table is also printed).
//!
//! `--core m0` builds both sides for thumbv6m (Cortex-M0+ code: shiftkit's scalar unit,
//! CMSIS-NN's non-DSP C path with `-mcpu=cortex-m0plus`), run on the same QEMU Cortex-M4
//! (`target/bench-peer/results-m0.md`).
//!
//! `--engine tflm` runs TFLite Micro whole instead, on the exported `.tflite` ([`tflm`]).
//! `--engine esp-nn` runs Espressif's ESP-NN portable C kernels layer by layer on QEMU RISC-V
//! instead (`boards/peer-esp-nn`, [`esp_nn`]).
use crate::bench_firmware::{op_macs, positive, prepare, NETS};
use crate::boards::runner;
use crate::deploy::build::{build_command_in, build_executable, run_timed};
use crate::{deploy, root};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod esp_nn;
mod tflm;

pub const CMSIS_NN_TAG: &str = "v7.0.0";
const CMSIS_NN_URL: &str = "https://github.com/ARM-software/CMSIS-NN";
const BOARD_DIR: &str = "boards/peer-cmsis-nn";

/// `cargo xtask bench peer`'s flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The peer: Arm's CMSIS-NN kernels layer by layer (`cmsis-nn`), TFLite Micro whole,
    /// with its CMSIS-NN kernels, on the exported .tflite (`tflm`), or Espressif's ESP-NN
    /// portable C kernels layer by layer on QEMU RISC-V (`esp-nn`)
    #[arg(long, default_value = "cmsis-nn", value_name = "ENGINE",
          value_parser = clap::builder::PossibleValuesParser::new(["cmsis-nn", "tflm", "esp-nn"]))]
    engine: String,
    /// Test images per run (positive) [default: 4 with cmsis-nn, 20 with tflm]
    #[arg(long, value_name = "N", value_parser = positive)]
    images: Option<usize>,
    /// gcc -O levels for CMSIS-NN, comma-separated
    #[arg(long, value_delimiter = ',', default_values = ["3", "2", "s"], value_name = "LEVELS",
          value_parser = clap::builder::PossibleValuesParser::new(["0", "1", "2", "3", "s", "z", "fast"]))]
    opt: Vec<String>,
    /// Networks, comma-separated
    #[arg(long, value_delimiter = ',', default_values = NETS,
          value_parser = clap::builder::PossibleValuesParser::new(NETS))]
    nets: Vec<String>,
    /// CMSIS-NN sources [default: $CMSIS_NN_DIR, else target/peers/CMSIS-NN, cloned if missing]
    #[arg(long, value_name = "DIR")]
    cmsis_nn: Option<PathBuf>,
    /// ESP-NN sources, for --engine esp-nn [default: $ESP_NN_DIR, else target/peers/esp-nn, cloned if missing]
    #[arg(long, value_name = "DIR")]
    esp_nn: Option<PathBuf>,
    /// ESP-NN conv kernels, for --engine esp-nn, comma-separated: the `_ansi` reference, or
    /// `esp_nn_conv_s8_opt` (what esp_nn.h picks on a chip without ESP-NN assembly)
    #[arg(long, value_delimiter = ',', default_values = ["ansi", "opt"], value_name = "KERNELS",
          value_parser = clap::builder::PossibleValuesParser::new(["ansi", "opt"]))]
    esp_nn_kernels: Vec<String>,
    /// TFLite Micro sources, for --engine tflm [default: $TFLM_DIR, else target/peers/tflite-micro, cloned if missing]
    #[arg(long, value_name = "DIR")]
    tflm: Option<PathBuf>,
    /// The code both sides are built as, for --engine cmsis-nn: Cortex-M4 (`m4`, thumbv7em:
    /// CMSIS-NN's DSP path) or Cortex-M0+ (`m0`, thumbv6m: shiftkit's scalar unit, CMSIS-NN's
    /// plain C path), either run on QEMU's Cortex-M4
    #[arg(long, default_value = "m4", value_name = "CORE",
          value_parser = clap::builder::PossibleValuesParser::new(["m4", "m0"]))]
    core: String,
}

/// How the report names a layer-by-layer peer.
struct Peer {
    name: &'static str,
    /// The report's first sentence: the machine and the counter.
    intro: &'static str,
}

const CMSIS: Peer = Peer {
    name: "CMSIS-NN",
    intro:
        "shiftkit vs CMSIS-NN on QEMU mps2-an386 (Cortex-M4), QEMU instructions per inference \
            (SysTick under -icount shift=0), CMSIS-NN built with arm-none-eabi-gcc -mcpu=cortex-m4;",
};

/// One layer: kind, MACs, and QEMU instructions per inference of each side.
#[derive(Clone, Debug)]
struct Layer {
    kind: String,
    macs: u64,
    ours: u64,
    cmsis: u64,
    copies: u64,
}

/// One run of the board: one network at one C optimisation level.
#[derive(Debug)]
struct Run {
    net: String,
    opt: String,
    layers: Vec<Layer>,
    ours: u64,
    cmsis: u64,
    copies: u64,
    exact: String,
}

pub fn main(args: &Args) -> Result<(), String> {
    let cmsis = args
        .cmsis_nn
        .clone()
        .or_else(|| std::env::var_os("CMSIS_NN_DIR").map(PathBuf::from));
    if args.engine == "tflm" {
        return tflm::main(args, cmsis);
    }
    if args.engine == "esp-nn" {
        return esp_nn::main(args);
    }
    let (images, opts, nets) = (args.images.unwrap_or(4), &args.opt, &args.nets);
    let dir = cmsis_nn_dir(cmsis)?;
    check_gcc()?;
    let work = root().join("target/bench-firmware");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;

    let board_dir = root().join(BOARD_DIR);
    let m0 = args.core == "m0";
    let target = if m0 {
        "thumbv6m-none-eabi"
    } else {
        "thumbv7em-none-eabihf"
    };
    let mut runs = Vec::new();
    for net in nets {
        let (model, idx) = prepare(net, &work)?;
        let bytes = std::fs::read(&model).map_err(|e| format!("{}: {e}", model.display()))?;
        let m = firmware::Model::from_bytes(&bytes)
            .map_err(|e| format!("{}: not a valid model: {e}", model.display()))?;
        let macs = op_macs(&m)?;
        for opt in opts {
            println!(
                "== bench peer: {net} on qemu-an386 ({target}), shiftkit vs CMSIS-NN ({}) at -O{opt}, {images} images",
                dir.display()
            );
            let mut c = build_command_in(&board_dir, &model, images);
            if let Some((images, labels)) = &idx {
                c.env("SHIFTKIT_IDX_IMAGES", images)
                    .env("SHIFTKIT_IDX_LABELS", labels);
            }
            c.env("CMSIS_NN_DIR", &dir).env("CMSIS_NN_OPT", opt);
            c.args(["--target", target]);
            let hint = format!("is {target} installed? rustup target add {target}");
            let elf = build_executable(c, &board_dir, &hint)?;
            let argv = runner(&board_dir)?;
            let (program, rest) = argv.split_first().ok_or("the board's runner is empty")?;
            let mut cmd = Command::new(program);
            cmd.args(rest).arg(&elf);
            let out = run_timed(
                cmd,
                deploy::default_timeout(images * 40),
                "install QEMU: apt-get install qemu-system-arm",
            )?;
            let run = parse(&out, net, opt, &macs)?;
            println!("{}", run.exact);
            runs.push(run);
        }
    }
    let report = report(&runs, images, &dir, &CMSIS);
    let (report, file) = if m0 {
        let r = report
            .replacen(
                "(Cortex-M4)",
                "(Cortex-M4 running thumbv6m code: Cortex-M0+)",
                1,
            )
            .replacen("-mcpu=cortex-m4", "-mcpu=cortex-m0plus (no DSP, no MVE)", 1);
        (r, "results-m0.md")
    } else {
        (report, "results.md")
    };
    let out = root().join("target/bench-peer");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join(file);
    std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("\n{report}\n(written to {})", path.display());
    Ok(())
}

/// The CMSIS-NN source tree: the one given, or `target/peers/CMSIS-NN`, cloned if missing.
fn cmsis_nn_dir(given: Option<PathBuf>) -> Result<PathBuf, String> {
    tree(
        given,
        "CMSIS-NN",
        CMSIS_NN_URL,
        CMSIS_NN_TAG,
        "Include/arm_nnfunctions.h",
        "--cmsis-nn DIR (or set CMSIS_NN_DIR)",
    )
}

/// A source tree holding `marker`: `given`, or `target/peers/NAME` (cloned at `rev`, a tag or a
/// commit, when missing).
pub(super) fn tree(
    given: Option<PathBuf>,
    name: &str,
    url: &str,
    rev: &str,
    marker: &str,
    how: &str,
) -> Result<PathBuf, String> {
    let dir = match given {
        Some(d) => d,
        None => {
            let d = root().join("target/peers").join(name);
            if !d.join(marker).is_file() {
                println!("== cloning {url} at {rev} into {}", d.display());
                if !clone(url, rev, &d) {
                    return Err(format!(
                        "could not clone {url} (at {rev}) into {}: fetch it yourself and pass {how}",
                        d.display()
                    ));
                }
            }
            d
        }
    };
    if !dir.join(marker).is_file() {
        return Err(format!(
            "{}: not a {name} source tree (no {marker})",
            dir.display()
        ));
    }
    dir.canonicalize()
        .map_err(|e| format!("{name} directory {}: {e}", dir.display()))
}

/// `git clone` of one revision: a shallow fetch of the tag or commit, then a detached checkout.
fn clone(url: &str, rev: &str, dir: &Path) -> bool {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    std::fs::create_dir_all(dir).is_ok()
        && git(&["init", "-q"])
        && git(&["fetch", "-q", "--depth", "1", url, rev])
        && git(&["checkout", "-q", "--detach", "FETCH_HEAD"])
}

/// The Arm C compiler the CMSIS-NN and TFLM peers need.
fn check_gcc() -> Result<(), String> {
    check_compiler(
        "arm-none-eabi-gcc",
        "CMSIS-NN",
        "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    )
}

/// Whether `gcc --version` runs; else what compiles `peer` and the Debian packages to install.
pub(super) fn check_compiler(gcc: &str, peer: &str, packages: &str) -> Result<(), String> {
    let ok = Command::new(gcc)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{gcc} is not installed; it compiles {peer} (Debian: apt-get install {packages})"
        ))
    }
}

/// Reads the board's `layer`, `total` and `result` lines (shapes in its `src/main.rs`).
fn parse(out: &str, net: &str, opt: &str, macs: &[(String, u64)]) -> Result<Run, String> {
    let bad = |l: &str| format!("cannot parse the peer board's line: {l}");
    let num = |w: &[&str], i: usize, l: &str| -> Result<u64, String> {
        w.get(i).and_then(|v| v.parse().ok()).ok_or_else(|| bad(l))
    };
    let mut layers = Vec::new();
    let (mut ours, mut cmsis, mut copies, mut exact) = (0, 0, 0, None);
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.first().copied() {
            // layer I KIND ours U cmsis U copies U
            Some("layer") => {
                let i: usize = num(&w, 1, l)? as usize;
                let (kind, m) = macs.get(i).cloned().ok_or_else(|| bad(l))?;
                if w.get(2) != Some(&kind.as_str()) {
                    return Err(format!("{}: the model's op {i} is a {kind}", bad(l)));
                }
                layers.push(Layer {
                    kind,
                    macs: m,
                    ours: num(&w, 4, l)?,
                    cmsis: num(&w, 6, l)?,
                    copies: num(&w, 8, l)?,
                });
            }
            // total ours U cmsis U copies U
            Some("total") => {
                ours = num(&w, 2, l)?;
                cmsis = num(&w, 4, l)?;
                copies = num(&w, 6, l)?;
            }
            // result B/N images bit-exact
            Some("result") => exact = Some(l.to_string()),
            _ => {}
        }
    }
    let exact = exact.ok_or("the peer board printed no result line")?;
    if layers.len() != macs.len() || ours == 0 {
        return Err(format!(
            "the peer board reported {} of the model's {} layers",
            layers.len(),
            macs.len()
        ));
    }
    Ok(Run {
        net: net.to_string(),
        opt: opt.to_string(),
        layers,
        ours,
        cmsis,
        copies,
        exact,
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

/// The whole inference per network and C level; then per network the op kinds at the level
/// where CMSIS-NN was fastest on it, and the first network's layers.
fn report(runs: &[Run], images: usize, dir: &Path, peer: &Peer) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} mean of {images} images, every layer's output compared bit for bit. {} from {}; \
         for it a shift is a tensor, written by a per-group copy (`copies`).\n",
        peer.intro,
        peer.name,
        dir.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default(),
    );
    let _ = writeln!(
        s,
        "| network | {n} gcc | MACs | shiftkit instr | instr/MAC | {n} instr (kernels + copies) | instr/MAC | of which copies | {n} / shiftkit | bit-exact |",
        n = peer.name
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in runs {
        let macs: u64 = r.layers.iter().map(|l| l.macs).sum();
        let _ = writeln!(
            s,
            "| {} | -O{} | {macs} | {} | {:.2} | {} | {:.2} | {} | **{:.2}x** | {} |",
            r.net,
            r.opt,
            r.ours,
            ratio(r.ours, macs),
            r.cmsis,
            ratio(r.cmsis, macs),
            r.copies,
            ratio(r.cmsis, r.ours),
            r.exact.trim_start_matches("result ")
        );
    }
    let per = |v: u64, m: u64| {
        if m > 0 {
            format!("{:.2}", ratio(v, m))
        } else {
            "-".into()
        }
    };
    let mut nets: Vec<&str> = Vec::new();
    for r in runs {
        if !nets.contains(&r.net.as_str()) {
            nets.push(&r.net);
        }
    }
    for (n, net) in nets.iter().enumerate() {
        let Some(best) = runs
            .iter()
            .filter(|r| r.net == *net)
            .min_by_key(|r| r.cmsis)
        else {
            continue;
        };
        let _ = writeln!(
            s,
            "\n{net} per op kind, {} at -O{} (its fastest on it):\n",
            peer.name, best.opt
        );
        let _ = writeln!(
            s,
            "| op kind | MACs | shiftkit instr | instr/MAC | {n} instr | instr/MAC | copies | {n} / shiftkit |",
            n = peer.name
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
        let mut kinds: Vec<&str> = Vec::new();
        for l in &best.layers {
            if !kinds.contains(&l.kind.as_str()) {
                kinds.push(&l.kind);
            }
        }
        for k in kinds {
            let (m, o, c, cp) = best
                .layers
                .iter()
                .filter(|l| l.kind == k)
                .fold((0, 0, 0, 0), |a, l| {
                    (a.0 + l.macs, a.1 + l.ours, a.2 + l.cmsis, a.3 + l.copies)
                });
            let _ = writeln!(
                s,
                "| {k} | {m} | {o} | {} | {c} | {} | {cp} | {:.2}x |",
                per(o, m),
                per(c, m),
                ratio(c, o)
            );
        }
        if n > 0 {
            continue;
        }
        let _ = writeln!(s, "\n{net} per layer, {} at -O{}:\n", peer.name, best.opt);
        let _ = writeln!(
            s,
            "| # | op | MACs | shiftkit instr | {n} instr | copies | {n} / shiftkit |",
            n = peer.name
        );
        let _ = writeln!(s, "|---:|---|---:|---:|---:|---:|---:|");
        for (i, l) in best.layers.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {i} | {} | {} | {} | {} | {} | {:.2}x |",
                l.kind,
                l.macs,
                l.ours,
                l.cmsis,
                l.copies,
                ratio(l.cmsis, l.ours)
            );
        }
    }
    s
}
