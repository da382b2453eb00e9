//! `cargo xtask export c MODEL.skq --target TRIPLE --out DIR [--check] [--images N]`: the model
//! as a C library for any firmware. Writes into DIR `libshiftkit.a` (the `capi/` crate built for
//! TRIPLE with its fast kernels, panic=abort), `shiftkit.h` (the committed, cbindgen-generated
//! `capi/include/shiftkit.h`), `model_data.c`/`model_data.h` (the model as a `const` 16-aligned
//! array in `.rodata`, and its macros), `example/main.c`, a `Makefile` and a `CMakeLists.txt`,
//! and a README; the Cortex-M targets also get `qemu/` (the example's startup file and linker
//! script for a QEMU MPS2 machine). The templates live in `capi/export/`. Prints the library's and the model's
//! sizes.
//!
//! `--check` (CI: xtask/src/test.rs) then builds the example with the first N bundled test
//! digits (a generated `check/test_digits.c`) through the written Makefile, runs it (QEMU
//! `mps2-an386` for the Cortex-M4 and M0+ builds, `mps2-an505` for the M33, the host for
//! x86_64, `qemu-aarch64` for aarch64), compares every int8 logit with the host engine
//! (`deploy::report::parse` and `check_with_host`, as `deploy` does) and prints the code sizes
//! of the image and the library next to the Rust board's.
use crate::boards::{IDX_IMAGES, IDX_LABELS};
use crate::deploy::{build::run_timed, report};
use crate::{cargo, root};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `cargo xtask export ...`
#[derive(clap::Subcommand, Debug)]
pub enum Export {
    /// A C library for any firmware: libshiftkit.a for --target, shiftkit.h, the model as a C
    /// array (model_data.c/.h), example/main.c, a Makefile, a CMakeLists.txt and a README in
    /// --out; --check builds and runs the example and compares its logits with the host engine
    C(Args),
    /// The int8 model as a TFLite flatbuffer, for LiteRT, TFLite Micro and Netron
    /// (ARGS: MODEL.skq [--out FILE]; default MODEL.tflite; docs/tflite.md)
    Tflite(crate::PassThrough),
}

/// The arguments of `export c`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The int8 model (`cargo xtask quantize DIR` writes DIR/model.skq)
    #[arg(value_name = "MODEL.skq")]
    pub model: PathBuf,
    /// The Rust target to build the library for: thumbv6m-none-eabi, thumbv7em-none-eabihf,
    /// thumbv8m.main-none-eabihf, aarch64-unknown-linux-gnu, x86_64-unknown-linux-gnu
    #[arg(long, value_name = "TRIPLE")]
    pub target: String,
    /// The folder to write (created; files of the same name are replaced)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Then build the example with the test digits, run it, compare every int8 logit with the
    /// host engine and report the code sizes
    #[arg(long)]
    pub check: bool,
    /// How many of the bundled MNIST test digits --check runs
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub images: usize,
}

/// How a target's example runs under `--check`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runs {
    /// On a QEMU MPS2 machine through semihosting, its image linked for that machine's map.
    Qemu(&'static Machine),
    /// As a Linux program, under this runner (empty: directly).
    Linux(&'static [&'static str]),
}

/// A QEMU MPS2 machine the Cortex-M examples run on: `-machine`, `-cpu`, where its code and
/// data memories are (the written `qemu/link.ld`).
#[derive(Debug, PartialEq, Eq)]
struct Machine {
    machine: &'static str,
    cpu: &'static str,
    flash: &'static str,
    ram: &'static str,
    note: &'static str,
}

/// Cortex-M4 (and the M0+ build: ARMv6-M code runs unchanged on it).
const AN386: Machine = Machine {
    machine: "mps2-an386",
    cpu: "cortex-m4",
    flash: "0x00000000",
    ram: "0x20000000",
    note: "ZBT SSRAM1 at 0x00000000, SSRAM2/3 at 0x20000000 (boards/qemu-an386/memory.x)",
};

/// Cortex-M33 with DSP, booting in Secure state: the Secure aliases of its memories.
const AN505: Machine = Machine {
    machine: "mps2-an505",
    cpu: "cortex-m33",
    flash: "0x10000000",
    ram: "0x38000000",
    note: "the Secure aliases of SSRAM1 (0x10000000) and SSRAM2/3 (0x38000000) (boards/qemu-an505/memory.x)",
};

/// A target `export c` builds for: the Rust triple, its C compiler and flags, how it runs.
#[derive(Debug)]
struct Target {
    triple: &'static str,
    what: &'static str,
    /// RUSTFLAGS for the fast kernels (firmware/build.rs, firmware/src/kernels/fast).
    rustflags: &'static str,
    kernels: &'static str,
    cc: &'static str,
    cpu_flags: &'static str,
    size_tool: &'static str,
    install: &'static str,
    runs: Runs,
    /// The Rust board ELF of the same core that `--check` sizes next to the C image (built by
    /// `cargo xtask test`; the qemu-an386 one by the pipeline), and what it is; "" for none.
    rust_board: (&'static str, &'static str),
}

