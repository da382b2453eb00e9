//! Naive f64 references for every layer, over DENSE NHWC slices (no halo), written with plain
//! loops for clarity, not speed. The layer tests check the fast f32 kernels against them, and
//! the golden-file test checks them against PyTorch.
//!
//! A dense shape is given as a [`Geom`] of which only `n, h, w, c` are used: element
//! `(i, y, x, ch)` is at `((i * h + y) * w + x) * c + ch` (see [`at`]).
use super::Geom;
use crate::graph::ShiftGroup;

/// Batch-norm epsilon (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// Dense index of element `(i, y, x, ch)` of a tensor of shape `g`.
pub fn at(g: Geom, i: usize, y: usize, x: usize, ch: usize) -> usize {
    ((i * g.h + y) * g.w + x) * g.c + ch
}

/// Element count of a dense tensor of shape `g`.
pub fn numel(g: Geom) -> usize {
    g.n * g.h * g.w * g.c
}

/// Output shape of a `k x k` conv with `cout` filters, stride `stride`, zero padding `pad`.
pub fn conv_out(gx: Geom, cout: usize, k: usize, stride: usize, pad: usize) -> Geom {
    Geom {
        n: gx.n,
        h: (gx.h + 2 * pad - k) / stride + 1,
        w: (gx.w + 2 * pad - k) / stride + 1,
        c: cout,
    }
}

/// Output shape of the 2x2 stride-2 average pool (odd trailing rows/columns are dropped).
pub fn avgpool2_out(gx: Geom) -> Geom {
    Geom {
        h: gx.h / 2,
        w: gx.w / 2,
        ..gx
    }
}

/// Output shape of the 3x3 stride-2 pad-1 max pool.
pub fn maxpool3s2_out(gx: Geom) -> Geom {
    conv_out(gx, gx.c, 3, 2, 1)
}

/// Value of input channel `ch` at `(i, y, x)` after the shift: a channel of the group with
/// offset `(dh, dw)` reads `x[i][y - dh][x - dw][ch]`, zero outside the image. Coordinates
/// outside the image (conv padding) also read zero.
fn shifted(
    x: &[f64],
    gx: Geom,
    shift: Option<&[ShiftGroup]>,
    i: usize,
    y: isize,
    xx: isize,
    ch: usize,
) -> f64 {
    let (dh, dw) = match shift {
        None => (0, 0),
        Some(groups) => {
            let g = groups
                .iter()
                .find(|g| g.c0 <= ch && ch < g.c1)
                .expect("shift groups must cover every input channel");
            (g.dh, g.dw)
        }
    };
    let (sy, sx) = (y - dh, xx - dw);
    if sy < 0 || sx < 0 || sy >= gx.h as isize || sx >= gx.w as isize {
        0.0
    } else {
        x[at(gx, i, sy as usize, sx as usize, ch)]
    }
}

/// `k x k` convolution, no bias. x: (n, h, w, cin) of shape `gx`; w: HWIO `[k, k, cin, cout]`;
/// y: [`conv_out`]. With `shift` (only for `k == 1`), input channels are shifted by their
/// group's offset before the conv (see `shifted`).
#[allow(clippy::too_many_arguments)]
pub fn conv(
    x: &[f64],
    w: &[f64],
    gx: Geom,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    shift: Option<&[ShiftGroup]>,
) -> Vec<f64> {
    assert!(
        shift.is_none() || k == 1,
        "the shift only goes with a 1x1 conv"
    );
    assert_eq!(x.len(), numel(gx));
    assert_eq!(w.len(), k * k * gx.c * cout);
    let gy = conv_out(gx, cout, k, stride, pad);
    let mut y = vec![0.0; numel(gy)];
    for i in 0..gy.n {
        for oy in 0..gy.h {
            for ox in 0..gy.w {
                for co in 0..cout {
                    let mut acc = 0.0;
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (oy * stride + ky) as isize - pad as isize;
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            for ci in 0..gx.c {
                                let xv = shifted(x, gx, shift, i, iy, ix, ci);
                                acc += xv * w[((ky * k + kx) * gx.c + ci) * cout + co];
                            }
                        }
                    }
                    y[at(gy, i, oy, ox, co)] = acc;
                }
            }
        }
    }
    y
}

/// Per-channel batch mean and biased variance over the N, H, W axes.
pub fn channel_stats(x: &[f64], g: Geom) -> (Vec<f64>, Vec<f64>) {
    let count = (g.n * g.h * g.w) as f64;
    let mut mean = vec![0.0; g.c];
    let mut var = vec![0.0; g.c];
    for ch in 0..g.c {
        let mut s = 0.0;
        for i in 0..g.n {
            for y in 0..g.h {
                for xx in 0..g.w {
                    s += x[at(g, i, y, xx, ch)];
                }
            }
        }
        mean[ch] = s / count;
        let mut s2 = 0.0;
        for i in 0..g.n {
            for y in 0..g.h {
                for xx in 0..g.w {
                    let d = x[at(g, i, y, xx, ch)] - mean[ch];
                    s2 += d * d;
                }
            }
        }
        var[ch] = s2 / count;
    }
    (mean, var)
}

