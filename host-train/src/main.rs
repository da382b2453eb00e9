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
        Some("bench-gpu") => bench_gpu(args.collect()),
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

/// `bench-gpu [--models A,B] [--batch N] [--warmup N] [--steps N]`: training images/s on the GPU
/// (forward + backward + SGD, synchronised) on random data of each model's input shape.
#[cfg(feature = "cuda")]
fn bench_gpu(args: Vec<String>) -> Result<(), train::TrainError> {
    use host_train::backend::{Backend, CudaBackend};
    use host_train::{data::Rng, model::Model, model::Normalization, zoo};
    let mut models = vec![
        "cifar-flat-4c".to_string(),
        "cifar-multishift101-4c".to_string(),
    ];
    let (mut batch, mut warmup, mut steps) = (128usize, 10usize, 50usize);
    let mut it = args.into_iter();
    let num = |f: &str, v: Option<String>| -> Result<usize, train::TrainError> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| train::TrainError::Config(format!("{f} needs a whole number")))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--models" => {
                models = it
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            "--batch" => batch = num(&a, it.next())?,
            "--warmup" => warmup = num(&a, it.next())?,
            "--steps" => steps = num(&a, it.next())?,
            o => {
                return Err(train::TrainError::Config(format!(
                    "bench-gpu: unknown argument '{o}'"
                )))
            }
        }
    }
    for name in models {
        let arch = zoo::arch(&name).ok_or_else(|| train::TrainError::UnknownModel {
            name: name.clone(),
            known: zoo::NAMES.join(", "),
        })?;
        let (h, w, c, classes) = (arch.input.h, arch.input.w, arch.input.c, arch.classes);
        let mut model = Model::new(arch);
        model.init(1);
        let mom = model.params.zeros_like();
        let norm = Normalization {
            mean: vec![0.5; c],
            std: vec![0.25; c],
        };
        let cfg = train::TrainConfig {
            batch,
            device: train::Device::Cuda,
            ..Default::default()
        };
        let mut be = CudaBackend::new(model, mom, norm, &cfg)?;
        let mut rng = Rng::new(7);
        let batches: Vec<(Vec<u8>, Vec<u8>)> = (0..4)
            .map(|_| {
                let imgs = (0..batch * h * w * c)
                    .map(|_| (rng.next_u64() & 255) as u8)
                    .collect();
                let labels = (0..batch).map(|_| rng.below(classes) as u8).collect();
                (imgs, labels)
            })
            .collect();
        for i in 0..warmup {
            let (x, y) = &batches[i % 4];
            be.train_step(x, y, 0.01)?;
        }
        be.sync()?;
        let t0 = std::time::Instant::now();
        let mut loss = 0.0;
        for i in 0..steps {
            let (x, y) = &batches[i % 4];
            loss = be.train_step(x, y, 0.01)?.0;
        }
        be.sync()?;
        let s = t0.elapsed().as_secs_f64();
        println!(
            "bench-gpu model={name} batch={batch} steps={steps} img_per_s={:.1} ms_per_step={:.3} last_loss={loss:.4} gpu=\"{}\"",
            (steps * batch) as f64 / s,
            1e3 * s / steps as f64,
            be.device_name()
        );
    }
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn bench_gpu(_: Vec<String>) -> Result<(), train::TrainError> {
    Err(train::TrainError::Cuda(
        "this build has no CUDA backend (the `cuda` feature is off)".into(),
    ))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
