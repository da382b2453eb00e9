//! `shiftkit-train`: train a zoo network, or list the zoo. `cargo xtask train|zoo` call this.
use host_train::{cli, train};

fn run() -> Result<(), train::TrainError> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("train") => {
            let (cfg, out, resume, quiet) = cli::parse_train(args.collect())?;
            rayon::ThreadPoolBuilder::new()
                .num_threads(cfg.threads.max(1))
                .build_global()
                .map_err(|e| train::TrainError::Config(format!("thread pool: {e}")))?;
            let s = train::train(cfg, &out, resume, quiet)?;
            println!(
                "{}: test accuracy {:.2}% after {} epochs in {:.1} s ({:.0} img/s); run folder {}",
                s.model,
                100.0 * s.test_accuracy,
                s.epochs,
                s.train_seconds,
                s.images_per_second,
                out.display()
            );
            Ok(())
        }
        Some("zoo") => {
            let args: Vec<String> = args.collect();
            if let Some(i) = args.iter().position(|a| a == "--graph") {
                let name = args.get(i + 1).cloned().unwrap_or_default();
                let arch = host_train::zoo::arch(&name).ok_or_else(|| {
                    train::TrainError::UnknownModel {
                        name: name.clone(),
                        known: host_train::zoo::NAMES.join(", "),
                    }
                })?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&arch.graph()).expect("plain data")
                );
                return Ok(());
            }
            let json = args.iter().any(|a| a == "--json");
            print!("{}", cli::zoo_text(json));
            println!();
            Ok(())
        }
        _ => Err(train::TrainError::Config(cli::USAGE.to_string())),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
