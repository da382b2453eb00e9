//! Calibration: activation ranges of every int8 tensor from the float model on sample images.
//!
//! The float model runs with BN in eval mode; each folded tensor's values are read from its
//! float-graph `src` tensor. Pass one takes min/max. For `percentile` and `mse`, pass two fills a
//! [`BINS`]-bin histogram over `[min, max]` and the range is chosen from it:
//! - `minmax`: the observed `[min, max]`;
//! - `percentile`: `[q(1 - p), q(p)]` with `p` = [`PERCENTILE`] (the lower end stays `min` when
//!   `min >= 0`, so a ReLU tensor keeps its exact zero);
//! - `mse`: `[a * min, a * max]` with `a` in `(0, 1]` minimising the expected squared error of
//!   asymmetric int8 quantisation: `step^2 / 12` per value inside the range, the squared
//!   clipping distance outside it, evaluated on the histogram.
use crate::fold::Folded;
use crate::quant::QParams;
use host_train::model::{Model, Normalization, Workspace};

pub const BINS: usize = 2048;
/// The `percentile` method's coverage, in percent.
pub const PERCENTILE: f64 = 99.99;
/// Candidates of the `mse` search: `a = i / MSE_STEPS`, `i = 1..=MSE_STEPS`.
pub const MSE_STEPS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    MinMax,
    Percentile,
    Mse,
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        match s {
            "minmax" => Ok(Method::MinMax),
            "percentile" => Ok(Method::Percentile),
            "mse" => Ok(Method::Mse),
            _ => Err(format!("--method {s}: expected minmax, percentile or mse")),
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::MinMax => "minmax",
            Method::Percentile => "percentile",
            Method::Mse => "mse",
        })
    }
}

/// Images per float forward pass.
pub const BATCH: usize = 50;

/// Runs the float model (BN eval) over `count` images of `images` (dense u8 NHWC) in batches and
/// calls `f(workspace, first_image, images_in_batch)` after each.
pub fn float_batches(
    model: &mut Model,
    norm: &Normalization,
    images: &[u8],
    count: usize,
    mut f: impl FnMut(&Workspace, usize, usize),
) {
    let il = model.graph.input_shape().numel();
    let mut ws: Option<Workspace> = None;
    for s in (0..count).step_by(BATCH) {
        let n = BATCH.min(count - s);
        if ws.as_ref().map(|w| w.n) != Some(n) {
            ws = Some(model.workspace(n));
        }
        let w = ws.as_mut().expect("set above");
        model.forward(w, &images[s * il..(s + n) * il], norm, false);
        f(w, s, n);
    }
}

/// Calls `f` on every image value of float tensor `t` in the workspace (halo skipped).
fn for_values(ws: &Workspace, t: usize, mut f: impl FnMut(f32)) {
    let g = ws.geoms[t];
    let rl = g.w * g.c;
    for start in g.rows() {
        ws.vals[t][start..start + rl].iter().for_each(|&v| f(v));
    }
}

/// The quantisation of every folded tensor that has its own range (conv, add and FC outputs);
/// `None` for the input and pool outputs, which take theirs from elsewhere.
pub fn calibrate(
    model: &mut Model,
    folded: &Folded,
    norm: &Normalization,
    images: &[u8],
    count: usize,
    method: Method,
) -> Vec<Option<QParams>> {
    let own: Vec<usize> = (0..folded.tensors.len())
        .filter(|&t| t != folded.input && folded.tensors[t].same_as.is_none())
        .collect();
    let mut lo = vec![f32::INFINITY; folded.tensors.len()];
    let mut hi = vec![f32::NEG_INFINITY; folded.tensors.len()];
    float_batches(model, norm, images, count, |ws, _, _| {
        for &t in &own {
            let src = folded.tensors[t].src;
            let (mut l, mut h) = (lo[t], hi[t]);
            for_values(ws, src, |v| {
                l = l.min(v);
                h = h.max(v);
            });
            (lo[t], hi[t]) = (l, h);
        }
    });
    let mut ranges: Vec<Option<(f32, f32)>> = vec![None; folded.tensors.len()];
    for &t in &own {
        if lo[t].is_finite() && hi[t].is_finite() {
            ranges[t] = Some((lo[t], hi[t]));
        } else {
            ranges[t] = Some((0.0, 0.0));
        }
    }
    if method != Method::MinMax {
        let mut hist = vec![vec![0u64; BINS]; folded.tensors.len()];
        float_batches(model, norm, images, count, |ws, _, _| {
            for &t in &own {
                let (l, h) = (lo[t], hi[t]);
                if h.is_nan() || l.is_nan() || h <= l {
                    continue;
                }
                let inv = BINS as f32 / (h - l);
                let ht = &mut hist[t];
                for_values(ws, folded.tensors[t].src, |v| {
                    let b = (((v - l) * inv) as usize).min(BINS - 1);
                    ht[b] += 1;
                });
            }
        });
        for &t in &own {
            if hi[t] > lo[t] {
                ranges[t] = Some(match method {
                    Method::Percentile => percentile_range(&hist[t], lo[t], hi[t], PERCENTILE),
                    Method::Mse => mse_range(&hist[t], lo[t], hi[t]),
                    Method::MinMax => unreachable!("handled above"),
                });
            }
        }
    }
    ranges
        .into_iter()
        .map(|r| r.map(|(l, h)| QParams::from_range(l, h)))
        .collect()
}

