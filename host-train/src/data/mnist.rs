//! MNIST as uncompressed IDX files (the bundled 8,000/2,000 digits under `data/mnist`, or a
//! user's folder): finding the four files, parsing them through the shared reader
//! [`firmware::idx::Idx`], and checking that labels and images belong together.
use super::{check_dir, read, DataError, Dataset};
use firmware::idx::{Idx, IdxError};
use std::path::{Path, PathBuf};

/// The class names of the ten digits, "0" to "9".
pub(super) fn digit_names() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
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

/// Parses the IDX file `bytes` (read from `path`) as rank `rank`, mapping the reader's error to a
/// [`DataError`] that names the file.
fn parse_idx<'a>(path: &Path, bytes: &'a [u8], rank: usize) -> Result<Idx<'a>, DataError> {
    Idx::parse_rank(bytes, rank).map_err(|e| idx_error(path, bytes.len(), rank, e))
}

/// The IDX magic number of an unsigned-byte file of rank `rank` (0x801 labels, 0x803 images).
fn magic(rank: usize) -> u32 {
    0x0800 | rank as u32
}

fn idx_error(path: &Path, len: usize, rank: usize, e: IdxError) -> DataError {
    let path = path.to_path_buf();
    let len64 = len as u64;
    match e {
        IdxError::ShortHeader { need, .. } => DataError::Truncated {
            path,
            len: len64,
            expected: format!("at least the {need}-byte IDX header"),
        },
        IdxError::BadMagic { magic: m } => DataError::BadMagic {
            path,
            found: u32::from_be_bytes(m),
            expected: magic(rank),
        },
        IdxError::WrongRank { found, expected } => DataError::BadMagic {
            path,
            found: magic(found),
            expected: magic(expected),
        },
        IdxError::TooLarge => DataError::Truncated {
            path,
            len: len64,
            expected: "the size its header states, which is impossibly large (the file is corrupt)"
                .into(),
        },
        IdxError::ZeroDim { .. } => DataError::Mismatch {
            path,
            what: e.to_string(),
        },
        IdxError::Length { expected, found } => {
            let header = len - found;
            DataError::Truncated {
                path,
                len: len64,
                expected: format!(
                    "exactly {header} + {expected} = {} bytes as its header says",
                    header + expected
                ),
            }
        }
    }
}

fn load_mnist_split(dir: &Path, stem: &str, bundled: bool) -> Result<Dataset, DataError> {
    let ip = find_idx(dir, &format!("{stem}-images"), "idx3-ubyte", bundled)?;
    let lp = find_idx(dir, &format!("{stem}-labels"), "idx1-ubyte", bundled)?;
    let ib = read(&ip)?;
    let lb = read(&lp)?;
    parse_mnist(&ip, ib, &lp, &lb)
}

/// One MNIST split from the bytes of its image file `ib` (read from `ip`) and label file `lb`
/// (read from `lp`); errors name the file. The data loaders' fuzz target calls it directly.
pub fn parse_mnist(ip: &Path, mut ib: Vec<u8>, lp: &Path, lb: &[u8]) -> Result<Dataset, DataError> {
    let (ip, lp) = (ip.to_path_buf(), lp.to_path_buf());
    let (n, h, w, header) = {
        let images = parse_idx(&ip, &ib, 3)?;
        let d = images.dims();
        (d[0], d[1], d[2], ib.len() - images.data().len())
    };
    let labels = parse_idx(&lp, lb, 1)?.data();
    if let Some((index, &label)) = labels.iter().enumerate().find(|&(_, &l)| l >= 10) {
        return Err(DataError::BadLabel {
            path: lp,
            index,
            label,
            classes: 10,
        });
    }
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
    ib.drain(..header);
    Ok(Dataset {
        images: ib,
        labels: labels.to_vec(),
        h,
        w,
        c: 1,
        classes: 10,
    })
}

/// Both MNIST splits; with `test_only` only the `t10k` files (the training split empty).
pub(super) fn load_mnist(
    dir: &Path,
    bundled: bool,
    test_only: bool,
) -> Result<(Dataset, Dataset), DataError> {
    check_dir(dir, "the MNIST IDX files (train-images-idx3-ubyte, …)")?;
    let test = load_mnist_split(dir, "t10k", bundled)?;
    if test_only {
        let train = Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            ..test.clone()
        };
        return Ok((train, test));
    }
    let train = load_mnist_split(dir, "train", bundled)?;
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

#[cfg(test)]
mod tests {
    use super::super::test_util::TempDir;
    use super::super::{load, Augment, DataError, DataSpec};
    use super::*;

    fn idx3(n: u32, rows: u32, cols: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [magic(3), n, rows, cols] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn idx1(labels: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&magic(1).to_be_bytes());
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
}
