//! The `shiftkit-train` command line (what `cargo xtask train` and `cargo xtask zoo` call).
//! Every bad argument gives one line naming it and what would be accepted.
use crate::train::{self, Device, Schedule, TrainConfig, TrainError};
use crate::zoo;
use std::path::PathBuf;

pub const USAGE: &str = "usage:
  shiftkit-train train [--model NAME] [--data SPEC] [--epochs N] [--device cpu|cuda] [--out DIR]
                       [--batch N] [--lr F] [--momentum F] [--nesterov true|false] [--wd F]
                       [--schedule cosine|step:E1,E2[:GAMMA]] [--warmup N] [--seed N] [--threads N] [--quiet]
  shiftkit-train train --resume DIR [--epochs N] [--quiet]
  shiftkit-train zoo [--json] | zoo --graph NAME
  shiftkit-train bench-gpu [--models A,B] [--batch N] [--warmup N] [--steps N]
SPEC: mnist (bundled) | mnist:DIR | cifar10:DIR | cifar100:DIR";

fn value<T: std::str::FromStr>(flag: &str, v: Option<String>, what: &str) -> Result<T, TrainError> {
    let v = v.ok_or_else(|| TrainError::Config(format!("{flag} needs a value ({what})")))?;
    v.parse()
        .map_err(|_| TrainError::Config(format!("{flag} {v}: expected {what}")))
}

fn schedule(s: &str) -> Result<Schedule, TrainError> {
    if s == "cosine" {
        return Ok(Schedule::Cosine);
    }
    let bad = || {
        TrainError::Config(format!(
            "--schedule {s}: expected cosine or step:E1,E2[:GAMMA]"
        ))
    };
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

/// Parses `train` arguments: (config, output folder, resume, quiet).
pub fn parse_train(args: Vec<String>) -> Result<(TrainConfig, PathBuf, bool, bool), TrainError> {
    let mut cfg = TrainConfig::default();
    let mut out: Option<PathBuf> = None;
    let mut resume: Option<PathBuf> = None;
    let mut quiet = false;
    let mut epochs: Option<usize> = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => cfg.model = value(&a, it.next(), "a zoo name")?,
            "--data" => {
                cfg.data = value(
                    &a,
                    it.next(),
                    "mnist, mnist:DIR, cifar10:DIR or cifar100:DIR",
                )?
            }
            "--epochs" => epochs = Some(value(&a, it.next(), "a whole number of epochs")?),
            "--device" => {
                cfg.device = match value::<String>(&a, it.next(), "cpu or cuda")?.as_str() {
                    "cpu" => Device::Cpu,
                    "cuda" => Device::Cuda,
                    other => {
                        return Err(TrainError::Config(format!(
                            "--device {other}: expected cpu or cuda"
                        )))
                    }
                }
            }
            "--out" => out = Some(value(&a, it.next(), "a folder")?),
            "--resume" => resume = Some(value(&a, it.next(), "the run folder to continue")?),
            "--batch" => cfg.batch = value(&a, it.next(), "a batch size")?,
            "--lr" => cfg.lr = value(&a, it.next(), "a learning rate")?,
            "--momentum" => cfg.momentum = value(&a, it.next(), "a momentum")?,
            "--nesterov" => cfg.nesterov = value(&a, it.next(), "true or false")?,
            "--wd" => cfg.weight_decay = value(&a, it.next(), "a weight decay")?,
            "--schedule" => {
                cfg.schedule = schedule(&value::<String>(&a, it.next(), "a schedule")?)?
            }
            "--warmup" => cfg.warmup_epochs = value(&a, it.next(), "warm-up epochs")?,
            "--seed" => cfg.seed = value(&a, it.next(), "an integer seed")?,
            "--threads" => cfg.threads = value(&a, it.next(), "a thread count")?,
            "--quiet" => quiet = true,
            other => {
                return Err(TrainError::Config(format!(
                    "unknown argument '{other}'\n{USAGE}"
                )))
            }
        }
    }
    if let Some(dir) = resume {
        let mut saved = train::saved_config(&dir)?;
        if let Some(e) = epochs {
            saved.epochs = e;
        }
        return Ok((saved, dir, true, quiet));
    }
    if let Some(e) = epochs {
        cfg.epochs = e;
    }
    let out = out.ok_or_else(|| {
        TrainError::Config("--out DIR is required (where the run folder goes)".into())
    })?;
    Ok((cfg, out, false, quiet))
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
