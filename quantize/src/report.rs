//! What quantisation cost: float vs int8 accuracy on the test split, and per-layer SQNR, the
//! signal-to-quantisation-noise ratio `10 log10(sum f^2 / sum (f - dequant(q))^2)` of every op's
//! int8 output (the engine's per-op hook) against the float tensor at the same point, summed over
//! the first test images.
use crate::calib::float_batches;
use crate::engine::Engine;
use crate::fold::Folded;
use crate::quant::QModel;
use crate::QuantError;
use host_train::data::Dataset;
use host_train::model::{Model, Normalization};
use rayon::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct LayerReport {
    pub name: String,
    pub op: String,
    pub shape: String,
    pub scale: f32,
    pub zero_point: i8,
    pub sqnr_db: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub method: String,
    /// How the conv and FC requantisation constants were derived (`single` or `tflite`).
    pub requant: String,
    pub calib_images: usize,
    pub float_accuracy: f64,
    pub int8_accuracy: f64,
    pub test_images: usize,
    pub sqnr_images: usize,
    /// Size of `model.skq`.
    pub flash_bytes: usize,
    /// Size of its weight section (int8 weights, int32 biases and requantisation constants).
    pub weights_bytes: usize,
    /// Arena of the file's memory plan (in-place ops, buffer reuse).
    pub arena_bytes: usize,
    /// Arena a conventional engine would need for the same network: the shift as Pad + Slice +
    /// Concat, TFLite Micro's greedy planner, no in-place op (`conventional.rs`).
    pub conventional_arena_bytes: usize,
    pub layers: Vec<LayerReport>,
}

/// Facts about the file the report states.
pub struct Meta {
    pub model: String,
    pub method: String,
    pub requant: String,
    pub calib_images: usize,
    pub flash_bytes: usize,
    pub weights_bytes: usize,
    pub arena_bytes: usize,
    pub conventional_arena_bytes: usize,
}

/// Index of the largest value (the first one on ties).
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Share of `ds` the engine classifies right.
/// Per class: (images, right) of the int8 engine on `ds`, in class order.
pub fn per_class(eng: &dyn Engine, ds: &Dataset) -> Result<Vec<(usize, usize)>, String> {
    let preds = (0..ds.len())
        .into_par_iter()
        .map(|i| Ok(argmax(&eng.run(ds.image(i), &mut |_, _| {})?)))
        .collect::<Result<Vec<usize>, String>>()?;
    let mut v = vec![(0, 0); ds.classes];
    for (&label, pred) in ds.labels.iter().zip(preds) {
        if let Some(c) = v.get_mut(label as usize) {
            c.0 += 1;
            c.1 += usize::from(pred == label as usize);
        }
    }
    Ok(v)
}

pub fn int8_accuracy(eng: &dyn Engine, ds: &Dataset) -> Result<f64, String> {
    let correct: usize = per_class(eng, ds)?.iter().map(|c| c.1).sum();
    Ok(correct as f64 / ds.len().max(1) as f64)
}

