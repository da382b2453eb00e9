//! `cargo xtask oracle MODEL.skq [--onnx]`: Google's LiteRT interpreter (and onnxruntime) as
//! outside oracles. The model is
//! exported to `.tflite` (`export tflite`), its test images and our engine's int8 logits are
//! written by `eval --inputs --logits`, LiteRT runs the exported file on the same images with
//! each kernel set (`tools/litert/run_tflite.py`, in the project's virtualenv that `setup`
//! makes), and every logit is compared.
use crate::{pass_through, root, shiftkit_quantize};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The project's Python virtualenv (made by `cargo xtask setup`), relative to the root.
pub const VENV: &str = ".venv";
/// What `setup` installs into it, pinned: LiteRT (the oracle), onnxruntime and onnx (its
/// checker), NumPy (their arrays).
pub const PY_PACKAGES: &[&str] = &[
    "ai-edge-litert==2.3.0",
    "onnxruntime==1.32.0",
    "onnx==1.23.2",
    "numpy==2.4.6",
];
/// The modules those packages provide, which `setup --check` imports.
pub const PY_MODULES: &[&str] = &["ai_edge_litert.interpreter", "onnxruntime", "onnx", "numpy"];
const RUNNER: &str = "tools/litert/run_tflite.py";
const ONNX_RUNNER: &str = "tools/litert/run_onnx.py";

/// The virtualenv's Python.
pub fn python() -> PathBuf {
    root().join(VENV).join("bin/python")
}

