//! `cargo xtask <cmd>`: the one pipeline. Each task is a small function that calls the stage
//! binaries with cargo; CI only calls `cargo xtask test`. The command line is clap's (every
//! command has `--help`); the stage commands (`zoo`, `train`, `quantize`, `eval`) pass their
//! arguments on to the stage binary as they are.
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod bench_firmware;
mod bench_peer;
mod boards;
mod deploy;
mod export_c;
mod fuzz;
mod kernel_check;
mod measure;
mod oracle;
mod setup;
mod test;

/// The one pipeline: each command is a small function that calls the stage binaries with cargo.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Every zoo network: params, MACs, int8 peak activation bytes, and the arena of our memory
    /// plan next to a conventional engine's (ARGS: [--json])
    Zoo(PassThrough),
    /// Train a network (defaults: mnist-flat-4c on the bundled MNIST, --out runs/<model>)
    ///
    /// ARGS go to shiftkit-train's `train` as they are: --model NAME --data SPEC --epochs N
    /// --device cpu|cuda --out DIR --resume DIR --batch --lr --momentum --nesterov --wd
    /// --schedule --warmup --seed --threads --quiet; `--help` too (shiftkit-train's own help,
    /// every flag with its default).
    #[command(disable_help_flag = true)]
    Train(PassThrough),
    /// Float run folder -> DIR/model.skq + DIR/quant-report.json
    /// (ARGS: DIR [--calib N] [--method minmax|percentile|mse])
    Quantize(PassThrough),
    /// Int8 accuracy on the host through the firmware engine
    /// (ARGS: MODEL.skq [--data SPEC] [--json]; the data defaults to the model's training data)
    Eval(PassThrough),
    /// The top classes of image files through the firmware engine
    /// (ARGS: MODEL.skq IMAGE... [--top N] [--json])
    Predict(PassThrough),
    /// Check the memory budget, build the board firmware with the model, run it (QEMU boards),
    /// flash it with probe-rs (real boards) or run it over ssh or under qemu-aarch64 (jetson);
    /// every int8 logit is compared with the host engine's
    Deploy(deploy::Args),
    /// Deploy, then the per-layer cost/memory table and measure-BOARD.svg (per-layer bars + arena
    /// bytes live per op) next to the model
    Measure(deploy::Args),
    /// The main job: train -> quantize -> deploy on qemu-an386 (defaults: mnist-flat-4c on the
    /// bundled MNIST, into runs/default)
    Pipeline {
        /// Do not install qemu-system-arm when it is missing (the deploy stage is then skipped)
        #[arg(long)]
        no_install: bool,
        /// The dataset (e.g. folder:DIR, your own images; the board runs its test images)
        #[arg(long, value_name = "SPEC")]
        data: Option<String>,
        /// The network: a zoo name or a spec (`cargo xtask zoo`)
        #[arg(long, value_name = "NAME|SPEC")]
        model: Option<String>,
        /// The run folder [default: runs/default, or runs/pipeline with --data or --model]
        #[arg(long, value_name = "DIR")]
        out: Option<String>,
        /// Training epochs [default: the trainer's]
        #[arg(long, value_name = "N")]
        epochs: Option<usize>,
    },
    /// Fuzz the parsers with libFuzzer (cargo-fuzz, nightly): the .skq loader and engine, the
    /// graph record reader, the data loaders; each target for a fixed time from fuzz/corpus
    Fuzz(fuzz::Args),
    /// Benchmarks
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Export the model for other firmware: `export c` writes a C library, header, model array
    /// and example (docs/c-api.md)
    #[command(subcommand)]
    Export(export_c::Export),
    /// Google's LiteRT interpreter as an outside oracle: export MODEL.skq to .tflite, run it with
    /// LiteRT's kernel sets on the model's test images, compare every int8 logit with our engine
    Oracle(oracle::Args),
    /// Install what the tests and the pipeline need (rustup targets and components, Debian
    /// packages)
    Setup {
        /// Only list what is missing; fail if anything is
        #[arg(long)]
        check: bool,
    },
    /// Everything CI runs: setup, rustfmt, clippy, every test, the pipeline, every board
    Test,
}

