//! CUDA vs CPU parity: every layer's forward and backward (see `cuda::parity` for the
//! tolerances), and 20 training steps of `tiny-multishift-4c` whose losses must match the CPU
//! backend's. Without a GPU or driver each test prints why it was skipped and passes, so CPU-only
//! CI stays green.
#![cfg(feature = "cuda")]
#![forbid(unsafe_code)]
use host_train::backend::{Backend, CpuBackend, CudaBackend};
use host_train::cuda::{self, parity};
use host_train::data::Rng;
use host_train::model::{Model, Normalization};
use host_train::train::{Device, TrainConfig};
use host_train::zoo;

fn gpu_or_skip() -> Option<cuda::Gpu> {
    match cuda::Gpu::new() {
        Ok(g) => Some(g),
        Err(e) => {
            println!("skipped: no CUDA driver/GPU ({e})");
            None
        }
    }
}

#[test]
fn every_layer_matches_the_cpu() {
    let Some(gpu) = gpu_or_skip() else { return };
    println!("GPU: {}", gpu.name);
    let checks = parity::layer_checks(&gpu).expect("GPU layer checks ran");
    let mut bad = Vec::new();
    for c in &checks {
        println!(
            "{:<44} max|gpu-cpu| {:>10.3e}  max|cpu| {:>9.3e}  tol {:.0e} x max(1,|cpu|)  {}",
            c.name,
            c.max_abs,
            c.ref_max,
            c.tol,
            if c.ok() { "ok" } else { "FAIL" }
        );
        if !c.ok() {
            bad.push(format!(
                "{}: max|gpu-cpu| {:.3e} > {:.0e} x max(1, {:.3e})",
                c.name, c.max_abs, c.tol, c.ref_max
            ));
        }
    }
    assert!(!checks.is_empty(), "no layer checks ran");
    assert!(bad.is_empty(), "layers off tolerance:\n{}", bad.join("\n"));
}

/// Relative tolerance on each step's loss, see [`twenty_training_steps_match_the_cpu`].
const LOSS_TOL: f32 = 2e-3;
/// Tolerance on the parameters after the 20 steps: `max |cpu - gpu| <= PARAM_TOL * max(1, max
/// |cpu|)`, the loss's relative tolerance applied to the weights.
const PARAM_TOL: f32 = 2e-3;

/// 20 SGD steps (batch 8, random u8 images, fixed seed) on both backends from the same init.
/// Tolerance: each step's loss differs by f32 rounding (~1e-6 relative) at first; SGD feeds the
/// differences back through the weights, so they grow over the steps. A relative [`LOSS_TOL`] on
/// the loss at every step is far below what one wrong op would give (a wrong gradient changes the
/// loss trajectory by 1e-1 or more within a few steps) while leaving room for that growth; the
/// parameters after the last step must agree within [`PARAM_TOL`] (a wrong update of one
/// parameter tensor moves it by about `lr` times its gradient, far more).
#[test]
fn twenty_training_steps_match_the_cpu() {
    if gpu_or_skip().is_none() {
        return;
    }
    let arch = zoo::arch("tiny-multishift-4c").expect("test preset");
    let (h, w, c, classes) = (arch.input.h, arch.input.w, arch.input.c, arch.classes);
    let mut model = Model::new(arch);
    model.init(3);
    let mom = model.params.zeros_like();
    let norm = Normalization {
        mean: vec![0.45; c],
        std: vec![0.25; c],
    };
    let cfg = TrainConfig {
        batch: 8,
        device: Device::Cuda,
        lr: 0.05,
        ..Default::default()
    };
    let mut cpu = CpuBackend::new(clone_model(&model), mom.clone(), norm.clone(), &cfg);
    let mut gpu = CudaBackend::new(model, mom, norm, &cfg).expect("CUDA backend");
    let mut rng = Rng::new(99);
    let mut worst = 0.0f32;
    for step in 0..20 {
        let imgs: Vec<u8> = (0..8 * h * w * c)
            .map(|_| (rng.next_u64() & 255) as u8)
            .collect();
        let labels: Vec<u8> = (0..8).map(|_| rng.below(classes) as u8).collect();
        let (lc, cc) = cpu.train_step(&imgs, &labels, cfg.lr).unwrap();
        let (lg, cg) = gpu.train_step(&imgs, &labels, cfg.lr).unwrap();
        let rel = (lc - lg).abs() / lc.abs().max(1e-3);
        worst = worst.max(rel);
        println!("step {step:>2}: loss cpu {lc:.6} gpu {lg:.6} rel diff {rel:.2e}  correct cpu {cc} gpu {cg}");
        assert!(
            rel <= LOSS_TOL,
            "step {step}: loss cpu {lc} gpu {lg}: relative difference {rel:.2e} > {LOSS_TOL:.0e}"
        );
    }
    let (mc, _) = cpu.host().unwrap();
    let pc = mc.params.data.clone();
    let (mg, _) = gpu.host().unwrap();
    let dmax = pc
        .iter()
        .zip(&mg.params.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let pmax = pc.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!("max relative loss difference over 20 steps: {worst:.2e} (tol {LOSS_TOL:.0e}); max |param cpu - gpu| after: {dmax:.2e} (tol {PARAM_TOL:.0e} x max(1, {pmax:.3e}))");
    assert!(
        dmax.is_finite() && dmax <= PARAM_TOL * pmax.max(1.0),
        "parameters after 20 steps: max |cpu - gpu| {dmax:.3e} > {PARAM_TOL:.0e} x max(1, {pmax:.3e})"
    );
}

fn clone_model(m: &Model) -> Model {
    let mut c = Model::new(m.arch.clone());
    c.params.data.copy_from_slice(&m.params.data);
    c
}
