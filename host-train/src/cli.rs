//! The `shiftkit-train` command line (what `cargo xtask train`, the pipeline and the benchmarks
//! call), on clap: every subcommand has `--help`, a typo gets a suggestion, and a bad value gives one line
//! naming the argument and what would be accepted. The defaults are [`TrainConfig::default`]'s.
use crate::train::{self, Device, Schedule, TrainConfig, TrainError};
use crate::zoo;
use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

/// shiftkit host trainer: train a zoo network, or list the zoo.
#[derive(Debug, Parser)]
#[command(name = "shiftkit-train")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a zoo network into a run folder, or continue a run with --resume.
    Train(TrainArgs),
    /// List the zoo (params, MACs, int8 peak activation bytes), or print one network's graph.
    Zoo(ZooArgs),
    /// Training images/s on the GPU (forward + backward + SGD) on random data.
    BenchGpu(BenchGpuArgs),
}

/// `train`: every option of [`TrainConfig`], the run folder, and resuming.
#[derive(Debug, Args)]
#[command(
    after_help = "SPEC: mnist (bundled) | mnist:DIR | cifar10:DIR | cifar100:DIR | folder:DIR\n\
                  folder:DIR is DIR/<class>/*.{png,jpg,jpeg,bmp,pgm,ppm} (a held-out --val-split per class), \
                  or DIR/train/<class>/ with DIR/test/<class>/ (or DIR/val/); images are resized to the \
                  network's input and cached in the run folder"
)]
pub struct TrainArgs {
    /// Network to train: a zoo name (see `cargo xtask zoo`) or a spec FAMILY[:KEY=VALUE,...],
    /// e.g. flat-4c:in=96x96x3,w=16,blocks=2-2-2.
    ///
    /// FAMILY: bottleneck, noshift, shift-4c|8c, multishift-4c|8c, flat-4c|8c, basic,
    /// basic-4c|8c. KEYS (defaults in brackets): in=HxWxC [32x32x3], classes=N [10],
    /// stem=W [the first stage's mid width], stem-stride=1|2|4 [1; 4 is ImageNet's 7x7/2 conv
    /// and 3x3/2 max pool], blocks=B1-B2-.. [2 per stage], w=W (stage s is W*2^s wide) [64 for
    /// bottleneck families, else 16] or widths=W1-W2-.., mids=M1-M2-.. (bottleneck families)
    /// [widths/4], strides=S1-S2-.. (1 or 2) [1-2-2-..], centre=0|1 [1], inner=0|1 (multishift,
    /// flat) [1]. The lists' length is the number of stages [3]. `cargo xtask zoo --model SPEC`
    /// sizes one; docs/design.md, "Model specs".
    #[arg(long, value_name = "NAME|SPEC", default_value = zoo::DEFAULT_MODEL)]
    pub model: String,
    /// Dataset: mnist, mnist:DIR, cifar10:DIR, cifar100:DIR or folder:DIR.
    #[arg(long, value_name = "SPEC", default_value_t = TrainConfig::default().data)]
    pub data: String,
    /// folder: share of each class held out for testing when DIR has no train/ and test/.
    #[arg(long, value_name = "F", default_value_t = crate::data::FolderOptions::default().val_split)]
    pub val_split: f32,
    /// folder: how images of another aspect ratio are fitted to the input (bilinear filter).
    #[arg(long, value_enum, default_value_t = crate::data::Resize::default())]
    pub resize: crate::data::Resize,
    /// folder: skip files that do not decode (counted, the first few named) instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// folder: the network's input channels, 1 (grey) or 3 (RGB); default: the model's.
    #[arg(long, value_name = "1|3", value_parser = clap::value_parser!(u8).range(1..=3))]
    pub channels: Option<u8>,
    /// Horizontal-flip augmentation [default: on for folder and CIFAR data, off for digits].
    #[arg(long, value_name = "true|false", action = ArgAction::Set)]
    pub flip: Option<bool>,
    #[arg(
        long,
        value_name = "N",
        help = format!(
            "Epochs to train (with --resume: the new total) [default: {}]",
            TrainConfig::default().epochs
        )
    )]
    pub epochs: Option<usize>,
    /// Where the layers run.
    #[arg(long, value_enum, default_value_t = TrainConfig::default().device)]
    pub device: Device,
    /// The run folder to write (required unless --resume).
    #[arg(long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder with its saved options (only --epochs may change).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Batch size.
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().batch)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().lr)]
    pub lr: f32,
    /// SGD momentum.
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().momentum)]
    pub momentum: f32,
    /// Nesterov momentum.
    #[arg(long, value_name = "true|false", action = ArgAction::Set,
          default_value_t = TrainConfig::default().nesterov)]
    pub nesterov: bool,
    /// Weight decay (conv and FC weights).
    #[arg(long, value_name = "F", default_value_t = TrainConfig::default().weight_decay)]
    pub wd: f32,
    /// Learning-rate schedule after warm-up (step: times GAMMA, 0.1 if omitted, at each epoch Ei).
    #[arg(long, value_name = "cosine|step:E1,E2[:GAMMA]", value_parser = schedule,
          default_value_t = TrainConfig::default().schedule)]
    pub schedule: Schedule,
    /// Linear warm-up epochs.
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().warmup_epochs)]
    pub warmup: usize,
    /// Seed of initialisation, shuffling and augmentation.
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// CPU threads (the same seed and thread count give the same weights).
    #[arg(long, value_name = "N", default_value_t = TrainConfig::default().threads)]
    pub threads: usize,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
}