pub fn sqnr_db(signal: f64, noise: f64) -> f64 {
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

/// Per op: (sum f^2, sum (f - dequant(q))^2) over the first `count` images of `images`.
pub fn layer_errors(
    model: &mut Model,
    norm: &Normalization,
    folded: &Folded,
    qm: &QModel,
    eng: &dyn Engine,
    images: &[u8],
    count: usize,
) -> Result<Vec<(f64, f64)>, String> {
    let nops = qm.ops.len();
    let il = model.graph.input_shape().numel();
    let mut total = vec![(0.0f64, 0.0f64); nops];
    let mut err: Option<String> = None;
    float_batches(model, norm, images, count, |ws, first, n| {
        let per: Vec<Result<Vec<(f64, f64)>, String>> = (0..n)
            .into_par_iter()
            .map(|j| {
                let mut acc = vec![(0.0f64, 0.0f64); nops];
                let img = &images[(first + j) * il..(first + j + 1) * il];
                eng.run(img, &mut |i, out| {
                    let y = qm.op_output(i);
                    let q = qm.qparams(y);
                    let src = folded.tensors[y].src;
                    let g = ws.geoms[src];
                    let f = &ws.vals[src];
                    let rl = g.w * g.c;
                    for yy in 0..g.h {
                        let fs = g.at(j, yy, 0) * g.c;
                        for (fv, &qv) in f[fs..fs + rl].iter().zip(&out[yy * rl..(yy + 1) * rl]) {
                            let d = (*fv - q.dequantize(qv)) as f64;
                            acc[i].0 += (*fv as f64) * (*fv as f64);
                            acc[i].1 += d * d;
                        }
                    }
                })?;
                Ok(acc)
            })
            .collect();
        for r in per {
            match r {
                Ok(acc) => {
                    for (t, a) in total.iter_mut().zip(acc) {
                        t.0 += a.0;
                        t.1 += a.1;
                    }
                }
                Err(e) => err = Some(e),
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// Float accuracy, int8 accuracy and per-layer SQNR of a quantised model.
#[allow(clippy::too_many_arguments)]
pub fn build(
    model: &mut Model,
    norm: &Normalization,
    folded: &Folded,
    qm: &QModel,
    eng: &dyn Engine,
    test: &Dataset,
    sqnr_images: usize,
    meta: Meta,
) -> Result<Report, QuantError> {
    let (_, float_acc) = host_train::train::evaluate(model, test, norm, 100);
    let int8_acc = int8_accuracy(eng, test).map_err(QuantError::Engine)?;
    let n = sqnr_images.min(test.len());
    let errs =
        layer_errors(model, norm, folded, qm, eng, &test.images, n).map_err(QuantError::Engine)?;
    let layers = errs
        .iter()
        .enumerate()
        .map(|(i, &(s, e))| {
            let y = qm.op_output(i);
            let t = qm.tensors[y];
            LayerReport {
                name: qm.names[i].clone(),
                op: qm.kinds[i].to_string(),
                shape: format!("{}x{}x{}", t.h, t.w, t.c),
                scale: t.scale,
                zero_point: t.zero_point,
                sqnr_db: sqnr_db(s, e),
            }
        })
        .collect();
    Ok(Report {
        model: meta.model,
        method: meta.method,
        requant: meta.requant,
        calib_images: meta.calib_images,
        float_accuracy: float_acc as f64,
        int8_accuracy: int8_acc,
        test_images: test.len(),
        sqnr_images: n,
        flash_bytes: meta.flash_bytes,
        weights_bytes: meta.weights_bytes,
        arena_bytes: meta.arena_bytes,
        conventional_arena_bytes: meta.conventional_arena_bytes,
        layers,
    })
}

/// The report as a text table.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "{}: calibration {} on {} training images, requantisation {}\n\
         float accuracy {:.2}%   int8 accuracy {:.2}%   ({} test images; delta {:+.2} points)\n\
         flash {} B (weights {} B)   arena {} B (a conventional engine: {} B, {:.1}% less)\n\n",
        r.model,
        r.method,
        r.calib_images,
        r.requant,
        100.0 * r.float_accuracy,
        100.0 * r.int8_accuracy,
        r.test_images,
        100.0 * (r.int8_accuracy - r.float_accuracy),
        r.flash_bytes,
        r.weights_bytes,
        r.arena_bytes,
        r.conventional_arena_bytes,
        100.0 * (1.0 - r.arena_bytes as f64 / r.conventional_arena_bytes.max(1) as f64)
    );
    s.push_str(&format!(
        "{:<3} {:<26} {:<11} {:>10} {:>10} {:>5} {:>9}\n",
        "op", "name", "kind", "shape", "scale", "zp", "SQNR dB"
    ));
    for (i, l) in r.layers.iter().enumerate() {
        s.push_str(&format!(
            "{:<3} {:<26} {:<11} {:>10} {:>10.5} {:>5} {:>9.2}\n",
            i, l.name, l.op, l.shape, l.scale, l.zero_point, l.sqnr_db
        ));
    }
    s.push_str(&format!(
        "(SQNR over the first {} test images)\n",
        r.sqnr_images
    ));
    s
}
