//! Datasets: what `--data SPEC` names, loading it into memory, and training-time augmentation.
//!
//! This module owns
//! - [`DataSpec`]: the `--data` argument (`mnist`, `mnist:DIR`, `cifar10:DIR`, `cifar100:DIR`);
//! - [`load`]: reading the bundled MNIST (`data/mnist`, see `data/README.md`), a user's MNIST in
//!   uncompressed IDX format, or the *binary* versions of CIFAR-10/100, into [`Splits`] of u8 NHWC
//!   images and u8 labels, with per-channel mean/std of the training images on the [0,1] scale;
//! - [`augment_into`]: random translation with zero padding ("pad and crop") and horizontal flip;
//! - [`Rng`]: the small deterministic PRNG (SplitMix64) that the rest of the trainer reuses for
//!   initialisation, batching and augmentation.
//!
//! Every file is validated (magic numbers, header dimensions, exact lengths, label ranges) and any
//! problem is a [`DataError`] naming the file, what is wrong and how to fix it; no file contents
//! can make this module panic.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Everything that can go wrong while loading a dataset. Each message names the file, says what is
/// wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: cannot read: {source} (check that the path exists and is readable)", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not found; {hint}", path = .path.display())]
    Missing { path: PathBuf, hint: String },
    #[error(
        "{path}: magic number {found} (0x{found:08x}), expected {expected}; this is not an uncompressed IDX file of the expected kind (gunzip it if it is compressed, or check that the right file is in place)",
        path = .path.display()
    )]
    BadMagic {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(
        "{path}: file is {len} bytes, expected {expected}; it is truncated or corrupt (download or extract it again)",
        path = .path.display()
    )]
    Truncated {
        path: PathBuf,
        len: u64,
        /// What the length should be, in words (an exact size, or "a multiple of N-byte records").
        expected: String,
    },
    #[error("{path}: {what}", path = .path.display())]
    Mismatch { path: PathBuf, what: String },
    #[error(
        "{path}: record {index} has label {label}, but there are only {classes} classes; the file is corrupt or belongs to another dataset (check the --data kind)",
        path = .path.display()
    )]
    BadLabel {
        path: PathBuf,
        index: usize,
        label: u8,
        classes: usize,
    },
    #[error("bad --data value: {0}")]
    BadSpec(String),
}

/// One split of a dataset, images as u8 HWC (NHWC flattened), labels as u8 class ids.
#[derive(Clone, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub classes: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i` as `h * w * c` bytes in HWC order. Panics if `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Bytes per image: `h * w * c`.
    pub fn image_len(&self) -> usize {
        self.h * self.w * self.c
    }
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("len", &self.len())
            .field("h", &self.h)
            .field("w", &self.w)
            .field("c", &self.c)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

/// What `--data SPEC` names. Parse: "mnist" (bundled default), "mnist:DIR", "cifar10:DIR",
/// "cifar100:DIR".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// The 8,000/2,000 MNIST digits committed under `data/mnist` (see [`bundled_mnist_dir`]).
    BundledMnist,
    /// A folder with the four uncompressed MNIST IDX files.
    Mnist(PathBuf),
    /// A folder with the CIFAR-10 binary version (`data_batch_1.bin` … `test_batch.bin`).
    Cifar10(PathBuf),
    /// A folder with the CIFAR-100 binary version (`train.bin`, `test.bin`).
    Cifar100(PathBuf),
}

const SPEC_FORMS: &str =
    "valid forms: `mnist` (bundled), `mnist:DIR`, `cifar10:DIR`, `cifar100:DIR`";

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, dir) = match s.split_once(':') {
            Some((k, d)) => (k, Some(d)),
            None => (s, None),
        };
        let bad = |why: &str| Err(DataError::BadSpec(format!("`{s}`: {why}; {SPEC_FORMS}")));
        match (kind, dir) {
            ("mnist", None) => Ok(DataSpec::BundledMnist),
            ("mnist" | "cifar10" | "cifar100", Some("")) => bad("the folder after ':' is empty"),
            ("mnist", Some(d)) => Ok(DataSpec::Mnist(PathBuf::from(d))),
            ("cifar10", Some(d)) => Ok(DataSpec::Cifar10(PathBuf::from(d))),
            ("cifar100", Some(d)) => Ok(DataSpec::Cifar100(PathBuf::from(d))),
            ("cifar10" | "cifar100", None) => {
                bad("CIFAR is not bundled, name the folder holding its binary version")
            }
            _ => bad("unknown dataset"),
        }
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::BundledMnist => write!(f, "mnist"),
            DataSpec::Mnist(d) => write!(f, "mnist:{}", d.display()),
            DataSpec::Cifar10(d) => write!(f, "cifar10:{}", d.display()),
            DataSpec::Cifar100(d) => write!(f, "cifar100:{}", d.display()),
        }
    }
}

