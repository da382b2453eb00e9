//! Convolutions: the shifted 1x1 (the shift is a per-group row offset into the input, read by
//! the GEMM's packing step, never a shifted tensor) and the general k x k conv (stem and the 3x3
//! baselines) by im2col over tiles.
use super::{add_parts, par_ranges, sgemm, threads, Geom, GradMode};
use crate::graph::ShiftGroup;
use rayon::prelude::*;

/// Output pixels per GEMM call: the packed input tile stays in L1/L2.
const TILE: usize = 256;

/// Pixel offset of a group: reading `p - off` reads `(h - dh, w - dw)`.
fn offset(g: &ShiftGroup, row: usize) -> isize {
    g.dh * row as isize + g.dw
}

/// Packs rows `p0..p0+m` of the shifted input into `pack` (m x cin): row r, group g holds
/// `x[p0 + r - off_g, c0..c1]`. Reads stay in the buffer because `p0..p0+m` lies in `gx.span()`.
fn pack_shifted(pack: &mut [f32], x: &[f32], gx: Geom, groups: &[ShiftGroup], p0: usize, m: usize) {
    let cin = gx.c;
    for g in groups {
        let off = offset(g, gx.row());
        for r in 0..m {
            let src = ((p0 + r) as isize - off) as usize * cin;
            pack[r * cin + g.c0..r * cin + g.c1].copy_from_slice(&x[src + g.c0..src + g.c1]);
        }
    }
}

fn is_plain(groups: &[ShiftGroup]) -> bool {
    groups.iter().all(|g| g.dh == 0 && g.dw == 0)
}

/// y = conv1x1(shift(x)). x: gx (n,h,w,cin), y: (n,h,w,cout), w: [cin, cout].
/// `groups` covers `0..cin` (one `(0,0)` group for a plain 1x1).
pub fn conv1x1_forward(
    y: &mut [f32],
    x: &[f32],
    w: &[f32],
    gx: Geom,
    cout: usize,
    groups: &[ShiftGroup],
) {
    let gy = Geom { c: cout, ..gx };
    assert_eq!(
        (x.len(), y.len(), w.len()),
        (gx.len(), gy.len(), gx.c * cout)
    );
    let (first, count) = gx.span();
    let cin = gx.c;
    let plain = is_plain(groups);
    let span = &mut y[first * cout..(first + count) * cout];
    span.par_chunks_mut(TILE * cout).enumerate().for_each_init(
        || vec![0.0f32; if plain { 0 } else { TILE * cin }],
        |pack, (t, yt)| {
            let p0 = first + t * TILE;
            let m = yt.len() / cout;
            let lhs = if plain {
                x[p0 * cin..].as_ptr()
            } else {
                pack_shifted(pack, x, gx, groups, p0, m);
                pack.as_ptr()
            };
            // SAFETY: yt is m x cout, lhs has m rows of cin in bounds (p0..p0+m is inside the
            // span), w is cin x cout; yt aliases none of them.
            unsafe {
                sgemm(
                    m,
                    cout,
                    cin,
                    yt.as_mut_ptr(),
                    cout as isize,
                    1,
                    false,
                    lhs,
                    cin as isize,
                    1,
                    w.as_ptr(),
                    cout as isize,
                    1,
                )
            };
        },
    );
    gy.zero_halo(y);
}