/// The arguments of a command that a stage binary parses: passed on as they are.
#[derive(clap::Args, Debug)]
pub struct PassThrough {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}

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

/// What `pipeline` trains, on what, and where.
#[derive(Debug, Default)]
struct PipelineArgs {
    data: Option<String>,
    model: Option<String>,
    out: Option<String>,
    epochs: Option<usize>,
}

/// train -> quantize -> deploy on QEMU Cortex-M4 (when qemu-system-arm is there).
fn pipeline(no_install: bool, p: PipelineArgs) -> Result<(), String> {
    let custom = p.data.is_some() || p.model.is_some();
    let out = p.out.clone().unwrap_or_else(|| {
        if custom {
            "runs/pipeline"
        } else {
            "runs/default"
        }
        .to_string()
    });
    let out = out.as_str();
    let dir = root().join(out);
    let board = "qemu-an386";
    if !boards::qemu_available(board) {
        if no_install {
            println!("== pipeline: qemu-system-arm is not installed and --no-install was given: the device stage will be skipped");
        } else {
            println!("== pipeline: installing qemu-system-arm for the device stage (--no-install skips this)");
            if let Err(e) = setup::ensure_packages(&[&setup::QEMU_ARM]) {
                println!("== pipeline: could not install qemu-system-arm ({e}); the device stage will be skipped");
            }
        }
    }
    let (model, data) = (
        p.model.as_deref().unwrap_or("mnist-flat-4c"),
        p.data.as_deref().unwrap_or("mnist"),
    );
    let what = if data == "mnist" {
        "the bundled MNIST"
    } else {
        data
    };
    println!("== pipeline 1/3: train {model} on {what} (CPU) -> {out}");
    let mut train = vec!["train".to_string(), "--out".into(), out.into()];
    for (flag, v) in [("--model", &p.model), ("--data", &p.data)] {
        if let Some(v) = v {
            train.extend([flag.to_string(), v.clone()]);
        }
    }
    if let Some(e) = p.epochs {
        train.extend(["--epochs".into(), e.to_string()]);
    }
    pass_through(shiftkit_train(&train))?;
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
    if boards::qemu_available(board) {
        println!("== pipeline 3/3: deploy on {board} (QEMU Cortex-M4)");
        let images = 20;
        let model = dir.join("model.skq");
        // The run's own test images when it was not trained on the bundled MNIST.
        let over = deploy::data_overrides(&model, None, images)?;
        let r = deploy::deploy_with(
            board,
            &model,
            images,
            deploy::default_timeout(images),
            &over,
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

/// `ARGS` after the stage binary's subcommand name.
pub fn stage_args(sub: &str, args: &[String]) -> Vec<String> {
    let mut a = vec![sub.to_string()];
    a.extend_from_slice(args);
    a
}

fn main() -> ExitCode {
    // Bad usage exits 1, as every other failure does (clap's own status would be 2).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        // The quantizer lists the zoo: host-train's figures plus both memory plans.
        Cmd::Zoo(p) => pass_through(shiftkit_quantize(&stage_args("zoo", &p.args))),
        Cmd::Train(p) => train(p.args),
        Cmd::Quantize(p) => pass_through(shiftkit_quantize(&stage_args("quantize", &p.args))),
        Cmd::Eval(p) => pass_through(shiftkit_quantize(&stage_args("eval", &p.args))),
        Cmd::Predict(p) => pass_through(shiftkit_quantize(&stage_args("predict", &p.args))),
        Cmd::Deploy(a) => deploy::main(&a),
        Cmd::Measure(a) => measure::main(&a),
        Cmd::Pipeline {
            no_install,
            data,
            model,
            out,
            epochs,
        } => pipeline(
            no_install,
            PipelineArgs {
                data,
                model,
                out,
                epochs,
            },
        ),
        Cmd::Fuzz(a) => fuzz::fuzz(&a),
        Cmd::Bench(b) => bench::main(&b),
        Cmd::Export(e) => export_c::main(&e),
        Cmd::Oracle(a) => oracle::main(&a),
        Cmd::Setup { check } => setup::main(check),
        Cmd::Test => test::main(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_typo_gets_a_suggestion() {
        let e = parse(&["trian"]).unwrap_err().to_string();
        assert!(e.contains("'train'"), "{e}");
        let e = parse(&["deploy", "--board", "qemu-an368", "m.skq"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("qemu-an386"), "{e}");
    }

    #[test]
    fn every_command_has_help() {
        for cmd in Cli::command().get_subcommands() {
            let name = cmd.get_name().to_string();
            if name == "train" {
                continue;
            }
            let e = parse(&[&name, "--help"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{name}");
        }
        // train's --help is shiftkit-train's: passed through with the rest.
        let cmd = parse(&["train", "--help"]).unwrap().command;
        let Cmd::Train(p) = cmd else {
            panic!("not train: {cmd:?}")
        };
        assert_eq!(p.args, ["--help"]);
        for b in ["train", "firmware", "peer"] {
            let e = parse(&["bench", b, "--help"]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "bench {b}");
        }
    }

    #[test]
    fn deploy_flags_and_defaults() {
        let cmd = parse(&["deploy", "--board", "qemu-an386", "m.skq"])
            .unwrap()
            .command;
        let Cmd::Deploy(a) = cmd else {
            panic!("not deploy: {cmd:?}")
        };
        assert_eq!((a.board.as_str(), a.images), ("qemu-an386", 20));
        assert_eq!(
            (a.ssh.as_deref(), a.timeout()),
            (None, deploy::default_timeout(20))
        );
        let cmd = parse(&[
            "measure",
            "--board",
            "jetson",
            "m.skq",
            "--images",
            "3",
            "--ssh",
            "u@h",
            "--timeout",
            "9",
        ])
        .unwrap()
        .command;
        let Cmd::Measure(a) = cmd else {
            panic!("not measure: {cmd:?}")
        };
        assert_eq!((a.images, a.ssh.as_deref()), (3, Some("u@h")));
        assert_eq!(a.timeout().as_secs(), 9);
        assert!(parse(&["deploy", "m.skq"]).is_err(), "--board is required");
        assert!(parse(&["deploy", "--board", "rp-pico", "m.skq", "--images", "x"]).is_err());
    }

    #[test]
    fn stage_commands_pass_their_flags_through() {
        let cmd = parse(&["train", "--epochs", "1", "--out", "runs/x"])
            .unwrap()
            .command;
        let Cmd::Train(p) = cmd else {
            panic!("not train: {cmd:?}")
        };
        assert_eq!(p.args, ["--epochs", "1", "--out", "runs/x"]);
        let cmd = parse(&["quantize", "runs/x", "--calib", "8", "--help"])
            .unwrap()
            .command;
        let Cmd::Quantize(p) = cmd else {
            panic!("not quantize: {cmd:?}")
        };
        assert_eq!(p.args, ["runs/x", "--calib", "8", "--help"]);
        assert!(matches!(
            parse(&["pipeline", "--no-install"]).unwrap().command,
            Cmd::Pipeline {
                no_install: true,
                data: None,
                model: None,
                ..
            }
        ));
        let Cmd::Pipeline { data, model, .. } = parse(&[
            "pipeline",
            "--data",
            "folder:imgs",
            "--model",
            "flat-4c:in=32x32x3",
        ])
        .unwrap()
        .command
        else {
            panic!("not pipeline")
        };
        assert_eq!(
            (data.as_deref(), model.as_deref()),
            (Some("folder:imgs"), Some("flat-4c:in=32x32x3"))
        );
        assert!(matches!(
            parse(&["setup", "--check"]).unwrap().command,
            Cmd::Setup { check: true }
        ));
    }

    #[test]
    fn bench_flags_and_defaults() {
        let cmd = parse(&["bench", "train"]).unwrap().command;
        let Cmd::Bench(bench::Bench::Train { model }) = cmd else {
            panic!("not bench train: {cmd:?}")
        };
        assert_eq!(model, "mnist-flat-4c");
        for bad in [
            &["bench", "firmware", "--images", "0"][..],
            &["bench", "firmware", "--boards", "qemu-an386,rp-pico"],
            &["bench", "peer", "--opt", "3,4"],
            &["bench", "peer", "--nets", "resnet9"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let ok = [
            "bench",
            "firmware",
            "--boards",
            "qemu-an505",
            "--nets",
            "default",
        ];
        assert!(parse(&ok).is_ok());
    }
}
