//! `predict MODEL.skq IMAGE...`: the top classes of image files through the firmware engine,
//! the quickest check a user makes. Each image is decoded, converted and resized as the folder
//! loader does for training (the run's `--resize`, from `train-config.json` beside the model);
//! the scores are the softmax of the dequantized int8 logits. Class names come from the model
//! file (format 5), else from `model.json` beside it.
use crate::engine::{Engine, Firmware};
use crate::QuantError;
use host_train::data::{folder, Resize, Target};
use std::path::{Path, PathBuf};

/// One image's top classes: (class name, score in [0, 1]), best first.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    pub top: Vec<(String, f32)>,
    /// The int8 logits the engine gave.
    pub logits: Vec<i8>,
}

/// The class names of `model` (read from `path`): the file's own (format 5), else `model.json`
/// beside it, else `0`, `1`, ...
pub fn class_names(model: &firmware::Model, path: &Path) -> Vec<String> {
    let classes = model.classes();
    if let Some(names) = (0..classes)
        .map(|i| model.class_name(i).map(str::to_string))
        .collect::<Option<Vec<String>>>()
    {
        return names;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    host_train::io::ModelJson::read(&dir.join("model.json"))
        .ok()
        .map(|j| j.class_names)
        .filter(|n| n.len() == classes)
        .unwrap_or_else(|| (0..classes).map(|i| i.to_string()).collect())
}

/// Softmax of `scale * (q - zero_point)`.
pub fn scores(logits: &[i8], scale: f32, zero_point: i8) -> Vec<f32> {
    let real: Vec<f32> = logits
        .iter()
        .map(|&q| scale * (q as f32 - zero_point as f32))
        .collect();
    let max = real.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = real.iter().map(|&r| (r - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// Runs each of `images` through the model at `model_path`; the `top` best classes of each.
pub fn predict(
    model_path: &Path,
    images: &[PathBuf],
    top: usize,
) -> Result<Vec<Prediction>, QuantError> {
    let bytes = std::fs::read(model_path).map_err(host_train::io::io_err(model_path))?;
    let eng = Firmware::new(&bytes)
        .map_err(|e| QuantError::Engine(format!("{}: {e}", model_path.display())))?;
    let x = *eng.model().input();
    let t = Target {
        h: x.h as usize,
        w: x.w as usize,
        c: x.c as usize,
    };
    let out = *eng.model().output();
    let names = class_names(eng.model(), model_path);
    let resize = host_train::train::saved_config(model_path.parent().unwrap_or(Path::new(".")))
        .map(|c| c.folder.resize)
        .unwrap_or(Resize::Stretch);
    let mut v = Vec::with_capacity(images.len());
    for image in images {
        let pixels = folder::decode_image(image, t, resize)?;
        let logits = eng
            .run(&pixels, &mut |_, _| {})
            .map_err(|e| QuantError::Engine(format!("{}: {e}", image.display())))?;
        let s = scores(&logits, out.scale, out.zero_point);
        let mut order: Vec<usize> = (0..s.len()).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
        v.push(Prediction {
            image: image.clone(),
            top: order
                .into_iter()
                .take(top)
                .map(|i| (names[i].clone(), s[i]))
                .collect(),
            logits,
        });
    }
    Ok(v)
}

/// `predict MODEL.skq IMAGE... [--top N] [--json]`, as the binary takes it.
pub fn command(args: Vec<String>) -> Result<(), QuantError> {
    let usage = "usage: shiftkit-quantize predict MODEL.skq IMAGE... [--top N] [--json]";
    let (mut paths, mut top, mut json) = (Vec::new(), 3usize, false);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--top" => {
                top = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        QuantError::Usage(format!("--top needs a positive number\n{usage}"))
                    })?
            }
            s if s.starts_with("--") => {
                return Err(QuantError::Usage(format!("unknown option {s}\n{usage}")))
            }
            _ => paths.push(PathBuf::from(a)),
        }
    }
    if paths.len() < 2 {
        return Err(QuantError::Usage(format!(
            "predict needs a model file and at least one image\n{usage}"
        )));
    }
    let model = paths.remove(0);
    let p = predict(&model, &paths, top)?;
    if json {
        let text =
            serde_json::to_string_pretty(&p).map_err(|e| QuantError::Encode(e.to_string()))?;
        println!("{text}");
    } else {
        print!("{}", text(&p));
    }
    Ok(())
}

/// `predict`'s text: one line per image, `IMAGE: 1. NAME 97.1%  2. ..`.
pub fn text(predictions: &[Prediction]) -> String {
    let mut s = String::new();
    for p in predictions {
        let top: Vec<String> = p
            .top
            .iter()
            .enumerate()
            .map(|(i, (n, v))| format!("{}. {n} {:.1}%", i + 1, 100.0 * v))
            .collect();
        s.push_str(&format!("{}: {}\n", p.image.display(), top.join("  ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_a_softmax_of_the_real_logits() {
        let s = scores(&[10, 0, -10], 0.1, 0);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(s[0] > s[1] && s[1] > s[2]);
        // exp(1) / exp(0): the ratio of the first two at scale 0.1.
        assert!((s[0] / s[1] - 1f32.exp()).abs() < 1e-4);
        // The zero point shifts every logit alike: the same scores.
        let shifted = scores(&[10, 0, -10], 0.1, 5);
        assert!(shifted.iter().zip(&s).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}
