//! The model and test digits embedded (`boards/embed`, with this crate's `memory.x`: the
//! mps2-an386 map), and Arm's CMSIS-NN compiled from source with `arm-none-eabi-gcc`.
//!
//! Environment (`cargo xtask bench peer` sets them):
//! - `CMSIS_NN_DIR`: a CMSIS-NN source tree (its `Include/` and `Source/`);
//! - `CMSIS_NN_OPT`: the C optimisation level, `-O` + this (default `3`);
//! - `PEER_RUST_ONLY=1`: skip CMSIS-NN, for `cargo check` of the Rust side (`cargo xtask test`
//!   does this; a link would fail on the missing CMSIS-NN symbols).
#![forbid(unsafe_code)]
use std::{env, fs, path::Path};

/// The kernel families TFLite Micro's CMSIS-NN ops call for our op kinds; their support code.
const FAMILIES: [&str; 5] = [
    "ConvolutionFunctions",
    "FullyConnectedFunctions",
    "BasicMathFunctions",
    "PoolingFunctions",
    "NNSupportFunctions",
];

fn main() {
    embed::build_script();
    if let Err(e) = cmsis_nn() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn cmsis_nn() -> Result<(), String> {
    println!("cargo:rerun-if-env-changed=PEER_RUST_ONLY");
    if env::var("PEER_RUST_ONLY").is_ok_and(|v| v == "1") {
        println!(
            "cargo:warning=PEER_RUST_ONLY=1: CMSIS-NN not compiled (check only; this cannot link)"
        );
        return Ok(());
    }
    println!("cargo:rerun-if-env-changed=CMSIS_NN_DIR");
    println!("cargo:rerun-if-env-changed=CMSIS_NN_OPT");
    let dir = env::var("CMSIS_NN_DIR").map_err(|_| {
        "CMSIS_NN_DIR is not set: it names a CMSIS-NN source tree (`cargo xtask bench peer` fetches one)"
            .to_string()
    })?;
    let dir = Path::new(&dir);
    let opt = env::var("CMSIS_NN_OPT").unwrap_or_else(|_| "3".into());
    // thumbv6m (`bench peer --core m0`): Cortex-M0+, no __ARM_FEATURE_DSP, so CMSIS-NN
    // compiles its plain C path (no ARM_MATH_DSP, no MVE); otherwise the Cortex-M4 with its DSP.
    let target = env::var("TARGET").unwrap_or_default();
    let cpu: &[&str] = if target.starts_with("thumbv6m") {
        &["-mcpu=cortex-m0plus", "-mfloat-abi=soft"]
    } else {
        &["-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    };
    let mut build = cc::Build::new();
    build
        .compiler("arm-none-eabi-gcc")
        .include(dir.join("Include"))
        .opt_level_str(&opt)
        .flag("-mthumb");
    for f in cpu {
        build.flag(f);
    }
    build
        .flag("-ffunction-sections")
        .flag("-fdata-sections")
        .warnings(false);
    let mut n = 0;
    for family in FAMILIES {
        let src = dir.join("Source").join(family);
        let entries = fs::read_dir(&src).map_err(|e| format!("{}: {e}", src.display()))?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                // Integer kernels only (our op kinds are int8).
                name.ends_with(".c") && !name.ends_with("_f16.c") && !name.ends_with("_f32.c")
            })
            .collect();
        files.sort();
        for f in files {
            println!("cargo:rerun-if-changed={}", f.display());
            build.file(f);
            n += 1;
        }
    }
    if n == 0 {
        return Err(format!(
            "{}: no CMSIS-NN sources under Source/",
            dir.display()
        ));
    }
    build
        .try_compile("cmsis_nn")
        .map_err(|e| format!("compiling CMSIS-NN from {}: {e} (is arm-none-eabi-gcc installed? Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi)", dir.display()))
}
