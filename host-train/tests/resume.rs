//! A training killed with SIGKILL mid-run and continued with `--resume` ends with exactly the
//! weights of an uninterrupted run with the same seed and thread count.
#![forbid(unsafe_code)]
mod common;
use common::*;
use std::time::{Duration, Instant};

fn args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--data",
        data,
        "--out",
        out,
        "--epochs",
        "4",
        "--batch",
        "32",
        "--threads",
        "2",
        "--seed",
        "7",
        "--quiet",
    ]
}

fn lines(p: &std::path::Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn sigkill_then_resume_gives_identical_weights() {
    let dir = temp_dir("resume");
    let data = dir.join("mnist");
    synthetic_mnist(&data, 640, 64);
    let spec = format!("mnist:{}", data.display());
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (a_s, b_s) = (a.display().to_string(), b.display().to_string());

    let out = run(&args(&spec, &a_s));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Start the same run, kill it once the first epoch's checkpoint is on disk.
    let mut child = bin().args(args(&spec, &b_s)).spawn().unwrap();
    let t0 = Instant::now();
    while lines(&b.join("metrics.jsonl")) < 1 {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "first epoch never finished"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let done = lines(&b.join("metrics.jsonl"));
    assert!(
        done < 4,
        "the run finished before the kill ({done} epochs); the test proves nothing"
    );
    assert!(!b.join("weights.safetensors").exists());

    let out = run(&["train", "--resume", &b_s, "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&b.join("metrics.jsonl")), 4);
    let wa = host_train::io::read_tensors(&a.join("weights.safetensors"))
        .unwrap()
        .tensors;
    let wb = host_train::io::read_tensors(&b.join("weights.safetensors"))
        .unwrap()
        .tensors;
    assert!(!wa.is_empty());
    assert_eq!(wa.len(), wb.len());
    for (name, (shape, vals)) in &wa {
        let (sb, vb) = &wb[name];
        assert_eq!(shape, sb, "{name}");
        // Bit-exact: the same arithmetic in the same order.
        let same = vals.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "tensor {name} differs after resume");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
