//! `cargo xtask bench peer --engine tflm`: TFLite Micro whole (interpreter, its CMSIS-NN
//! kernels, the shifts as the builtin ops the exporter wrote) on the `.tflite` that `cargo xtask
//! export tflite` writes, next to shiftkit's `qemu-an386` board on the same model and images,
//! both on QEMU mps2-an386 (Cortex-M4).
//!
//! Sources (cloned at pinned revisions into `target/peers/` the first time, git and network
//! access needed; each can be given instead): TFLite Micro (`--tflm DIR` or `TFLM_DIR`), CMSIS-NN
//! at the tag `--engine cmsis-nn` uses (`--cmsis-nn DIR` or `CMSIS_NN_DIR`), the flatbuffers,
//! gemmlowp and ruy headers TFLM includes (`FLATBUFFERS_DIR`, `GEMMLOWP_DIR`, `RUY_DIR`). They
//! are compiled once by `tools/peer-tflm/Makefile` into `target/peers/tflm-build/libtflm.a`;
//! each network is then linked with `tools/peer-tflm/main.cc` and a generated `model.cc` (the
//! model and images as C arrays and `AddOps`, registering exactly the model's operators).
use super::{check_gcc, cmsis_nn_dir, tree, Args};
use crate::bench_firmware::prepare;
use crate::boards::{runner, IDX_IMAGES, IDX_LABELS};
use crate::deploy::build::run_timed;
use crate::deploy::{self, report, Overrides};
use crate::root;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// TFLite Micro's commit (2026-08-20), and the revisions of what it includes that its own
/// download scripts pin at that commit.
pub const TFLM_COMMIT: &str = "90b983c2b3f1480642e040bbd2ddb37b998f3424";
const TFLM_URL: &str = "https://github.com/tensorflow/tflite-micro";
const FLATBUFFERS_TAG: &str = "v25.9.23";
const FLATBUFFERS_URL: &str = "https://github.com/google/flatbuffers";
const GEMMLOWP_COMMIT: &str = "719139ce755a0f31cbf1c37f7f98adcc7fc9f425";
const GEMMLOWP_URL: &str = "https://github.com/google/gemmlowp";
const RUY_COMMIT: &str = "d37128311b445e758136b8602d1bbd2a755e115d";
const RUY_URL: &str = "https://github.com/google/ruy";
const MAKEFILE: &str = "tools/peer-tflm/Makefile";

/// The source trees the build needs.
struct Sources {
    tflm: PathBuf,
    cmsis_nn: PathBuf,
    flatbuffers: PathBuf,
    gemmlowp: PathBuf,
    ruy: PathBuf,
}

/// One network: the TFLM run and shiftkit's, on the same images.
struct Row {
    net: String,
    images: usize,
    tflm_instr: u64,
    /// shiftkit on the same file (TFLite's constants), and on its own (single rounding).
    ours_instr: u64,
    own_instr: u64,
    tflm_arena: u64,
    ours_arena: u64,
    tflm_code: u64,
    ours_code: u64,
    tflite_bytes: u64,
    skq_bytes: u64,
    /// Logits differing from shiftkit's host engine, of how many, and the largest difference.
    differ: usize,
    logits: usize,
    max_lsb: i32,
    ops: Vec<String>,
}

pub fn main(args: &Args, cmsis: Option<PathBuf>) -> Result<(), String> {
    let images = args.images.unwrap_or(20);
    check_gcc()?;
    let src = sources(args.tflm.clone(), cmsis)?;
    let build = root().join("target/peers/tflm-build");
    println!(
        "== bench peer --engine tflm: TFLite Micro {} with CMSIS-NN from {}",
        short(TFLM_COMMIT),
        src.cmsis_nn.display()
    );
    make(&src, &build, &["lib"])?;
    let work = root().join("target/bench-firmware");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let mut rows = Vec::new();
    for net in &args.nets {
        rows.push(one(net, images, &src, &build, &work)?);
    }
    let report = table(&rows);
    let out = root().join("target/bench-peer");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let path = out.join("tflm.md");
    std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("\n{report}\n(written to {})", path.display());
    let bad: Vec<&str> = rows
        .iter()
        .filter(|r| r.differ > 0)
        .map(|r| r.net.as_str())
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "TFLite Micro's int8 logits differ from shiftkit's on {} (table above)",
            bad.join(", ")
        ))
    }
}