/// Training-time augmentation for a dataset.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Augment {
    /// Random translation by `dy, dx` uniform in `[-pad_crop, pad_crop]`, zero-filled (the usual
    /// "pad by N and crop back" augmentation). 0 disables it.
    pub pad_crop: usize,
    /// Mirror left-right with probability 0.5.
    pub hflip: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        pad_crop: 0,
        hflip: false,
    };
    /// MNIST: translate by up to 2 pixels, never mirror (digits are not symmetric).
    pub const MNIST: Augment = Augment {
        pad_crop: 2,
        hflip: false,
    };
    /// CIFAR: the standard pad-4 crop and horizontal flip.
    pub const CIFAR: Augment = Augment {
        pad_crop: 4,
        hflip: true,
    };
}

/// A loaded dataset: both splits, class names, the augmentation that suits it, and per-channel
/// mean/std of the training images on the [0,1] scale (pixel / 255).
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
    pub class_names: Vec<String>,
    pub augment: Augment,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Where the bundled MNIST lives: `<repo>/data/mnist`.
pub fn bundled_mnist_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("data")
        .join("mnist")
}

/// Loads the dataset `spec` names, validating every file.
pub fn load(spec: &DataSpec) -> Result<Splits, DataError> {
    let (train, test, class_names, augment) = match spec {
        DataSpec::BundledMnist => {
            let (tr, te) = load_mnist(&bundled_mnist_dir(), true)?;
            (tr, te, digit_names(), Augment::MNIST)
        }
        DataSpec::Mnist(dir) => {
            let (tr, te) = load_mnist(dir, false)?;
            (tr, te, digit_names(), Augment::MNIST)
        }
        DataSpec::Cifar10(dir) => {
            let (tr, te, names) = load_cifar10(dir)?;
            (tr, te, names, Augment::CIFAR)
        }
        DataSpec::Cifar100(dir) => {
            let (tr, te, names) = load_cifar100(dir)?;
            (tr, te, names, Augment::CIFAR)
        }
    };
    let (mean, std) = channel_stats(&train);
    Ok(Splits {
        train,
        test,
        class_names,
        augment,
        mean,
        std,
    })
}

fn digit_names() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// Per-channel mean and (population) standard deviation of `ds` on the [0,1] scale. Sums are
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

// ---------------------------------------------------------------------------------------------
// MNIST (IDX)

const IDX3_MAGIC: u32 = 2051;
const IDX1_MAGIC: u32 = 2049;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Finds `<stem>-<kind>` or `<stem>.<kind>` (e.g. `train-images-idx3-ubyte`,
/// `train-images.idx3-ubyte`) in `dir`.
fn find_idx(dir: &Path, stem: &str, kind: &str, bundled: bool) -> Result<PathBuf, DataError> {
    let names = [format!("{stem}-{kind}"), format!("{stem}.{kind}")];
    for n in &names {
        let p = dir.join(n);
        if p.is_file() {
            return Ok(p);
        }
    }
    let path = dir.join(&names[0]);
    for n in &names {
        let gz = dir.join(format!("{n}.gz"));
        if gz.is_file() {
            return Err(DataError::Missing {
                path,
                hint: format!(
                    "found {} but gzip is not supported; run `gunzip {}` first",
                    gz.display(),
                    gz.display()
                ),
            });
        }
    }
    let hint = if bundled {
        "the bundled MNIST under data/mnist is missing; restore it with `git checkout -- data/` \
         (or regenerate it with tools/make_bundled_mnist.py, see data/README.md)"
            .to_string()
    } else {
        format!(
            "expected the uncompressed MNIST file `{}` (or `{}`) in {}",
            names[0],
            names[1],
            dir.display()
        )
    };
    Err(DataError::Missing { path, hint })
}

/// Parses an IDX3 ubyte image file; returns (n, rows, cols) after checking the exact length.
fn parse_idx3(path: &Path, b: &[u8]) -> Result<(usize, usize, usize), DataError> {
    if b.len() < 16 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            len: b.len() as u64,
            expected: "at least the 16-byte IDX3 header".into(),
        });
    }
    let magic = be32(b, 0);
    if magic != IDX3_MAGIC {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: IDX3_MAGIC,
        });
    }
    let (n, rows, cols) = (be32(b, 4) as u64, be32(b, 8) as u64, be32(b, 12) as u64);
    if rows == 0 || cols == 0 {
        return Err(DataError::Mismatch {
            path: path.to_path_buf(),
            what: format!(
                "header says images are {rows}x{cols}; images must be at least 1x1 (the file is corrupt)"
            ),
        });
    }
    // n, rows, cols < 2^32 each: n * rows * cols can overflow u64, so check.
    let payload = n.checked_mul(rows).and_then(|v| v.checked_mul(cols));
    let total = payload.and_then(|p| p.checked_add(16));
    if total != Some(b.len() as u64) {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            len: b.len() as u64,
            expected: match total {
                Some(t) => format!("exactly 16 + {n}*{rows}*{cols} = {t} bytes as its header says"),
                None => {
                    format!("16 + {n}*{rows}*{cols} bytes as its header says (impossibly large)")
                }
            },
        });
    }
    Ok((n as usize, rows as usize, cols as usize))
}

