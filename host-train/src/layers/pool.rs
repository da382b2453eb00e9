//! Pools: 2x2 average (stride 2, the shift blocks' downsampling), 3x3/2 max with padding 1 (the
//! ImageNet stem) and global average.
use super::{image, par_images, Geom, GradMode};

/// y (n, h/2, w/2, c) = mean of each 2x2 window of x (n, h, w, c).
pub fn avgpool2_forward(y: &mut [f32], x: &[f32], gx: Geom) {
    let gy = avgpool2_out(gx);
    let c = gx.c;
    par_images(y, gy, |i, yi| {
        let xi = image(x, gx, i);
        for oy in 0..gy.h {
            for ox in 0..gy.w {
                let o = (oy * gy.row() + ox) * c;
                let p = |dy: usize, dx: usize| ((2 * oy + dy) * gx.row() + 2 * ox + dx) * c;
                let (a, b, cc, d) = (p(0, 0), p(0, 1), p(1, 0), p(1, 1));
                for ch in 0..c {
                    yi[o + ch] = 0.25 * (xi[a + ch] + xi[b + ch] + xi[cc + ch] + xi[d + ch]);
                }
            }
        }
    });
}

/// `dx += dy / 4` spread over each window.
pub fn avgpool2_backward(dx: &mut [f32], dy: &[f32], gx: Geom, mode: GradMode) {
    let gy = avgpool2_out(gx);
    let c = gx.c;
    par_images(dx, gx, |i, dxi| {
        let dyi = image(dy, gy, i);
        for oy in 0..gy.h {
            for ox in 0..gy.w {
                let o = (oy * gy.row() + ox) * c;
                for (dy_, dx_) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let p = ((2 * oy + dy_) * gx.row() + 2 * ox + dx_) * c;
                    for ch in 0..c {
                        mode.put(&mut dxi[p + ch], 0.25 * dyi[o + ch]);
                    }
                }
            }
        }
    });
}

/// Output geometry of the 2x2/2 average pool.
pub fn avgpool2_out(gx: Geom) -> Geom {
    Geom {
        h: gx.h / 2,
        w: gx.w / 2,
        ..gx
    }
}

/// Output geometry of the global average pool.
pub fn gap_out(gx: Geom) -> Geom {
    Geom { h: 1, w: 1, ..gx }
}

/// Output geometry of the 3x3/2 pad-1 max pool.
pub fn maxpool_out(gx: Geom) -> Geom {
    Geom {
        h: (gx.h - 1) / 2 + 1,
        w: (gx.w - 1) / 2 + 1,
        ..gx
    }
}

/// Visits the in-image taps of output pixel (oy, ox) of a 3x3/2 pad-1 window, in row-major order.
fn taps(gx: Geom, oy: usize, ox: usize, mut f: impl FnMut(usize)) {
    for ky in 0..3 {
        let iy = (2 * oy + ky) as isize - 1;
        if iy < 0 || iy as usize >= gx.h {
            continue;
        }
        for kx in 0..3 {
            let ix = (2 * ox + kx) as isize - 1;
            if ix < 0 || ix as usize >= gx.w {
                continue;
            }
            f((iy as usize * gx.row() + ix as usize) * gx.c);
        }
    }
}

pub fn maxpool3s2_forward(y: &mut [f32], x: &[f32], gx: Geom) {
    let gy = maxpool_out(gx);
    let c = gx.c;
    par_images(y, gy, |i, yi| {
        let xi = image(x, gx, i);
        for oy in 0..gy.h {
            for ox in 0..gy.w {
                let o = (oy * gy.row() + ox) * c;
                yi[o..o + c].fill(f32::NEG_INFINITY);
                taps(gx, oy, ox, |p| {
                    for ch in 0..c {
                        yi[o + ch] = yi[o + ch].max(xi[p + ch]);
                    }
                });
            }
        }
    });
}

/// Routes each output gradient to the first tap (row-major) that holds the window's maximum.
pub fn maxpool3s2_backward(dx: &mut [f32], dy: &[f32], x: &[f32], gx: Geom, mode: GradMode) {
    let gy = maxpool_out(gx);
    let c = gx.c;
    if mode == GradMode::Write {
        // Scattered writes: clear first, then add.
        dx.fill(0.0);
    }
    par_images(dx, gx, |i, dxi| {
        let (xi, dyi) = (image(x, gx, i), image(dy, gy, i));
        let mut best = vec![(f32::NEG_INFINITY, 0usize); c];
        for oy in 0..gy.h {
            for ox in 0..gy.w {
                best.fill((f32::NEG_INFINITY, usize::MAX));
                taps(gx, oy, ox, |p| {
                    for ch in 0..c {
                        if xi[p + ch] > best[ch].0 || best[ch].1 == usize::MAX {
                            best[ch] = (xi[p + ch], p + ch);
                        }
                    }
                });
                let o = (oy * gy.row() + ox) * c;
                for ch in 0..c {
                    dxi[best[ch].1] += dyi[o + ch];
                }
            }
        }
    });
}

/// y (n, 1, 1, c) = mean over each image's pixels.
pub fn gap_forward(y: &mut [f32], x: &[f32], gx: Geom) {
    let gy = gap_out(gx);
    let c = gx.c;
    let inv = 1.0 / (gx.h * gx.w) as f32;
    par_images(y, gy, |i, yi| {
        let xi = image(x, gx, i);
        yi[..c].fill(0.0);
        for row in 0..gx.h {
            for px in 0..gx.w {
                let o = (row * gx.row() + px) * c;
                for ch in 0..c {
                    yi[ch] += xi[o + ch];
                }
            }
        }
        for v in &mut yi[..c] {
            *v *= inv;
        }
    });
}

pub fn gap_backward(dx: &mut [f32], dy: &[f32], gx: Geom, mode: GradMode) {
    let gy = gap_out(gx);
    let c = gx.c;
    let inv = 1.0 / (gx.h * gx.w) as f32;
    par_images(dx, gx, |i, dxi| {
        let dyi = image(dy, gy, i);
        for row in 0..gx.h {
            for px in 0..gx.w {
                let o = (row * gx.row() + px) * c;
                for ch in 0..c {
                    mode.put(&mut dxi[o + ch], dyi[ch] * inv);
                }
            }
        }
    });
}