fn short(c: &str) -> &str {
    &c[..c.len().min(8)]
}

/// Each tree: the given one, else `target/peers/NAME`, cloned at its pin if missing.
fn sources(tflm: Option<PathBuf>, cmsis: Option<PathBuf>) -> Result<Sources, String> {
    let env = |v: &str| std::env::var_os(v).map(PathBuf::from);
    let tflm = tree(
        tflm.or_else(|| env("TFLM_DIR")),
        "tflite-micro",
        TFLM_URL,
        TFLM_COMMIT,
        "tensorflow/lite/micro/micro_interpreter.h",
        "--tflm DIR (or set TFLM_DIR)",
    )?;
    let flatbuffers = tree(
        env("FLATBUFFERS_DIR"),
        "flatbuffers",
        FLATBUFFERS_URL,
        FLATBUFFERS_TAG,
        "include/flatbuffers/flatbuffers.h",
        "FLATBUFFERS_DIR",
    )?;
    let gemmlowp = tree(
        env("GEMMLOWP_DIR"),
        "gemmlowp",
        GEMMLOWP_URL,
        GEMMLOWP_COMMIT,
        "fixedpoint/fixedpoint.h",
        "GEMMLOWP_DIR",
    )?;
    let ruy = tree(
        env("RUY_DIR"),
        "ruy",
        RUY_URL,
        RUY_COMMIT,
        "ruy/profiler/instrumentation.h",
        "RUY_DIR",
    )?;
    let cmsis_nn = cmsis_nn_dir(cmsis)?;
    Ok(Sources {
        tflm,
        cmsis_nn,
        flatbuffers,
        gemmlowp,
        ruy,
    })
}

/// `make -f tools/peer-tflm/Makefile TARGETS` with the source trees (two jobs).
fn make(src: &Sources, build: &Path, targets: &[&str]) -> Result<(), String> {
    // Paths inside the checkout go relative (the objects are named after them), others as given.
    let root = root();
    let var = |k: &str, v: &Path| format!("{k}={}", v.strip_prefix(&root).unwrap_or(v).display());
    let mut c = Command::new("make");
    c.current_dir(&root)
        .args(["-s", "-j2", "-f", MAKEFILE])
        .arg(var("TFLM", &src.tflm))
        .arg(var("CMSIS_NN", &src.cmsis_nn))
        .arg(var("FLATBUFFERS", &src.flatbuffers))
        .arg(var("GEMMLOWP", &src.gemmlowp))
        .arg(var("RUY", &src.ruy))
        .arg(var("OUT", build))
        .args(targets);
    match c.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(format!(
            "make -f {MAKEFILE} {} failed (output above; TFLite Micro is C++ and needs \
             arm-none-eabi-g++ with its C++ library: apt-get install gcc-arm-none-eabi \
             libstdc++-arm-none-eabi-newlib)",
            targets.join(" ")
        )),
        Err(e) => Err(format!("could not run make: {e} (apt-get install make)")),
    }
}

