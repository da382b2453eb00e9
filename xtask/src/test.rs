//! `cargo xtask test`: everything CI runs. Steps are data; every failure is collected and
//! reported together at the end.
use crate::{cargo, run};

/// The firmware build matrix: (target, features). Every device target (docs/design.md), plain,
/// and the defmt logging feature once on a Cortex-M target.
pub const FIRMWARE_BUILDS: &[(&str, &str)] = &[
    ("thumbv6m-none-eabi", ""),
    ("thumbv7em-none-eabihf", ""),
    ("thumbv8m.main-none-eabihf", ""),
    ("aarch64-unknown-linux-gnu", ""),
    ("riscv32imc-unknown-none-elf", ""),
    ("riscv32imac-unknown-none-elf", ""),
    ("thumbv7em-none-eabihf", "defmt"),
];

/// `cargo xtask test`: `setup` first (targets, components, Debian packages), then every step.
pub fn main() -> Result<(), String> {
    println!("== xtask test: setup (what the steps below need)");
    crate::setup::main(false)?;
    let mut steps: Vec<(String, std::process::Command)> = Vec::new();
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    steps.push(("rustfmt".into(), fmt));
    // Lints: the workspace (every target: libs, bins, tests, benches), host-train without its
    // CUDA feature, the firmware for each device target, and the firmware's rustdoc.
    let mut c = cargo();
    c.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    steps.push(("clippy (workspace)".into(), c));
    let mut c = cargo();
    c.args([
        "clippy",
        "-p",
        "host-train",
        "--all-targets",
        "--no-default-features",
    ])
    .args(["--", "-D", "warnings"]);
    steps.push(("clippy (host-train without cuda)".into(), c));
    for target in crate::setup::TARGETS {
        let mut c = cargo();
        c.args([
            "clippy",
            "--release",
            "-p",
            "shiftkit-engine",
            "--target",
            target,
        ])
        .args(["--", "-D", "warnings"]);
        steps.push((format!("clippy (firmware for {target})"), c));
    }
    let mut d = cargo();
    d.env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "-p", "shiftkit-engine", "--no-deps"]);
    steps.push(("rustdoc (firmware, warnings denied)".into(), d));
    let mut t = cargo();
    // The LiteRT test must run here (setup made the virtualenv), not say why it did not.
    t.env("SHIFTKIT_REQUIRE_LITERT", "1")
        .args(["test", "--workspace", "--no-fail-fast"]);
    steps.push(("workspace tests".into(), t));
    // The firmware's own tests on aarch64 under `qemu-aarch64 -cpu max` (runner in
    // .cargo/config.toml): the aarch64 kernels against the portable reference.
    let mut a = cargo();
    a.args([
        "test",
        "--release",
        "-p",
        "shiftkit-engine",
        "--target",
        "aarch64-unknown-linux-gnu",
    ]);
    steps.push(("firmware tests on aarch64 (qemu-aarch64)".into(), a));
    // The same with the dot-product extension enabled at compile time: the engine's convs then
    // run on the `Sdot` unit (`fast::Native`), in their own target dir (other flags, other build).
    let mut d = cargo();
    let flags = std::env::var("RUSTFLAGS").unwrap_or_default();
    d.env("RUSTFLAGS", format!("{flags} -C target-feature=+dotprod"))
        .args(["test", "--release", "-p", "shiftkit-engine"])
        .args(["--target", "aarch64-unknown-linux-gnu", "--target-dir"])
        .arg(crate::root().join("target/aarch64-dotprod"));
    steps.push((
        "firmware tests on aarch64 with +dotprod (qemu-aarch64)".into(),
        d,
    ));
    // On an x86-64 host with AVX2: the firmware tests built with it, so the engine's convs run on
    // the `Avx2` unit (`fast::Native`).
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        let mut v = cargo();
        v.env("RUSTFLAGS", format!("{flags} -C target-feature=+avx2"))
            .args(["test", "-p", "shiftkit-engine", "--target-dir"])
            .arg(crate::root().join("target/x86-avx2"));
        steps.push(("firmware tests with +avx2 (host)".into(), v));
    } else {
        println!("== xtask test: firmware tests with +avx2 not run: this CPU has no AVX2");
    }
    // The fast kernels with the real DSP instructions on QEMU Cortex-M4/M7/M33.
    steps.extend(crate::kernel_check::steps());
    for (target, features) in FIRMWARE_BUILDS {
        let mut b = cargo();
        b.args([
            "build",
            "--release",
            "-p",
            "shiftkit-engine",
            "--target",
            target,
        ]);
        let mut name = format!("firmware build for {target}");
        if !features.is_empty() {
            b.args(["--features", features]);
            name.push_str(&format!(" with {features}"));
        }
        steps.push((name, b));
    }
    // The README's main command end to end: train, quantize, deploy on QEMU Cortex-M4 (fails if
    // a device logit differs from the host engine's). Leaves runs/default/model.skq, which the
    // board steps below build with.
    let mut p = cargo();
    p.args(["run", "--quiet", "-p", "xtask", "--", "pipeline"]);
    steps.push(("pipeline (train, quantize, deploy on qemu-an386)".into(), p));
    // LiteRT as the outside oracle on the default network: the pipeline's run quantized again
    // with TFLite's constants (a copy, so runs/default/model.skq stays the engine's), exported,
    // and every int8 logit of the 2000 test digits compared; fails on any difference with
    // LiteRT's reference kernels (tests/tests/tflite_oracle.rs covers every zoo family). Its
    // optimised kernels are measured in BENCHMARKS.md, not here: they are not asserted.
    let mut o = std::process::Command::new("sh");
    o.current_dir(crate::root()).args([
        "-c",
        "set -e; d=target/oracle/default-tflite; mkdir -p $d; \
         cp runs/default/model.json runs/default/weights.safetensors runs/default/train-config.json $d/; \
         cargo run --quiet -p xtask -- quantize $d --requant tflite >/dev/null; \
         cargo run --quiet -p xtask -- oracle $d/model.skq --expect-exact --onnx --kernels ref",
    ]);
    steps.push((
        "LiteRT oracle (default network, TFLite constants)".into(),
        o,
    ));
    // The jetson board (aarch64 Linux) under qemu-aarch64: its own tests (bad files give one-line
    // errors), then a deploy of the pipeline's model that fails if any int8 logit differs.
    let mut jc = cargo();
    jc.current_dir(crate::root().join("boards/jetson")).args([
        "clippy",
        "--release",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    steps.push(("clippy (boards/jetson, aarch64)".into(), jc));
    let mut jt = cargo();
    jt.current_dir(crate::root().join("boards/jetson"))
        .args(["test", "--release"]);
    steps.push(("jetson board tests (qemu-aarch64)".into(), jt));
    let mut jd = cargo();
    jd.args(["run", "--quiet", "-p", "xtask", "--", "deploy"])
        .args(["--board", "jetson", "runs/default/model.skq"]);
    steps.push(("deploy on jetson under qemu-aarch64".into(), jd));
    // The board crates' shared parts on the host: the app's report against the engine with a
    // fake board, and the build script helper (each its own workspace, outside --workspace).
    for dir in ["boards/app", "boards/embed"] {
        let mut t = cargo();
        t.current_dir(crate::root().join(dir))
            .env(
                "CARGO_TARGET_DIR",
                crate::root().join(crate::deploy::BOARDS_TARGET_DIR),
            )
            .arg("test");
        steps.push((format!("{dir} host tests"), t));
        let mut c = cargo();
        c.current_dir(crate::root().join(dir))
            .env(
                "CARGO_TARGET_DIR",
                crate::root().join(crate::deploy::BOARDS_TARGET_DIR),
            )
            .args(["clippy", "--all-targets", "--", "-D", "warnings"]);
        steps.push((format!("clippy ({dir}, host)"), c));
    }
    // Every board crate, QEMU and real, builds in release with the pipeline's model and the
    // 20 images deploy embeds by default, into one shared target folder so that each target's
    // dependencies compile once; then the Cortex-M7, Cortex-M33 and RISC-V (RV32IMC) QEMU boards
    // run it (deploy fails if any int8 logit differs from the host engine's).
    let model = crate::root().join("runs/default/model.skq");
    for b in crate::deploy::BOARDS {
        let build = crate::deploy::build_command(b, &model, 20);
        steps.push((format!("board {} builds ({})", b.name, b.target), build));
        let clippy = crate::deploy::build::clippy_command(b, &model, 20);
        steps.push((format!("clippy (board {})", b.name), clippy));
    }
    // The fuzz crate (its own workspace; nightly for libFuzzer): rustfmt, clippy and the
    // mutator's test on stable, then each target for 20 s from the committed corpus under
    // AddressSanitizer (a crash fails the step and names the saved input).
    let fuzz_dir = crate::root().join("fuzz");
    let mut f = cargo();
    f.current_dir(&fuzz_dir).args(["fmt", "--check"]);
    steps.push(("rustfmt (fuzz)".into(), f));
    let mut f = cargo();
    f.current_dir(&fuzz_dir)
        .args(["clippy", "--all-targets", "--no-default-features"])
        .args(["--", "-D", "warnings"]);
    steps.push(("clippy (fuzz)".into(), f));
    let mut f = cargo();
    f.current_dir(&fuzz_dir)
        .args(["test", "--release", "--no-default-features", "--lib"]);
    steps.push(("fuzz mutator test".into(), f));
    let mut f = cargo();
    f.args([
        "run",
        "--quiet",
        "-p",
        "xtask",
        "--",
        "fuzz",
        "--seconds",
        "20",
    ]);
    steps.push((
        "fuzz every target for 20 s (cargo fuzz, AddressSanitizer)".into(),
        f,
    ));
    // The side-by-side peer boards (`cargo xtask bench peer`): benchmarks that need the peer's
    // sources from GitHub (CMSIS-NN; ESP-NN, for RISC-V), so here only their Rust side is checked.
    for (board, what) in [
        ("peer-cmsis-nn", "bench peer, CMSIS-NN"),
        ("peer-esp-nn", "bench peer --engine esp-nn, ESP-NN"),
    ] {
        let mut peer = cargo();
        peer.current_dir(crate::root().join("boards").join(board))
            .args(["clippy", "--release", "--", "-D", "warnings"])
            .env(
                "CARGO_TARGET_DIR",
                crate::root().join(crate::deploy::BOARDS_TARGET_DIR),
            )
            .env("SHIFTKIT_MODEL", &model)
            .env("PEER_RUST_ONLY", "1");
        steps.push((
            format!("board {board} passes clippy ({what} is fetched from GitHub, so not run here)"),
            peer,
        ));
    }
    // The harness both peers share, linted on its own (their clippy does not lint a path
    // dependency outside their workspace).
    let mut pc = cargo();
    pc.current_dir(crate::root().join("boards/peer-common"))
        .args([
            "clippy",
            "--release",
            "--target",
            "thumbv7em-none-eabihf",
            "--",
            "-D",
            "warnings",
        ])
        .env(
            "CARGO_TARGET_DIR",
            crate::root().join(crate::deploy::BOARDS_TARGET_DIR),
        );
    steps.push(("clippy (boards/peer-common)".into(), pc));
    for board in ["qemu-an500", "qemu-an505", "qemu-riscv32", "qemu-an386-m0"] {
        let mut d = cargo();
        d.args(["run", "--quiet", "-p", "xtask", "--", "deploy"])
            .args(["--board", board, "runs/default/model.skq"]);
        steps.push((format!("deploy on {board} (QEMU)"), d));
    }
    // The C library (capi/, docs/c-api.md): clippy on a Cortex-M target with the staticlib's
    // panic handler, then `export c --check` of the pipeline's model for every target: the C
    // example built with its Makefile runs the test digits on QEMU mps2-an386 (M4, and the M0+
    // build), mps2-an505 (M33), the host (x86_64) and qemu-aarch64, every int8 logit compared
    // with the host engine's, and the code sizes printed next to the Rust boards'.
    let mut c = cargo();
    c.args([
        "clippy",
        "--release",
        "-p",
        "shiftkit-c",
        "--features",
        "panic-handler",
    ])
    .args(["--target", "thumbv7em-none-eabihf", "--", "-D", "warnings"]);
    steps.push(("clippy (shiftkit-c staticlib, thumbv7em)".into(), c));
    for target in crate::export_c::TARGET_TRIPLES {
        #[cfg(target_arch = "x86_64")]
        if target.starts_with("x86_64") && !std::arch::is_x86_feature_detected!("avx2") {
            println!("== xtask test: C library for {target} not run: this CPU has no AVX2, which its kernels are built with");
            continue;
        }
        let mut e = cargo();
        e.args(["run", "--quiet", "-p", "xtask", "--", "export", "c"])
            .args(["runs/default/model.skq", "--target", target, "--out"])
            .arg(
                crate::root()
                    .join(crate::export_c::EXPORT_TARGET_DIR)
                    .join(format!("out-{target}")),
            )
            .arg("--check");
        steps.push((format!("C library for {target}: export c --check"), e));
    }
    // The publishable crates (the engine `shiftkit-engine`, the C library `shiftkit-c`): their
    // docs with warnings denied (every public item documented), their doctests (the engine
    // README's example classifies the shipped digits), `cargo publish --dry-run` of both (packs
    // them, builds each from its package), and the embedded-Rust example: a plain cortex-m-rt
    // program using the engine as a dependency, run on QEMU mps2-an386 (exits 0 only when every
    // digit is right).
    let mut d = cargo();
    d.env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "-p", "shiftkit-c", "--no-deps"]);
    steps.push(("rustdoc (shiftkit-c, warnings denied)".into(), d));
    let mut p = cargo();
    p.args(["publish", "--dry-run", "--allow-dirty"]).args([
        "-p",
        "shiftkit-engine",
        "-p",
        "shiftkit-c",
    ]);
    steps.push((
        "cargo publish --dry-run (shiftkit-engine, shiftkit-c)".into(),
        p,
    ));
    let mut e = cargo();
    e.current_dir(crate::root().join("examples/embedded-rust"))
        .env(
            "CARGO_TARGET_DIR",
            crate::root().join(crate::deploy::BOARDS_TARGET_DIR),
        )
        .args(["run", "--release"]);
    steps.push((
        "examples/embedded-rust on QEMU mps2-an386 (the engine as a dependency)".into(),
        e,
    ));
    let mut c = cargo();
    c.current_dir(crate::root().join("examples/embedded-rust"))
        .env(
            "CARGO_TARGET_DIR",
            crate::root().join(crate::deploy::BOARDS_TARGET_DIR),
        )
        .args(["clippy", "--release", "--", "-D", "warnings"]);
    steps.push(("clippy (examples/embedded-rust)".into(), c));
    let mut failed = Vec::new();
    let mut times = Vec::new();
    let all = std::time::Instant::now();
    for (name, cmd) in steps {
        println!("== xtask test: {name}");
        let start = std::time::Instant::now();
        if let Err(e) = run(cmd) {
            failed.push(format!("{name}: {e}"));
        }
        times.push((start.elapsed().as_secs_f64(), name));
    }
    // Where CI's time goes: the slowest steps, then the whole run.
    times.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!("== xtask test: the slowest steps");
    for (secs, name) in times.iter().take(10) {
        println!("   {secs:>7.1} s  {name}");
    }
    println!(
        "   {:>7.1} s  all {} steps",
        all.elapsed().as_secs_f64(),
        times.len()
    );
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
