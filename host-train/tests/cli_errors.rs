//! Bad input gives one clear error line that names the file or argument, exit code 1, no panic.
#![forbid(unsafe_code)]
mod common;
use common::*;

/// Runs the trainer, expects failure, returns its single stderr line.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1 for {args:?}, stderr: {err}"
    );
    assert!(!err.contains("panicked"), "panic for {args:?}: {err}");
    let first = err.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("error: "), "{err}");
    first
}

#[test]
fn truncated_idx_names_the_file() {
    let dir = temp_dir("trunc");
    synthetic_mnist(&dir, 20, 10);
    let f = dir.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 100]).unwrap();
    let e = fails(&[
        "train",
        "--data",
        &format!("mnist:{}", dir.display()),
        "--out",
        &dir.join("o").display().to_string(),
    ]);
    assert!(e.contains(&f.display().to_string()), "{e}");
    assert_eq!(e.lines().count(), 1);
}

#[test]
fn wrong_size_cifar_names_the_file() {
    let dir = temp_dir("cifar");
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), vec![0u8; 3073 * 2]).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), vec![0u8; 3073 + 7]).unwrap();
    let e = fails(&[
        "train",
        "--model",
        "resnet8",
        "--data",
        &format!("cifar10:{}", dir.display()),
        "--out",
        &dir.join("o").display().to_string(),
    ]);
    assert!(e.contains("test_batch.bin"), "{e}");
}

#[test]
fn unknown_model_is_named() {
    let dir = temp_dir("model");
    let e = fails(&[
        "train",
        "--model",
        "resnet9000",
        "--out",
        &dir.display().to_string(),
    ]);
    assert!(e.contains("resnet9000") && e.contains("zoo"), "{e}");
}

#[test]
fn unwritable_output_folder_is_named() {
    let dir = temp_dir("unwritable");
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("run");
    let e = fails(&["train", "--out", &out.display().to_string()]);
    assert!(e.contains(&file.display().to_string()), "{e}");
}

#[test]
fn bad_arguments_are_named() {
    let e = fails(&["train", "--epochs", "many", "--out", "x"]);
    assert!(e.contains("'many'") && e.contains("--epochs"), "{e}");
    assert!(fails(&["train", "--data", "imagenet:/x", "--out", "x"]).contains("imagenet:/x"));
    assert!(fails(&["train", "--frobnicate"]).contains("--frobnicate"));
    assert!(fails(&["train", "--nesterov", "maybe", "--out", "x"]).contains("--nesterov"));
    assert!(fails(&["train", "--schedule", "linear", "--out", "x"]).contains("--schedule"));
    assert!(fails(&["trian"]).contains("trian"));
}

/// `--help` works for the tool and each subcommand, and a typo gets clap's suggestion.
#[test]
fn help_and_suggestions() {
    for args in [
        &["--help"][..],
        &["train", "--help"],
        &["zoo", "--help"],
        &["bench-gpu", "--help"],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: shiftkit-train"));
    }
    let out = run(&["train", "--epoch", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a similar argument exists: '--epochs'"));
    assert!(fails(&["train", "--device", "tpu", "--out", "x"]).contains("tpu"));
}

#[test]
fn cuda_without_a_gpu_is_one_clear_error() {
    let dir = temp_dir("cuda");
    let e = fails(&[
        "train",
        "--device",
        "cuda",
        "--out",
        &dir.display().to_string(),
    ]);
    assert!(e.contains("cuda"), "{e}");
}