/// One network: export, build, run on QEMU, check against the host engine, and shiftkit's
/// `qemu-an386` deploy on the same images.
fn one(net: &str, images: usize, src: &Sources, build: &Path, work: &Path) -> Result<Row, String> {
    let (own, idx) = prepare(net, work)?;
    let dir = work.join("tflm").join(net);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let skq = tflite_constants(&own, net, &dir)?;
    let bytes = std::fs::read(&skq).map_err(|e| format!("{}: {e}", skq.display()))?;
    let m = firmware::Model::from_bytes(&bytes)
        .map_err(|e| format!("{}: not a valid model: {e}", skq.display()))?;
    let tflite = dir.join("model.tflite");
    println!("== bench peer: {net}: export tflite {}", tflite.display());
    crate::pass_through(crate::shiftkit_quantize(&[
        "export-tflite".into(),
        skq.display().to_string(),
        "--out".into(),
        tflite.display().to_string(),
    ]))
    .map_err(|e| {
        let sep = if e.is_empty() { "" } else { ": " };
        format!(
            "`cargo xtask export tflite {}` failed{sep}{e}",
            skq.display()
        )
    })?;
    let model = std::fs::read(&tflite).map_err(|e| format!("{}: {e}", tflite.display()))?;
    let ops = opcodes(&model).map_err(|e| format!("{}: {e}", tflite.display()))?;

    let (img, lab) = idx
        .clone()
        .unwrap_or_else(|| (root().join(IDX_IMAGES), root().join(IDX_LABELS)));
    let (pixels, labels) = report::read_idx(&img, &lab, images)?;
    let n = labels.len();
    if pixels.first().is_some_and(|p| p.len() != m.input_len()) {
        return Err(format!(
            "{}: takes {} input bytes, the images in {} are {}",
            skq.display(),
            m.input_len(),
            img.display(),
            pixels[0].len()
        ));
    }
    let src_cc = dir.join("model.cc");
    std::fs::write(&src_cc, model_cc(&model, &pixels, &ops)?)
        .map_err(|e| format!("{}: {e}", src_cc.display()))?;
    let elf = dir.join("peer-tflm.elf");
    println!(
        "== bench peer: {net}: TFLite Micro with {} ({}), {n} images",
        ops.join(", "),
        elf.display()
    );
    let model_arg = format!("MODEL_SRC={}", src_cc.display());
    let elf_arg = format!("ELF={}", elf.display());
    make(src, build, &["elf", &model_arg, &elf_arg])?;

    let argv = runner(&root().join("boards/qemu-an386"))?;
    let (program, rest) = argv.split_first().ok_or("the board's runner is empty")?;
    let mut cmd = Command::new(program);
    cmd.args(rest).arg(&elf);
    let out = run_timed(
        cmd,
        deploy::default_timeout(n * 10),
        "install QEMU: apt-get install qemu-system-arm",
    )?;
    let run = parse(&out, n)?;

    // Every logit against the host engine's.
    let mut arena = vec![0i8; m.arena_bytes() + m.arena_align().max(1)];
    let off = arena.as_ptr().align_offset(m.arena_align().max(1));
    let (mut differ, mut logits, mut max_lsb) = (0, 0, 0);
    for (i, (p, dev)) in pixels.iter().zip(&run.logits).enumerate() {
        let host = firmware::run(&m, p, &mut arena[off..], &mut firmware::NoProfiler)
            .map_err(|e| format!("host engine, image {i}: {e}"))?;
        if host.len() != dev.len() {
            return Err(format!(
                "image {i}: TFLite Micro gave {} logits, shiftkit {}",
                dev.len(),
                host.len()
            ));
        }
        for (&h, &d) in host.iter().zip(dev) {
            let lsb = (i32::from(h) - i32::from(d)).abs();
            differ += usize::from(lsb != 0);
            max_lsb = max_lsb.max(lsb);
        }
        logits += host.len();
    }
    println!(
        "{net}: TFLite Micro {} instructions per inference, arena_used_bytes {}; {differ} of \
         {logits} int8 logits differ from shiftkit's (max {max_lsb} LSB)",
        run.instr, run.arena
    );

    // shiftkit on the same images: the qemu-an386 board, as deploy runs it.
    let over = Overrides {
        idx: Some((img, lab)),
        ..Overrides::default()
    };
    let ours = deploy::deploy_with("qemu-an386", &skq, n, deploy::default_timeout(n), &over)?;
    let own_run = deploy::deploy_with("qemu-an386", &own, n, deploy::default_timeout(n), &over)?;
    let board_elf = root().join("target/boards/thumbv7em-none-eabihf/release/qemu-an386");
    Ok(Row {
        net: net.to_string(),
        images: n,
        tflm_instr: run.instr,
        ours_instr: ours.qemu_instructions_per_inference,
        own_instr: own_run.qemu_instructions_per_inference,
        tflm_arena: run.arena,
        ours_arena: ours.arena_bytes as u64,
        tflm_code: section_bytes(&elf, ".text")?,
        ours_code: engine_code(&board_elf)?,
        tflite_bytes: model.len() as u64,
        skq_bytes: bytes.len() as u64,
        differ,
        logits,
        max_lsb,
        ops,
    })
}