impl Target {
    fn mcu(&self) -> bool {
        !matches!(self.runs, Runs::Linux(_))
    }
    fn exe(&self) -> &'static str {
        if self.mcu() {
            "example.elf"
        } else {
            "shiftkit-example"
        }
    }
}

const ARM_INSTALL: &str =
    "cargo xtask setup (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)";

const TARGETS: &[Target] = &[
    Target {
        triple: "thumbv6m-none-eabi",
        what: "Cortex-M0/M0+",
        rustflags: "",
        kernels: "the portable kernels: ARMv6-M has no DSP extension",
        cc: "arm-none-eabi-gcc",
        cpu_flags: "-mcpu=cortex-m0plus -mthumb",
        size_tool: "arm-none-eabi-size",
        install: ARM_INSTALL,
        // ARMv6-M code runs unchanged on the Cortex-M4 of mps2-an386.
        runs: Runs::Qemu(&AN386),
        rust_board: (
            "target/boards/thumbv6m-none-eabi/release/rp-pico",
            "rp-pico, Cortex-M0+, defmt over RTT",
        ),
    },
    Target {
        triple: "thumbv7em-none-eabihf",
        what: "Cortex-M4F/M7F",
        rustflags: "",
        kernels: "the Cortex-M DSP kernels",
        cc: "arm-none-eabi-gcc",
        cpu_flags: "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16",
        size_tool: "arm-none-eabi-size",
        install: ARM_INSTALL,
        runs: Runs::Qemu(&AN386),
        rust_board: (
            "target/boards/thumbv7em-none-eabihf/release/qemu-an386",
            "qemu-an386, Cortex-M4, semihosting",
        ),
    },
    Target {
        triple: "thumbv8m.main-none-eabihf",
        what: "Cortex-M33F with DSP",
        rustflags: "-C target-feature=+dsp",
        kernels: "the Cortex-M DSP kernels (+dsp)",
        cc: "arm-none-eabi-gcc",
        cpu_flags: "-mcpu=cortex-m33 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16",
        size_tool: "arm-none-eabi-size",
        install: ARM_INSTALL,
        runs: Runs::Qemu(&AN505),
        rust_board: (
            "target/boards/thumbv8m.main-none-eabihf/release/qemu-an505",
            "qemu-an505, Cortex-M33, semihosting",
        ),
    },
    Target {
        triple: "aarch64-unknown-linux-gnu",
        what: "aarch64 Linux",
        rustflags: "",
        kernels: "the NEON kernels",
        cc: "aarch64-linux-gnu-gcc",
        cpu_flags: "",
        size_tool: "aarch64-linux-gnu-size",
        install: "cargo xtask setup (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)",
        runs: Runs::Linux(&["qemu-aarch64", "-cpu", "max", "-L", "/usr/aarch64-linux-gnu"]),
        rust_board: ("", ""),
    },
    Target {
        triple: "x86_64-unknown-linux-gnu",
        what: "x86-64 Linux with AVX2",
        rustflags: "-C target-feature=+avx2",
        kernels: "the AVX2 kernels: the library needs an AVX2 CPU (x86-64-v3)",
        cc: "gcc",
        cpu_flags: "",
        size_tool: "size",
        install: "apt-get install gcc binutils",
        runs: Runs::Linux(&[]),
        rust_board: ("", ""),
    },
];

/// Every target's triple, in the order `cargo xtask test` checks them.
pub const TARGET_TRIPLES: [&str; 5] = [
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
    "aarch64-unknown-linux-gnu",
    "x86_64-unknown-linux-gnu",
];

/// Where the libraries are built: their own target folder (other flags, panic=abort).
pub const EXPORT_TARGET_DIR: &str = "target/c-export";

/// The templates, from `capi/export/`.
const MAIN_C: &str = include_str!("../../capi/export/main.c");
const MAKEFILE: &str = include_str!("../../capi/export/Makefile");
const CMAKELISTS: &str = include_str!("../../capi/export/CMakeLists.txt");
const README: &str = include_str!("../../capi/export/README.md");
const STARTUP_C: &str = include_str!("../../capi/export/qemu/startup.c");
const LINK_LD: &str = include_str!("../../capi/export/qemu/link.ld");

/// `cargo xtask export ...`
pub fn main(e: &Export) -> Result<(), String> {
    match e {
        Export::C(a) => export_c(a),
        Export::Tflite(p) => crate::pass_through(crate::shiftkit_quantize(&crate::stage_args(
            "export-tflite",
            &p.args,
        ))),
    }
}

fn find_target(triple: &str) -> Result<&'static Target, String> {
    TARGETS.iter().find(|t| t.triple == triple).ok_or_else(|| {
        let names: Vec<&str> = TARGETS.iter().map(|t| t.triple).collect();
        format!(
            "export c: unknown target '{triple}' (targets: {})",
            names.join(", ")
        )
    })
}