/// Parses an IDX1 ubyte label file; returns the labels after checking length and range.
fn parse_idx1<'a>(path: &Path, b: &'a [u8], classes: usize) -> Result<&'a [u8], DataError> {
    if b.len() < 8 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            len: b.len() as u64,
            expected: "at least the 8-byte IDX1 header".into(),
        });
    }
    let magic = be32(b, 0);
    if magic != IDX1_MAGIC {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
            expected: IDX1_MAGIC,
        });
    }
    let n = be32(b, 4) as u64;
    if b.len() as u64 != 8 + n {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            len: b.len() as u64,
            expected: format!("exactly 8 + {n} = {} bytes as its header says", 8 + n),
        });
    }
    let labels = &b[8..];
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= classes)
    {
        return Err(DataError::BadLabel {
            path: path.to_path_buf(),
            index,
            label,
            classes,
        });
    }
    Ok(labels)
}

fn load_mnist_split(dir: &Path, stem: &str, bundled: bool) -> Result<Dataset, DataError> {
    let ip = find_idx(dir, &format!("{stem}-images"), "idx3-ubyte", bundled)?;
    let lp = find_idx(dir, &format!("{stem}-labels"), "idx1-ubyte", bundled)?;
    let mut ib = read(&ip)?;
    let (n, h, w) = parse_idx3(&ip, &ib)?;
    let lb = read(&lp)?;
    let labels = parse_idx1(&lp, &lb, 10)?;
    if labels.len() != n {
        return Err(DataError::Mismatch {
            path: lp.clone(),
            what: format!(
                "{} labels, but {} holds {n} images; use the labels file that belongs to those images",
                labels.len(),
                ip.display()
            ),
        });
    }
    ib.drain(..16);
    Ok(Dataset {
        images: ib,
        labels: labels.to_vec(),
        h,
        w,
        c: 1,
        classes: 10,
    })
}

fn load_mnist(dir: &Path, bundled: bool) -> Result<(Dataset, Dataset), DataError> {
    check_dir(dir, "the MNIST IDX files (train-images-idx3-ubyte, …)")?;
    let train = load_mnist_split(dir, "train", bundled)?;
    let test = load_mnist_split(dir, "t10k", bundled)?;
    if (train.h, train.w) != (test.h, test.w) {
        return Err(DataError::Mismatch {
            path: dir.to_path_buf(),
            what: format!(
                "training images are {}x{} but test images are {}x{}; both splits must come from the same dataset",
                train.h, train.w, test.h, test.w
            ),
        });
    }
    Ok((train, test))
}

// ---------------------------------------------------------------------------------------------
// CIFAR-10 / CIFAR-100 (binary version)

const CIFAR_SIDE: usize = 32;
const CIFAR_PIXELS: usize = CIFAR_SIDE * CIFAR_SIDE;
const CIFAR_IMAGE: usize = 3 * CIFAR_PIXELS;

const CIFAR10_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

fn cifar_missing(dir: &Path, file: &str, which: &str) -> DataError {
    let path = dir.join(file);
    let nested = dir.join(if which == "CIFAR-10" {
        "cifar-10-batches-bin"
    } else {
        "cifar-100-binary"
    });
    let hint = if nested.is_dir() {
        format!("pass the inner folder instead: {}", nested.display())
    } else if dir.join("data_batch_1").is_file() || dir.join("train").is_file() {
        format!(
            "this looks like the Python version of {which}; download the *binary version* instead"
        )
    } else {
        format!("expected the {which} binary version (the extracted .bin files) in this folder")
    };
    DataError::Missing { path, hint }
}

