//! The folder loader's decoding benchmark: the bundled 10,000 MNIST digits written as PNG and as
//! JPEG (quality 90) folders, then each loaded at 28x28x1 twice with the run folder's cache:
//! the first load decodes on every core, the second reads the cache. Prints images per second
//! and the cache's size (BENCHMARKS.md, "Folder datasets").
//!
//! ```sh
//! cargo run --release -p host-train --example decode_bench -- [WORK_DIR]
//! ```
use host_train::data::{self, folder, DataSpec, FolderOptions, Target};
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let work = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("shiftkit-decode-bench"));
    let mnist = data::load(&DataSpec::BundledMnist).expect("the bundled MNIST");
    let t = Target { h: 28, w: 28, c: 1 };
    println!(
        "{} threads; {} images per folder",
        rayon::current_num_threads(),
        mnist.train.len() + mnist.test.len()
    );
    for ext in ["png", "jpg"] {
        let dir = work.join(ext);
        let run = work.join(format!("run-{ext}"));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&run);
        std::fs::create_dir_all(&run).expect("work folder");
        for (split, ds) in [("train", &mnist.train), ("test", &mnist.test)] {
            folder::write_folder(&dir.join(split), ds, ext, false, 90).expect("write");
        }
        let files_bytes: u64 = walk(&dir);
        for pass in ["decode", "cached"] {
            let start = Instant::now();
            let (tr, te, _, r) =
                folder::load_folder(&dir, t, &FolderOptions::default(), Some(&run), true)
                    .expect("load");
            let s = start.elapsed().as_secs_f64();
            let n = tr.len() + te.len();
            println!(
                "{ext} {pass:>6}: {n} images in {s:.3} s = {:.0} images/s (from cache: {})",
                n as f64 / s,
                r.from_cache
            );
        }
        let cache = std::fs::metadata(run.join(folder::CACHE_FILE)).map_or(0, |m| m.len());
        println!("{ext}: files {files_bytes} B on disk, cache {cache} B");
    }
}

fn walk(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        total += if p.is_dir() {
            walk(&p)
        } else {
            e.metadata().map_or(0, |m| m.len())
        };
    }
    total
}
