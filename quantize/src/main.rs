//! `shiftkit-quantize`: `cargo xtask quantize` and `cargo xtask eval` call this.
#![forbid(unsafe_code)]
use quantize::{calib::Method, engine, report, Options, QuantError};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  shiftkit-quantize quantize DIR [--calib N] [--method minmax|percentile|mse] [--data SPEC]
                             [--sqnr-images N] [--json]
      DIR holds model.json + weights.safetensors (a training run); writes DIR/model.skq and
      DIR/quant-report.json and prints the report (as JSON with --json).
      --calib N: training images to calibrate on (default 500); --method: activation ranges by
      min/max, 99.99th percentile or MSE-optimal clipping (default mse); --data: the dataset
      (default: the run's own, from train-config.json).
  shiftkit-quantize eval MODEL.skq [--data SPEC] [--json]
      int8 accuracy on the test split through the firmware engine (--json: {\"accuracy\",\"images\"}).
  shiftkit-quantize zoo [--json]
      every zoo network: params, MACs, int8 peak activation bytes of a plain liveness plan, and the
      arena of our memory plan next to a conventional engine's (shift as Pad+Slice+Concat, TFLite
      Micro's greedy planner).
SPEC: mnist (bundled) | mnist:DIR | cifar10:DIR | cifar100:DIR";

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>, what: &str) -> Result<T, QuantError> {
    let v = v.ok_or_else(|| QuantError::Usage(format!("{flag} needs a value ({what})")))?;
    v.parse()
        .map_err(|_| QuantError::Usage(format!("{flag} {v}: expected {what}")))
}

fn quantize_cmd(args: Vec<String>) -> Result<(), QuantError> {
    let mut opts = Options::default();
    let mut dir: Option<PathBuf> = None;
    let mut json = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--calib" => opts.calib = value(&a, it.next(), "a whole number of images")?,
            "--method" => {
                let v: String = value(&a, it.next(), "minmax, percentile or mse")?;
                opts.method = v.parse::<Method>().map_err(QuantError::Usage)?;
            }
            "--data" => opts.data = Some(value(&a, it.next(), "a dataset SPEC")?),
            "--sqnr-images" => opts.sqnr_images = value(&a, it.next(), "a whole number of images")?,
            "--json" => json = true,
            s if s.starts_with("--") => {
                return Err(QuantError::Usage(format!("unknown option {s}\n{USAGE}")))
            }
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => {
                return Err(QuantError::Usage(format!(
                    "unexpected argument {a}\n{USAGE}"
                )))
            }
        }
    }
    let dir =
        dir.ok_or_else(|| QuantError::Usage(format!("quantize needs a run folder\n{USAGE}")))?;
    if opts.calib == 0 {
        return Err(QuantError::Usage("--calib must be at least 1".into()));
    }
    let rep = quantize::quantize_dir(&dir, &opts)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rep).map_err(|e| QuantError::Encode(e.to_string()))?
        );
    } else {
        print!("{}", report::table(&rep));
        println!(
            "wrote {} and {}",
            dir.join("model.skq").display(),
            dir.join("quant-report.json").display()
        );
    }
    Ok(())
}

fn eval_cmd(args: Vec<String>) -> Result<(), QuantError> {
    let mut path: Option<PathBuf> = None;
    let mut data = "mnist".to_string();
    let mut json = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = value(&a, it.next(), "a dataset SPEC")?,
            "--json" => json = true,
            s if s.starts_with("--") => {
                return Err(QuantError::Usage(format!("unknown option {s}\n{USAGE}")))
            }
            _ if path.is_none() => path = Some(PathBuf::from(a)),
            _ => {
                return Err(QuantError::Usage(format!(
                    "unexpected argument {a}\n{USAGE}"
                )))
            }
        }
    }
    let path =
        path.ok_or_else(|| QuantError::Usage(format!("eval needs a model file\n{USAGE}")))?;
    let bytes = std::fs::read(&path).map_err(host_train::io::io_err(&path))?;
    let eng = engine::Firmware::new(&bytes)
        .map_err(|e| QuantError::Engine(format!("{}: {e}", path.display())))?;
    let spec: host_train::data::DataSpec = data.parse()?;
    let splits = host_train::data::load(&spec)?;
    let test = &splits.test;
    if test.classes != quantize::engine::Engine::classes(&eng) {
        return Err(QuantError::Usage(format!(
            "{}: the model has {} classes, {spec} has {}",
            path.display(),
            quantize::engine::Engine::classes(&eng),
            test.classes
        )));
    }
    let acc = report::int8_accuracy(&eng, test)
        .map_err(|e| QuantError::Engine(format!("{}: {e}", path.display())))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"accuracy": acc, "images": test.len()})
        );
    } else {
        println!(
            "{}: int8 accuracy {:.2}% on {} test images of {spec} (firmware engine)",
            path.display(),
            100.0 * acc,
            test.len()
        );
    }
    Ok(())
}

