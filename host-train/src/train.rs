//! The training loop: SGD with momentum (optionally Nesterov) and weight decay, step or cosine
//! schedule with linear warm-up, per-epoch evaluation, atomic checkpoints and resume, and the
//! run folder's outputs (model.json, weights.safetensors, metrics.jsonl, curve.svg, summary.json).
//!
//! Determinism: every random draw comes from `Rng`s seeded from (seed, epoch, batch), and every
//! parallel reduction has a fixed order for a given thread count, so the same seed and thread
//! count give the same weights, with or without a kill and `--resume` in between.
use crate::backend;
use crate::data::{self, augment_into, DataSpec, Rng, Splits};
use crate::io::{self, FileError, ModelJson};
use crate::model::{Model, Normalization};
use crate::zoo;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

// The run's options and errors live in `config`, the CPU step in `backend`, the metrics record
// in `io`; they stay reachable here, where they were first defined.
pub use crate::backend::{evaluate, sgd_step};
pub use crate::config::{Device, Schedule, TrainConfig, TrainError};
pub use crate::io::EpochMetrics;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub model: String,
    pub data: String,
    pub params: usize,
    pub macs: u64,
    pub epochs: usize,
    pub test_accuracy: f32,
    pub train_seconds: f32,
    pub images_per_second: f32,
    pub threads: usize,
    pub seed: u64,
}

fn batch_seed(seed: u64, epoch: usize, batch: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((epoch as u64) << 32) ^ batch as u64
}

/// Checkpoint file name inside the run folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const CONFIG: &str = "train-config.json";

