//! `shiftkit-train`: train a zoo network, list the zoo, or time training on the GPU; the options
//! are in [`host_train::cli`]. `cargo xtask train`, the pipeline and the benchmarks call this.
#![forbid(unsafe_code)]
use clap::Parser;
use host_train::cli::{BenchGpuArgs, Cli, Command, ZooArgs};
use host_train::{cli, train};

fn run(cli: Cli) -> Result<(), train::TrainError> {
    match cli.command {
        Command::Train(args) => {
            let quiet = args.quiet;
            let (cfg, out, resume) = args.config()?;
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
        Command::BenchGpu(args) => bench_gpu(args),
        Command::Zoo(ZooArgs {
            graph: Some(name), ..
        }) => {
            let arch = host_train::zoo::resolve(&name)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&arch.graph()).expect("plain data")
            );
            Ok(())
        }
        Command::Zoo(ZooArgs { json, graph: None }) => {
            print!("{}", cli::zoo_text(json));
            println!();
            Ok(())
        }
    }
}

/// `bench-gpu`: training images/s on the GPU (forward + backward + SGD, synchronised) on random
/// data of each model's input shape.
#[cfg(feature = "cuda")]
fn bench_gpu(args: BenchGpuArgs) -> Result<(), train::TrainError> {
    use host_train::backend::{Backend, CudaBackend};
    use host_train::{data::Rng, model::Model, model::Normalization, zoo};
    let BenchGpuArgs {
        models,
        batch,
        warmup,
        steps,
    } = args;
    for name in models {
        let arch = zoo::resolve(&name)?;
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
fn bench_gpu(_: BenchGpuArgs) -> Result<(), train::TrainError> {
    Err(train::TrainError::Cuda(
        "this build has no CUDA backend (the `cuda` feature is off)".into(),
    ))
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed; a usage error prints clap's message
        // (its first line names the argument) and exits 1, as every other bad input does.
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
