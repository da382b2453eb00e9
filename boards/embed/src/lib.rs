//! The one build script of every board crate: `fn main() { embed::build_script() }`.
//!
//! It puts the board's `memory.x` on the linker path, validates the model with the same
//! `firmware` crate the board runs, and writes into `OUT_DIR`:
//! - `model.skq`, `images.bin` (the first N test images, u8 pixels), `labels.bin`;
//! - `embedded.rs`, which the board includes as a module: the constants it sizes its buffers
//!   from (`MODEL_BYTES`, `ARENA_BYTES`, `INPUT_LEN`, `IMAGES`, `OPS`), the statics `MODEL`,
//!   `ARENA` and `fn data() -> app::Embedded`. It names the `app` crate, so the board depends
//!   on `boards/app` under that name.
//!
//! Environment (read at build time; `cargo xtask deploy` sets them):
//! - `SHIFTKIT_MODEL`: the `.skq` file (default `runs/default/model.skq` of the repository);
//! - `SHIFTKIT_IMAGES`: how many test images to embed (default 20);
//! - `SHIFTKIT_IDX_IMAGES` / `SHIFTKIT_IDX_LABELS`: IDX3 images / IDX1 labels (default the
//!   bundled MNIST test set under `data/mnist`).
#![forbid(unsafe_code)]

use firmware::idx::Idx;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

/// Default number of test images embedded.
pub const DEFAULT_IMAGES: usize = 20;

/// Runs the build script; on failure prints one `error:` line and exits non-zero.
pub fn build_script() {
    if let Err(e) = build() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// What [`build`] embedded.
#[derive(Debug)]
pub struct Embedded {
    pub model: PathBuf,
    pub model_bytes: usize,
    pub arena_bytes: usize,
    pub images: usize,
}

/// Copies `memory.x`, embeds the model and images, writes `embedded.rs`. A board whose HAL
/// links its own memory map (esp-hal, whose linker scripts include a `memory.x` of their own
/// that one of ours would shadow) has `budget.x` instead, the same MEMORY block read only by
/// `cargo xtask deploy`'s budget check (`boards::memory_file`): then nothing goes on the link
/// path.
pub fn build() -> Result<Embedded, String> {
    let out = PathBuf::from(
        env::var("OUT_DIR").map_err(|_| "OUT_DIR is not set (run from a build script)")?,
    );
    let dir = PathBuf::from(
        env::var("CARGO_MANIFEST_DIR")
            .map_err(|_| "CARGO_MANIFEST_DIR is not set (run from a build script)")?,
    );
    // The repository root: boards/<board>/ -> ../..
    let repo = dir.join("../..");

    if !dir.join("budget.x").is_file() {
        let memory_x = dir.join("memory.x");
        fs::copy(&memory_x, out.join("memory.x"))
            .map_err(|e| format!("{}: {e}", memory_x.display()))?;
        println!("cargo:rustc-link-search={}", out.display());
        println!("cargo:rerun-if-changed={}", memory_x.display());
    }

    let model_path = env_path("SHIFTKIT_MODEL", &repo, "runs/default/model.skq");
    let model = read(
        &model_path,
        "set SHIFTKIT_MODEL to a .skq file, or run `cargo xtask pipeline`",
    )?;
    let m = firmware::Model::from_bytes(&model)
        .map_err(|e| format!("{}: not a valid model: {e}", model_path.display()))?;

    println!("cargo:rerun-if-env-changed=SHIFTKIT_IMAGES");
    let n: usize = match env::var("SHIFTKIT_IMAGES") {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("SHIFTKIT_IMAGES={v}: expected a whole number of images"))?,
        Err(_) => DEFAULT_IMAGES,
    };
    let img_path = env_path(
        "SHIFTKIT_IDX_IMAGES",
        &repo,
        "data/mnist/t10k-images-idx3-ubyte",
    );
    let lab_path = env_path(
        "SHIFTKIT_IDX_LABELS",
        &repo,
        "data/mnist/t10k-labels-idx1-ubyte",
    );
    let img_file = read(&img_path, "an IDX3 image file")?;
    let lab_file = read(&lab_path, "an IDX1 label file")?;
    let (images, labels) = idx(
        (&img_path, &img_file),
        (&lab_path, &lab_file),
        n,
        m.input_len(),
    )?;

    let write = |name: &str, bytes: &[u8]| {
        fs::write(out.join(name), bytes).map_err(|e| format!("{}: {e}", out.join(name).display()))
    };
    write("model.skq", &model)?;
    write("images.bin", images)?;
    write("labels.bin", labels)?;
    write(
        "embedded.rs",
        embedded_rs(
            &model_path.display().to_string(),
            model.len(),
            m.arena_bytes(),
            m.input_len(),
            labels.len(),
            m.header().ops as usize,
        )
        .as_bytes(),
    )?;
    Ok(Embedded {
        model: model_path,
        model_bytes: model.len(),
        arena_bytes: m.arena_bytes(),
        images: labels.len(),
    })
}