/// The model's figures that go into `model_data.h` and the README.
#[derive(Debug)]
struct Figures {
    bytes: usize,
    arena: usize,
    align: usize,
    h: u16,
    w: u16,
    c: u16,
    input: usize,
    classes: usize,
    ops: u16,
}

fn figures(m: &firmware::Model, bytes: usize) -> Figures {
    let t = m.input();
    Figures {
        bytes,
        arena: m.arena_bytes(),
        align: m.arena_align().max(1),
        h: t.h,
        w: t.w,
        c: t.c,
        input: m.input_len(),
        classes: m.classes(),
        ops: m.header().ops,
    }
}

fn export_c(a: &Args) -> Result<(), String> {
    let t = find_target(&a.target)?;
    let bytes = std::fs::read(&a.model).map_err(|e| {
        format!(
            "export c: {}: {e} (quantize a run first: cargo xtask quantize runs/default)",
            a.model.display()
        )
    })?;
    let m = firmware::Model::from_bytes(&bytes)
        .map_err(|e| format!("export c: {}: not a valid model: {e}", a.model.display()))?;
    let f = figures(&m, bytes.len());
    let out = &a.out;
    mkdir(&out.join("example"))?;
    println!(
        "== export c: {} for {} ({}) into {}",
        a.model.display(),
        t.triple,
        t.what,
        out.display()
    );
    let lib = build_library(t)?;
    let lib_bytes = std::fs::metadata(&lib)
        .map_err(|e| format!("export c: {}: {e}", lib.display()))?
        .len();
    copy(&lib, &out.join("libshiftkit.a"))?;
    copy(
        &root().join("capi/include/shiftkit.h"),
        &out.join("shiftkit.h"),
    )?;
    let name = model_name(&a.model);
    write(&out.join("model_data.h"), &model_data_h(&f, &name))?;
    write(&out.join("model_data.c"), &model_data_c(&bytes, &name))?;
    write(&out.join("example/main.c"), MAIN_C)?;
    let fill = |s: &str| fill(s, t, &f, &name, lib_bytes);
    if t.mcu() {
        mkdir(&out.join("qemu"))?;
        write(&out.join("qemu/startup.c"), STARTUP_C)?;
        write(&out.join("qemu/link.ld"), &fill(LINK_LD))?;
    }
    write(&out.join("Makefile"), &fill(MAKEFILE))?;
    write(&out.join("CMakeLists.txt"), &fill(CMAKELISTS))?;
    write(&out.join("README.md"), &fill(README))?;
    println!(
        "libshiftkit.a: {lib_bytes} B on disk ({}, {}); {}",
        t.triple,
        t.kernels,
        size_line(t, &out.join("libshiftkit.a"), "-t")
    );
    println!(
        "model: {} B (model_data.c: a const array in .rodata, flash), arena {} B (align {}) in RAM, input {}x{}x{} ({} B), {} classes, {} ops",
        f.bytes, f.arena, f.align, f.h, f.w, f.c, f.input, f.classes, f.ops
    );
    println!(
        "wrote libshiftkit.a shiftkit.h model_data.c model_data.h example/main.c Makefile CMakeLists.txt README.md{} in {}",
        if t.mcu() { " qemu/" } else { "" },
        out.display()
    );
    if a.check {
        check(t, a, &m)?;
    }
    Ok(())
}

/// `cargo rustc` of `capi` as a staticlib for the target, with the panic handler, panic=abort
/// and LTO, in [`EXPORT_TARGET_DIR`]; the Cortex-M builds with the boards' profile (the engine
/// at opt-level "s", its `asm!` loops unaffected). Returns the `.a`.
fn build_library(t: &Target) -> Result<PathBuf, String> {
    let dir = root().join(EXPORT_TARGET_DIR);
    let mut c = cargo();
    c.args(["rustc", "--quiet", "-p", "shiftkit-c", "--release"])
        .args(["--target", t.triple, "--features", "panic-handler"])
        .args(["--crate-type", "staticlib", "--target-dir"])
        .arg(&dir);
    let mut config = vec![
        "profile.release.panic=\"abort\"",
        "profile.release.lto=true",
        "profile.release.codegen-units=1",
        "profile.release.debug=0",
        "profile.release.opt-level=3",
    ];
    if t.mcu() {
        config.push("profile.release.package.shiftkit-engine.opt-level=\"s\"");
    }
    for kv in config {
        c.args(["--config", kv]);
    }
    c.env("RUSTFLAGS", t.rustflags)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("SHIFTKIT_KERNELS");
    println!(
        "building libshiftkit.a: cargo rustc -p shiftkit-c --release --target {} --features panic-handler --crate-type staticlib{}",
        t.triple,
        if t.rustflags.is_empty() {
            String::new()
        } else {
            format!(" (RUSTFLAGS={})", t.rustflags)
        }
    );
    let status = c
        .status()
        .map_err(|e| format!("export c: could not start cargo rustc: {e}"))?;
    if !status.success() {
        return Err(format!(
            "export c: cargo rustc -p shiftkit-c for {} failed ({status}; is the target installed? rustup target add {})",
            t.triple, t.triple
        ));
    }
    let lib = dir.join(t.triple).join("release/libshiftkit_c.a");
    if !lib.is_file() {
        return Err(format!(
            "export c: cargo rustc for {} wrote no {}",
            t.triple,
            lib.display()
        ));
    }
    Ok(lib)
}

