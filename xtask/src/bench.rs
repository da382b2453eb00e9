//! `cargo xtask bench train`: one training epoch of the default network, ours and PyTorch's, on
//! the same data, batch size, optimiser and thread count, in one run; prints both and the ratio.
use crate::{root, run, shiftkit_train};
use std::process::Command;

const THREADS: &str = "2";
const BATCH: &str = "64";
const ROUNDS: usize = 3;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Our images/s over one training epoch (from the run's metrics.jsonl).
fn ours_epoch(model: &str, dir: &std::path::Path) -> Result<f64, String> {
    let run_dir = dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    let args: Vec<String> = [
        "train",
        "--model",
        model,
        "--epochs",
        "1",
        "--batch",
        BATCH,
        "--threads",
        THREADS,
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([run_dir.display().to_string()])
    .collect();
    run(shiftkit_train(&args))?;
    let metrics =
        std::fs::read_to_string(run_dir.join("metrics.jsonl")).map_err(|e| e.to_string())?;
    let m: serde_json::Value =
        serde_json::from_str(metrics.lines().next().unwrap_or("{}")).map_err(|e| e.to_string())?;
    m["images_per_second"]
        .as_f64()
        .ok_or_else(|| "no images_per_second in metrics.jsonl".to_string())
}

/// PyTorch's images/s over one epoch, and its version.
fn torch_epoch(graph: &std::path::Path) -> Result<(f64, String), String> {
    let script = root().join("tools/bench_train_torch.py");
    let mnist = root().join("data/mnist");
    let out = Command::new("python3")
        .args([script.as_os_str(), graph.as_os_str(), mnist.as_os_str()])
        .args(["--batch", BATCH, "--threads", THREADS])
        .output()
        .map_err(|e| format!("could not start python3: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the PyTorch side failed (it needs `pip install torch safetensors`):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let t: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("PyTorch output: {e}"))?;
    let ips = t["images_per_second"]
        .as_f64()
        .ok_or("no images_per_second from PyTorch")?;
    Ok((ips, t["torch"].as_str().unwrap_or("?").to_string()))
}

/// `cargo xtask bench`'s benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum Bench {
    /// One training epoch, ours vs PyTorch on the same 2 threads
    Train {
        /// The zoo network to train
        #[arg(default_value = "mnist-flat-4c")]
        model: String,
    },
    /// QEMU instructions per layer and per MAC on Cortex-M4/M7/M33, fast vs portable kernels,
    /// default net + ResNet-8 (+4C) (target/bench-firmware)
    Firmware(crate::bench_firmware::Args),
    /// The bench firmware networks through shiftkit and through Arm's CMSIS-NN (TFLite Micro's
    /// Cortex-M kernels) side by side on QEMU Cortex-M4, per layer, every layer's output
    /// compared bit for bit (target/bench-peer)
    Peer(crate::bench_peer::Args),
}

pub fn main(bench: &Bench) -> Result<(), String> {
    match bench {
        Bench::Train { model } => train(model),
        Bench::Firmware(args) => crate::bench_firmware::main(args),
        Bench::Peer(args) => crate::bench_peer::main(args),
    }
}

fn train(model: &str) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("shiftkit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let graph = dir.join("graph.json");
    let out = shiftkit_train(&["zoo".into(), "--graph".into(), model.into()])
        .output()
        .map_err(|e| format!("could not run the trainer: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into());
    }
    std::fs::write(&graph, &out.stdout).map_err(|e| format!("{}: {e}", graph.display()))?;

    // The machine's speed drifts (shared hosts): alternate the two sides and take medians.
    let (mut ours, mut theirs, mut torch) = (vec![], vec![], String::new());
    for round in 1..=ROUNDS {
        println!("== round {round}/{ROUNDS}: ours, 1 epoch of {model} on the bundled MNIST, batch {BATCH}, {THREADS} threads");
        ours.push(ours_epoch(model, &dir)?);
        println!("== round {round}/{ROUNDS}: PyTorch, the same network (nn.Module, shift by pad + slice), same data and settings");
        let (ips, version) = torch_epoch(&graph)?;
        theirs.push(ips);
        torch = version;
    }
    let (o, t) = (median(&mut ours), median(&mut theirs));
    println!();
    println!("| trainer | images/s, median of {ROUNDS} (train, {THREADS} threads, batch {BATCH}) | runs |");
    println!("|---|---|---|");
    println!("| shiftkit (CPU) | {o:.0} | {} |", list(&ours));
    println!("| PyTorch {torch} | {t:.0} | {} |", list(&theirs));
    println!("ratio shiftkit / PyTorch: {:.2}x", o / t);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