/// The network of `own` (a run folder's `model.skq`) quantized again with TFLite's own
/// requantisation constants (`quantize --requant tflite`, the same calibration), into
/// `dir/run/`: the file both engines run, so that every logit can be compared.
fn tflite_constants(own: &Path, net: &str, dir: &Path) -> Result<PathBuf, String> {
    let from = own.parent().ok_or("the model has no run folder")?;
    let run = dir.join("run");
    std::fs::create_dir_all(&run).map_err(|e| format!("{}: {e}", run.display()))?;
    for f in ["model.json", "weights.safetensors", "train-config.json"] {
        let src = from.join(f);
        if src.is_file() {
            std::fs::copy(&src, run.join(f)).map_err(|e| format!("{}: {e}", src.display()))?;
        }
    }
    // bench firmware's prepare calibrates the synthetic-data networks on 64 images; the
    // default run was quantized by the pipeline with the quantizer's default.
    let mut args = vec!["quantize".to_string(), run.display().to_string()];
    args.extend(["--requant".into(), "tflite".into()]);
    if net != "default" {
        args.extend(["--calib".into(), "64".into()]);
    }
    println!(
        "== bench peer: {net}: quantize with TFLite's constants ({})",
        run.display()
    );
    crate::pass_through(crate::shiftkit_quantize(&args))?;
    Ok(run.join("model.skq"))
}

/// What the TFLM program printed.
#[derive(Debug)]
struct TflmRun {
    /// Mean instructions per `Invoke()`.
    instr: u64,
    arena: u64,
    logits: Vec<Vec<i8>>,
}

/// Reads `image I ticks T logits ..`, `arena_used_bytes N` and `done N` (tools/peer-tflm/main.cc).
fn parse(out: &str, n: usize) -> Result<TflmRun, String> {
    let bad = |l: &str| format!("cannot parse the TFLite Micro program's line: {l}");
    let (mut ticks, mut arena, mut done, mut logits) = (0u64, None, None, Vec::new());
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.first().copied() {
            Some("image") => {
                if w.get(2) != Some(&"ticks") || w.get(4) != Some(&"logits") {
                    return Err(bad(l));
                }
                ticks += w[3].parse::<u64>().map_err(|_| bad(l))?;
                let v: Result<Vec<i8>, _> = w[5..].iter().map(|v| v.parse::<i8>()).collect();
                logits.push(v.map_err(|_| bad(l))?);
            }
            Some("arena_used_bytes") => {
                arena = Some(
                    w.get(1)
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad(l))?,
                )
            }
            Some("done") => done = Some(()),
            Some("error") => return Err(format!("the TFLite Micro program failed: {l}")),
            _ => {}
        }
    }
    if done.is_none() || logits.len() != n {
        return Err(format!(
            "the TFLite Micro program stopped after {} of {n} images:\n{out}",
            logits.len()
        ));
    }
    // SysTick: one tick per 40 instructions under -icount shift=0 (25 MHz, 1 ns an instruction).
    Ok(TflmRun {
        instr: ticks * 40 / n.max(1) as u64,
        arena: arena.ok_or("the TFLite Micro program printed no arena_used_bytes")?,
        logits,
    })
}

