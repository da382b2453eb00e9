//! Batch normalisation over the N, H, W axes per channel (PyTorch semantics: eps 1e-5, biased
//! variance to normalise, unbiased variance into the running estimate, momentum 0.1).
use super::{image, par_images, par_ranges, threads, Geom, GradMode};

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
                let o = row * g.row() * c;
                let xr = xi[o..o + g.w * c].chunks_exact(c);
                match yi {
                    None => {
                        for xv in xr {
                            for ((a, b), v) in r1.iter_mut().zip(r2.iter_mut()).zip(xv) {
                                *a += v;
                                *b += v * v;
                            }
                        }
                    }
                    Some(yi) => {
                        for (xv, yv) in xr.zip(yi[o..o + g.w * c].chunks_exact(c)) {
                            for (((a, b), v), u) in r1.iter_mut().zip(r2.iter_mut()).zip(xv).zip(yv)
                            {
                                *a += v;
                                *b += v * u;
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
            let o = row * g.row() * c;
            let rows = yi[o..o + g.w * c]
                .chunks_exact_mut(c)
                .zip(xi[o..o + g.w * c].chunks_exact(c));
            for (yv, xv) in rows {
                for (((y, x), a), b) in yv.iter_mut().zip(xv).zip(scale).zip(shift) {
                    *y = x * a + b;
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
    mode: GradMode,
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
    // Fold xhat's affine form into the coefficients: k2 * xhat + k0 = k2x * x + k0x.
    let k2x: Vec<f32> = (0..c).map(|ch| k2[ch] * cache.invstd[ch]).collect();
    let k0x: Vec<f32> = (0..c)
        .map(|ch| k0[ch] - k2[ch] * cache.invstd[ch] * cache.mean[ch])
        .collect();
    par_images(dx, g, |i, dxi| {
        let (dyi, xi) = (image(dy, g, i), image(x, g, i));
        for row in 0..g.h {
            let o = row * g.row() * c;
            let n = g.w * c;
            let rows = dxi[o..o + n]
                .chunks_exact_mut(c)
                .zip(dyi[o..o + n].chunks_exact(c))
                .zip(xi[o..o + n].chunks_exact(c));
            for ((dxv, dyv), xv) in rows {
                // dx += k1 * dy + k2 * xhat + k0, with xhat = x * invstd - mean * invstd
                for (ch, ((d, gy), xx)) in dxv.iter_mut().zip(dyv).zip(xv).enumerate() {
                    mode.put(d, k1[ch] * gy + k2x[ch] * xx + k0x[ch]);
                }
            }
        }
    });
}
