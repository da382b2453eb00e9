//! The model and test digits embedded (`boards/embed`, with this crate's `memory.x`), and
//! Espressif's ESP-NN portable C kernels compiled from source with Debian's RISC-V gcc
//! (`riscv64-unknown-elf-gcc -march=rv32imc -mabi=ilp32`, picolibc's headers).
//!
//! Environment (`cargo xtask bench peer --engine esp-nn` sets them):
//! - `ESP_NN_DIR`: an ESP-NN source tree (its `include/` and `src/`);
//! - `ESP_NN_OPT`: the C optimisation level, `-O` + this (default `2`, as ESP-NN's CMakeLists);
//! - `ESP_NN_KERNELS`: `ansi` (every kernel the `_ansi` reference, default) or `opt` (the conv
//!   ESP-NN's `esp_nn.h` picks on a chip without its assembly, `esp_nn_conv_s8_opt`, e.g. the
//!   ESP32-C3 with `CONFIG_NN_OPTIMIZED`; the other kernels are `_ansi` there too);
//! - `PEER_RUST_ONLY=1`: skip ESP-NN, for `cargo check` of the Rust side.
#![forbid(unsafe_code)]
use std::{env, path::Path};

/// The ESP-NN files for our op kinds (conv, add, average and max pool, fully connected).
const SOURCES: [&str; 6] = [
    "src/convolution/esp_nn_conv_ansi.c",
    "src/convolution/esp_nn_conv_opt.c",
    "src/basic_math/esp_nn_add_ansi.c",
    "src/pooling/esp_nn_avg_pool_ansi.c",
    "src/pooling/esp_nn_max_pool_ansi.c",
    "src/fully_connected/esp_nn_fully_connected_ansi.c",
];

fn main() {
    embed::build_script();
    if let Err(e) = esp_nn() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn esp_nn() -> Result<(), String> {
    println!("cargo:rustc-check-cfg=cfg(esp_nn_opt)");
    println!("cargo:rerun-if-env-changed=PEER_RUST_ONLY");
    println!("cargo:rerun-if-env-changed=ESP_NN_KERNELS");
    match env::var("ESP_NN_KERNELS").as_deref() {
        Ok("opt") => println!("cargo:rustc-cfg=esp_nn_opt"),
        Ok("ansi") | Err(_) => {}
        Ok(other) => return Err(format!("ESP_NN_KERNELS={other}: expected ansi or opt")),
    }
    if env::var("PEER_RUST_ONLY").is_ok_and(|v| v == "1") {
        println!(
            "cargo:warning=PEER_RUST_ONLY=1: ESP-NN not compiled (check only; this cannot link)"
        );
        return Ok(());
    }
    println!("cargo:rerun-if-env-changed=ESP_NN_DIR");
    println!("cargo:rerun-if-env-changed=ESP_NN_OPT");
    let dir = env::var("ESP_NN_DIR").map_err(|_| {
        "ESP_NN_DIR is not set: it names an ESP-NN source tree (`cargo xtask bench peer --engine esp-nn` fetches one)"
            .to_string()
    })?;
    let dir = Path::new(&dir);
    let opt = env::var("ESP_NN_OPT").unwrap_or_else(|_| "2".into());
    let mut build = cc::Build::new();
    build
        .compiler("riscv64-unknown-elf-gcc")
        .archiver("riscv64-unknown-elf-ar")
        .no_default_flags(true)
        .include(dir.join("include"))
        .include(dir.join("src/common"))
        // `no_default_flags` drops the `-O` that `opt_level_str` would add: given here.
        .flag(format!("-O{opt}"))
        .flag("-march=rv32imc")
        .flag("-mabi=ilp32")
        .flag("-mcmodel=medany")
        .flag("--specs=picolibc.specs")
        .flag("-ffunction-sections")
        .flag("-fdata-sections")
        .warnings(false);
    for f in SOURCES {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(format!(
                "{}: missing (not an ESP-NN source tree?)",
                p.display()
            ));
        }
        println!("cargo:rerun-if-changed={}", p.display());
        build.file(p);
    }
    build.try_compile("esp_nn").map_err(|e| {
        format!(
            "compiling ESP-NN from {}: {e} (is riscv64-unknown-elf-gcc installed? Debian: gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf)",
            dir.display()
        )
    })
}