fn mkdir(p: &Path) -> Result<(), String> {
    std::fs::create_dir_all(p).map_err(|e| format!("export c: {}: {e}", p.display()))
}

fn write(p: &Path, text: &str) -> Result<(), String> {
    std::fs::write(p, text).map_err(|e| format!("export c: {}: {e}", p.display()))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("export c: {} -> {}: {e}", from.display(), to.display()))
}

/// The model's name for comments: the run folder's name (`runs/default/model.skq` ->
/// `default`), else the file's stem.
fn model_name(model: &Path) -> String {
    let stem = model
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model");
    match model
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
    {
        Some(dir) if stem == "model" => dir.to_string(),
        _ => stem.to_string(),
    }
}

/// `model_data.h`: the array's declaration and the model's macros.
fn model_data_h(f: &Figures, name: &str) -> String {
    format!(
        r#"/* The shiftkit model "{name}" as a C array (model_data.c), written by `cargo xtask export c`;
 * do not edit. Its figures, checked at export against the model itself: */
#ifndef SHIFTKIT_MODEL_DATA_H
#define SHIFTKIT_MODEL_DATA_H

#include <stdint.h>

/* Alignment of the model array and of your arena (GCC and Clang). */
#if defined(__GNUC__) || defined(__clang__)
#define SK_ALIGNED(n) __attribute__((aligned(n)))
#else
#define SK_ALIGNED(n) /* your compiler's alignment attribute; sk_run checks the arena's */
#endif

/* Bytes of the model (the .skq file). */
#define SK_MODEL_DATA_BYTES {bytes}
/* The arena sk_run needs: bytes and alignment (RAM). */
#define SK_MODEL_ARENA_BYTES {arena}
#define SK_MODEL_ARENA_ALIGN {align}
/* The input: H x W x C u8 pixels, HWC order. */
#define SK_MODEL_INPUT_H {h}
#define SK_MODEL_INPUT_W {w}
#define SK_MODEL_INPUT_C {c}
#define SK_MODEL_INPUT_BYTES {input}
/* The int8 logits a run writes, one per class. */
#define SK_MODEL_CLASSES {classes}
/* The ops a run executes (the op indices of sk_run_profiled's callback). */
#define SK_MODEL_OPS {ops}

#ifdef __cplusplus
extern "C" {{
#endif

/* The model: const, so in .rodata (flash on a microcontroller), 16-aligned. */
extern const uint8_t shiftkit_model_data[SK_MODEL_DATA_BYTES];

#ifdef __cplusplus
}}
#endif

#endif /* SHIFTKIT_MODEL_DATA_H */
"#,
        bytes = f.bytes,
        arena = f.arena,
        align = f.align,
        h = f.h,
        w = f.w,
        c = f.c,
        input = f.input,
        classes = f.classes,
        ops = f.ops,
    )
}

