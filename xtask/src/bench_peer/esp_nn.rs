//! `cargo xtask bench peer --engine esp-nn [--esp-nn DIR] [--esp-nn-kernels ansi,opt] [--opt ..]`:
//! shiftkit next to Espressif's ESP-NN, the kernels TFLite Micro's ESP32 port (esp-tflite-micro)
//! calls, in their portable C versions, on QEMU `virt` RV32IMC (`boards/peer-esp-nn`), one run
//! per network, conv kernel set and C optimisation level. As the CMSIS-NN run: every image
//! through both engines, each layer timed (here with `minstret`) and its output compared bit for
//! bit. ESP-NN comes from `--esp-nn DIR`, else `ESP_NN_DIR`, else `target/peers/esp-nn`, cloned at
//! [`ESP_NN_TAG`] the first time; it is compiled with `riscv64-unknown-elf-gcc -march=rv32imc
//! -mabi=ilp32` and picolibc's headers (Debian: `gcc-riscv64-unknown-elf
//! picolibc-riscv64-unknown-elf`).
use super::{parse, report, tree, Args, Peer};
use crate::bench_firmware::{op_macs, prepare};
use crate::boards::runner;
use crate::deploy::build::{build_command_in, build_executable, run_timed};
use crate::{deploy, root};
use std::path::PathBuf;
use std::process::Command;

pub const ESP_NN_TAG: &str = "v1.2.0";
const ESP_NN_URL: &str = "https://github.com/espressif/esp-nn";
const BOARD_DIR: &str = "boards/peer-esp-nn";

const ESP_NN: Peer = Peer {
    name: "ESP-NN",
    intro: "shiftkit vs ESP-NN (portable C kernels) on QEMU virt (RV32IMC), QEMU instructions per \
            inference (minstret under -icount shift=0), ESP-NN built with riscv64-unknown-elf-gcc \
            -march=rv32imc -mabi=ilp32;",
};

pub fn main(args: &Args) -> Result<(), String> {
    let (images, opts, nets) = (args.images.unwrap_or(4), &args.opt, &args.nets);
    let given = args
        .esp_nn
        .clone()
        .or_else(|| std::env::var_os("ESP_NN_DIR").map(PathBuf::from));
    let dir = tree(
        given,
        "esp-nn",
        ESP_NN_URL,
        ESP_NN_TAG,
        "include/esp_nn_ansi_headers.h",
        "--esp-nn DIR (or set ESP_NN_DIR)",
    )?;
    check_gcc()?;
    let work = root().join("target/bench-firmware");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let board_dir = root().join(BOARD_DIR);
    let mut runs = Vec::new();
    for net in nets {
        let (model, idx) = prepare(net, &work)?;
        let bytes = std::fs::read(&model).map_err(|e| format!("{}: {e}", model.display()))?;
        let m = firmware::Model::from_bytes(&bytes)
            .map_err(|e| format!("{}: not a valid model: {e}", model.display()))?;
        let macs = op_macs(&m)?;
        for kernels in &args.esp_nn_kernels {
            for opt in opts {
                println!(
                    "== bench peer: {net} on qemu virt rv32imc, shiftkit vs ESP-NN {kernels} ({}) at -O{opt}, {images} images",
                    dir.display()
                );
                let mut c = build_command_in(&board_dir, &model, images);
                if let Some((images, labels)) = &idx {
                    c.env("SHIFTKIT_IDX_IMAGES", images)
                        .env("SHIFTKIT_IDX_LABELS", labels);
                }
                c.env("ESP_NN_DIR", &dir)
                    .env("ESP_NN_OPT", opt)
                    .env("ESP_NN_KERNELS", kernels);
                let elf = build_executable(
                    c,
                    &board_dir,
                    "is riscv32imc-unknown-none-elf installed? rustup target add riscv32imc-unknown-none-elf",
                )?;
                let argv = runner(&board_dir)?;
                let (program, rest) = argv.split_first().ok_or("the board's runner is empty")?;
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(&elf);
                let out = run_timed(
                    cmd,
                    deploy::default_timeout(images * 40),
                    "install QEMU: apt-get install qemu-system-misc",
                )?;
                let run = parse(&out, net, &format!("{opt} {kernels}"), &macs)?;
                println!("{}", run.exact);
                runs.push(run);
            }
        }
    }
    let report = report(&runs, images, &dir, &ESP_NN);
    let out = root().join("target/bench-peer");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join("results-esp-nn.md");
    std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("\n{report}\n(written to {})", path.display());
    Ok(())
}

fn check_gcc() -> Result<(), String> {
    super::check_compiler(
        "riscv64-unknown-elf-gcc",
        "ESP-NN",
        "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf",
    )
}