/// The builtin operator of each of the model's operator codes (TFLite schema: `Model` field 1
/// `operator_codes`; `OperatorCode` fields 0 `deprecated_builtin_code` (int8) and 3
/// `builtin_code` (int32), the larger of the two), as TFLM's `AddXxx` names.
fn opcodes(b: &[u8]) -> Result<Vec<String>, String> {
    let bad = || "not a TFLite flatbuffer (bad offsets)".to_string();
    let u32_at = |p: usize| -> Result<usize, String> {
        b.get(p..p + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
            .ok_or_else(bad)
    };
    if b.get(4..8) != Some(b"TFL3") {
        return Err("not a TFLite flatbuffer (no TFL3 identifier)".into());
    }
    // The position of field `f` of the table at `t`, if present.
    let field = |t: usize, f: usize| -> Result<Option<usize>, String> {
        let so = i32::from_le_bytes(b.get(t..t + 4).ok_or_else(bad)?.try_into().unwrap());
        let vt = (t as i64 - so as i64).try_into().map_err(|_| bad())?;
        let vt: usize = vt;
        let size = b.get(vt..vt + 2).ok_or_else(bad)?;
        let size = u16::from_le_bytes([size[0], size[1]]) as usize;
        if 4 + 2 * f + 2 > size {
            return Ok(None);
        }
        let o = b.get(vt + 4 + 2 * f..vt + 6 + 2 * f).ok_or_else(bad)?;
        let o = u16::from_le_bytes([o[0], o[1]]) as usize;
        Ok((o != 0).then_some(t + o))
    };
    let root_t = u32_at(0)?;
    let codes = field(root_t, 1)?.ok_or("the model has no operator codes")?;
    let vec = codes + u32_at(codes)?;
    let len = u32_at(vec)?;
    let mut ops = Vec::new();
    for i in 0..len {
        let e = vec + 4 + 4 * i;
        let t = e + u32_at(e)?;
        let dep = match field(t, 0)? {
            Some(p) => i32::from(*b.get(p).ok_or_else(bad)? as i8),
            None => 0,
        };
        let code = match field(t, 3)? {
            Some(p) => u32_at(p)? as i32,
            None => 0,
        };
        let code = dep.max(code);
        let name = match code {
            0 => "Add",
            1 => "AveragePool2D",
            2 => "Concatenation",
            3 => "Conv2D",
            4 => "DepthwiseConv2D",
            6 => "Dequantize",
            9 => "FullyConnected",
            14 => "Logistic",
            17 => "MaxPool2D",
            18 => "Mul",
            19 => "Relu",
            21 => "Relu6",
            22 => "Reshape",
            25 => "Softmax",
            34 => "Pad",
            39 => "Transpose",
            40 => "Mean",
            41 => "Sub",
            43 => "Squeeze",
            45 => "StridedSlice",
            49 => "Split",
            55 => "Maximum",
            57 => "Minimum",
            60 => "PadV2",
            65 => "Slice",
            74 => "Sum",
            114 => "Quantize",
            c => {
                return Err(format!(
                    "builtin operator {c} (schema BuiltinOperator) is not one this bench registers"
                ))
            }
        };
        if !ops.iter().any(|o| o == name) {
            ops.push(name.to_string());
        }
    }
    Ok(ops)
}

/// The generated C++ of one network: the model and images as arrays in `.model_data` (kept
/// apart from the code by tools/peer-tflm/link.ld) and `AddOps`.
fn model_cc(model: &[u8], pixels: &[Vec<u8>], ops: &[String]) -> Result<String, String> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by cargo xtask bench peer --engine tflm.\n\
         #include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"\n"
    );
    let array = |s: &mut String, name: &str, b: &[u8]| {
        let _ = write!(
            s,
            "extern const unsigned char {name}[];\n\
             __attribute__((section(\".model_data\"), aligned(16))) const unsigned char {name}[] = {{"
        );
        for (i, v) in b.iter().enumerate() {
            if i % 24 == 0 {
                s.push('\n');
            }
            let _ = write!(s, "{v},");
        }
        s.push_str("\n};\n");
    };
    array(&mut s, "g_model", model);
    let len = pixels.first().map_or(0, Vec::len);
    if pixels.iter().any(|p| p.len() != len) {
        return Err("the test images differ in size".into());
    }
    array(&mut s, "g_images", &pixels.concat());
    let _ = writeln!(
        s,
        "extern const unsigned int g_num_images = {}, g_image_bytes = {len};\n\
         TfLiteStatus AddOps(tflite::MicroMutableOpResolver<32>& r) {{",
        pixels.len()
    );
    for o in ops {
        let _ = writeln!(s, "  if (r.Add{o}() != kTfLiteOk) return kTfLiteError;");
    }
    s.push_str("  return kTfLiteOk;\n}\n");
    Ok(s)
}

/// The size of one section of an ELF (`arm-none-eabi-size -A`).
fn section_bytes(elf: &Path, name: &str) -> Result<u64, String> {
    let out = Command::new("arm-none-eabi-size")
        .arg("-A")
        .arg(elf)
        .output()
        .map_err(|e| format!("arm-none-eabi-size: {e} (apt-get install binutils-arm-none-eabi)"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&name)).then(|| w.get(1)?.parse().ok())?
        })
        .ok_or_else(|| format!("{}: no {name} section", elf.display()))
}

/// The engine crate's name in symbols.
const ENGINE_CRATE: &str = "shiftkit_engine";