/// Whether the virtualenv exists and imports every module.
pub fn venv_ready() -> bool {
    let code = PY_MODULES
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    python().is_file()
        && Command::new(python())
            .args(["-c", &code])
            .output()
            .is_ok_and(|o| o.status.success())
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The int8 model (.skq)
    model: PathBuf,
    /// The test images [default: the data the model was trained on]
    #[arg(long, value_name = "SPEC")]
    data: Option<String>,
    /// LiteRT's kernel sets: ref (reference kernels), builtin (optimised, no delegate), xnnpack
    /// (the default: optimised with the XNNPACK delegate)
    #[arg(long, value_delimiter = ',', default_value = "ref,builtin,xnnpack")]
    kernels: Vec<String>,
    /// Fail unless LiteRT's reference kernels give every logit our engine gives
    #[arg(long)]
    expect_exact: bool,
    /// Also export ONNX (float and QDQ int8) and compare onnxruntime with us
    #[arg(long)]
    onnx: bool,
    /// Work folder [default: target/oracle/<run folder>-<model file stem>]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// One kernel set against our engine.
pub struct Agreement {
    pub kernels: String,
    pub images: usize,
    pub logits: usize,
    pub differ: usize,
    pub max_lsb: i32,
    pub argmax_equal: usize,
}

pub fn main(a: &Args) -> Result<(), String> {
    for k in &a.kernels {
        if !["ref", "builtin", "xnnpack"].contains(&k.as_str()) {
            return Err(format!("--kernels {k}: expected ref, builtin or xnnpack"));
        }
    }
    if !venv_ready() {
        return Err(format!(
            "LiteRT is not installed in {}: run `cargo xtask setup` (it makes the virtualenv \
             with {})",
            python().display(),
            PY_PACKAGES.join(", ")
        ));
    }
    // Named after the run folder too: every run's model is `model.skq`.
    let name = |p: Option<&std::ffi::OsStr>| p.map(|s| s.to_string_lossy().to_string());
    let stem = match (
        name(a.model.parent().and_then(Path::file_name)),
        name(a.model.file_stem()),
    ) {
        (Some(dir), Some(file)) => format!("{dir}-{file}"),
        (None, Some(file)) => file,
        _ => "model".into(),
    };
    let work = a
        .out
        .clone()
        .unwrap_or_else(|| root().join("target/oracle").join(&stem));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let tflite = work.join("model.tflite");
    let ours = work.join("shiftkit-logits.json");
    let images = work.join("images.npy");
    let model = a.model.display().to_string();
    let arg = |p: &Path| p.display().to_string();
    pass_through(shiftkit_quantize(&[
        "export-tflite".into(),
        model.clone(),
        "--out".into(),
        arg(&tflite),
    ]))?;
    let mut eval = vec![
        "eval".into(),
        model,
        "--logits".into(),
        arg(&ours),
        "--inputs".into(),
        arg(&images),
    ];
    if let Some(d) = &a.data {
        eval.extend(["--data".into(), d.clone()]);
    }
    let float_ours = work.join("shiftkit-float-logits.json");
    if a.onnx {
        eval.extend(["--float-logits".into(), arg(&float_ours)]);
    }
    pass_through(shiftkit_quantize(&eval))?;
    let want = read_logits(&ours)?;
    let mut rows = Vec::new();
    for k in &a.kernels {
        let out = work.join(format!("litert-{k}.json"));
        println!("== oracle: LiteRT ({k} kernels) on {} images", want.len());
        let status = Command::new(python())
            .arg(root().join(RUNNER))
            .arg(&tflite)
            .arg(&images)
            .args(["--kernels", k, "--out"])
            .arg(&out)
            .env("TF_CPP_MIN_LOG_LEVEL", "2")
            .status()
            .map_err(|e| format!("could not run {}: {e}", python().display()))?;
        if !status.success() {
            return Err(format!(
                "LiteRT ({k} kernels) failed on {} (its line above)",
                tflite.display()
            ));
        }
        rows.push(compare(k, &want, &read_logits(&out)?)?);
    }
    let mut table = table(&a.model, &rows);
    if a.onnx {
        table.push_str(&onnx(a, &work, &images, &want, &float_ours)?);
    }
    let path = work.join("oracle.md");
    std::fs::write(&path, &table).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("\n{table}\n(written to {})", path.display());
    if a.expect_exact {
        if let Some(r) = rows.iter().find(|r| r.kernels == "ref" && r.differ > 0) {
            return Err(format!(
                "LiteRT's reference kernels differ from shiftkit on {} of {} logits (max {} LSB)",
                r.differ, r.logits, r.max_lsb
            ));
        }
    }
    Ok(())
}

/// `--onnx`: export both ONNX files, run onnxruntime on each, and the table's ONNX part.
fn onnx(
    a: &Args,
    work: &Path,
    images: &Path,
    want: &[Vec<i32>],
    float_ours: &Path,
) -> Result<String, String> {
    pass_through(shiftkit_quantize(&[
        "export-onnx".into(),
        a.model.display().to_string(),
        "--out".into(),
        work.display().to_string(),
    ]))?;
    let run = |model: &str| -> Result<PathBuf, String> {
        let out = work.join(format!("onnxruntime-{model}.json"));
        println!("== oracle: onnxruntime on {model}");
        let status = Command::new(python())
            .arg(root().join(ONNX_RUNNER))
            .arg(work.join(model))
            .arg(images)
            .arg("--out")
            .arg(&out)
            .status()
            .map_err(|e| format!("could not run {}: {e}", python().display()))?;
        if status.success() {
            Ok(out)
        } else {
            Err(format!("onnxruntime failed on {model} (its line above)"))
        }
    };
    let float = read_floats(&run("model.onnx")?)?;
    let ours = read_floats(float_ours)?;
    if float.len() != ours.len() {
        return Err(format!(
            "onnxruntime gave {} images, we {}",
            float.len(),
            ours.len()
        ));
    }
    // Per image: the largest logit difference over the largest logit magnitude.
    let mut rel = 0f64;
    for (f, o) in float.iter().zip(&ours) {
        let scale = o.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
        let d = f.iter().zip(o).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
        rel = rel.max(d / scale);
    }
    let int8 = compare(
        "onnxruntime QDQ",
        want,
        &read_logits(&run("model.int8.onnx")?)?,
    )?;
    Ok(format!(
        "\nonnxruntime against shiftkit (`cargo xtask export onnx`, opset 13)\n\n\
         | model | images | agreement |\n|---|---|---|\n\
         | float model.onnx | {} | max relative logit difference {rel:.2e} (per image: largest \
         difference / largest logit) |\n\
         | QDQ model.int8.onnx | {} | same argmax on {}; {} of {} int8 logits differ, max {} LSB |\n",
        float.len(),
        int8.images,
        int8.argmax_equal,
        int8.differ,
        int8.logits,
        int8.max_lsb
    ))
}

/// The `logits` array of a JSON file (`eval --logits`, or the LiteRT runner's), as integers.
pub fn read_logits(path: &Path) -> Result<Vec<Vec<i32>>, String> {
    read_rows(path, "integer", |x| x.as_i64().map(|x| x as i32))
}

/// The `logits` array of a JSON file of float logits.
fn read_floats(path: &Path) -> Result<Vec<Vec<f64>>, String> {
    read_rows(path, "number", serde_json::Value::as_f64)
}

/// The `logits` array of arrays of a JSON file, each element through `get`.
fn read_rows<T>(
    path: &Path,
    what: &str,
    get: impl Fn(&serde_json::Value) -> Option<T>,
) -> Result<Vec<Vec<T>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || format!("{}: no `logits` array of {what} arrays", path.display());
    v.get("logits")
        .and_then(|l| l.as_array())
        .ok_or_else(bad)?
        .iter()
        .map(|row| {
            row.as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|x| get(x).ok_or_else(bad))
                .collect()
        })
        .collect()
}