/// Trains per `cfg` into `out`. With `resume`, continues the run saved in `out`.
pub fn train(
    cfg: TrainConfig,
    out: &Path,
    resume: bool,
    quiet: bool,
) -> Result<Summary, TrainError> {
    if cfg.device == Device::Cuda {
        // Fail before loading data when there is no usable GPU.
        #[cfg(feature = "cuda")]
        crate::cuda::probe().map_err(|e| TrainError::Cuda(e.0))?;
    }
    if cfg.batch == 0 || cfg.epochs == 0 {
        return Err(TrainError::Config(
            "--batch and --epochs must be at least 1".into(),
        ));
    }
    let mut arch = zoo::resolve(&cfg.model)?;
    let spec: DataSpec = cfg.data.parse()?;
    std::fs::create_dir_all(out).map_err(io::io_err(out))?;
    // Probe writability now, not after an epoch of work.
    io::write_atomic(
        &out.join(CONFIG),
        serde_json::to_string_pretty(&cfg).unwrap().as_bytes(),
    )?;

    let folder = matches!(spec, DataSpec::Folder(_));
    if let Some(c) = cfg.channels {
        if !folder {
            return Err(TrainError::Config(format!(
                "--channels applies to folder data (folder:DIR); {} has its own",
                cfg.data
            )));
        }
        arch = arch.with_channels(c);
    }
    let load = data::LoadOptions {
        input: Some(data::Target {
            h: arch.input.h,
            w: arch.input.w,
            c: arch.input.c,
        }),
        folder: cfg.folder.clone(),
        cache_dir: Some(out.to_path_buf()),
        flip: cfg.flip,
        quiet,
        test_only: false,
    };
    let splits: Splits = data::load_with(&spec, &load)?;
    if folder {
        // The classes are the folder's.
        arch = arch.with_classes(splits.class_names.len());
    }
    let (h, w, c) = (splits.train.h, splits.train.w, splits.train.c);
    if (arch.input.h, arch.input.w, arch.input.c) != (h, w, c) {
        return Err(TrainError::InputMismatch {
            model: cfg.model.clone(),
            want: format!("{}x{}x{}", arch.input.h, arch.input.w, arch.input.c),
            data: cfg.data.clone(),
            got: format!("{h}x{w}x{c}"),
        });
    }
    if splits.class_names.len() != arch.classes {
        return Err(TrainError::InputMismatch {
            model: cfg.model.clone(),
            want: format!("{} classes", arch.classes),
            data: cfg.data.clone(),
            got: format!("{} classes", splits.class_names.len()),
        });
    }
    let norm = Normalization {
        mean: splits.mean.clone(),
        std: splits.std.clone(),
    };
    let mut model = Model::new(arch);
    model.init(cfg.seed);
    let mut momentum = model.params.zeros_like();
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut start_epoch = 0;
    if resume {
        let path = out.join(CHECKPOINT);
        let file = io::read_tensors(&path)?;
        io::load_params(&mut model, &file, "param.", &path)?;
        let mut tmp = Model::new(model.arch.clone());
        io::load_params(&mut tmp, &file, "momentum.", &path)?;
        momentum = tmp.params.data;
        start_epoch = file
            .metadata
            .get("epoch")
            .and_then(|e| e.parse().ok())
            .ok_or_else(|| FileError::Invalid {
                path: path.clone(),
                why: "no epoch in metadata".into(),
            })?;
        history = file
            .metadata
            .get("history")
            .map(|h| serde_json::from_str(h))
            .transpose()
            .map_err(|e| FileError::Invalid {
                path: path.clone(),
                why: format!("history: {e}"),
            })?
            .unwrap_or_default();
        if !quiet {
            eprintln!(
                "resuming {} from epoch {start_epoch} of {}",
                out.display(),
                cfg.epochs
            );
        }
    }

    let train_set = &splits.train;
    let il = train_set.image_len();
    let steps = train_set.len() / cfg.batch; // drop the last partial batch
    if steps == 0 {
        return Err(TrainError::Config(format!(
            "--batch {} is larger than the {} training images",
            cfg.batch,
            train_set.len()
        )));
    }
    let mut backend = backend::create(model, momentum, norm.clone(), &cfg)?;
    let mut imgs = vec![0u8; cfg.batch * il];
    let mut labels = vec![0u8; cfg.batch];
    let t_run = Instant::now();
    let prior_seconds: f32 = history.iter().map(|m| m.seconds).sum();
    for epoch in start_epoch..cfg.epochs {
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..train_set.len()).collect();
        Rng::new(batch_seed(cfg.seed, epoch, usize::MAX)).shuffle(&mut order);
        let bar = progress(
            quiet,
            steps as u64,
            &format!("epoch {}/{}", epoch + 1, cfg.epochs),
        );
        let (mut loss_sum, mut correct) = (0.0f64, 0usize);
        let mut lr = 0.0;
        for b in 0..steps {
            let mut rng = Rng::new(batch_seed(cfg.seed, epoch, b));
            for (k, &idx) in order[b * cfg.batch..(b + 1) * cfg.batch].iter().enumerate() {
                augment_into(
                    train_set.image(idx),
                    h,
                    w,
                    c,
                    splits.augment,
                    &mut rng,
                    &mut imgs[k * il..(k + 1) * il],
                );
                labels[k] = train_set.labels[idx];
            }
            lr = cfg.lr_at(epoch * steps + b, steps);
            let (l, cr) = backend.train_step(&imgs, &labels, lr)?;
            loss_sum += l as f64;
            correct += cr;
            if let Some(bar) = &bar {
                bar.inc(1);
                let ips = ((b + 1) * cfg.batch) as f32 / t0.elapsed().as_secs_f32();
                bar.set_message(format!(
                    "loss {:.4}  {:.0} img/s",
                    loss_sum / (b + 1) as f64,
                    ips
                ));
            }
        }
        let train_seconds = t0.elapsed().as_secs_f32();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let (test_loss, test_accuracy) = backend.evaluate(&splits.test, 500)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: (loss_sum / steps as f64) as f32,
            train_accuracy: correct as f32 / (steps * cfg.batch) as f32,
            test_loss,
            test_accuracy,
            seconds: t0.elapsed().as_secs_f32(),
            images_per_second: (steps * cfg.batch) as f32 / train_seconds,
        };
        if !quiet {
            eprintln!(
                "epoch {:>3}/{}  lr {:.4}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%  {:.0} img/s  {:.1}s",
                m.epoch, cfg.epochs, m.lr, m.train_loss, 100.0 * m.train_accuracy, m.test_loss,
                100.0 * m.test_accuracy, m.images_per_second, m.seconds
            );
        }
        history.push(m);
        let (model, momentum) = backend.host()?;
        save_checkpoint(out, model, momentum, epoch + 1, &history)?;
        write_metrics(out, &history)?;
    }
    let last = history
        .last()
        .cloned()
        .ok_or_else(|| TrainError::Config("no epoch ran".into()))?;
    let seconds = prior_seconds + t_run.elapsed().as_secs_f32();
    let (model, _) = backend.host()?;
    let summary = Summary {
        model: cfg.model.clone(),
        data: cfg.data.clone(),
        params: model.graph.param_count(),
        macs: model.graph.macs(),
        epochs: cfg.epochs,
        test_accuracy: last.test_accuracy,
        train_seconds: seconds,
        images_per_second: history.iter().map(|m| m.images_per_second).sum::<f32>()
            / history.len() as f32,
        threads: cfg.threads,
        seed: cfg.seed,
    };
    let mj = ModelJson::new(model, norm, splits.class_names.clone());
    io::write_atomic(
        &out.join("model.json"),
        serde_json::to_string_pretty(&mj).unwrap().as_bytes(),
    )?;
    let meta = HashMap::from([
        ("format".to_string(), "shiftkit-weights".to_string()),
        ("version".into(), "1".into()),
    ]);
    io::write_atomic(
        &out.join("weights.safetensors"),
        &io::tensors_to_bytes(&io::param_tensors(model), meta),
    )?;
    io::write_atomic(
        &out.join("curve.svg"),
        crate::plot::curve_svg(&cfg.model, &history).as_bytes(),
    )?;
    io::write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap().as_bytes(),
    )?;
    Ok(summary)
}

