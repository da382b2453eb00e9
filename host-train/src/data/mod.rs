//! Datasets: what `--data SPEC` names, loading it into memory, and training-time augmentation.
//!
//! - [`spec`]: [`DataSpec`] (the `--data` argument: `mnist`, `mnist:DIR`, `cifar10:DIR`,
//!   `cifar100:DIR`), the [`Dataset`] and [`Splits`] types and [`DataError`];
//! - [`mnist`]: the bundled MNIST (`data/mnist`, see `data/README.md`) or a user's MNIST in
//!   uncompressed IDX format, read through the shared [`firmware::idx::Idx`] reader;
//! - [`cifar`]: the *binary* versions of CIFAR-10/100;
//! - [`folder`]: a folder of class folders of images (`folder:DIR`), decoded, resized and cached;
//! - [`augment`]: random translation with zero padding ("pad and crop") and horizontal flip;
//! - [`rng`]: the small deterministic PRNG (SplitMix64) that the rest of the trainer reuses for
//!   initialisation, batching and augmentation.
//!
//! [`load`] reads what a spec names into [`Splits`] of u8 NHWC images and u8 labels, with
//! per-channel mean/std of the training images on the \[0, 1\] scale. Every file is validated (magic
//! numbers, header dimensions, exact lengths, label ranges) and any problem is a [`DataError`]
//! naming the file, what is wrong and how to fix it; no file contents can make this module panic.
pub mod augment;
pub mod cifar;
pub mod folder;
pub mod mnist;
pub mod rng;
pub mod spec;

pub use augment::{augment_into, Augment};
pub use folder::{FolderOptions, Resize, Target};
pub use rng::Rng;
pub use spec::{DataError, DataSpec, Dataset, Splits};

use std::path::{Path, PathBuf};

/// Where the bundled MNIST lives: `<repo>/data/mnist`.
pub fn bundled_mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join("mnist")
}

/// What loading needs besides the spec: the network's input (folder images are resized to it),
/// the folder options, the run folder that caches decoded images, `--flip`, and quiet.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub input: Option<Target>,
    pub folder: FolderOptions,
    pub cache_dir: Option<PathBuf>,
    /// Overrides the dataset's horizontal-flip augmentation (`--flip true|false`).
    pub flip: Option<bool>,
    pub quiet: bool,
    /// Only the test split is needed (eval, predict, deploy's images): MNIST and CIFAR leave
    /// the training split empty and do not need its files.
    pub test_only: bool,
}

/// Loads the dataset `spec` names, validating every file ([`load_with`] with no input size: a
/// folder dataset needs one).
pub fn load(spec: &DataSpec) -> Result<Splits, DataError> {
    load_with(spec, &LoadOptions::default())
}

/// Whether every class name is one digit: the digit datasets, which are never mirrored.
pub fn digits(names: &[String]) -> bool {
    names
        .iter()
        .all(|n| n.len() == 1 && n.as_bytes()[0].is_ascii_digit())
}

/// Loads the dataset `spec` names with `opts`, validating every file.
pub fn load_with(spec: &DataSpec, opts: &LoadOptions) -> Result<Splits, DataError> {
    let mut report = None;
    let (train, test, class_names, mut augment) = match spec {
        DataSpec::BundledMnist => {
            let (tr, te) = mnist::load_mnist(&bundled_mnist_dir(), true, opts.test_only)?;
            (tr, te, mnist::digit_names(), Augment::MNIST)
        }
        DataSpec::Mnist(dir) => {
            let (tr, te) = mnist::load_mnist(dir, false, opts.test_only)?;
            (tr, te, mnist::digit_names(), Augment::MNIST)
        }
        DataSpec::Cifar10(dir) => {
            let (tr, te, names) = cifar::load_cifar10(dir, opts.test_only)?;
            (tr, te, names, Augment::CIFAR)
        }
        DataSpec::Cifar100(dir) => {
            let (tr, te, names) = cifar::load_cifar100(dir, opts.test_only)?;
            (tr, te, names, Augment::CIFAR)
        }
        DataSpec::Folder(dir) => {
            let t = opts.input.ok_or_else(|| {
                DataError::BadSpec(format!(
                    "{spec}: a folder dataset is resized to the network's input, and none was given"
                ))
            })?;
            let (tr, te, names, r) =
                folder::load_folder(dir, t, &opts.folder, opts.cache_dir.as_deref(), opts.quiet)?;
            if !opts.quiet {
                eprintln!(
                    "{}",
                    folder::summary(dir, &tr, &te, &names, &opts.folder, &r)
                );
            }
            report = Some(r);
            // Digits translate by 2 pixels and never flip; other images pad-and-crop by an
            // eighth of the side and flip.
            let aug = if digits(&names) {
                Augment::MNIST
            } else {
                Augment {
                    pad_crop: (t.h.min(t.w) / 8).max(1),
                    hflip: true,
                }
            };
            (tr, te, names, aug)
        }
    };
    if let Some(flip) = opts.flip {
        augment.hflip = flip;
    }
    let (mean, std) = channel_stats(&train);
    Ok(Splits {
        train,
        test,
        class_names,
        augment,
        mean,
        std,
        folder: report,
    })
}

/// Per-channel mean and (population) standard deviation of `ds` on the \[0, 1\] scale. Sums are
/// exact (integer) and the division is done in f64.
fn channel_stats(ds: &Dataset) -> (Vec<f32>, Vec<f32>) {
    let c = ds.c.max(1);
    let mut sum = vec![0u64; c];
    let mut sq = vec![0u64; c];
    for px in ds.images.chunks_exact(c) {
        for (ch, &v) in px.iter().enumerate() {
            sum[ch] += v as u64;
            sq[ch] += (v as u64) * (v as u64);
        }
    }
    let n = (ds.images.len() / c).max(1) as f64;
    let mut mean = Vec::with_capacity(c);
    let mut std = Vec::with_capacity(c);
    for ch in 0..c {
        let m = sum[ch] as f64 / n / 255.0;
        let m2 = sq[ch] as f64 / n / (255.0 * 255.0);
        mean.push(m as f32);
        std.push((m2 - m * m).max(0.0).sqrt() as f32);
    }
    (mean, std)
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn check_dir(dir: &Path, what: &str) -> Result<(), DataError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(DataError::Missing {
            path: dir.to_path_buf(),
            hint: format!("expected a folder holding {what}"),
        })
    }
}

/// Test helpers shared by the loaders' tests.
#[cfg(test)]
mod test_util {
    use std::path::PathBuf;

    /// A fresh, empty folder under the system temp dir, removed when dropped.
    pub struct TempDir(pub PathBuf);

    impl TempDir {
        pub fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir()
                .join(format!("shiftkit-data-test-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