fn argmax(v: &[i32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Every logit of `got` against `want`, image by image.
pub fn compare(kernels: &str, want: &[Vec<i32>], got: &[Vec<i32>]) -> Result<Agreement, String> {
    if want.len() != got.len() {
        return Err(format!(
            "LiteRT ({kernels}) gave logits for {} images, shiftkit for {}",
            got.len(),
            want.len()
        ));
    }
    let mut r = Agreement {
        kernels: kernels.into(),
        images: want.len(),
        logits: 0,
        differ: 0,
        max_lsb: 0,
        argmax_equal: 0,
    };
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        if w.len() != g.len() {
            return Err(format!(
                "image {i}: LiteRT ({kernels}) gave {} logits, shiftkit {}",
                g.len(),
                w.len()
            ));
        }
        for (a, b) in w.iter().zip(g) {
            r.differ += usize::from(a != b);
            r.max_lsb = r.max_lsb.max((a - b).abs());
        }
        r.logits += w.len();
        r.argmax_equal += usize::from(argmax(w) == argmax(g));
    }
    Ok(r)
}

fn table(model: &Path, rows: &[Agreement]) -> String {
    let mut s = format!(
        "LiteRT against shiftkit on {} (exported by `cargo xtask export tflite`)\n\n\
         | LiteRT kernels | images | int8 logits | differing | max LSB | same argmax |\n\
         |---|---|---|---|---|---|\n",
        model.display()
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.kernels, r.images, r.logits, r.differ, r.max_lsb, r.argmax_equal
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_counts_every_differing_logit_and_the_argmax() {
        let want = vec![vec![1, 5, 2], vec![0, 0, 9]];
        let got = vec![vec![1, 4, 2], vec![0, 3, 9]];
        let r = compare("ref", &want, &got).unwrap();
        assert_eq!((r.images, r.logits, r.differ, r.max_lsb), (2, 6, 2, 3));
        assert_eq!(r.argmax_equal, 2);
        let got = vec![vec![9, 4, 2], vec![0, 0, 9]];
        assert_eq!(compare("ref", &want, &got).unwrap().argmax_equal, 1);
        assert!(compare("ref", &want, &got[..1]).is_err());
        assert!(compare("ref", &want, &[vec![1], vec![0, 0, 9]]).is_err());
    }

    #[test]
    fn read_logits_refuses_what_has_no_logits() {
        let d = std::env::temp_dir().join(format!("shiftkit-oracle-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("l.json");
        std::fs::write(&f, r#"{"logits": [[1, -2], [3, 4]]}"#).unwrap();
        assert_eq!(read_logits(&f).unwrap(), vec![vec![1, -2], vec![3, 4]]);
        std::fs::write(&f, r#"{"logits": [[1, "x"]]}"#).unwrap();
        assert!(read_logits(&f).unwrap_err().contains("no `logits` array"));
        std::fs::write(&f, "not json").unwrap();
        assert!(read_logits(&f).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }
}
