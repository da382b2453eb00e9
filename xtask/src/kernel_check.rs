//! The fast kernels under QEMU, as `cargo xtask test` runs them: `boards/kernel-check` runs the
//! firmware's random conv cases (the fast kernel with the real DSP instructions against the
//! portable reference, bit-exactly) on a Cortex-M4 (`mps2-an386`), a Cortex-M7 (`mps2-an500`,
//! the same thumbv7em image) and a Cortex-M33 (`mps2-an505`, thumbv8m.main built with `+dsp`),
//! and the thumbv6m build (Cortex-M0/M0+, the scalar unit) on the Cortex-M4 machine, which runs
//! ARMv6-M code as is (QEMU's mps2 boards take no M0 core). Each run exits non-zero on a
//! mismatch or if the expected unit (DSP, or scalar on thumbv6m) was not compiled in.
use crate::{cargo, root};
use std::process::Command;

const DIR: &str = "boards/kernel-check";
/// Seconds one QEMU run may take (it needs about one).
const QEMU_TIMEOUT: &str = "120";

fn qemu(cpu: &str, machine: &str, elf: &str) -> Command {
    let mut c = Command::new("timeout");
    c.current_dir(root().join(DIR)).args([
        QEMU_TIMEOUT,
        "qemu-system-arm",
        "-cpu",
        cpu,
        "-machine",
        machine,
        "-nographic",
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-kernel",
        elf,
    ]);
    c
}

/// The build and run steps, in order, named for the test report.
pub fn steps() -> Vec<(String, Command)> {
    let mut v = Vec::new();
    let mut b7 = cargo();
    b7.current_dir(root().join(DIR))
        .args(["build", "--release"]);
    v.push(("kernel-check build (thumbv7em)".to_string(), b7));
    let mut c = cargo();
    c.current_dir(root().join(DIR))
        .args(["clippy", "--release", "--", "-D", "warnings"]);
    v.push(("clippy (kernel-check, thumbv7em)".to_string(), c));
    let elf7 = "target/thumbv7em-none-eabihf/release/kernel-check";
    v.push((
        "fast kernels bit-exact on QEMU Cortex-M4 (mps2-an386)".into(),
        qemu("cortex-m4", "mps2-an386", elf7),
    ));
    v.push((
        "fast kernels bit-exact on QEMU Cortex-M7 (mps2-an500)".into(),
        qemu("cortex-m7", "mps2-an500", elf7),
    ));
    let mut b6 = cargo();
    b6.current_dir(root().join(DIR)).args([
        "build",
        "--release",
        "--target",
        "thumbv6m-none-eabi",
        "--target-dir",
        "target/m0",
    ]);
    v.push(("kernel-check build (thumbv6m)".into(), b6));
    // (Its clippy runs for thumbv7em above; the firmware's own thumbv6m clippy is a step of
    // test.rs.)
    v.push((
        "scalar fast kernel bit-exact, thumbv6m build on QEMU Cortex-M4 (mps2-an386)".into(),
        qemu(
            "cortex-m4",
            "mps2-an386",
            "target/m0/thumbv6m-none-eabi/release/kernel-check",
        ),
    ));
    let mut b33 = cargo();
    b33.current_dir(root().join(DIR))
        .env("KERNEL_CHECK_MEMORY", "../qemu-an505/memory.x")
        .env("RUSTFLAGS", "-C link-arg=-Tlink.x -C target-feature=+dsp")
        .args([
            "build",
            "--release",
            "--target",
            "thumbv8m.main-none-eabihf",
            "--target-dir",
            "target/m33",
        ]);
    v.push(("kernel-check build (thumbv8m.main+dsp)".into(), b33));
    v.push((
        "fast kernels bit-exact on QEMU Cortex-M33 (mps2-an505)".into(),
        qemu(
            "cortex-m33",
            "mps2-an505",
            "target/m33/thumbv8m.main-none-eabihf/release/kernel-check",
        ),
    ));
    // RV32IMC: the same cases through the scalar unit, a second binary of the qemu-riscv32 board
    // (its runner is QEMU virt; the exit code comes back through semihosting).
    let mut rv = cargo();
    // The board's build script embeds a model even for this binary, and these steps run before
    // the pipeline makes runs/default: the shipped example model serves.
    rv.current_dir(root().join("boards/qemu-riscv32"))
        .env("CARGO_TARGET_DIR", root().join("target/boards"))
        .env(
            "SHIFTKIT_MODEL",
            root().join("firmware/examples/mnist-flat-4c.skq"),
        )
        .args([
            "run",
            "--release",
            "--features",
            "kernel-check",
            "--bin",
            "kernel-check",
        ]);
    v.push((
        "scalar fast kernel bit-exact on QEMU RV32IMC (virt)".into(),
        rv,
    ));
    v
}
