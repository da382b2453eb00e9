//! CIFAR-10 and CIFAR-100 in their *binary* versions: fixed-size records of label byte(s) and a
//! 3x32x32 CHW image, converted to HWC; class names from the meta text file when present.
use super::{check_dir, read, DataError, Dataset};
use std::path::Path;

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
    parse_cifar(path, &read(path)?, label_bytes, classes, out)
}

/// Appends the records of the CIFAR binary file bytes `b` (read from `path`, which errors name)
/// to `out`, as [`read_cifar_file`] does; the data loaders' fuzz target calls it directly.
pub fn parse_cifar(
    path: &Path,
    b: &[u8],
    label_bytes: usize,
    classes: usize,
    out: &mut Dataset,
) -> Result<(), DataError> {
    let rec = label_bytes + CIFAR_IMAGE;
    if b.is_empty() || !b.len().is_multiple_of(rec) {
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

/// The class names of `file` in `dir`, or `default` with a warning line saying so.
fn names_or(
    dir: &Path,
    file: &str,
    classes: usize,
    what: &str,
    default: impl FnOnce() -> Vec<String>,
) -> Result<Vec<String>, DataError> {
    Ok(match read_names(dir, file, classes)? {
        Some(n) => n,
        None => {
            eprintln!(
                "warning: {}: no {file}, so the classes are named {what}; add the file (one name per line) if these are not CIFAR's classes",
                dir.display()
            );
            default()
        }
    })
}

/// CIFAR-10's five training batches and its test batch; with `test_only` the training split
/// is left empty and its files are not needed.
pub(super) fn load_cifar10(
    dir: &Path,
    test_only: bool,
) -> Result<(Dataset, Dataset, Vec<String>), DataError> {
    check_dir(
        dir,
        "the CIFAR-10 binary version (data_batch_1.bin … test_batch.bin)",
    )?;
    let mut files: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    files.push("test_batch.bin".into());
    let needed = if test_only { &files[5..] } else { &files[..] };
    for f in needed {
        if !dir.join(f).is_file() {
            return Err(cifar_missing(dir, f, "CIFAR-10"));
        }
    }
    let mut train = empty_cifar(10);
    if !test_only {
        for f in &files[..5] {
            read_cifar_file(&dir.join(f), 1, 10, &mut train)?;
        }
    }
    let mut test = empty_cifar(10);
    read_cifar_file(&dir.join(&files[5]), 1, 10, &mut test)?;
    let names = names_or(dir, "batches.meta.txt", 10, "airplane .. truck", || {
        CIFAR10_NAMES.iter().map(|s| s.to_string()).collect()
    })?;
    Ok((train, test, names))
}

/// CIFAR-100's training and test files; with `test_only` only `test.bin`.
pub(super) fn load_cifar100(
    dir: &Path,
    test_only: bool,
) -> Result<(Dataset, Dataset, Vec<String>), DataError> {
    check_dir(dir, "the CIFAR-100 binary version (train.bin, test.bin)")?;
    let needed: &[&str] = if test_only {
        &["test.bin"]
    } else {
        &["train.bin", "test.bin"]
    };
    for f in needed {
        if !dir.join(f).is_file() {
            return Err(cifar_missing(dir, f, "CIFAR-100"));
        }
    }
    let mut train = empty_cifar(100);
    if !test_only {
        read_cifar_file(&dir.join("train.bin"), 2, 100, &mut train)?;
    }
    let mut test = empty_cifar(100);
    read_cifar_file(&dir.join("test.bin"), 2, 100, &mut test)?;
    let names = names_or(
        dir,
        "fine_label_names.txt",
        100,
        "class0 .. class99",
        || (0..100).map(|i| format!("class{i}")).collect(),
    )?;
    Ok((train, test, names))
}

#[cfg(test)]
mod tests {
    use super::super::test_util::TempDir;
    use super::super::{load, Augment, DataError, DataSpec};

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
    fn the_test_split_alone_needs_only_the_test_file() {
        let t = TempDir::new("c10-test-only");
        t.write("test_batch.bin", &cifar_record(&[3]));
        let spec = DataSpec::Cifar10(t.0.clone());
        // Training needs the training batches, naming the first missing one.
        let e = load(&spec).unwrap_err().to_string();
        assert!(e.contains("data_batch_1.bin"), "{e}");
        let opts = super::super::LoadOptions {
            test_only: true,
            ..Default::default()
        };
        let s = super::super::load_with(&spec, &opts).unwrap();
        assert_eq!((s.train.len(), s.test.len(), s.test.labels[0]), (0, 1, 3));
        // No batches.meta.txt: the standard names (with a warning line on stderr).
        assert_eq!(s.class_names[0], "airplane");
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
}