/// `[q(1 - p), q(p)]` of the histogram over `[lo, hi]` (bin edges; `lo` kept when `lo >= 0`).
pub fn percentile_range(hist: &[u64], lo: f32, hi: f32, percent: f64) -> (f32, f32) {
    let total: u64 = hist.iter().sum();
    let width = (hi - lo) / hist.len() as f32;
    let p = percent / 100.0;
    let upper_count = (p * total as f64).ceil() as u64;
    let lower_count = ((1.0 - p) * total as f64).floor() as u64;
    let mut cum = 0u64;
    let mut new_lo = lo;
    let mut new_hi = hi;
    let mut lo_set = lo >= 0.0;
    for (b, &c) in hist.iter().enumerate() {
        cum += c;
        if !lo_set && cum > lower_count {
            new_lo = lo + b as f32 * width;
            lo_set = true;
        }
        if cum >= upper_count {
            new_hi = lo + (b + 1) as f32 * width;
            break;
        }
    }
    (new_lo, new_hi.min(hi))
}

/// Expected squared error of quantising the histogram's values with `q`.
fn histogram_mse(hist: &[u64], lo: f32, hi: f32, q: QParams) -> f64 {
    let width = (hi - lo) as f64 / hist.len() as f64;
    let s = q.scale as f64;
    let rmin = s * (-128.0 - q.zero_point as f64);
    let rmax = s * (127.0 - q.zero_point as f64);
    let inside = s * s / 12.0;
    let mut err = 0.0;
    for (b, &c) in hist.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let v = lo as f64 + (b as f64 + 0.5) * width;
        let e = if v < rmin {
            (rmin - v) * (rmin - v)
        } else if v > rmax {
            (v - rmax) * (v - rmax)
        } else {
            inside
        };
        err += c as f64 * e;
    }
    err
}

/// The clipping `[a * lo, a * hi]` of least expected squared error.
pub fn mse_range(hist: &[u64], lo: f32, hi: f32) -> (f32, f32) {
    let mut best = (f64::INFINITY, (lo, hi));
    for i in 1..=MSE_STEPS {
        let a = i as f32 / MSE_STEPS as f32;
        let (l, h) = (a * lo, a * hi);
        let e = histogram_mse(hist, lo, hi, QParams::from_range(l, h));
        if e < best.0 {
            best = (e, (l, h));
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_clips_a_lone_outlier() {
        // 10,000 values spread over [0, 1), one at 100.
        let mut hist = vec![0u64; BINS];
        let (lo, hi) = (0.0f32, 100.0f32);
        for i in 0..10_000 {
            let v = i as f32 / 10_000.0;
            hist[((v - lo) / (hi - lo) * BINS as f32) as usize] += 1;
        }
        hist[BINS - 1] += 1;
        let (l, h) = percentile_range(&hist, lo, hi, 99.99);
        assert_eq!(l, 0.0);
        assert!(h <= 1.0 + 100.0 / BINS as f32, "{h}");
    }

    #[test]
    fn mse_keeps_the_full_range_of_a_uniform_tensor_and_clips_a_long_tail() {
        let mut hist = vec![0u64; BINS];
        hist.iter_mut().for_each(|c| *c = 100);
        let (l, h) = mse_range(&hist, -1.0, 1.0);
        assert!(h > 0.95 && l < -0.95, "{l} {h}");
        // Most mass near 0, a thin tail to 10: the range shrinks.
        let mut hist = vec![0u64; BINS];
        hist[..BINS / 10].iter_mut().for_each(|c| *c = 10_000);
        hist[BINS - 1] = 1;
        let (l, h) = mse_range(&hist, 0.0, 10.0);
        assert_eq!(l, 0.0);
        assert!(h < 5.0, "{h}");
    }
}