/// One row of `zoo`: host-train's entry plus the two arena figures.
#[derive(serde::Serialize)]
struct ZooRow {
    #[serde(flatten)]
    entry: host_train::zoo::ZooEntry,
    arena_bytes: usize,
    conventional_arena_bytes: usize,
    /// The conventional graph's most bytes live at one op (a perfect planner without in-place).
    conventional_live_peak_bytes: usize,
    arena_saving_percent: f64,
}

fn zoo_cmd(args: Vec<String>) -> Result<(), QuantError> {
    let mut json = false;
    for a in args {
        match a.as_str() {
            "--json" => json = true,
            _ => {
                return Err(QuantError::Usage(format!(
                    "unexpected argument {a}\n{USAGE}"
                )))
            }
        }
    }
    let mut rows = vec![];
    for entry in host_train::zoo::entries() {
        let arch = host_train::zoo::arch(&entry.name).ok_or_else(|| {
            QuantError::Unsupported(format!("zoo network {} has no architecture", entry.name))
        })?;
        let g = arch.graph();
        let a = quantize::conventional::arenas_of_graph(&g)?;
        rows.push(ZooRow {
            entry,
            arena_bytes: a.ours,
            conventional_arena_bytes: a.conventional,
            conventional_live_peak_bytes: quantize::conventional::of_graph(&g)?.live_peak,
            arena_saving_percent: (a.saving_percent() * 10.0).round() / 10.0,
        });
    }
    use std::fmt::Write as _;
    let mut text = String::new();
    if json {
        text =
            serde_json::to_string_pretty(&rows).map_err(|e| QuantError::Encode(e.to_string()))?;
        text.push('\n');
    } else {
        let _ = writeln!(
            text,
            "{:<24} {:>11} {:>14} {:>13} {:>12} {:>14} {:>7}",
            "name", "params", "MACs", "liveness B", "arena B", "convent. B", "saving"
        );
        for r in &rows {
            let _ = writeln!(
                text,
                "{:<24} {:>11} {:>14} {:>13} {:>12} {:>14} {:>6.1}%",
                r.entry.name,
                r.entry.params,
                r.entry.macs,
                r.entry.peak_activation_bytes,
                r.arena_bytes,
                r.conventional_arena_bytes,
                r.arena_saving_percent
            );
        }
        let _ = writeln!(
            text,
            "liveness B: int8 activation bytes live at the worst op, input included, no in-place op \
             (host-train's plain liveness figure); arena B: the arena of quantize's memory plan (shift \
             as a view, in-place adds, 1x1 convs and 2x2 average pools, op order chosen for memory, \
             input outside the arena); convent. B: a conventional engine on the same network (shift \
             as Pad + Slice + Concat, no in-place op, TFLite Micro's greedy planner, the network's op \
             order, input outside the arena); saving: 1 - arena / conventional"
        );
    }
    // One write; a reader that stops early (`| head`) is not an error.
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(QuantError::Usage(format!("writing to stdout: {e}")))
        }
        _ => {}
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let r = match args.next().as_deref() {
        Some("quantize") => quantize_cmd(args.collect()),
        Some("eval") => eval_cmd(args.collect()),
        Some("zoo") => zoo_cmd(args.collect()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(QuantError::Usage(USAGE.to_string())),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(QuantError::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