/// `zoo`: the listing, as a table or JSON, or one network's op graph.
#[derive(Debug, Args)]
pub struct ZooArgs {
    /// The listing as JSON.
    #[arg(long)]
    pub json: bool,
    /// Print this network's op graph as JSON instead.
    #[arg(long, value_name = "NAME")]
    pub graph: Option<String>,
}

/// `bench-gpu`: which networks, and how many steps.
#[derive(Debug, Args)]
pub struct BenchGpuArgs {
    /// Zoo networks to time, comma-separated.
    #[arg(
        long,
        value_name = "A,B",
        value_delimiter = ',',
        default_value = "cifar-flat-4c,cifar-multishift101-4c"
    )]
    pub models: Vec<String>,
    /// Batch size.
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub batch: usize,
    /// Untimed steps first.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub warmup: usize,
    /// Timed steps.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub steps: usize,
}

/// `--schedule`: `cosine` or `step:E1,E2[:GAMMA]` (the inverse of [`Schedule`]'s `Display`).
fn schedule(s: &str) -> Result<Schedule, String> {
    if s == "cosine" {
        return Ok(Schedule::Cosine);
    }
    let bad = || "expected cosine or step:E1,E2[:GAMMA]".to_string();
    let rest = s.strip_prefix("step:").ok_or_else(bad)?;
    let (ms, gamma) = match rest.split_once(':') {
        Some((m, g)) => (m, g.parse().map_err(|_| bad())?),
        None => (rest, 0.1),
    };
    let milestones = ms
        .split(',')
        .map(|m| m.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    Ok(Schedule::Step { milestones, gamma })
}

impl TrainArgs {
    /// The run's config, its folder, and whether it resumes: with `--resume` the saved config
    /// (only `--epochs` overrides it), otherwise these options.
    pub fn config(self) -> Result<(TrainConfig, PathBuf, bool), TrainError> {
        if let Some(dir) = self.resume {
            let mut saved = train::saved_config(&dir)?;
            if let Some(e) = self.epochs {
                saved.epochs = e;
            }
            return Ok((saved, dir, true));
        }
        let d = TrainConfig::default();
        let cfg = TrainConfig {
            model: self.model,
            data: self.data,
            epochs: self.epochs.unwrap_or(d.epochs),
            batch: self.batch,
            lr: self.lr,
            momentum: self.momentum,
            nesterov: self.nesterov,
            weight_decay: self.wd,
            schedule: self.schedule,
            warmup_epochs: self.warmup,
            seed: self.seed,
            device: self.device,
            threads: self.threads,
            folder: crate::data::FolderOptions {
                val_split: self.val_split,
                resize: self.resize,
                skip_bad: self.skip_bad,
                seed: self.seed,
            },
            flip: self.flip,
            channels: self.channels.map(usize::from),
        };
        if cfg.channels == Some(2) {
            return Err(TrainError::Config(
                "--channels 2: expected 1 (grey) or 3 (RGB)".into(),
            ));
        }
        let out = self.out.ok_or_else(|| {
            TrainError::Config("--out DIR is required (where the run folder goes)".into())
        })?;
        Ok((cfg, out, false))
    }
}

/// The `zoo` listing as a table or JSON.
pub fn zoo_text(json: bool) -> String {
    let entries = zoo::entries();
    if json {
        return serde_json::to_string_pretty(&entries).expect("plain data serialises");
    }
    let mut s = format!(
        "{:<28} {:>12} {:>16} {:>22}\n",
        "name", "params", "MACs", "int8 peak act. bytes"
    );
    for e in entries {
        s.push_str(&format!(
            "{:<28} {:>12} {:>16} {:>22}\n",
            e.name, e.params, e.macs, e.peak_activation_bytes
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_train_configs() {
        let Cli {
            command: Command::Train(a),
        } = Cli::try_parse_from(["shiftkit-train", "train", "--out", "x"]).unwrap()
        else {
            panic!("not train")
        };
        let (cfg, out, resume) = a.config().unwrap();
        assert_eq!(
            (cfg, out, resume),
            (TrainConfig::default(), "x".into(), false)
        );
    }

    #[test]
    fn options_parse_as_before() {
        let Command::Train(a) = Cli::try_parse_from([
            "shiftkit-train",
            "train",
            "--nesterov",
            "false",
            "--schedule",
            "step:81,122:0.2",
            "--device",
            "cuda",
            "--epochs",
            "3",
            "--out",
            "o",
        ])
        .unwrap()
        .command
        else {
            panic!("not train")
        };
        let (cfg, _, _) = a.config().unwrap();
        assert!(!cfg.nesterov);
        assert_eq!(cfg.device, Device::Cuda);
        assert_eq!(cfg.epochs, 3);
        assert_eq!(
            cfg.schedule,
            Schedule::Step {
                milestones: vec![81, 122],
                gamma: 0.2
            }
        );
        for s in ["cosine", "step:5:0.1", "step:81,122:0.2"] {
            assert_eq!(schedule(s).unwrap().to_string(), s);
        }
        assert!(schedule("step:x").is_err() && schedule("linear").is_err());
    }
}
