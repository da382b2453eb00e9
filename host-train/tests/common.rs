//! Helpers shared by the CLI tests: temp folders and small synthetic IDX data sets.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shiftkit-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn idx_images(n: usize, seed: u32) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        v.extend(d.to_be_bytes());
    }
    let mut s = seed.wrapping_mul(2654435761).max(1);
    for i in 0..n * 784 {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        // A bright square whose position depends on the label, plus noise: learnable.
        let label = (i / 784) % 10;
        let (y, x) = ((i % 784) / 28, i % 28);
        let on = y / 7 == label / 4 && x / 7 == label % 4;
        v.push(if on { 200 } else { (s % 40) as u8 });
    }
    v
}

fn idx_labels(n: usize) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend((n as u32).to_be_bytes());
    v.extend((0..n).map(|i| (i % 10) as u8));
    v
}

/// Writes an MNIST-format folder with `train` / `test` images.
pub fn synthetic_mnist(dir: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx_images(train, 1)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_labels(train)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), idx_images(test, 2)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), idx_labels(test)).unwrap();
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shiftkit-train"))
}

pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("shiftkit-train runs")
}