/// Backward of [`conv1x1_forward`]: `dw += shift(x)^T dy`, and if `dx` is given,
/// `dx[q, g] += dy[q + off_g] W_g^T` (the shift read in reverse, again as an offset).
#[allow(clippy::too_many_arguments)]
pub fn conv1x1_backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    gx: Geom,
    cout: usize,
    groups: &[ShiftGroup],
    mode: GradMode,
) {
    let (first, count) = gx.span();
    let cin = gx.c;
    let plain = is_plain(groups);
    let tiles = count.div_ceil(TILE);
    // dw: per-worker partial sums, added in worker order (deterministic for a thread count).
    let partials = par_ranges(tiles, threads(), |tr| {
        let mut part = vec![0.0f32; cin * cout];
        let mut pack = vec![0.0f32; if plain { 0 } else { TILE * cin }];
        for t in tr {
            let p0 = first + t * TILE;
            let m = TILE.min(first + count - p0);
            let lhs = if plain {
                x[p0 * cin..].as_ptr()
            } else {
                pack_shifted(&mut pack, x, gx, groups, p0, m);
                pack.as_ptr()
            };
            // SAFETY: part is cin x cout; lhs^T is read as (cin x m) from m rows of width cin;
            // dy rows p0..p0+m are in bounds.
            unsafe {
                sgemm(
                    cin,
                    cout,
                    m,
                    part.as_mut_ptr(),
                    cout as isize,
                    1,
                    true,
                    lhs,
                    1,
                    cin as isize,
                    dy[p0 * cout..].as_ptr(),
                    cout as isize,
                    1,
                )
            };
        }
        part
    });
    add_parts(dw, partials);
    let Some(dx) = dx else { return };
    let span = &mut dx[first * cin..(first + count) * cin];
    span.par_chunks_mut(TILE * cin)
        .enumerate()
        .for_each(|(t, dxt)| {
            let q0 = first + t * TILE;
            let m = dxt.len() / cin;
            for g in groups {
                let src = (q0 as isize + offset(g, gx.row())) as usize;
                // SAFETY: dxt is m x cin (columns c0..c1 written); dy rows src..src+m stay in the
                // buffer (the span plus one row and pixel either side); W^T is read as (cout x cg)
                // from w[c0*cout..].
                unsafe {
                    sgemm(
                        m,
                        g.c1 - g.c0,
                        cout,
                        dxt[g.c0..].as_mut_ptr(),
                        cin as isize,
                        1,
                        mode == GradMode::Add,
                        dy[src * cout..].as_ptr(),
                        cout as isize,
                        1,
                        w[g.c0 * cout..].as_ptr(),
                        1,
                        cout as isize,
                    )
                };
            }
        });
    gx.zero_halo(dx);
}

/// Shape of a k x k convolution.
#[derive(Clone, Copy, Debug)]
pub struct ConvShape {
    pub gx: Geom,
    pub gy: Geom,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    fn kkc(&self) -> usize {
        self.k * self.k * self.gx.c
    }

    /// Fills `col` (m x k*k*cin) for output pixels `p0..p0+m` of image `i`; halo output pixels
    /// and taps outside the input get zeros.
    fn im2col(&self, col: &mut [f32], x: &[f32], i: usize, p0: usize, m: usize) {
        let (gx, gy, cin, kkc) = (self.gx, self.gy, self.gx.c, self.kkc());
        let base = gy.at(i, 0, 0);
        for r in 0..m {
            let rel = p0 + r - base;
            let (oy, ox) = (rel / gy.row(), rel % gy.row());
            let dst = &mut col[r * kkc..(r + 1) * kkc];
            if oy >= gy.h || ox >= gy.w {
                dst.fill(0.0);
                continue;
            }
            for ky in 0..self.k {
                let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                for kx in 0..self.k {
                    let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                    let d = &mut dst[(ky * self.k + kx) * cin..(ky * self.k + kx + 1) * cin];
                    if iy < 0 || ix < 0 || iy as usize >= gx.h || ix as usize >= gx.w {
                        d.fill(0.0);
                    } else {
                        let s = gx.at(i, iy as usize, ix as usize) * cin;
                        d.copy_from_slice(&x[s..s + cin]);
                    }
                }
            }
        }
    }

    /// Adds `dcol` (m x k*k*cin) back onto image `i`'s input pixels; `dxi` is that image's block
    /// of the input gradient (starting at pixel `gx.at(i, 0, 0)`).
    fn col2im(&self, dxi: &mut [f32], dcol: &[f32], i: usize, p0: usize, m: usize) {
        let (gx, gy, cin, kkc) = (self.gx, self.gy, self.gx.c, self.kkc());
        let base = gy.at(i, 0, 0);
        let xbase = gx.at(i, 0, 0);
        for r in 0..m {
            let rel = p0 + r - base;
            let (oy, ox) = (rel / gy.row(), rel % gy.row());
            if oy >= gy.h || ox >= gy.w {
                continue;
            }
            for ky in 0..self.k {
                let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                for kx in 0..self.k {
                    let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                    if iy < 0 || ix < 0 || iy as usize >= gx.h || ix as usize >= gx.w {
                        continue;
                    }
                    let s = (gx.at(i, iy as usize, ix as usize) - xbase) * cin;
                    let d = &dcol[r * kkc + (ky * self.k + kx) * cin..][..cin];
                    for (a, b) in dxi[s..s + cin].iter_mut().zip(d) {
                        *a += b;
                    }
                }
            }
        }
    }

