//! Puts the machine's `memory.x` on the linker path: `KERNEL_CHECK_MEMORY` names the file
//! (default: the mps2-an386 map, which mps2-an500 shares). Also names the MAC unit the build
//! must have (`KERNEL_CHECK_UNIT`): `scalar` on thumbv6m (Cortex-M0/M0+, no DSP), else `dsp`.
#![forbid(unsafe_code)]
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=KERNEL_CHECK_MEMORY");
    let src = env::var("KERNEL_CHECK_MEMORY").unwrap_or_else(|_| "../qemu-an386/memory.x".into());
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Err(e) = fs::copy(&src, out.join("memory.x")) {
        eprintln!("error: {src}: {e} (set KERNEL_CHECK_MEMORY to a memory.x)");
        std::process::exit(1);
    }
    println!("cargo:rustc-link-search={}", out.display());
    let target = env::var("TARGET").unwrap_or_default();
    let unit = if target.starts_with("thumbv6m") {
        "scalar"
    } else {
        "dsp"
    };
    println!("cargo:rustc-env=KERNEL_CHECK_UNIT={unit}");
}