/// Our engine's code in a board ELF, BENCHMARKS.md's recipe: the text symbols of the engine
/// crate, without its report writer.
fn engine_code(elf: &Path) -> Result<u64, String> {
    let out = Command::new("llvm-nm")
        .args(["--size-sort", "-S", "-C"])
        .arg(elf)
        .output()
        .map_err(|e| format!("llvm-nm: {e} (apt-get install llvm)"))?;
    if !out.status.success() {
        return Err(format!("llvm-nm {} failed", elf.display()));
    }
    let mut sum = 0;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let w: Vec<&str> = l.splitn(4, ' ').collect();
        if w.len() == 4
            && w[2].eq_ignore_ascii_case("t")
            && (w[3].contains(&format!("{ENGINE_CRATE}::"))
                || w[3].contains(&format!("{ENGINE_CRATE}..")))
            && !w[3].contains("report")
        {
            sum += u64::from_str_radix(w[1], 16).map_err(|_| format!("llvm-nm line: {l}"))?;
        }
    }
    Ok(sum)
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b.max(1) as f64
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "TFLite Micro {} (whole: interpreter, CMSIS-NN kernels, the shifts as the exporter's \
         builtin ops) vs shiftkit (qemu-an386 board), QEMU mps2-an386 Cortex-M4, the same \
         .skq exported to .tflite and the same images. The file is quantized with TFLite's \
         own constants (`--requant tflite`), so both engines compute the same integers; \
         `own file` is shiftkit on the network as `quantize` writes it by default (single \
         rounding, the DSP wide path). Instructions: mean per inference \
         (SysTick under -icount shift=0); arena: TFLM arena_used_bytes() vs our arena_bytes; \
         code: .text of the TFLM image without the model and images vs our engine's text \
         symbols (BENCHMARKS.md recipe); logits: every int8 logit against shiftkit's host \
         engine.\n",
        short(TFLM_COMMIT)
    );
    let _ = writeln!(
        s,
        "| network | images | TFLM instr | shiftkit instr | TFLM / shiftkit | shiftkit instr, own file | TFLM / that | TFLM arena B | shiftkit arena B | ratio | TFLM code B | shiftkit code B | ratio | .tflite B | .skq B | ratio | int8 logits |"
    );
    let _ = writeln!(
        s,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for r in rows {
        let eq = if r.differ == 0 {
            format!("all {} equal", r.logits)
        } else {
            format!("{} of {} differ, max {} LSB", r.differ, r.logits, r.max_lsb)
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | **{:.2}x** | {} | {:.2}x | {} | {} | {:.2}x | {} | {} | {:.2}x | {} | {} | {:.2}x | {eq} |",
            r.net,
            r.images,
            r.tflm_instr,
            r.ours_instr,
            ratio(r.tflm_instr, r.ours_instr),
            r.own_instr,
            ratio(r.tflm_instr, r.own_instr),
            r.tflm_arena,
            r.ours_arena,
            ratio(r.tflm_arena, r.ours_arena),
            r.tflm_code,
            r.ours_code,
            ratio(r.tflm_code, r.ours_code),
            r.tflite_bytes,
            r.skq_bytes,
            ratio(r.tflite_bytes, r.skq_bytes),
        );
    }
    let _ = writeln!(s);
    for r in rows {
        let _ = writeln!(s, "{}: TFLM ops {}", r.net, r.ops.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_program_output() {
        let out = "image 0 ticks 100 logits 1 -2 3\nimage 1 ticks 300 logits 4 5 -128\n\
                   arena_used_bytes 1234\ndone 2\n";
        let r = parse(out, 2).unwrap();
        assert_eq!(r.instr, 200 * 40);
        assert_eq!(r.arena, 1234);
        assert_eq!(r.logits, vec![vec![1, -2, 3], vec![4, 5, -128]]);
        assert!(parse("error Invoke\n", 1).unwrap_err().contains("Invoke"));
        assert!(parse("image 0 ticks 1 logits 1\n", 2).is_err());
    }

    /// TFLM's own hello-world model, where `bench peer --engine tflm` has fetched TFLM.
    #[test]
    fn reads_the_operators_of_a_real_model() {
        let p = root().join(
            "target/peers/tflite-micro/tensorflow/lite/micro/examples/hello_world/models/hello_world_int8.tflite",
        );
        let Ok(b) = std::fs::read(&p) else { return };
        assert_eq!(opcodes(&b).unwrap(), vec!["FullyConnected".to_string()]);
    }

    #[test]
    fn refuses_what_is_not_tflite() {
        assert!(opcodes(b"not a model at all").unwrap_err().contains("TFL3"));
        let mut b = vec![0u8; 8];
        b[0] = 200;
        b[4..8].copy_from_slice(b"TFL3");
        assert!(opcodes(&b).is_err());
    }
}