/// Batch norm with the given per-channel mean and variance: `gamma (x - mean) / sqrt(var + eps) + beta`.
pub fn bn_eval(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
    g: Geom,
) -> Vec<f64> {
    assert_eq!(x.len(), numel(g));
    let mut y = vec![0.0; x.len()];
    for (e, v) in y.iter_mut().enumerate() {
        let ch = e % g.c;
        *v = gamma[ch] * (x[e] - mean[ch]) / (var[ch] + BN_EPS).sqrt() + beta[ch];
    }
    y
}

/// Training-mode batch norm: normalise with the batch mean and biased variance.
pub fn bn_train(x: &[f64], gamma: &[f64], beta: &[f64], g: Geom) -> Vec<f64> {
    let (mean, var) = channel_stats(x, g);
    bn_eval(x, gamma, beta, &mean, &var, g)
}

pub fn relu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.max(0.0)).collect()
}

pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(p, q)| p + q).collect()
}

/// Mean of each 2x2 window, stride 2. y: [`avgpool2_out`].
pub fn avgpool2(x: &[f64], gx: Geom) -> Vec<f64> {
    let gy = avgpool2_out(gx);
    let mut y = vec![0.0; numel(gy)];
    for i in 0..gy.n {
        for oy in 0..gy.h {
            for ox in 0..gy.w {
                for ch in 0..gy.c {
                    let mut s = 0.0;
                    for ky in 0..2 {
                        for kx in 0..2 {
                            s += x[at(gx, i, 2 * oy + ky, 2 * ox + kx, ch)];
                        }
                    }
                    y[at(gy, i, oy, ox, ch)] = s / 4.0;
                }
            }
        }
    }
    y
}

/// Max of each 3x3 window, stride 2, padding 1; padded taps never win. y: [`maxpool3s2_out`].
pub fn maxpool3s2(x: &[f64], gx: Geom) -> Vec<f64> {
    let gy = maxpool3s2_out(gx);
    let mut y = vec![0.0; numel(gy)];
    for i in 0..gy.n {
        for oy in 0..gy.h {
            for ox in 0..gy.w {
                for ch in 0..gy.c {
                    let mut m = f64::NEG_INFINITY;
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let iy = (2 * oy + ky) as isize - 1;
                            let ix = (2 * ox + kx) as isize - 1;
                            if iy >= 0 && ix >= 0 && iy < gx.h as isize && ix < gx.w as isize {
                                m = m.max(x[at(gx, i, iy as usize, ix as usize, ch)]);
                            }
                        }
                    }
                    y[at(gy, i, oy, ox, ch)] = m;
                }
            }
        }
    }
    y
}

/// Global average pool: y (n, c) = mean over each image's pixels.
pub fn gap(x: &[f64], gx: Geom) -> Vec<f64> {
    let mut y = vec![0.0; gx.n * gx.c];
    for i in 0..gx.n {
        for ch in 0..gx.c {
            let mut s = 0.0;
            for yy in 0..gx.h {
                for xx in 0..gx.w {
                    s += x[at(gx, i, yy, xx, ch)];
                }
            }
            y[i * gx.c + ch] = s / (gx.h * gx.w) as f64;
        }
    }
    y
}

/// y (n, cout) = x (n, cin) W + b, W: [cin, cout].
pub fn linear(x: &[f64], w: &[f64], b: &[f64], n: usize, cin: usize, cout: usize) -> Vec<f64> {
    assert_eq!((x.len(), w.len(), b.len()), (n * cin, cin * cout, cout));
    let mut y = vec![0.0; n * cout];
    for i in 0..n {
        for co in 0..cout {
            let mut s = b[co];
            for ci in 0..cin {
                s += x[i * cin + ci] * w[ci * cout + co];
            }
            y[i * cout + co] = s;
        }
    }
    y
}

/// Mean over the batch of `-log softmax(logits)[label]`; logits: (n, classes).
pub fn softmax_xent(logits: &[f64], labels: &[u8], classes: usize) -> f64 {
    let n = labels.len();
    assert_eq!(logits.len(), n * classes);
    let mut loss = 0.0;
    for i in 0..n {
        let z = &logits[i * classes..(i + 1) * classes];
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        loss += lse - z[labels[i] as usize];
    }
    loss / n as f64
}
