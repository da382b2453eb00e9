//! `cargo xtask test`: everything CI runs. Steps are data; every failure is collected and
//! reported together at the end.
use crate::{cargo, run};

/// no_std targets the firmware crate must build for (DESIGN.md).
pub const FIRMWARE_TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
    "aarch64-unknown-linux-gnu",
];

pub fn main(_args: Vec<String>) -> Result<(), String> {
    let mut steps: Vec<(String, std::process::Command)> = Vec::new();
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    steps.push(("rustfmt".into(), fmt));
    let mut t = cargo();
    t.args(["test", "--workspace", "--no-fail-fast"]);
    steps.push(("workspace tests".into(), t));
    for target in FIRMWARE_TARGETS {
        let mut b = cargo();
        b.args(["build", "--release", "-p", "firmware", "--target", target]);
        steps.push((format!("firmware build for {target}"), b));
    }
    let mut failed = Vec::new();
    for (name, cmd) in steps {
        println!("== xtask test: {name}");
        if let Err(e) = run(cmd) {
            failed.push(format!("{name}: {e}"));
        }
    }
    if failed.is_empty() {
        println!("== xtask test: all steps passed");
        Ok(())
    } else {
        Err(format!(
            "{} step(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        ))
    }
}
