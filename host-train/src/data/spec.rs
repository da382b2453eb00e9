//! What `--data SPEC` names ([`DataSpec`]), the in-memory [`Dataset`] and [`Splits`] every
//! loader produces, and the [`DataError`] every loader reports.
use super::Augment;
use std::fmt;
use std::path::PathBuf;
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
    #[error("{path}: {what}", path = .path.display())]
    Folder { path: PathBuf, what: String },
    #[error(
        "{path}: cannot decode this image: {why} (remove or re-save the file, or pass --skip-bad to skip files that do not decode)",
        path = .path.display()
    )]
    Decode { path: PathBuf, why: String },
    #[error(
        "{path}: {size} is smaller than the {need} input (with --resize {resize}), and {count} image(s) in all are; images are not scaled up: use a smaller input, --resize pad, or larger images",
        path = .path.display()
    )]
    TooSmall {
        path: PathBuf,
        size: String,
        count: usize,
        need: String,
        resize: String,
    },
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
    /// The 8,000/2,000 MNIST digits committed under `data/mnist` (see [`super::bundled_mnist_dir`]).
    BundledMnist,
    /// A folder with the four uncompressed MNIST IDX files.
    Mnist(PathBuf),
    /// A folder with the CIFAR-10 binary version (`data_batch_1.bin` … `test_batch.bin`).
    Cifar10(PathBuf),
    /// A folder with the CIFAR-100 binary version (`train.bin`, `test.bin`).
    Cifar100(PathBuf),
    /// A folder of class folders of images ([`super::folder`]).
    Folder(PathBuf),
}

const SPEC_FORMS: &str =
    "valid forms: `mnist` (bundled), `mnist:DIR`, `cifar10:DIR`, `cifar100:DIR`, `folder:DIR` (DIR/<class>/*.png|jpg|bmp|pgm|ppm)";

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
            ("mnist" | "cifar10" | "cifar100" | "folder", Some("")) => {
                bad("the folder after ':' is empty")
            }
            ("folder", Some(d)) => Ok(DataSpec::Folder(PathBuf::from(d))),
            ("folder", None) => bad("name the folder: `folder:DIR`"),
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
            DataSpec::Folder(d) => write!(f, "folder:{}", d.display()),
        }
    }
}

/// A loaded dataset: both splits, class names, the augmentation that suits it, and per-channel
/// mean/std of the training images on the \[0, 1\] scale (pixel / 255).
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
    pub class_names: Vec<String>,
    pub augment: Augment,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// What a folder dataset's loading found (`None` for the other kinds).
    pub folder: Option<super::folder::FolderReport>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trip_and_errors() {
        for (text, spec) in [
            ("mnist", DataSpec::BundledMnist),
            ("mnist:/data/mnist", DataSpec::Mnist("/data/mnist".into())),
            ("cifar10:rel/c10", DataSpec::Cifar10("rel/c10".into())),
            ("cifar100:/x/c:100", DataSpec::Cifar100("/x/c:100".into())),
            ("folder:my images", DataSpec::Folder("my images".into())),
        ] {
            let parsed: DataSpec = text.parse().unwrap();
            assert_eq!(parsed, spec);
            assert_eq!(parsed.to_string(), text);
        }
        for bad in [
            "imagenet:/x",
            "cifar10",
            "mnist:",
            "",
            "MNIST",
            "folder",
            "folder:",
        ] {
            match bad.parse::<DataSpec>() {
                Err(DataError::BadSpec(msg)) => {
                    assert!(
                        msg.contains("cifar10:DIR")
                            && msg.contains("mnist:DIR")
                            && msg.contains("folder:DIR"),
                        "{msg}"
                    )
                }
                other => panic!("{bad:?} parsed as {other:?}"),
            }
        }
    }
}