/// `model_data.c`: the bytes, 16 a line.
fn model_data_c(bytes: &[u8], name: &str) -> String {
    let mut s = format!(
        r#"/* The shiftkit model "{name}" ({} bytes), written by `cargo xtask export c`; do not edit. */
#include "model_data.h"

/* const: placed in .rodata, which stays in flash on a microcontroller; 16-aligned like the
 * model's weight section. */
#if defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((section(".rodata.shiftkit_model")))
#endif
const uint8_t shiftkit_model_data[SK_MODEL_DATA_BYTES] SK_ALIGNED(16) = {{
"#,
        bytes.len()
    );
    c_bytes(&mut s, bytes, "    ");
    s.push_str("};\n");
    s
}

/// Appends `bytes` as C initialisers, 16 a line.
fn c_bytes(s: &mut String, bytes: &[u8], indent: &str) {
    for line in bytes.chunks(16) {
        s.push_str(indent);
        for b in line {
            let _ = write!(s, "0x{b:02x},");
        }
        s.push('\n');
    }
}

/// A template with the target's and the model's figures filled in.
fn fill(template: &str, t: &Target, f: &Figures, name: &str, lib_bytes: u64) -> String {
    let exe = t.exe();
    let qemu_run = |q: &Machine| {
        format!(
            "qemu-system-arm -machine {} -cpu {} -nographic -semihosting-config enable=on,target=native -kernel {exe}",
            q.machine, q.cpu
        )
    };
    let (startup, ld_flags, run, run_note, cmake_system, cmake_ld) = match t.runs {
        Runs::Qemu(q) => (
            "qemu/startup.c",
            "-T qemu/link.ld -nostartfiles --specs=nano.specs --specs=rdimon.specs -Wl,--gc-sections -Wl,--no-warn-execstack",
            qemu_run(q),
            format!(
                "runs it on QEMU {} ({}) through semihosting",
                q.machine, q.cpu
            ),
            "set(CMAKE_SYSTEM_NAME Generic)\nset(CMAKE_C_COMPILER arm-none-eabi-gcc)\nset(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)",
            "-T${CMAKE_CURRENT_SOURCE_DIR}/qemu/link.ld -nostartfiles --specs=nano.specs --specs=rdimon.specs -Wl,--gc-sections -Wl,--no-warn-execstack",
        ),
        Runs::Linux(runner) => {
            let run = format!("{} ./{exe}", runner.join(" ")).trim().to_string();
            let cmake_system = if t.triple.starts_with("aarch64") {
                "set(CMAKE_SYSTEM_NAME Linux)\nset(CMAKE_SYSTEM_PROCESSOR aarch64)\nset(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)"
            } else {
                "set(CMAKE_C_COMPILER gcc)"
            };
            ("", "", run.clone(), format!("runs it: {run}"), cmake_system, "")
        }
    };
    let (machine, flash, ram, memory_note) = match t.runs {
        Runs::Qemu(q) => (q.machine, q.flash, q.ram, q.note),
        Runs::Linux(_) => ("", "", "", ""),
    };
    let startup_note = if startup.is_empty() {
        String::new()
    } else {
        format!(" + {startup}")
    };
    let startup_row = if startup.is_empty() {
        String::new()
    } else {
        format!("| `qemu/startup.c`, `qemu/link.ld` | the example's vector table, reset handler and memory map on QEMU `{machine}` (code at {flash}, RAM at {ram}); your board's own startup file and linker script replace them |\n")
    };
    let pairs: [(&str, String); 30] = [
        ("{{MACHINE}}", machine.into()),
        ("{{FLASH_ORIGIN}}", flash.into()),
        ("{{RAM_ORIGIN}}", ram.into()),
        ("{{MEMORY_NOTE}}", memory_note.into()),
        ("{{TARGET}}", t.triple.into()),
        ("{{WHAT}}", t.what.into()),
        ("{{CC}}", t.cc.into()),
        ("{{CPU_FLAGS}}", t.cpu_flags.into()),
        ("{{LD_FLAGS}}", ld_flags.into()),
        ("{{STARTUP}}", startup.into()),
        ("{{STARTUP_NOTE}}", startup_note),
        ("{{STARTUP_ROW}}", startup_row),
        ("{{EXE}}", exe.into()),
        ("{{EXE_SUFFIX}}", if t.mcu() { ".elf" } else { "" }.into()),
        ("{{RUN}}", run),
        ("{{RUN_NOTE}}", run_note),
        ("{{CMAKE_SYSTEM}}", cmake_system.into()),
        ("{{CMAKE_LD_FLAGS}}", cmake_ld.into()),
        ("{{KERNELS}}", t.kernels.into()),
        ("{{LIB_BYTES}}", lib_bytes.to_string()),
        ("{{MODEL_NAME}}", name.into()),
        ("{{MODEL_BYTES}}", f.bytes.to_string()),
        ("{{ARENA}}", f.arena.to_string()),
        ("{{ALIGN}}", f.align.to_string()),
        ("{{H}}", f.h.to_string()),
        ("{{W}}", f.w.to_string()),
        ("{{C}}", f.c.to_string()),
        ("{{INPUT}}", f.input.to_string()),
        ("{{CLASSES}}", f.classes.to_string()),
        ("{{OPS}}", f.ops.to_string()),
    ];
    let mut s = template.to_string();
    for (k, v) in pairs {
        s = s.replace(k, &v);
    }
    s
}

/// `SIZE_TOOL ARGS FILE`'s last line as `text T data D bss B`, or why not.
fn size_line(t: &Target, file: &Path, args: &str) -> String {
    match sizes(t.size_tool, file, args) {
        Ok((text, data, bss)) => format!("text {text} data {data} bss {bss} ({})", t.size_tool),
        Err(e) => e,
    }
}

/// (text, data, bss) from the last line of `size [-t] FILE` (Berkeley format).
fn sizes(tool: &str, file: &Path, args: &str) -> Result<(u64, u64, u64), String> {
    let mut c = Command::new(tool);
    if !args.is_empty() {
        c.arg(args);
    }
    let out = c
        .arg(file)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("sizes not measured: could not start {tool}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    let n: Vec<u64> = last
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    match (out.status.success(), n.as_slice()) {
        (true, [t, d, b]) => Ok((*t, *d, *b)),
        _ => Err(format!(
            "sizes not measured: {tool} {} printed {last:?}",
            file.display()
        )),
    }
}

/// Whether `program --version` runs.
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `check/test_digits.h` and `check/test_digits.c`: the digits and labels as C arrays (only
/// the `--check` build compiles them).
fn test_digits(digits: &[Vec<u8>], labels: &[u8]) -> (String, String) {
    let n = labels.len();
    let h = format!(
        "/* The first {n} bundled MNIST test digits, for `cargo xtask export c --check` only. */\n\
         #ifndef SHIFTKIT_TEST_DIGITS_H\n#define SHIFTKIT_TEST_DIGITS_H\n\n#include <stdint.h>\n\
         #include \"model_data.h\"\n\n#define SK_TEST_IMAGES {n}\n\
         extern const uint8_t sk_test_images[SK_TEST_IMAGES][SK_MODEL_INPUT_BYTES];\n\
         extern const uint8_t sk_test_labels[SK_TEST_IMAGES];\n\n#endif\n"
    );
    let mut c = format!(
        "/* The first {n} bundled MNIST test digits (data/mnist), written by `cargo xtask export c --check`. */\n\
         #include \"test_digits.h\"\n\nconst uint8_t sk_test_images[SK_TEST_IMAGES][SK_MODEL_INPUT_BYTES] = {{\n"
    );
    for d in digits {
        c.push_str("  {\n");
        c_bytes(&mut c, d, "    ");
        c.push_str("  },\n");
    }
    c.push_str("};\n\nconst uint8_t sk_test_labels[SK_TEST_IMAGES] = {\n");
    c_bytes(&mut c, labels, "    ");
    c.push_str("};\n");
    (h, c)
}

/// `--check`: the example with the test digits, built with the written Makefile, run, its
/// logits compared with the host engine's; then the sizes.
fn check(t: &Target, a: &Args, m: &firmware::Model) -> Result<(), String> {
    println!("== export c --check: {}", t.triple);
    for tool in [t.cc, t.size_tool, "make"] {
        if !installed(tool) {
            return Err(format!(
                "export c --check: {tool} is not installed; install it with `{}`",
                if tool == "make" {
                    "apt-get install make"
                } else {
                    t.install
                }
            ));
        }
    }
    #[cfg(target_arch = "x86_64")]
    if t.triple.starts_with("x86_64") && !std::arch::is_x86_feature_detected!("avx2") {
        return Err(
            "export c --check: this CPU has no AVX2, which the x86_64 library's kernels need"
                .into(),
        );
    }
    let (digits, labels) =
        report::read_idx(&root().join(IDX_IMAGES), &root().join(IDX_LABELS), a.images)?;
    let n = labels.len();
    if digits.first().is_some_and(|d| d.len() != m.input_len()) {
        return Err(format!(
            "export c --check: {} takes {} input bytes, the bundled test digits are 28x28x1 ({} bytes)",
            a.model.display(),
            m.input_len(),
            digits[0].len()
        ));
    }
    let check_dir = a.out.join("check");
    mkdir(&check_dir)?;
    readme_example_compiles(t, &a.out, &check_dir)?;
    let (h, c) = test_digits(&digits, &labels);
    write(&check_dir.join("test_digits.h"), &h)?;
    write(&check_dir.join("test_digits.c"), &c)?;

    let exe = a.out.join(t.exe());
    let exe = std::path::absolute(&exe).map_err(|e| format!("export c: {}: {e}", exe.display()))?;
    let _ = std::fs::remove_file(&exe);
    let mut make = Command::new("make");
    make.arg("-C")
        .arg(&a.out)
        .arg("--no-print-directory")
        .arg("EXTRA_CFLAGS=-DSK_EXAMPLE_DIGITS -Icheck -Werror")
        .arg("EXTRA_SRCS=check/test_digits.c")
        .arg(t.exe());
    println!(
        "building the example: make -C {} EXTRA_CFLAGS='-DSK_EXAMPLE_DIGITS -Icheck -Werror' EXTRA_SRCS=check/test_digits.c {}",
        a.out.display(),
        t.exe()
    );
    let status = make
        .status()
        .map_err(|e| format!("export c --check: could not start make: {e}"))?;
    if !status.success() || !exe.is_file() {
        return Err(format!(
            "export c --check: make in {} failed ({status})",
            a.out.display()
        ));
    }

    let timeout = Duration::from_secs(120 + 2 * n as u64);
    let ran = match t.runs {
        Runs::Qemu(q) => {
            let mut c = Command::new("qemu-system-arm");
            c.args(["-machine", q.machine, "-cpu", q.cpu, "-nographic"])
                .args(["-semihosting-config", "enable=on,target=native", "-kernel"])
                .arg(&exe);
            println!(
                "running on QEMU {} ({}): qemu-system-arm -machine {} -cpu {} -nographic -semihosting-config enable=on,target=native -kernel {}",
                q.machine,
                q.cpu,
                q.machine,
                q.cpu,
                exe.display()
            );
            run_timed(c, timeout, "install QEMU: apt-get install qemu-system-arm")?
        }
        Runs::Linux(runner) => {
            let mut cmd = match runner.split_first() {
                Some((p, rest)) => {
                    let mut c = Command::new(p);
                    c.args(rest).arg(&exe);
                    c
                }
                None => Command::new(&exe),
            };
            println!("running: {} {}", runner.join(" "), exe.display());
            cmd.current_dir(&a.out);
            run_timed(cmd, timeout, t.install)?
        }
    };
    let dev = report::parse(&ran, n)?;
    let host = report::check_with_host(m, &digits, &labels, &dev)?;
    println!(
        "c example ({}): accuracy {}/{n}; every int8 logit equals the host engine's: {}",
        t.triple,
        host.correct,
        host.mismatches.is_empty()
    );
    host.result(n)?;
    println!("code size ({}, text data bss):", t.size_tool);
    println!(
        "  C-linked image   {}: {}",
        exe.display(),
        size_line(t, &exe, "")
    );
    let map = exe.with_file_name(format!("{}.map", t.exe()));
    match std::fs::read_to_string(&map) {
        Ok(text) => {
            let (code, data, bss) = library_share(&text);
            println!("  of which libshiftkit.a (the linker map {}): code and constants {code} data {data} bss {bss}", map.display());
        }
        Err(e) => println!(
            "  of which libshiftkit.a: not measured ({}: {e})",
            map.display()
        ),
    }
    println!(
        "  libshiftkit.a    (all its objects, before the linker drops what is unused): {}",
        size_line(t, &a.out.join("libshiftkit.a"), "-t")
    );
    let (elf, what) = t.rust_board;
    if !elf.is_empty() {
        let board = root().join(elf);
        if board.is_file() {
            println!(
                "  Rust board       {elf} ({what}): {}",
                size_line(t, &board, "")
            );
        } else {
            println!("  Rust board       {elf}: not built (cargo xtask test builds every board; the pipeline qemu-an386)");
        }
    }
    Ok(())
}

/// The C example of the crate's README (`capi/README.md`, the page crates.io shows) compiles
/// with this target's compiler against the exported header and `model_data.h`, warnings as
/// errors, so the README cannot drift from the API.
fn readme_example_compiles(t: &Target, out: &Path, check_dir: &Path) -> Result<(), String> {
    let readme = root().join("capi/README.md");
    let text = std::fs::read_to_string(&readme)
        .map_err(|e| format!("export c --check: {}: {e}", readme.display()))?;
    let code: String = text
        .split("```c\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or_else(|| format!("export c --check: {} has no ```c block", readme.display()))?
        .into();
    let src = check_dir.join("readme_example.c");
    write(&src, &code)?;
    let mut cc = Command::new(t.cc);
    cc.args(t.cpu_flags.split_whitespace())
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-fsyntax-only",
            "-I",
        ])
        .arg(out)
        .arg(&src);
    let o = cc
        .output()
        .map_err(|e| format!("export c --check: could not start {}: {e}", t.cc))?;
    if !o.status.success() {
        return Err(format!(
            "export c --check: the C example of {} does not compile with {}:\n{}",
            readme.display(),
            t.cc,
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    println!(
        "the C example of capi/README.md compiles with {} -std=c99 -Wall -Wextra -Werror",
        t.cc
    );
    Ok(())
}

/// The bytes the image's linker map (GNU ld `-Map`) places from `libshiftkit.a`: (code and
/// read-only data, data, bss), from its input-section lines (` .SECTION ADDR SIZE FILE`, the
/// section name on a line of its own when it is long).
fn library_share(map: &str) -> (u64, u64, u64) {
    let (mut code, mut data, mut bss) = (0, 0, 0);
    let mut section = "";
    let lines = map
        .lines()
        .skip_while(|l| !l.starts_with("Linker script and memory map"));
    for line in lines {
        let w: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with(" .") {
            section = w.first().copied().unwrap_or("");
        }
        let from_lib = w.last().is_some_and(|f| f.contains("libshiftkit.a("));
        let size = w
            .len()
            .checked_sub(2)
            .and_then(|i| w[i].strip_prefix("0x"))
            .and_then(|h| u64::from_str_radix(h, 16).ok());
        let (true, Some(size)) = (from_lib, size) else {
            continue;
        };
        if [".text", ".rodata", ".ARM.ex", ".eh_frame", ".gcc_except"]
            .iter()
            .any(|p| section.starts_with(p))
        {
            code += size;
        } else if section.starts_with(".data") {
            data += size;
        } else if section.starts_with(".bss") || section.starts_with("COMMON") {
            bss += size;
        }
    }
    (code, data, bss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_target_is_one_line_naming_the_known_ones() {
        let e = find_target("riscv32imc-unknown-none-elf").unwrap_err();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains("unknown target 'riscv32imc-unknown-none-elf'"),
            "{e}"
        );
        for t in TARGETS {
            assert!(e.contains(t.triple), "{e}");
        }
    }

    #[test]
    fn a_missing_or_corrupt_model_is_one_line_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("xtask-export-c-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = |model: PathBuf| Args {
            model,
            target: "thumbv7em-none-eabihf".into(),
            out: dir.join("out"),
            check: false,
            images: 1,
        };
        let missing = dir.join("missing.skq");
        let e = export_c(&args(missing.clone())).unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("cargo xtask quantize"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let corrupt = dir.join("corrupt.skq");
        std::fs::write(&corrupt, b"SKQ\x01 not really a model").unwrap();
        let e = export_c(&args(corrupt.clone())).unwrap_err();
        assert!(e.contains("not a valid model"), "{e}");
        assert!(e.contains(&corrupt.display().to_string()), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let mut a = args(corrupt);
        a.target = "avr-unknown-gnu-atmega328".into();
        let e = export_c(&a).unwrap_err();
        assert!(e.contains("unknown target"), "{e}");
        assert!(!dir.join("out").exists(), "nothing written for a bad call");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_target_is_checked_in_ci() {
        let triples: Vec<&str> = TARGETS.iter().map(|t| t.triple).collect();
        assert_eq!(triples, TARGET_TRIPLES);
    }

    #[test]
    fn model_data_holds_every_byte_and_the_figures() {
        let f = Figures {
            bytes: 18,
            arena: 100,
            align: 16,
            h: 28,
            w: 28,
            c: 1,
            input: 784,
            classes: 10,
            ops: 7,
        };
        let h = model_data_h(&f, "default");
        for want in [
            "#define SK_MODEL_DATA_BYTES 18",
            "#define SK_MODEL_ARENA_BYTES 100",
            "#define SK_MODEL_ARENA_ALIGN 16",
            "#define SK_MODEL_INPUT_H 28",
            "#define SK_MODEL_INPUT_BYTES 784",
            "#define SK_MODEL_CLASSES 10",
            "#define SK_MODEL_OPS 7",
            "extern const uint8_t shiftkit_model_data[SK_MODEL_DATA_BYTES];",
        ] {
            assert!(h.contains(want), "{want} not in:\n{h}");
        }
        let bytes: Vec<u8> = (0..18).collect();
        let c = model_data_c(&bytes, "default");
        assert!(c.contains("SK_ALIGNED(16)"), "{c}");
        assert!(c.contains("0x00,0x01,"), "{c}");
        assert!(c.contains("\n    0x10,0x11,\n};"), "{c}");
        assert_eq!(c.matches("0x").count(), 18);
    }

    #[test]
    fn every_template_placeholder_is_filled_for_every_target() {
        let f = figures_for_test();
        for t in TARGETS {
            for tpl in [MAKEFILE, CMAKELISTS, README] {
                let s = fill(tpl, t, &f, "default", 1);
                assert!(
                    !s.contains("{{"),
                    "{}: unfilled placeholder in\n{s}",
                    t.triple
                );
            }
            let make = fill(MAKEFILE, t, &f, "default", 1);
            assert!(make.contains(&format!("CC = {}", t.cc)), "{make}");
        }
        assert_eq!(model_name(Path::new("runs/default/model.skq")), "default");
        assert_eq!(model_name(Path::new("x/tiny.skq")), "tiny");
    }

    #[test]
    fn the_library_share_of_a_linker_map_counts_its_input_sections() {
        let map = [
            "Archive member included to satisfy reference by file (symbol)",
            "./libshiftkit.a(x.o)  main.o (sk_run)",
            "Discarded input sections",
            " .text.unused   0x00000000       0x40 ./libshiftkit.a(x.o)",
            "Linker script and memory map",
            ".text           0x00000000     0x2000",
            " .text.sk_run   0x00000100      0x182 ./libshiftkit.a(x.o)",
            " .text._ZN8firmware6engine3run17h0123456789abcdefE",
            "                0x00000284      0x10e ./libshiftkit.a(x.o)",
            " .text.main     0x00000400       0x80 main.o",
            " .rodata.x      0x00000480       0x20 ./libshiftkit.a(x.o)",
            " .data.y        0x20000000        0x8 ./libshiftkit.a(x.o)",
            " .bss.z         0x20000008        0x4 ./libshiftkit.a(x.o)",
            " .ARM.attributes",
            "                0x00000000       0x30 ./libshiftkit.a(x.o)",
        ]
        .join("\n");
        assert_eq!(library_share(&map), (0x182 + 0x10e + 0x20, 8, 4));
    }

    fn figures_for_test() -> Figures {
        Figures {
            bytes: 1,
            arena: 2,
            align: 4,
            h: 1,
            w: 1,
            c: 1,
            input: 1,
            classes: 2,
            ops: 3,
        }
    }
}
