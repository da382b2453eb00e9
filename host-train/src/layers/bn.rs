//! Batch normalisation over the N, H, W axes per channel (PyTorch semantics: eps 1e-5, biased
//! variance to normalise, unbiased variance into the running estimate, momentum 0.1).
use super::{image, par_images, par_ranges, threads, Geom};

pub const EPS: f32 = 1e-5;
pub const MOMENTUM: f32 = 0.1;

/// Per-channel statistics a training-mode forward keeps for backward.
#[derive(Clone, Debug, Default)]
pub struct BnCache {
    pub mean: Vec<f32>,
    pub invstd: Vec<f32>,
}

/// Per-channel sums over the image pixels of `x` (and of `x * y` when `y` is given), in f64,
/// reduced in a fixed order.
fn channel_sums(x: &[f32], y: Option<&[f32]>, g: Geom) -> (Vec<f64>, Vec<f64>) {
    let c = g.c;
    let parts = par_ranges(g.n, threads(), |imgs| {
        let (mut s1, mut s2) = (vec![0.0f64; c], vec![0.0f64; c]);
        let (mut r1, mut r2) = (vec![0.0f32; c], vec![0.0f32; c]);
        for i in imgs {
            let xi = image(x, g, i);
            let yi = y.map(|y| image(y, g, i));
            for row in 0..g.h {
                r1.fill(0.0);
                r2.fill(0.0);
                for px in 0..g.w {
                    let o = (row * g.row() + px) * c;
                    let xv = &xi[o..o + c];
                    match yi {
                        None => {
                            for ch in 0..c {
                                r1[ch] += xv[ch];
                                r2[ch] += xv[ch] * xv[ch];
                            }
                        }
                        Some(yi) => {
                            let yv = &yi[o..o + c];
                            for ch in 0..c {
                                r1[ch] += xv[ch];
                                r2[ch] += xv[ch] * yv[ch];
                            }
                        }
                    }
                }
                for ch in 0..c {
                    s1[ch] += r1[ch] as f64;
                    s2[ch] += r2[ch] as f64;
                }
            }
        }
        (s1, s2)
    });
    let (mut s1, mut s2) = (vec![0.0f64; c], vec![0.0f64; c]);
    for (a, b) in parts {
        for ch in 0..c {
            s1[ch] += a[ch];
            s2[ch] += b[ch];
        }
    }
    (s1, s2)
}

/// `y = x * scale + shift` per channel over image pixels (halo stays zero).
fn affine(y: &mut [f32], x: &[f32], scale: &[f32], shift: &[f32], g: Geom) {
    let c = g.c;
    par_images(y, g, |i, yi| {
        let xi = image(x, g, i);
        for row in 0..g.h {
            for px in 0..g.w {
                let o = (row * g.row() + px) * c;
                for ch in 0..c {
                    yi[o + ch] = xi[o + ch] * scale[ch] + shift[ch];
                }
            }
        }
    });
}

/// Training forward: normalise with batch statistics, update the running estimates.
#[allow(clippy::too_many_arguments)]
pub fn bn_forward_train(
    y: &mut [f32],
    cache: &mut BnCache,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    g: Geom,
) {
    let count = (g.n * g.h * g.w) as f64;
    let (s1, s2) = channel_sums(x, None, g);
    cache.mean.clear();
    cache.invstd.clear();
    let (mut scale, mut shift) = (vec![0.0; g.c], vec![0.0; g.c]);
    for ch in 0..g.c {
        let mean = s1[ch] / count;
        let var = (s2[ch] / count - mean * mean).max(0.0);
        let invstd = 1.0 / (var + EPS as f64).sqrt();
        cache.mean.push(mean as f32);
        cache.invstd.push(invstd as f32);
        scale[ch] = gamma[ch] * invstd as f32;
        shift[ch] = beta[ch] - mean as f32 * scale[ch];
        let unbiased = if count > 1.0 {
            var * count / (count - 1.0)
        } else {
            var
        };
        running_mean[ch] = (1.0 - MOMENTUM) * running_mean[ch] + MOMENTUM * mean as f32;
        running_var[ch] = (1.0 - MOMENTUM) * running_var[ch] + MOMENTUM * unbiased as f32;
    }
    affine(y, x, &scale, &shift, g);
}

/// Inference forward with the running statistics.
pub fn bn_forward_eval(
    y: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    g: Geom,
) {
    let scale: Vec<f32> = (0..g.c)
        .map(|ch| gamma[ch] / (var[ch] + EPS).sqrt())
        .collect();
    let shift: Vec<f32> = (0..g.c).map(|ch| beta[ch] - mean[ch] * scale[ch]).collect();
    affine(y, x, &scale, &shift, g);
}

/// Training backward. With `xhat = (x - mean) * invstd` and M pixels per channel:
/// `dgamma += sum(dy * xhat)`, `dbeta += sum(dy)`,
/// `dx += gamma * invstd / M * (M * dy - sum(dy) - xhat * sum(dy * xhat))`.
#[allow(clippy::too_many_arguments)]
pub fn bn_backward(
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    cache: &BnCache,
    g: Geom,
) {
    let c = g.c;
    let m = (g.n * g.h * g.w) as f64;
    // sum(dy * xhat) = invstd * (sum(dy * x) - mean * sum(dy))
    let (sdy, sdyx) = channel_sums(dy, Some(x), g);
    let mut k1 = vec![0.0f32; c]; // coefficient of dy
    let mut k2 = vec![0.0f32; c]; // coefficient of xhat
    let mut k0 = vec![0.0f32; c]; // constant
    for ch in 0..c {
        let (mean, invstd) = (cache.mean[ch] as f64, cache.invstd[ch] as f64);
        let sum_dy = sdy[ch];
        let sum_dy_xhat = invstd * (sdyx[ch] - mean * sum_dy);
        dgamma[ch] += sum_dy_xhat as f32;
        dbeta[ch] += sum_dy as f32;
        let a = gamma[ch] as f64 * invstd / m;
        k1[ch] = (a * m) as f32;
        k2[ch] = (-a * sum_dy_xhat) as f32;
        k0[ch] = (-a * sum_dy) as f32;
    }
    par_images(dx, g, |i, dxi| {
        let (dyi, xi) = (image(dy, g, i), image(x, g, i));
        for row in 0..g.h {
            for px in 0..g.w {
                let o = (row * g.row() + px) * c;
                for ch in 0..c {
                    let xhat = (xi[o + ch] - cache.mean[ch]) * cache.invstd[ch];
                    dxi[o + ch] += k1[ch] * dyi[o + ch] + k2[ch] * xhat + k0[ch];
                }
            }
        }
    });
}
