//! `shiftkit-quantize`: `cargo xtask quantize` and `cargo xtask eval` call this.
#![forbid(unsafe_code)]
use quantize::{calib::Method, engine, report, Options, QuantError};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage:
  shiftkit-quantize quantize DIR [--calib N] [--method minmax|percentile|mse] [--data SPEC]
                             [--requant single|tflite] [--sqnr-images N] [--json]
      DIR holds model.json + weights.safetensors (a training run); writes DIR/model.skq and
      DIR/quant-report.json and prints the report (as JSON with --json).
      --calib N: training images to calibrate on (default 500); --method: activation ranges by
      min/max, 99.99th percentile or MSE-optimal clipping (default mse); --data: the dataset
      (default: the run's own, from train-config.json). --requant: conv requantisation constants,
      single (default: the engine's single-rounding form, fastest on the DSP cores) or tflite
      (TFLite's own constants from f32 scales, so `export-tflite` is bit-exact in TFLite).
  shiftkit-quantize eval MODEL.skq [--data SPEC] [--logits FILE] [--json]
      int8 accuracy on the test split through the firmware engine (--json: {\"accuracy\",\"images\"});
      --logits FILE: every test image's int8 logits as JSON ({\"labels\", \"logits\", ..});
      --inputs FILE: the test images themselves, u8 NHWC, as a NumPy .npy; --float-logits FILE:
      the float network's logits (from the run folder beside the model) as JSON;
      the data defaults to what the model was trained on (train-config.json beside MODEL.skq),
      else the bundled MNIST.
  shiftkit-quantize predict MODEL.skq IMAGE... [--top N] [--json]
      the top N (default 3) classes of each image file through the firmware engine, resized as
      in training (class names from model.json beside the model).
  shiftkit-quantize export-tflite MODEL.skq [--out FILE]
      the int8 model as a TFLite flatbuffer (default MODEL.tflite), for LiteRT, TFLite Micro and
      Netron; says whether TFLite's arithmetic on it is ours bit for bit (docs/tflite.md).
  shiftkit-quantize export-onnx RUN_DIR|MODEL.skq [--out DIR]
      model.onnx (the float network, from a run folder) and model.int8.onnx (the int8 network as
      QDQ, from its model.skq), opset 13, for onnxruntime and Netron.
  shiftkit-quantize zoo [--json] [--model NAME|SPEC]...
      every zoo network (or each --model: a zoo name or a spec FAMILY[:KEY=VALUE,...] such as
      flat-4c:in=96x96x3,w=16,blocks=2-2-2; see `shiftkit-train train --help`): params, MACs, int8
      peak activation bytes of a plain liveness plan, and the arena of our memory plan next to a
      conventional engine's (shift as Pad+Slice+Concat, TFLite Micro's greedy planner).
SPEC: mnist (bundled) | mnist:DIR | cifar10:DIR | cifar100:DIR | folder:DIR";

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
            "--requant" => {
                let v: String = value(&a, it.next(), "single or tflite")?;
                opts.requant = v.parse().map_err(QuantError::Usage)?;
            }
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
    let mut data: Option<String> = None;
    let mut logits: Option<PathBuf> = None;
    let mut inputs: Option<PathBuf> = None;
    let mut float_logits: Option<PathBuf> = None;
    let mut json = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--data" => data = Some(value(&a, it.next(), "a dataset SPEC")?),
            "--logits" => logits = Some(value(&a, it.next(), "a file for the logits (JSON)")?),
            "--inputs" => inputs = Some(value(&a, it.next(), "a file for the images (.npy)")?),
            "--float-logits" => {
                float_logits = Some(value(&a, it.next(), "a file for the float logits (JSON)")?)
            }
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
    // The data the model was trained on (its run folder's train-config.json, beside it), at
    // the model's input, unless --data names other data.
    let x = *eng.model().input();
    let run = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let (spec, mut load) = quantize::run_data(
        run,
        data.as_deref(),
        Some((x.h as usize, x.w as usize, x.c as usize)),
    )?;
    // Evaluating needs the test split only: not the training files.
    load.test_only = true;
    let splits = host_train::data::load_with(&spec, &load)?;
    let test = &splits.test;
    if (test.h, test.w, test.c) != (x.h as usize, x.w as usize, x.c as usize) {
        return Err(QuantError::Usage(format!(
            "{}: the model takes {}x{}x{} images, {spec} has {}x{}x{}; pass the data it was trained on with --data SPEC",
            path.display(),
            x.h,
            x.w,
            x.c,
            test.h,
            test.w,
            test.c
        )));
    }
    if test.classes != quantize::engine::Engine::classes(&eng) {
        return Err(QuantError::Usage(format!(
            "{}: the model has {} classes, {spec} has {}; pass the data it was trained on with --data SPEC",
            path.display(),
            quantize::engine::Engine::classes(&eng),
            test.classes
        )));
    }
    if let Some(out) = &logits {
        write_logits(&eng, test, &spec.to_string(), &path, out)?;
    }
    if let Some(out) = &float_logits {
        // The float network of the run folder beside the model, folded as the engine runs it.
        let fm = quantize::read_run(run)?;
        let folded = quantize::fold::fold(&fm.model, &fm.json.normalization)?;
        let n = test.h * test.w * test.c;
        let all: Vec<Vec<f32>> = test
            .images
            .chunks_exact(n)
            .map(|px| folded.forward(px).swap_remove(folded.output))
            .collect();
        let v = serde_json::json!({"model": run.display().to_string(), "logits": all});
        let text = serde_json::to_string(&v).map_err(|e| QuantError::Encode(e.to_string()))?;
        host_train::io::write_atomic(out, text.as_bytes())?;
        eprintln!(
            "wrote the float logits of {} images to {}",
            all.len(),
            out.display()
        );
    }
    if let Some(out) = &inputs {
        let shape = [test.len(), test.h, test.w, test.c];
        host_train::io::write_atomic(out, &quantize::testset::npy_u8(&shape, &test.images))?;
        eprintln!(
            "wrote the {} test images (u8 NHWC) to {}",
            test.len(),
            out.display()
        );
    }
    let classes = report::per_class(&eng, test)
        .map_err(|e| QuantError::Engine(format!("{}: {e}", path.display())))?;
    let right: usize = classes.iter().map(|c| c.1).sum();
    let acc = right as f64 / test.len().max(1) as f64;
    let names = quantize::predict::class_names(eng.model(), &path);
    if json {
        let per: Vec<serde_json::Value> = classes
            .iter()
            .zip(&names)
            .map(|(&(n, r), name)| serde_json::json!({"class": name, "images": n, "right": r}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"accuracy": acc, "images": test.len(), "classes": per})
        );
    } else {
        println!(
            "{}: int8 accuracy {:.2}% on {} test images of {spec} (firmware engine)",
            path.display(),
            100.0 * acc,
            test.len()
        );
        for (&(n, r), name) in classes.iter().zip(&names) {
            println!(
                "  {name:<20} {r:>6}/{n:<6} {:>6.2}%",
                100.0 * r as f64 / n.max(1) as f64
            );
        }
    }
    Ok(())
}

/// `eval --logits FILE`: the int8 logits of every test image, in the split's order, as JSON
/// (`{"model", "data", "input": [h, w, c], "labels": [..], "logits": [[..], ..]}`), for an
/// outside tool to compare with (`cargo xtask oracle` reads the same shape).
fn write_logits(
    eng: &engine::Firmware,
    test: &host_train::data::Dataset,
    spec: &str,
    model: &std::path::Path,
    out: &std::path::Path,
) -> Result<(), QuantError> {
    use quantize::engine::Engine;
    let n = test.h * test.w * test.c;
    let mut all = Vec::with_capacity(test.len());
    for (i, px) in test.images.chunks_exact(n).enumerate() {
        let l = eng
            .run(px, &mut |_, _| {})
            .map_err(|e| QuantError::Engine(format!("{}: image {i}: {e}", model.display())))?;
        all.push(l);
    }
    let v = serde_json::json!({
        "model": model.display().to_string(),
        "data": spec,
        "input": [test.h, test.w, test.c],
        "labels": test.labels,
        "logits": all,
    });
    let text = serde_json::to_string(&v).map_err(|e| QuantError::Encode(e.to_string()))?;
    host_train::io::write_atomic(out, text.as_bytes())?;
    eprintln!(
        "wrote the int8 logits of {} images to {}",
        all.len(),
        out.display()
    );
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

/// `zoo [--json] [--model NAME|SPEC]...`: the listing (every zoo network, or the `--model`
/// networks: zoo names or specs, docs/design.md "Model specs") as a table or JSON.
fn zoo_report(args: Vec<String>) -> Result<String, QuantError> {
    let mut json = false;
    let mut archs = vec![];
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--model" => {
                let m: String = value(&a, it.next(), "a zoo name or a spec FAMILY:KEY=VALUE,...")?;
                archs.push(
                    host_train::zoo::resolve(&m).map_err(|e| QuantError::Usage(e.to_string()))?,
                );
            }
            _ => {
                return Err(QuantError::Usage(format!(
                    "unexpected argument {a}\n{USAGE}"
                )))
            }
        }
    }
    let listed = !archs.is_empty();
    if !listed {
        for name in host_train::zoo::NAMES {
            archs.push(host_train::zoo::arch(name).ok_or_else(|| {
                QuantError::Unsupported(format!("zoo network {name} has no architecture"))
            })?);
        }
    }
    let mut rows = vec![];
    for arch in archs {
        let g = arch.graph();
        let a = quantize::conventional::arenas_of_graph(&g)?;
        rows.push(ZooRow {
            entry: host_train::zoo::entry(&arch),
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
        // Specs are longer than the zoo's names: their column widens to fit.
        let nw = if listed {
            rows.iter()
                .map(|r| r.entry.name.len())
                .max()
                .unwrap_or(0)
                .max(24)
        } else {
            24
        };
        let _ = writeln!(
            text,
            "{:<nw$} {:>11} {:>14} {:>13} {:>12} {:>14} {:>7}",
            "name", "params", "MACs", "liveness B", "arena B", "convent. B", "saving"
        );
        for r in &rows {
            let _ = writeln!(
                text,
                "{:<nw$} {:>11} {:>14} {:>13} {:>12} {:>14} {:>6.1}%",
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
    Ok(text)
}

fn zoo_cmd(args: Vec<String>) -> Result<(), QuantError> {
    let text = zoo_report(args)?;
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
        Some("predict") => quantize::predict::command(args.collect()),
        Some("test-idx") => quantize::testset::command(args.collect()),
        Some("zoo") => zoo_cmd(args.collect()),
        Some("export-tflite") => quantize::tflite::command(args.collect()),
        Some("export-onnx") => quantize::onnx::command(args.collect()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn rows(a: &[&str]) -> Vec<serde_json::Value> {
        let text = zoo_report(args(a)).unwrap();
        serde_json::from_str::<Vec<serde_json::Value>>(&text).unwrap()
    }

    #[test]
    fn zoo_sizes_a_spec_as_it_sizes_the_zoo_network_it_describes() {
        let spec = rows(&[
            "--json",
            "--model",
            "flat-4c:in=28x28x1,stem=16,w=32,strides=2-2",
        ]);
        let named = rows(&["--model", "mnist-flat-4c", "--json"]);
        assert_eq!((spec.len(), named.len()), (1, 1));
        assert_eq!(
            spec[0]["name"],
            "flat-4c:in=28x28x1,stem=16,w=32,strides=2-2"
        );
        assert_eq!(named[0]["name"], "mnist-flat-4c");
        for k in [
            "params",
            "macs",
            "peak_activation_bytes",
            "arena_bytes",
            "conventional_arena_bytes",
            "conventional_live_peak_bytes",
            "arena_saving_percent",
        ] {
            assert!(spec[0][k].is_number(), "{k}");
            assert_eq!(spec[0][k], named[0][k], "{k}");
        }
        let g = host_train::zoo::arch("mnist-flat-4c").unwrap().graph();
        assert_eq!(named[0]["params"], g.param_count());
    }

    #[test]
    fn zoo_takes_several_models_in_order_and_canonical_names() {
        let r = rows(&[
            "--json",
            "--model",
            "flat-4c:w=16,in=96x96x3,blocks=2-2-2",
            "--model",
            "resnet8",
            "--model",
            "basic-8c:in=64x64x1,w=9",
        ]);
        let names: Vec<&str> = r.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            ["flat-4c:in=96x96x3", "resnet8", "basic-8c:in=64x64x1,w=9"]
        );
        // The same family at 9x the pixels: the same weights, 9x the MACs of every conv (the
        // FC, 64 x 10, stays).
        let small = rows(&["--json", "--model", "flat-4c"]);
        assert_eq!(r[0]["params"], small[0]["params"]);
        let fc = 64 * 10;
        assert_eq!(
            r[0]["macs"].as_u64().unwrap() - fc,
            9 * (small[0]["macs"].as_u64().unwrap() - fc)
        );
        for row in &r {
            let (ours, conv) = (
                row["arena_bytes"].as_u64().unwrap(),
                row["conventional_arena_bytes"].as_u64().unwrap(),
            );
            assert!(0 < ours && ours <= conv, "{row}");
        }
    }

    #[test]
    fn zoo_text_rows_fit_long_specs() {
        let spec = "multishift-8c:in=96x96x3,classes=2,stem-stride=2,blocks=1-1-1";
        let text = zoo_report(args(&["--model", spec, "--model", "resnet8"])).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("name ") && lines[0].ends_with("saving"));
        assert!(lines[1].starts_with(&format!("{spec} ")), "{text}");
        assert!(lines[2].starts_with("resnet8 "));
        // Every row's columns line up with the header's.
        assert!(
            lines[..3].iter().all(|l| l.len() == lines[0].len()),
            "{text}"
        );
        assert!(lines[3].starts_with("liveness B:"));
    }

    #[test]
    fn zoo_refuses_a_bad_model_with_one_line() {
        let e = |a: &[&str]| match zoo_report(args(a)) {
            Err(QuantError::Usage(m)) => m,
            other => panic!("{a:?}: {:?}", other.map(|_| ())),
        };
        assert_eq!(
            e(&["--model", "flat-4c:in=30x30x3"]),
            "model spec 'flat-4c:in=30x30x3': in=30x30x3: stage 3 gets 15x15, which its \
             stride-2 2x2 average pool cannot halve (it needs even sizes); try in=32x32x3 (the \
             nearest above; the smallest that works is 4x4)"
        );
        assert_eq!(
            e(&["--model", "flat-8c:w=4"]),
            "model spec 'flat-8c:w=4': the stem (stem=4) has 4 channels, fewer than the 9 shift \
             groups of 8C with a centre group: give it at least 9"
        );
        assert!(e(&["--model", "resnet9000"]).starts_with("unknown model 'resnet9000'"));
        assert!(e(&["--model"]).starts_with("--model needs a value"));
        assert!(e(&["--graph"]).starts_with("unexpected argument --graph"));
        for m in [
            e(&["--model", "flat-4c:w=0"]),
            e(&["--model", "resnet9000"]),
        ] {
            assert_eq!(m.lines().count(), 1, "{m}");
        }
    }
}
