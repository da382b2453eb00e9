//! A training run's options ([`TrainConfig`], with its [`Schedule`] and [`Device`]) and what can
//! go wrong during one ([`TrainError`]): shared by the command line, the trainer and the backends.
use crate::data;
use crate::io::FileError;
use crate::zoo;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Data(#[from] data::DataError),
    #[error("{0}")]
    File(#[from] FileError),
    #[error("unknown model '{name}' (run `cargo xtask zoo` to list them; known: {known})")]
    UnknownModel { name: String, known: String },
    #[error("model {model} takes {want} images but {data} has {got}")]
    InputMismatch {
        model: String,
        want: String,
        data: String,
        got: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("--device cuda: {0}")]
    Cuda(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine decay to zero over the run, after warm-up.
    Cosine,
    /// Multiply by `gamma` at each milestone epoch.
    Step { milestones: Vec<usize>, gamma: f32 },
}

/// `cosine` or `step:E1,E2:GAMMA`, as `--schedule` takes it.
impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Cosine => write!(f, "cosine"),
            Schedule::Step { milestones, gamma } => {
                let m: Vec<String> = milestones.iter().map(|m| m.to_string()).collect();
                write!(f, "step:{}:{gamma}", m.join(","))
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Cpu,
    Cuda,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: String,
    pub data: String,
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    pub momentum: f32,
    pub nesterov: bool,
    pub weight_decay: f32,
    pub schedule: Schedule,
    pub warmup_epochs: usize,
    pub seed: u64,
    pub device: Device,
    pub threads: usize,
    /// Folder datasets: the held-out share, the resize mode, skipping bad files.
    #[serde(default)]
    pub folder: data::FolderOptions,
    /// `--flip`: overrides the dataset's horizontal-flip augmentation.
    #[serde(default)]
    pub flip: Option<bool>,
    /// `--channels`: the network's input channels (1 grey, 3 RGB) for folder data.
    #[serde(default)]
    pub channels: Option<usize>,
}

impl Default for TrainConfig {
    /// The defaults train the bundled default network on the bundled MNIST.
    fn default() -> TrainConfig {
        TrainConfig {
            model: zoo::DEFAULT_MODEL.into(),
            data: "mnist".into(),
            epochs: 12,
            batch: 64,
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            schedule: Schedule::Cosine,
            warmup_epochs: 1,
            seed: 1,
            device: Device::Cpu,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            folder: data::FolderOptions::default(),
            flip: None,
            channels: None,
        }
    }
}

impl TrainConfig {
    /// Learning rate at `step` (0-based) of `steps_per_epoch * epochs`.
    pub fn lr_at(&self, step: usize, steps_per_epoch: usize) -> f32 {
        let warm = self.warmup_epochs * steps_per_epoch;
        if step < warm {
            return self.lr * (step + 1) as f32 / warm as f32;
        }
        match &self.schedule {
            Schedule::Cosine => {
                let total = (self.epochs * steps_per_epoch).saturating_sub(warm).max(1);
                let t = (step - warm) as f32 / total as f32;
                0.5 * self.lr * (1.0 + (std::f32::consts::PI * t).cos())
            }
            Schedule::Step { milestones, gamma } => {
                let epoch = step / steps_per_epoch;
                let k = milestones.iter().filter(|m| epoch >= **m).count();
                self.lr * gamma.powi(k as i32)
            }
        }
    }
}