/// `$var` if set, else `default` under the repository root; tells cargo to rerun on change.
fn env_path(var: &str, repo: &Path, default: &str) -> PathBuf {
    println!("cargo:rerun-if-env-changed={var}");
    match env::var_os(var) {
        Some(v) => PathBuf::from(v),
        None => repo.join(default),
    }
}

fn read(path: &Path, hint: &str) -> Result<Vec<u8>, String> {
    println!("cargo:rerun-if-changed={}", path.display());
    fs::read(path).map_err(|e| format!("{}: {e} ({hint})", path.display()))
}

/// The first `n` images (each `input_len` bytes) and labels of an IDX3/IDX1 pair (`(path,
/// bytes)` each, read with `firmware::idx::Idx`), fewer if the files hold fewer. An error is
/// one line that names the file.
fn idx<'a>(
    (img_path, imgs): (&Path, &'a [u8]),
    (lab_path, labs): (&Path, &'a [u8]),
    n: usize,
    input_len: usize,
) -> Result<(&'a [u8], &'a [u8]), String> {
    let images = Idx::parse_rank(imgs, 3).map_err(|e| format!("{}: {e}", img_path.display()))?;
    let labels = Idx::parse_rank(labs, 1).map_err(|e| format!("{}: {e}", lab_path.display()))?;
    if images.record_len() != input_len {
        let d = images.dims();
        return Err(format!(
            "{}: images are {}x{} ({} bytes), the model takes {input_len} bytes",
            img_path.display(),
            d[1],
            d[2],
            images.record_len()
        ));
    }
    let n = n.min(images.count()).min(labels.count());
    Ok((images.first(n), labels.first(n)))
}

/// The module the board includes (`include!(concat!(env!("OUT_DIR"), "/embedded.rs"))`).
fn embedded_rs(
    model: &str,
    model_bytes: usize,
    arena_bytes: usize,
    input_len: usize,
    images: usize,
    ops: usize,
) -> String {
    format!(
        "// Generated by boards/embed from {model}; do not edit.\n\
         /// Size of the embedded .skq file.\n\
         #[allow(dead_code)]\n\
         pub const MODEL_BYTES: usize = {model_bytes};\n\
         /// The model's arena (activation memory) size.\n\
         pub const ARENA_BYTES: usize = {arena_bytes};\n\
         /// Bytes per input image.\n\
         pub const INPUT_LEN: usize = {input_len};\n\
         /// Embedded test images.\n\
         #[allow(dead_code)]\n\
         pub const IMAGES: usize = {images};\n\
         /// Ops of the model (per-layer timing buffer length).\n\
         pub const OPS: usize = {ops};\n\
         /// The .skq bytes, 16-byte aligned (weights are read as words).\n\
         pub static MODEL: &app::Aligned<[u8]> =\n    \
             &app::Aligned(*include_bytes!(concat!(env!(\"OUT_DIR\"), \"/model.skq\")));\n\
         static IMAGE_BYTES: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/images.bin\"));\n\
         static LABELS: &[u8] = include_bytes!(concat!(env!(\"OUT_DIR\"), \"/labels.bin\"));\n\
         /// The arena, in .bss, handed out once.\n\
         pub static ARENA: app::Arena<ARENA_BYTES> = app::Arena::new();\n\
         /// The model and the test images, for `app::run`.\n\
         pub fn data() -> app::Embedded<'static> {{\n    \
             app::Embedded {{\n        \
                 model: &MODEL.0,\n        \
                 images: IMAGE_BYTES,\n        \
                 labels: LABELS,\n        \
                 input_len: INPUT_LEN,\n    \
             }}\n\
         }}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx_files(n: u32, rows: u32, cols: u32) -> (Vec<u8>, Vec<u8>) {
        let mut imgs = Vec::new();
        for v in [0x0803, n, rows, cols] {
            imgs.extend(u32::to_be_bytes(v));
        }
        imgs.extend((0..n * rows * cols).map(|i| i as u8));
        let mut labs = Vec::new();
        labs.extend(u32::to_be_bytes(0x0801));
        labs.extend(u32::to_be_bytes(n));
        labs.extend((0..n).map(|i| i as u8 % 10));
        (imgs, labs)
    }

    const I: &str = "images-idx3";
    const L: &str = "labels-idx1";

    fn first<'a>(
        imgs: &'a [u8],
        labs: &'a [u8],
        n: usize,
        input_len: usize,
    ) -> Result<(&'a [u8], &'a [u8]), String> {
        idx((Path::new(I), imgs), (Path::new(L), labs), n, input_len)
    }

    #[test]
    fn takes_the_first_images() {
        let (imgs, labs) = idx_files(5, 2, 3);
        let (i, l) = first(&imgs, &labs, 2, 6).unwrap();
        assert_eq!(i, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(l, &[0, 1]);
        // Asking for more than the files hold gives all of them.
        let (i, l) = first(&imgs, &labs, 99, 6).unwrap();
        assert_eq!((i.len(), l.len()), (30, 5));
    }

    #[test]
    fn bad_files_are_named() {
        let (imgs, labs) = idx_files(5, 2, 3);
        let e = first(&imgs, &labs, 2, 784).unwrap_err();
        assert!(
            e.starts_with("images-idx3: images are 2x3 (6 bytes), the model takes 784"),
            "{e}"
        );
        let e = first(&labs, &labs, 2, 6).unwrap_err();
        assert!(e.starts_with("images-idx3: an IDX file of rank 1"), "{e}");
        let e = first(&imgs, &imgs, 2, 6).unwrap_err();
        assert!(e.starts_with("labels-idx1: an IDX file of rank 3"), "{e}");
        let e = first(&imgs[..20], &labs, 2, 6).unwrap_err();
        assert!(e.starts_with("images-idx3: truncated"), "{e}");
        let e = first(&imgs, &labs[..7], 2, 6).unwrap_err();
        assert!(e.starts_with("labels-idx1: truncated"), "{e}");
        let e = first(b"\x1f\x8b\x08\x00", &labs, 2, 6).unwrap_err();
        assert!(e.contains("gunzip"), "{e}");
    }

    #[test]
    fn embedded_rs_has_every_constant() {
        let s = embedded_rs("m.skq", 41436, 43904, 784, 20, 29);
        for want in [
            "MODEL_BYTES: usize = 41436;",
            "ARENA_BYTES: usize = 43904;",
            "INPUT_LEN: usize = 784;",
            "IMAGES: usize = 20;",
            "OPS: usize = 29;",
            "app::Arena<ARENA_BYTES>",
        ] {
            assert!(s.contains(want), "{want} missing from:\n{s}");
        }
    }
}
