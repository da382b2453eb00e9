//! `cargo xtask <cmd>`: the one pipeline. Each task is a small function that calls the stage
//! binaries with cargo; CI only calls `cargo xtask test`.
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod bench_firmware;
mod bench_peer;
mod deploy;
mod jetson;
mod kernel_check;
mod measure;
mod test;

const USAGE: &str = "usage: cargo xtask <command>
  zoo [--json]                 every zoo network: params, MACs, int8 peak activation bytes, and the
                               arena of our memory plan next to a conventional engine's
  train [ARGS]                 train a network (defaults: mnist-flat-4c on the bundled MNIST, --out runs/<model>)
                               ARGS: --model NAME --data SPEC --epochs N --device cpu|cuda --out DIR --resume DIR ...
  quantize DIR [--calib N] [--method minmax|percentile|mse]
                               float run folder -> DIR/model.skq + DIR/quant-report.json
  eval MODEL.skq [--data SPEC] [--json]
                               int8 accuracy on the host through the firmware engine
  deploy --board BOARD MODEL.skq [--images N] [--timeout S]
                               check the memory budget, build the board firmware with the model;
                               QEMU boards run it, real boards are flashed with probe-rs; every int8
                               logit is compared with the host engine's (boards: qemu-an386,
                               qemu-an500, qemu-an505, stm32f746g-disco, nrf52840-dk, rp-pico)
  deploy --board jetson MODEL.skq [--images N] [--ssh USER@HOST]
                               aarch64 Linux binary: run on the board over ssh, or without --ssh
                               under qemu-aarch64 (its timings are the emulator's, not the board's)
  measure --board BOARD MODEL.skq [--images N] [--ssh USER@HOST]
                               deploy, then the per-layer cost/memory table and measure-BOARD.svg
                               (per-layer bars + arena bytes live per op) next to the model
  pipeline                     the main job on the defaults: train -> quantize -> (deploy once built)
  bench train                  one training epoch, ours vs PyTorch on the same 2 threads
  bench firmware [--images N]  QEMU instructions per layer and per MAC on Cortex-M4/M7/M33, fast
                               vs portable kernels, default net + ResNet-8 (+4C) (target/bench-firmware)
  bench peer [--images N] [--opt 3,2,s] [--nets ..] [--cmsis-nn DIR]
                               the bench firmware networks through shiftkit and through Arm's
                               CMSIS-NN (TFLite Micro's Cortex-M kernels) side by side on QEMU
                               Cortex-M4, per layer, every layer's output compared bit for bit
                               (target/bench-peer)
  test                         everything CI runs";

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, turning a failure into an error that names it.
pub fn run(mut cmd: Command) -> Result<(), String> {
    let what = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

/// Runs a stage binary whose own error line is the message: on failure nothing more is printed
/// (the empty error), and xtask exits non-zero.
pub fn pass_through(mut cmd: Command) -> Result<(), String> {
    match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(String::new()),
        Err(e) => Err(format!("could not start {cmd:?}: {e}")),
    }
}

/// `cargo run --release` of the quantizer binary with these arguments.
pub fn shiftkit_quantize(args: &[String]) -> Command {
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "quantize",
        "--bin",
        "shiftkit-quantize",
        "--",
    ]);
    c.args(args);
    c
}

/// `cargo run --release` of the trainer binary with these arguments.
pub fn shiftkit_train(args: &[String]) -> Command {
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "host-train",
        "--bin",
        "shiftkit-train",
        "--",
    ]);
    c.args(args);
    c
}

fn train(mut args: Vec<String>) -> Result<(), String> {
    if !args.iter().any(|a| a == "--out" || a == "--resume") {
        let model = args
            .iter()
            .position(|a| a == "--model")
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| "default".into());
        args.extend(["--out".into(), format!("runs/{model}")]);
    }
    let mut full = vec!["train".to_string()];
    full.extend(args);
    pass_through(shiftkit_train(&full))
}

fn pipeline() -> Result<(), String> {
    let out = "runs/default";
    let dir = root().join(out);
    println!("== pipeline 1/3: train mnist-flat-4c on the bundled MNIST (CPU) -> {out}");
    pass_through(shiftkit_train(&[
        "train".into(),
        "--out".into(),
        out.into(),
    ]))?;
    let train: serde_json::Value = read_json(&dir.join("summary.json"))?;
    println!("== pipeline 2/3: quantize {out} (int8, calibrated on the training digits)");
    pass_through(shiftkit_quantize(&["quantize".into(), out.into()]))?;
    let quant: serde_json::Value = read_json(&dir.join("quant-report.json"))?;

    let mut summary = train;
    for key in [
        "float_accuracy",
        "int8_accuracy",
        "flash_bytes",
        "arena_bytes",
    ] {
        summary[key] = quant[key].clone();
    }
    let board = "qemu-an386";
    if deploy::qemu_available(board) {
        println!("== pipeline 3/3: deploy on {board} (QEMU Cortex-M4)");
        let images = 20;
        let r = deploy::deploy(
            board,
            &dir.join("model.skq"),
            images,
            deploy::default_timeout(images),
        )?;
        summary["board"] = r.board.clone().into();
        summary["device_images"] = r.images.into();
        summary["device_accuracy"] = r.device_accuracy.into();
        summary["device_matches_host"] = r.device_matches_host.into();
        summary["qemu_instructions_per_inference"] = r.qemu_instructions_per_inference.into();
        summary["elf_flash_bytes"] = r.elf_flash_bytes.into();
        summary["elf_ram_bytes"] = r.elf_ram_bytes.into();
        let picture = measure::picture(&dir.join("model.skq"), board, &(&r).into())?;
        println!("picture: {}", picture.display());
    } else {
        println!(
            "== pipeline 3/3: deploy on {board} skipped: qemu-system-arm is not installed \
             (apt-get install qemu-system-arm, then run the pipeline again)"
        );
    }
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&path, format!("{text}\n")).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{text}");
    println!(
        "outputs: {out}/model.json, weights.safetensors, metrics.jsonl, curve.svg, model.skq, quant-report.json, summary.json, measure-{board}.svg (when deployed)"
    );
    Ok(())
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let cmd = args.next();
    let rest: Vec<String> = args.collect();
    let result = match cmd.as_deref() {
        Some("zoo") => {
            // The quantizer lists the zoo: host-train's figures plus both memory plans.
            let mut a = vec!["zoo".to_string()];
            a.extend(rest);
            pass_through(shiftkit_quantize(&a))
        }
        Some("train") => train(rest),
        Some(sub @ ("quantize" | "eval")) => {
            let mut a = vec![sub.to_string()];
            a.extend(rest);
            pass_through(shiftkit_quantize(&a))
        }
        Some("deploy") => deploy::main(rest),
        Some("measure") => measure::main(rest),
        Some("pipeline") => pipeline(),
        Some("bench") => bench::main(rest),
        Some("test") => test::main(rest),
        Some(other) => Err(format!("unknown command '{other}'\n{USAGE}")),
        None => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}
