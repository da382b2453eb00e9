//! `test-idx MODEL.skq --out DIR [--data SPEC] [--images N]`: the first N test images of a
//! model's dataset, at the model's input (a folder dataset decoded and resized as in training),
//! written as the IDX pair `DIR/test-images-idx3` + `DIR/test-labels-idx1` (each image one
//! `h x (w*c)` record), so that `cargo xtask deploy` embeds the user's own images on the board.
//! The data defaults to the model's own (its run folder's `train-config.json`). The images are
//! taken a class at a time in turn, so that the first N cover every class.
use crate::QuantError;
use std::path::{Path, PathBuf};

/// The two file names in `--out`.
pub const IMAGES: &str = "test-images-idx3";
pub const LABELS: &str = "test-labels-idx1";

fn idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        f.extend((d as u32).to_be_bytes());
    }
    f.extend_from_slice(data);
    f
}

/// `n` indices of `labels` taking one image of each class in turn (each class in its order), so
/// that the first images of a folder dataset, which lists class by class, cover every class.
pub fn round_robin(labels: &[u8], n: usize) -> Vec<usize> {
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<std::collections::VecDeque<usize>> = vec![Default::default(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push_back(i);
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n.min(labels.len()) {
        for q in by_class.iter_mut() {
            if let Some(i) = q.pop_front() {
                if out.len() < n {
                    out.push(i);
                }
            }
        }
    }
    out
}

/// A NumPy `.npy` file (format 1.0) of u8 `data` in C order (`eval --inputs` writes the test
/// images so; the LiteRT and onnxruntime runners read them).
pub fn npy_u8(shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| format!("{d},")).collect();
    let mut header = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}), }}",
        dims.join(" ")
    );
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = b"\x93NUMPY\x01\x00".to_vec();
    f.extend((header.len() as u16).to_le_bytes());
    f.extend(header.as_bytes());
    f.extend_from_slice(data);
    f
}

/// Writes the pair for the model at `model` into `out`; returns (images written, the data spec).
pub fn write_test_idx(
    model: &Path,
    data: Option<&str>,
    out: &Path,
    images: usize,
) -> Result<(usize, String), QuantError> {
    let bytes = std::fs::read(model).map_err(host_train::io::io_err(model))?;
    let m = firmware::Model::from_bytes(&bytes)
        .map_err(|e| QuantError::Engine(format!("{}: {e}", model.display())))?;
    let x = *m.input();
    let (h, w, c) = (x.h as usize, x.w as usize, x.c as usize);
    let run = model
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let (spec, mut load) = crate::run_data(run, data, Some((h, w, c)))?;
    load.quiet = true;
    load.test_only = true;
    let splits = host_train::data::load_with(&spec, &load)?;
    let test = &splits.test;
    if (test.h, test.w, test.c) != (h, w, c) {
        return Err(QuantError::Usage(format!(
            "{}: the model takes {h}x{w}x{c} images, {spec} has {}x{}x{}; pass the data it was trained on with --data SPEC",
            model.display(),
            test.h,
            test.w,
            test.c
        )));
    }
    let n = images.min(test.len());
    std::fs::create_dir_all(out).map_err(host_train::io::io_err(out))?;
    let il = test.image_len();
    let order = round_robin(&test.labels, n);
    let mut pixels = Vec::with_capacity(n * il);
    for &i in &order {
        pixels.extend_from_slice(test.image(i));
    }
    let labels: Vec<u8> = order.iter().map(|&i| test.labels[i]).collect();
    host_train::io::write_atomic(&out.join(IMAGES), &idx(&[n, h, w * c], &pixels))?;
    host_train::io::write_atomic(&out.join(LABELS), &idx(&[n], &labels))?;
    Ok((n, spec.to_string()))
}

/// The command as the binary takes it.
pub fn command(args: Vec<String>) -> Result<(), QuantError> {
    let usage = "usage: shiftkit-quantize test-idx MODEL.skq --out DIR [--data SPEC] [--images N]";
    let (mut model, mut out, mut data, mut images) = (None, None, None, 20usize);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .ok_or_else(|| QuantError::Usage(format!("{a} needs {what}\n{usage}")))
        };
        match a.as_str() {
            "--out" => out = Some(PathBuf::from(val("a folder")?)),
            "--data" => data = Some(val("a dataset SPEC")?),
            "--images" => {
                images = val("a number")?
                    .parse()
                    .map_err(|_| QuantError::Usage(format!("--images needs a number\n{usage}")))?
            }
            s if s.starts_with("--") => {
                return Err(QuantError::Usage(format!("unknown option {s}\n{usage}")))
            }
            _ if model.is_none() => model = Some(PathBuf::from(a)),
            _ => {
                return Err(QuantError::Usage(format!(
                    "unexpected argument {a}\n{usage}"
                )))
            }
        }
    }
    let (Some(model), Some(out)) = (model, out) else {
        return Err(QuantError::Usage(format!(
            "test-idx needs MODEL.skq and --out DIR\n{usage}"
        )));
    };
    let (n, spec) = write_test_idx(&model, data.as_deref(), &out, images)?;
    println!("{n} test images of {spec} in {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::round_robin;

    #[test]
    fn the_first_images_cover_every_class() {
        let labels = [0, 0, 0, 1, 1, 2];
        assert_eq!(round_robin(&labels, 4), [0, 3, 5, 1]);
        assert_eq!(round_robin(&labels, 9), [0, 3, 5, 1, 4, 2]);
        assert_eq!(round_robin(&[], 3), Vec::<usize>::new());
    }
}