/// Appends the records of one CIFAR binary file (`label_bytes` label bytes, of which the last is
/// used, then a 3x32x32 CHW image) to `out` as HWC.
fn read_cifar_file(
    path: &Path,
    label_bytes: usize,
    classes: usize,
    out: &mut Dataset,
) -> Result<(), DataError> {
    let b = read(path)?;
    let rec = label_bytes + CIFAR_IMAGE;
    if b.is_empty() || b.len() % rec != 0 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            len: b.len() as u64,
            expected: format!("a non-zero multiple of the {rec}-byte record size"),
        });
    }
    let n = b.len() / rec;
    out.images.reserve(n * CIFAR_IMAGE);
    out.labels.reserve(n);
    for (index, r) in b.chunks_exact(rec).enumerate() {
        let label = r[label_bytes - 1];
        if label as usize >= classes {
            return Err(DataError::BadLabel {
                path: path.to_path_buf(),
                index,
                label,
                classes,
            });
        }
        out.labels.push(label);
        let (rp, rest) = r[label_bytes..].split_at(CIFAR_PIXELS);
        let (gp, bp) = rest.split_at(CIFAR_PIXELS);
        for i in 0..CIFAR_PIXELS {
            out.images.extend_from_slice(&[rp[i], gp[i], bp[i]]);
        }
    }
    Ok(())
}

fn empty_cifar(classes: usize) -> Dataset {
    Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        h: CIFAR_SIDE,
        w: CIFAR_SIDE,
        c: 3,
        classes,
    }
}

/// Reads class names, one per non-empty line, from `file` in `dir` if it exists.
fn read_names(dir: &Path, file: &str, classes: usize) -> Result<Option<Vec<String>>, DataError> {
    let path = dir.join(file);
    if !path.is_file() {
        return Ok(None);
    }
    let b = read(&path)?;
    let text = String::from_utf8_lossy(&b);
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != classes {
        return Err(DataError::Mismatch {
            path,
            what: format!(
                "{} class names, expected {classes} (one per line); fix or delete the file to use default names",
                names.len()
            ),
        });
    }
    Ok(Some(names))
}

fn load_cifar10(dir: &Path) -> Result<(Dataset, Dataset, Vec<String>), DataError> {
    check_dir(
        dir,
        "the CIFAR-10 binary version (data_batch_1.bin … test_batch.bin)",
    )?;
    let mut files: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    files.push("test_batch.bin".into());
    for f in &files {
        if !dir.join(f).is_file() {
            return Err(cifar_missing(dir, f, "CIFAR-10"));
        }
    }
    let mut train = empty_cifar(10);
    for f in &files[..5] {
        read_cifar_file(&dir.join(f), 1, 10, &mut train)?;
    }
    let mut test = empty_cifar(10);
    read_cifar_file(&dir.join(&files[5]), 1, 10, &mut test)?;
    let names = read_names(dir, "batches.meta.txt", 10)?
        .unwrap_or_else(|| CIFAR10_NAMES.iter().map(|s| s.to_string()).collect());
    Ok((train, test, names))
}

fn load_cifar100(dir: &Path) -> Result<(Dataset, Dataset, Vec<String>), DataError> {
    check_dir(dir, "the CIFAR-100 binary version (train.bin, test.bin)")?;
    for f in ["train.bin", "test.bin"] {
        if !dir.join(f).is_file() {
            return Err(cifar_missing(dir, f, "CIFAR-100"));
        }
    }
    let mut train = empty_cifar(100);
    read_cifar_file(&dir.join("train.bin"), 2, 100, &mut train)?;
    let mut test = empty_cifar(100);
    read_cifar_file(&dir.join("test.bin"), 2, 100, &mut test)?;
    let names = read_names(dir, "fine_label_names.txt", 100)?
        .unwrap_or_else(|| (0..100).map(|i| format!("class{i}")).collect());
    Ok((train, test, names))
}

// ---------------------------------------------------------------------------------------------
// Augmentation

