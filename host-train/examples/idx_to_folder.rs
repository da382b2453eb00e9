//! Writes the bundled MNIST digits as image files in the folder layout `--data folder:DIR`
//! reads: `OUT/train/<digit>/NNNNN.EXT` and `OUT/test/<digit>/NNNNN.EXT`.
//!
//! ```sh
//! cargo run --release -p host-train --example idx_to_folder -- OUT [png|jpg|bmp] [--rgb] [--quality Q]
//! ```
//! `--rgb` replicates the grey value into three channels; `--quality` is the JPEG quality
//! (default 90). The folder tests and the decoding benchmark use the same writer.
use host_train::data::{self, DataSpec};
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: idx_to_folder OUT [png|jpg|bmp] [--rgb] [--quality Q]");
        std::process::exit(2);
    };
    let (mut ext, mut rgb, mut quality) = ("png".to_string(), false, 90u8);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rgb" => rgb = true,
            "--quality" => {
                quality = args.next().and_then(|q| q.parse().ok()).unwrap_or_else(|| {
                    eprintln!("--quality needs a number 1..100");
                    std::process::exit(2)
                })
            }
            "png" | "jpg" | "bmp" => ext = a,
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let splits = data::load(&DataSpec::BundledMnist).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    for (name, ds) in [("train", &splits.train), ("test", &splits.test)] {
        let n = data::folder::write_folder(&out.join(name), ds, &ext, rgb, quality).unwrap_or_else(
            |e| {
                eprintln!("{e}");
                std::process::exit(1)
            },
        );
        println!("{}: {n} images", out.join(name).display());
    }
}
