//! Writes the seed corpus into `fuzz/corpus/<target>/`: small valid `.skq` nets from the
//! firmware tests' builder, each `.skq` named on the command line (a trained model, say), their
//! graph records for the record reader, and small valid IDX / CIFAR files for the data loaders.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --no-default-features --bin seeds -- [MODEL.skq...]`
#[path = "../../../firmware/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the corpus folder");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
    println!("{} ({} bytes)", dir.join(name).display(), bytes.len());
}

/// The graph section of a sound `.skq` file.
fn graph(f: &[u8]) -> &[u8] {
    let len = u32::from_le_bytes([f[16], f[17], f[18], f[19]]) as usize;
    &f[24..24 + len]
}

fn idx(dims: &[u32], fill: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut f = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        f.extend(d.to_be_bytes());
    }
    let n: usize = dims.iter().map(|&d| d as usize).product();
    f.extend((0..n).map(fill));
    f
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut models = Vec::new();
    for seed in 0..3 {
        models.push((format!("tiny_net_{seed}.skq"), common::tiny_net(seed).1));
        models.push((format!("second_net_{seed}.skq"), common::second_net(seed).1));
    }
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let name = Path::new(&path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        models.push((name, bytes));
    }
    for (name, bytes) in &models {
        write(&root.join("model_run"), name, bytes);
        let g = graph(bytes);
        // The record reader's first byte picks the type: 0 Header, 3 the ops one after another.
        let mut header = vec![0u8];
        header.extend(g);
        write(
            &root.join("wire_records"),
            &format!("{name}.header"),
            &header,
        );
        let mut ops = vec![3u8];
        ops.extend(g);
        write(&root.join("wire_records"), &format!("{name}.graph"), &ops);
    }
    let images = idx(&[6, 28, 28], |i| (i * 7) as u8);
    let labels = idx(&[6], |i| i as u8);
    let mut f = vec![0u8];
    f.extend(&images);
    write(&root.join("data_loaders"), "images.idx3", &f);
    let mut pair = vec![1u8];
    pair.extend((images.len() as u16).to_le_bytes());
    pair.extend(&images);
    pair.extend(&labels);
    write(&root.join("data_loaders"), "mnist_pair", &pair);
    for (kind, label_bytes, name) in [(2u8, 1, "cifar10.bin"), (3u8, 2, "cifar100.bin")] {
        let mut f = vec![kind];
        for r in 0..2u8 {
            f.extend(std::iter::repeat_n(r, label_bytes));
            f.extend((0..3072).map(|i| (i % 251) as u8));
        }
        write(&root.join("data_loaders"), name, &f);
    }
}