/// Writes an augmented copy of the HWC image `src` (`h * w * c` bytes) into `dst` (same size):
/// translation by `dy, dx` drawn uniformly from `[-pad_crop, pad_crop]` with zero fill (what
/// "pad by `pad_crop` with zeros, then crop a random `h x w` window" gives), then, if `aug.hflip`,
/// a left-right mirror with probability 0.5. Random draws, in order: `dy`, `dx` (only when
/// `pad_crop > 0`), flip (only when `hflip`).
///
/// Panics if `src` or `dst` is not `h * w * c` bytes long (a caller bug, not a data problem).
pub fn augment_into(
    src: &[u8],
    h: usize,
    w: usize,
    c: usize,
    aug: Augment,
    rng: &mut Rng,
    dst: &mut [u8],
) {
    let n = h * w * c;
    assert_eq!(src.len(), n, "augment_into: src is not h*w*c bytes");
    assert_eq!(dst.len(), n, "augment_into: dst is not h*w*c bytes");
    let (dy, dx) = if aug.pad_crop > 0 {
        let p = aug.pad_crop as isize;
        let span = 2 * aug.pad_crop + 1;
        (rng.below(span) as isize - p, rng.below(span) as isize - p)
    } else {
        (0, 0)
    };
    let flip = aug.hflip && rng.below(2) == 1;
    let (hi, wi) = (h as isize, w as isize);
    let row = w * c;
    for y in 0..h {
        let out = &mut dst[y * row..(y + 1) * row];
        let sy = y as isize + dy;
        if sy < 0 || sy >= hi {
            out.fill(0);
            continue;
        }
        let srow = &src[sy as usize * row..(sy as usize + 1) * row];
        if !flip {
            // out[x] = srow[x + dx] for 0 <= x + dx < w.
            let x0 = (-dx).clamp(0, wi) as usize;
            let x1 = (wi - dx).clamp(0, wi) as usize;
            out[..x0 * c].fill(0);
            out[x1.max(x0) * c..].fill(0);
            if x1 > x0 {
                let s0 = (x0 as isize + dx) as usize;
                out[x0 * c..x1 * c].copy_from_slice(&srow[s0 * c..(s0 + x1 - x0) * c]);
            }
        } else {
            // Mirror of the translated image: out[x] = translated[w - 1 - x].
            for x in 0..w {
                let sx = (w - 1 - x) as isize + dx;
                let o = &mut out[x * c..(x + 1) * c];
                if sx < 0 || sx >= wi {
                    o.fill(0);
                } else {
                    o.copy_from_slice(&srow[sx as usize * c..(sx as usize + 1) * c]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rng

/// A tiny deterministic PRNG (SplitMix64): the same seed gives the same stream on every machine.
/// Used for weight initialisation, batch shuffling and augmentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next 64 random bits (SplitMix64, Steele, Lea & Flood 2014).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `0..n`, unbiased (Lemire's multiply-and-reject). Panics if `n == 0`.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        let n = n as u64;
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let t = n.wrapping_neg() % n;
            while (m as u64) < t {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as usize
    }

    /// Uniform in `[0, 1)` (24 random bits).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Standard normal sample (Box-Muller, computed in f64; one sample per call).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64); // (0, 1]
        let u2 = (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64); // [0, 1)
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }

    /// Fisher-Yates shuffle of `v`.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty folder under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let p = std::env::temp_dir()
                .join(format!("shiftkit-data-test-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
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

    fn idx3(n: u32, rows: u32, cols: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [IDX3_MAGIC, n, rows, cols] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn idx1(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&IDX1_MAGIC.to_be_bytes());
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    /// A valid tiny MNIST folder (4x3 images), using the dotted names for the training files.
    fn tiny_mnist(t: &TempDir) {
        let img: Vec<u8> = (0..24).map(|i| i as u8 * 10).collect();
        t.write("train-images.idx3-ubyte", &idx3(2, 4, 3, &img));
        t.write("train-labels.idx1-ubyte", &idx1(&[3, 9]));
        t.write("t10k-images-idx3-ubyte", &idx3(1, 4, 3, &img[..12]));
        t.write("t10k-labels-idx1-ubyte", &idx1(&[0]));
    }

    /// One CIFAR record: label bytes then CHW planes where plane `ch` at (y, x) holds
    /// `(ch * 80 + y * 2 + x) % 256`, except a few marked pixels.
    fn cifar_record(labels: &[u8]) -> Vec<u8> {
        let mut r = labels.to_vec();
        for ch in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    r.push(((ch * 80 + y * 2 + x) % 256) as u8);
                }
            }
        }
        r
    }

    #[test]
    fn bundled_mnist_loads() {
        let s = load(&DataSpec::BundledMnist).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (8000, 2000));
        for d in [&s.train, &s.test] {
            assert_eq!((d.h, d.w, d.c, d.classes), (28, 28, 1, 10));
            assert_eq!(d.image_len(), 784);
            assert_eq!(d.images.len(), d.len() * 784);
            assert!(d.labels.iter().all(|&l| l < 10));
        }
        // Per-class counts documented in data/README.md.
        let mut counts = [0usize; 10];
        s.train.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [808, 908, 814, 849, 789, 660, 816, 839, 741, 776]);
        assert_eq!(s.mean.len(), 1);
        assert!((s.mean[0] - 0.1316).abs() < 0.001, "mean {}", s.mean[0]);
        assert!((s.std[0] - 0.3092).abs() < 0.001, "std {}", s.std[0]);
        assert_eq!(s.class_names, digit_names());
        assert_eq!(s.augment, Augment::MNIST);
        // Real digits: background 0, some full ink.
        let im = s.train.image(0);
        assert_eq!(im[0], 0);
        assert!(im.iter().any(|&p| p > 200));
    }

    #[test]
    fn spec_round_trip_and_errors() {
        for (text, spec) in [
            ("mnist", DataSpec::BundledMnist),
            ("mnist:/data/mnist", DataSpec::Mnist("/data/mnist".into())),
            ("cifar10:rel/c10", DataSpec::Cifar10("rel/c10".into())),
            ("cifar100:/x/c:100", DataSpec::Cifar100("/x/c:100".into())),
        ] {
            let parsed: DataSpec = text.parse().unwrap();
            assert_eq!(parsed, spec);
            assert_eq!(parsed.to_string(), text);
        }
        for bad in ["imagenet:/x", "cifar10", "mnist:", "", "MNIST"] {
            match bad.parse::<DataSpec>() {
                Err(DataError::BadSpec(msg)) => {
                    assert!(
                        msg.contains("cifar10:DIR") && msg.contains("mnist:DIR"),
                        "{msg}"
                    )
                }
                other => panic!("{bad:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn mnist_dir_with_dotted_names_loads() {
        let t = TempDir::new("mnist-ok");
        tiny_mnist(&t);
        let s = load(&DataSpec::Mnist(t.0.clone())).unwrap();
        assert_eq!(
            (s.train.len(), s.train.h, s.train.w, s.train.c),
            (2, 4, 3, 1)
        );
        assert_eq!(s.train.labels, vec![3, 9]);
        assert_eq!(s.train.image(1)[0], 120);
        assert_eq!(s.test.labels, vec![0]);
        // mean of 0,10,..,230 twice = 115 / 255.
        assert!((s.mean[0] - 115.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn idx_truncated_names_the_file() {
        let t = TempDir::new("mnist-trunc");
        tiny_mnist(&t);
        // Header says 2 images, payload holds one and a half.
        let bad = t.write("train-images.idx3-ubyte", &idx3(2, 4, 3, &[7; 18]));
        match load(&DataSpec::Mnist(t.0.clone())) {
            Err(e @ DataError::Truncated { .. }) => {
                let msg = e.to_string();
                let DataError::Truncated { path, len, .. } = e else {
                    unreachable!()
                };
                assert_eq!(path, bad);
                assert_eq!(len, 34);
                assert!(
                    msg.contains("train-images.idx3-ubyte") && msg.contains("40 bytes"),
                    "{msg}"
                );
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        // A header claiming an absurd size must not overflow or allocate.
        let bad = t.write(
            "train-images.idx3-ubyte",
            &idx3(u32::MAX, u32::MAX, u32::MAX, &[]),
        );
        assert!(matches!(load(&DataSpec::Mnist(t.0.clone())),
            Err(DataError::Truncated { path, .. }) if path == bad));
    }

    #[test]
    fn idx_wrong_magic_is_bad_magic() {
        let t = TempDir::new("mnist-magic");
        tiny_mnist(&t);
        let mut b = idx3(1, 4, 3, &[0; 12]);
        b[..4].copy_from_slice(&[0x1f, 0x8b, 0x08, 0x00]); // what a gzip file starts with
        let bad = t.write("t10k-images-idx3-ubyte", &b);
        match load(&DataSpec::Mnist(t.0.clone())) {
            Err(DataError::BadMagic {
                path,
                found,
                expected,
            }) => {
                assert_eq!(path, bad);
                assert_eq!(found, 0x1f8b_0800);
                assert_eq!(expected, 2051);
            }
            other => panic!("expected BadMagic, got {other:?}"),
        }
    }

    #[test]
    fn mnist_gz_label_range_and_count_errors() {
        let t = TempDir::new("mnist-misc");
        tiny_mnist(&t);
        std::fs::rename(
            t.0.join("t10k-labels-idx1-ubyte"),
            t.0.join("t10k-labels-idx1-ubyte.gz"),
        )
        .unwrap();
        match load(&DataSpec::Mnist(t.0.clone())) {
            Err(DataError::Missing { path, hint }) => {
                assert_eq!(path, t.0.join("t10k-labels-idx1-ubyte"));
                assert!(hint.contains("gunzip"), "{hint}");
            }
            other => panic!("expected Missing, got {other:?}"),
        }
        t.write("t10k-labels-idx1-ubyte", &idx1(&[10]));
        assert!(matches!(
            load(&DataSpec::Mnist(t.0.clone())),
            Err(DataError::BadLabel {
                index: 0,
                label: 10,
                classes: 10,
                ..
            })
        ));
        t.write("t10k-labels-idx1-ubyte", &idx1(&[1, 2]));
        assert!(matches!(load(&DataSpec::Mnist(t.0.clone())),
            Err(DataError::Mismatch { path, .. }) if path == t.0.join("t10k-labels-idx1-ubyte")));
        assert!(matches!(
            load(&DataSpec::Mnist(t.0.join("nope"))),
            Err(DataError::Missing { .. })
        ));
    }

    #[test]
    fn cifar10_synthetic_loads_as_hwc() {
        let t = TempDir::new("c10-ok");
        for i in 1..=5u8 {
            t.write(&format!("data_batch_{i}.bin"), &cifar_record(&[i]));
        }
        let mut test = cifar_record(&[7]);
        // Mark pixel (y=1, x=2): R=200, G=201, B=202 (CHW plane offsets 0, 1024, 2048).
        for (ch, v) in [200u8, 201, 202].into_iter().enumerate() {
            test[1 + ch * 1024 + 32 + 2] = v;
        }
        test.extend(cifar_record(&[9]));
        t.write("test_batch.bin", &test);
        let s = load(&DataSpec::Cifar10(t.0.clone())).unwrap();
        assert_eq!(s.train.labels, vec![1, 2, 3, 4, 5]);
        assert_eq!(s.test.labels, vec![7, 9]);
        assert_eq!(
            (s.train.h, s.train.w, s.train.c, s.train.classes),
            (32, 32, 3, 10)
        );
        let im = s.test.image(0);
        let at = (32 + 2) * 3;
        assert_eq!(&im[at..at + 3], &[200, 201, 202]);
        // An unmarked pixel (y=5, x=7): channel ch holds ch*80 + 17.
        let at = (5 * 32 + 7) * 3;
        assert_eq!(&s.test.image(1)[at..at + 3], &[17, 97, 177]);
        assert_eq!(s.class_names[0], "airplane");
        assert_eq!(s.class_names[9], "truck");
        assert_eq!(s.augment, Augment::CIFAR);
        // Train images all equal: red plane mean = mean over y,x of (2y + x) = 46.5.
        assert!((s.mean[0] - 46.5 / 255.0).abs() < 1e-5, "{:?}", s.mean);
        assert!(s.mean[1] > s.mean[0] && s.mean[2] > s.mean[1]);

        // Class names come from batches.meta.txt when present (blank lines ignored).
        let names: String = (0..10).map(|i| format!("n{i}\n")).collect::<String>() + "\n\n";
        t.write("batches.meta.txt", names.as_bytes());
        let s = load(&DataSpec::Cifar10(t.0.clone())).unwrap();
        assert_eq!(s.class_names[3], "n3");
        assert_eq!(s.class_names.len(), 10);
    }

    #[test]
    fn cifar_wrong_size_is_truncated() {
        let t = TempDir::new("c10-trunc");
        for i in 1..=5u8 {
            t.write(&format!("data_batch_{i}.bin"), &cifar_record(&[0]));
        }
        let mut b = cifar_record(&[0]);
        b.extend_from_slice(&[1, 2, 3, 4, 5]);
        let bad = t.write("test_batch.bin", &b);
        match load(&DataSpec::Cifar10(t.0.clone())) {
            Err(e @ DataError::Truncated { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("test_batch.bin") && msg.contains("3073"),
                    "{msg}"
                );
                let DataError::Truncated { path, len, .. } = e else {
                    unreachable!()
                };
                assert_eq!((path, len), (bad, 3078));
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        std::fs::remove_file(t.0.join("data_batch_3.bin")).unwrap();
        assert!(matches!(load(&DataSpec::Cifar10(t.0.clone())),
            Err(DataError::Missing { path, .. }) if path == t.0.join("data_batch_3.bin")));
    }

    #[test]
    fn cifar100_uses_fine_label() {
        let t = TempDir::new("c100");
        let mut train = cifar_record(&[19, 99]);
        train.extend(cifar_record(&[0, 42]));
        t.write("train.bin", &train);
        t.write("test.bin", &cifar_record(&[3, 7]));
        let s = load(&DataSpec::Cifar100(t.0.clone())).unwrap();
        assert_eq!(s.train.labels, vec![99, 42]);
        assert_eq!(s.test.labels, vec![7]);
        assert_eq!(s.train.classes, 100);
        assert_eq!(
            (s.class_names.len(), s.class_names[42].as_str()),
            (100, "class42")
        );
        t.write("test.bin", &cifar_record(&[3, 100]));
        assert!(matches!(
            load(&DataSpec::Cifar100(t.0.clone())),
            Err(DataError::BadLabel {
                label: 100,
                classes: 100,
                ..
            })
        ));
    }

    #[test]
    fn augment_pad0_noflip_is_identity() {
        let mut rng = Rng::new(1);
        let src: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 + 1) as u8).collect();
        let mut dst = vec![0xAA; src.len()];
        augment_into(&src, 5, 4, 3, Augment::NONE, &mut rng, &mut dst);
        assert_eq!(dst, src);
        assert_eq!(
            rng,
            Rng::new(1),
            "no augmentation must draw no random numbers"
        );
    }

    #[test]
    fn augment_flip_of_known_image() {
        // 2x3 image, 2 channels: pixel (y, x) = [10*y + x, 100 + 10*y + x].
        let src = [0, 100, 1, 101, 2, 102, 10, 110, 11, 111, 12, 112];
        let flipped = [2, 102, 1, 101, 0, 100, 12, 112, 11, 111, 10, 110];
        let aug = Augment {
            pad_crop: 0,
            hflip: true,
        };
        let mut rng = Rng::new(7);
        let (mut same, mut flip) = (0, 0);
        for _ in 0..200 {
            let mut dst = [0u8; 12];
            augment_into(&src, 2, 3, 2, aug, &mut rng, &mut dst);
            if dst == src {
                same += 1;
            } else {
                assert_eq!(dst, flipped);
                flip += 1;
            }
        }
        assert!(same > 60 && flip > 60, "same {same} flip {flip}");
    }

    #[test]
    fn augment_crop_is_zero_filled_translation() {
        let (h, w, c) = (3usize, 4usize, 1usize);
        let src: Vec<u8> = (1..=12).collect();
        let aug = Augment {
            pad_crop: 1,
            hflip: true,
        };
        let mut rng = Rng::new(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            let mut dst = vec![0xEEu8; 12];
            augment_into(&src, h, w, c, aug, &mut rng, &mut dst);
            // Find the (dy, dx, flip) that explains dst.
            let mut found = None;
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    for f in [false, true] {
                        let ok = (0..h).all(|y| {
                            (0..w).all(|x| {
                                let tx = if f { w - 1 - x } else { x } as isize + dx;
                                let sy = y as isize + dy;
                                let want =
                                    if sy < 0 || sy >= h as isize || tx < 0 || tx >= w as isize {
                                        0
                                    } else {
                                        src[sy as usize * w + tx as usize]
                                    };
                                dst[y * w + x] == want
                            })
                        });
                        if ok {
                            found = Some((dy, dx, f));
                        }
                    }
                }
            }
            seen.insert(found.expect("output is not a zero-filled translation/flip of the input"));
        }
        assert_eq!(seen.len(), 18, "all 9 shifts x 2 flips occur");
    }

    #[test]
    fn rng_is_deterministic_and_well_behaved() {
        // Reference SplitMix64 output for seed 0.
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let a: Vec<u64> = {
            let mut r = Rng::new(42);
            (0..100).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(42);
        assert!(a.iter().all(|&v| v == r.next_u64()));
        assert_ne!(Rng::new(43).next_u64(), a[0]);

        let mut r = Rng::new(5);
        let mut hits = [0usize; 7];
        for _ in 0..7000 {
            hits[r.below(7)] += 1;
        }
        assert!(hits.iter().all(|&h| (800..1200).contains(&h)), "{hits:?}");
        let u: Vec<f32> = (0..10000).map(|_| r.uniform()).collect();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        let um = u.iter().sum::<f32>() / u.len() as f32;
        assert!((um - 0.5).abs() < 0.02, "{um}");
        let z: Vec<f64> = (0..20000).map(|_| r.normal() as f64).collect();
        let zm = z.iter().sum::<f64>() / z.len() as f64;
        let zv = z.iter().map(|x| (x - zm) * (x - zm)).sum::<f64>() / z.len() as f64;
        assert!(z.iter().all(|x| x.is_finite()));
        assert!(
            zm.abs() < 0.03 && (zv - 1.0).abs() < 0.05,
            "mean {zm} var {zv}"
        );

        let mut v: Vec<u32> = (0..50).collect();
        let mut w = v.clone();
        Rng::new(9).shuffle(&mut v);
        Rng::new(9).shuffle(&mut w);
        assert_eq!(v, w);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
    }
}