fn progress(quiet: bool, len: u64, prefix: &str) -> Option<indicatif::ProgressBar> {
    if quiet {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    Some(bar)
}

fn save_checkpoint(
    out: &Path,
    model: &Model,
    momentum: &[f32],
    epoch: usize,
    history: &[EpochMetrics],
) -> Result<(), TrainError> {
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = io::param_tensors(model)
        .into_iter()
        .map(|(n, s, d)| (format!("param.{n}"), s, d))
        .collect();
    for i in 0..model.params.info.len() {
        let info = &model.params.info[i];
        tensors.push((
            format!("momentum.{}", info.name),
            info.shape.clone(),
            &momentum[model.params.range(i)],
        ));
    }
    let meta = HashMap::from([
        ("format".to_string(), "shiftkit-checkpoint".to_string()),
        ("version".into(), "1".into()),
        ("epoch".into(), epoch.to_string()),
        ("history".into(), serde_json::to_string(history).unwrap()),
    ]);
    io::write_atomic(&out.join(CHECKPOINT), &io::tensors_to_bytes(&tensors, meta))?;
    Ok(())
}

fn write_metrics(out: &Path, history: &[EpochMetrics]) -> Result<(), TrainError> {
    let mut s = String::new();
    for m in history {
        s.push_str(&serde_json::to_string(m).unwrap());
        s.push('\n');
    }
    io::write_atomic(&out.join("metrics.jsonl"), s.as_bytes())?;
    Ok(())
}

/// Reads the config a run folder was started with (for `--resume`).
pub fn saved_config(out: &Path) -> Result<TrainConfig, TrainError> {
    let path: PathBuf = out.join(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(io::io_err(&path))?;
    serde_json::from_str(&text).map_err(|e| {
        TrainError::File(FileError::Invalid {
            path,
            why: format!("{e}"),
        })
    })
}