    /// Pixel range `[first, end)` of image `i`'s output rows (halo pixels inside it included).
    fn image_span(&self, i: usize) -> (usize, usize) {
        let gy = self.gy;
        (gy.at(i, 0, 0), gy.at(i, gy.h - 1, gy.w - 1) + 1)
    }
}

/// y = conv_kxk(x), w: [k, k, cin, cout] (HWIO).
pub fn conv_forward(y: &mut [f32], x: &[f32], w: &[f32], s: ConvShape) {
    let (gy, cout, kkc) = (s.gy, s.gy.c, s.kkc());
    assert_eq!(
        (x.len(), y.len(), w.len()),
        (s.gx.len(), gy.len(), kkc * cout)
    );
    let images = &mut y[gy.lead() * cout..];
    images
        .par_chunks_mut(gy.img() * cout)
        .enumerate()
        .for_each_init(
            || vec![0.0f32; TILE * kkc],
            |col, (i, yi)| {
                let (first, end) = s.image_span(i);
                for p0 in (first..end).step_by(TILE) {
                    let m = TILE.min(end - p0);
                    s.im2col(col, x, i, p0, m);
                    let yt = &mut yi[(p0 - first) * cout..(p0 - first + m) * cout];
                    // SAFETY: yt is m x cout, col m x kkc, w kkc x cout; no aliasing.
                    unsafe {
                        sgemm(
                            m,
                            cout,
                            kkc,
                            yt.as_mut_ptr(),
                            cout as isize,
                            1,
                            false,
                            col.as_ptr(),
                            kkc as isize,
                            1,
                            w.as_ptr(),
                            cout as isize,
                            1,
                        )
                    };
                }
            },
        );
    gy.zero_halo(y);
}

/// Backward of [`conv_forward`]: `dw += col^T dy`; `dx += col2im(dy W^T)` if asked.
pub fn conv_backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    s: ConvShape,
    mode: GradMode,
) {
    let (gx, cout, kkc) = (s.gx, s.gy.c, s.kkc());
    let partials = par_ranges(gx.n, threads(), |images| {
        let mut part = vec![0.0f32; kkc * cout];
        let mut col = vec![0.0f32; TILE * kkc];
        for i in images {
            let (first, end) = s.image_span(i);
            for p0 in (first..end).step_by(TILE) {
                let m = TILE.min(end - p0);
                s.im2col(&mut col, x, i, p0, m);
                // SAFETY: part is kkc x cout, col is m x kkc (read transposed), dy rows in bounds.
                unsafe {
                    sgemm(
                        kkc,
                        cout,
                        m,
                        part.as_mut_ptr(),
                        cout as isize,
                        1,
                        true,
                        col.as_ptr(),
                        1,
                        kkc as isize,
                        dy[p0 * cout..].as_ptr(),
                        cout as isize,
                        1,
                    )
                };
            }
        }
        part
    });
    add_parts(dw, partials);
    let Some(dx) = dx else { return };
    if mode == GradMode::Write {
        // col2im scatters overlapping taps: clear, then add.
        dx.fill(0.0);
    }
    let cin = gx.c;
    let images = &mut dx[gx.lead() * cin..];
    images
        .par_chunks_mut(gx.img() * cin)
        .enumerate()
        .for_each_init(
            || vec![0.0f32; TILE * kkc],
            |dcol, (i, dxi)| {
                let (first, end) = s.image_span(i);
                for p0 in (first..end).step_by(TILE) {
                    let m = TILE.min(end - p0);
                    // dcol = dy W^T
                    // SAFETY: dcol is m x kkc, dy rows p0..p0+m in bounds, w^T read as cout x kkc.
                    unsafe {
                        sgemm(
                            m,
                            kkc,
                            cout,
                            dcol.as_mut_ptr(),
                            kkc as isize,
                            1,
                            false,
                            dy[p0 * cout..].as_ptr(),
                            cout as isize,
                            1,
                            w.as_ptr(),
                            1,
                            cout as isize,
                        )
                    };
                    s.col2im(dxi, dcol, i, p0, m);
                }
            },
        );
}
