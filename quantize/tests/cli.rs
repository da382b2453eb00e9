//! The `shiftkit-quantize` command line on a small run folder: `quantize` writes the model and
//! the report, `eval` agrees with the report, a corrupt file is one error line and exit 1, a bad
//! flag is a usage error (exit 2).
#![forbid(unsafe_code)]
use host_train::io::{self, ModelJson};
use host_train::model::{Model, Normalization};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shiftkit-quantize"))
}

/// A run folder with the default network, fresh weights (no training needed to exercise files).
fn run_folder(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut model = Model::new(host_train::zoo::arch(host_train::zoo::DEFAULT_MODEL).unwrap());
    model.init(3);
    let norm = Normalization {
        mean: vec![0.13],
        std: vec![0.31],
    };
    let mj = ModelJson::new(&model, norm, (0..10).map(|d| d.to_string()).collect());
    io::write_atomic(
        &dir.join("model.json"),
        serde_json::to_string(&mj).unwrap().as_bytes(),
    )
    .unwrap();
    let bytes = io::tensors_to_bytes(&io::param_tensors(&model), HashMap::new());
    io::write_atomic(&dir.join("weights.safetensors"), &bytes).unwrap();
    dir
}

/// The first `n` images of each bundled MNIST split as an IDX folder (for `--data mnist:DIR`):
/// the test binary is a dev build, so the full 2,000 test digits would take most of a minute.
fn small_mnist(name: &str, n: usize) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let src = host_train::data::bundled_mnist_dir();
    for stem in ["train", "t10k"] {
        let img = std::fs::read(src.join(format!("{stem}-images-idx3-ubyte"))).unwrap();
        let mut out = img[..16].to_vec();
        out[4..8].copy_from_slice(&(n as u32).to_be_bytes());
        out.extend_from_slice(&img[16..16 + n * 28 * 28]);
        std::fs::write(dir.join(format!("{stem}-images-idx3-ubyte")), out).unwrap();
        let lab = std::fs::read(src.join(format!("{stem}-labels-idx1-ubyte"))).unwrap();
        let mut out = lab[..8].to_vec();
        out[4..8].copy_from_slice(&(n as u32).to_be_bytes());
        out.extend_from_slice(&lab[8..8 + n]);
        std::fs::write(dir.join(format!("{stem}-labels-idx1-ubyte")), out).unwrap();
    }
    dir
}

#[test]
fn quantize_then_eval_then_corrupt_file() {
    let dir = run_folder("cli-run");
    let data = format!("mnist:{}", small_mnist("cli-mnist", 200).display());
    let out = bin()
        .args([
            "quantize",
            dir.to_str().unwrap(),
            "--calib",
            "50",
            "--sqnr-images",
            "20",
            "--method",
            "minmax",
            "--data",
            &data,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quantize failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("int8 accuracy") && text.contains("SQNR dB"),
        "{text}"
    );
    let rep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("quant-report.json")).unwrap()).unwrap();
    for key in [
        "float_accuracy",
        "int8_accuracy",
        "flash_bytes",
        "arena_bytes",
        "method",
        "calib_images",
        "layers",
    ] {
        assert!(rep.get(key).is_some(), "quant-report.json lacks {key}");
    }
    assert_eq!(rep["method"], "minmax");
    assert_eq!(rep["calib_images"], 50);
    let layers = rep["layers"].as_array().unwrap();
    assert!(layers
        .iter()
        .all(|l| l["name"].is_string() && l["sqnr_db"].is_number()));
    let skq = dir.join("model.skq");
    assert_eq!(
        rep["flash_bytes"].as_u64().unwrap(),
        std::fs::metadata(&skq).unwrap().len()
    );

    let out = bin()
        .args(["eval", skq.to_str().unwrap(), "--json", "--data", &data])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ev["images"], 200);
    assert_eq!(
        ev["accuracy"], rep["int8_accuracy"],
        "eval and the report disagree"
    );
    // Per class, by name: the classes' images add up to the test set, their right ones to the
    // accuracy.
    let per = ev["classes"].as_array().expect("per-class results");
    let sum = |k: &str| per.iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("images"), 200);
    assert_eq!(
        sum("right") as f64 / 200.0,
        ev["accuracy"].as_f64().unwrap()
    );
    assert!(per
        .iter()
        .all(|c| c["class"].as_str().is_some_and(|n| !n.is_empty())));

    // A flipped byte in the weights: the CRC catches it; one line, exit 1.
    let mut bytes = std::fs::read(&skq).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    let bad = dir.join("corrupt.skq");
    std::fs::write(&bad, &bytes).unwrap();
    let out = bin()
        .args(["eval", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("error: {}: ", bad.display())),
        "{err}"
    );
    assert!(err.contains("CRC"), "{err}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let out = bin()
        .args(["quantize", "x", "--method", "median"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected minmax, percentile or mse"));
    let out = bin()
        .args(["quantize", "/nonexistent-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-run/model.json"));
}
