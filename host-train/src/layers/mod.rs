//! CPU layers: each op is a `*_forward` / `*_backward` pair over flat NHWC slices in the halo
//! layout of [`Geom`], with a naive dense reference beside it (`reference.rs`) that tests compare
//! against. Gradients are named `d*`; parameter gradients accumulate (`+=`).
//!
//! The halo layout is what lets a shift be a pointer offset with no border test: every row of
//! every image is followed by one zero pixel and every image by one zero row, with a zero lead
//! before the first image, so reading pixel `p - (dh * row + dw)` for `|dh|, |dw| <= 1` lands either
//! on the right neighbour or on a zero.
pub mod bn;
#[allow(unsafe_code)]
pub mod conv;
pub mod elementwise;
#[allow(unsafe_code)]
pub mod linear;
pub mod loss;
pub mod pool;
pub mod reference;

use rayon::prelude::*;

/// Geometry of a batch of `n` images of `h x w x c` in the halo layout.
///
/// Pixel `(i, y, x)` is stored at pixel index `lead + i*img + y*row + x` with `row = w + 1`,
/// `img = (h + 1) * row`, `lead = row + 1`; element `(pixel, ch)` at `pixel * c + ch`.
/// Every pixel that is not an image pixel holds zero, in values and in gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Geom {
    pub fn new(n: usize, h: usize, w: usize, c: usize) -> Geom {
        Geom { n, h, w, c }
    }
    /// Pixels per stored row (image row + one zero pixel).
    pub fn row(&self) -> usize {
        self.w + 1
    }
    /// Pixels per stored image (image rows + one zero row).
    pub fn img(&self) -> usize {
        (self.h + 1) * self.row()
    }
    /// Zero pixels before the first image.
    pub fn lead(&self) -> usize {
        self.row() + 1
    }
    pub fn stored_pixels(&self) -> usize {
        self.lead() + self.n * self.img()
    }
    /// Length of the buffer in elements.
    pub fn len(&self) -> usize {
        self.stored_pixels() * self.c
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Pixel index of image pixel `(i, y, x)`.
    pub fn at(&self, i: usize, y: usize, x: usize) -> usize {
        self.lead() + i * self.img() + y * self.row() + x
    }
    /// The span `[first, first + count)` of pixels from the first to the last image pixel: a
    /// shifted read of any pixel in it by at most one row and column stays inside the buffer.
    pub fn span(&self) -> (usize, usize) {
        if self.n == 0 || self.h == 0 || self.w == 0 {
            return (self.lead(), 0);
        }
        let first = self.at(0, 0, 0);
        (
            first,
            self.at(self.n - 1, self.h - 1, self.w - 1) + 1 - first,
        )
    }
    /// Start element of every image row, in order.
    pub fn rows(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.n).flat_map(move |i| (0..self.h).map(move |y| self.at(i, y, 0) * self.c))
    }
    /// Dense NHWC (no halo) -> halo layout.
    pub fn from_dense(&self, dense: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.len()];
        let rl = self.w * self.c;
        for (r, start) in self.rows().enumerate() {
            out[start..start + rl].copy_from_slice(&dense[r * rl..(r + 1) * rl]);
        }
        out
    }
    /// Halo layout -> dense NHWC.
    pub fn to_dense(&self, halo: &[f32]) -> Vec<f32> {
        let rl = self.w * self.c;
        let mut out = Vec::with_capacity(self.n * self.h * rl);
        for start in self.rows() {
            out.extend_from_slice(&halo[start..start + rl]);
        }
        out
    }
    /// Writes zero into every halo element of the span (after a kernel that computed them).
    pub fn zero_halo(&self, buf: &mut [f32]) {
        let c = self.c;
        for i in 0..self.n {
            for y in 0..self.h {
                let p = self.at(i, y, self.w);
                buf[p * c..(p + 1) * c].fill(0.0);
            }
            let p = self.at(i, self.h, 0);
            buf[p * c..(p + self.row()) * c].fill(0.0);
        }
    }
}

/// How a backward kernel puts an input gradient: added to what is there (a tensor read by
/// several ops), or written over it (its first reader in the backward walk: no clearing pass and
/// no read of the old values). Halo elements stay zero either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradMode {
    Add,
    Write,
}

impl GradMode {
    #[inline(always)]
    pub fn put(self, d: &mut f32, v: f32) {
        match self {
            GradMode::Add => *d += v,
            GradMode::Write => *d = v,
        }
    }
}

/// Number of worker chunks: fixed by the thread count, so results do not depend on scheduling.
pub fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Splits `[0, total)` into `parts` contiguous ranges and maps each in parallel; the results come
/// back in range order, so a reduction over them is deterministic for a given thread count.
pub fn par_ranges<R: Send>(
    total: usize,
    parts: usize,
    f: impl Fn(std::ops::Range<usize>) -> R + Sync + Send,
) -> Vec<R> {
    let parts = parts.clamp(1, total.max(1));
    let step = total.div_ceil(parts);
    (0..parts)
        .into_par_iter()
        .map(|i| f((i * step).min(total)..((i + 1) * step).min(total)))
        .collect()
}

/// `dst (m x n) = [dst +] lhs (m x k) * rhs (k x n)` on strided views, single-threaded (callers
/// split the work). Strides are in elements: `*_rs` between rows, `*_cs` between columns.
///
/// # Safety
/// Every element addressed by the (m, n, k) shape and the strides must lie inside the
/// allocations the pointers come from, and `dst` must not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments, unsafe_code)]
pub unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_rs: isize,
    rhs_cs: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: inside dst's extent by the caller's contract.
                    unsafe { *dst.offset(i as isize * dst_rs + j as isize * dst_cs) = 0.0 };
                }
            }
        }
        return;
    }
    // SAFETY: forwarded caller contract; gemm computes dst = 1*dst + 1*lhs*rhs when reading dst.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// `dst += sum of parts`, parts added in order (per-worker partial sums of [`par_ranges`]).
pub fn add_parts(dst: &mut [f32], parts: Vec<Vec<f32>>) {
    for part in parts {
        for (a, b) in dst.iter_mut().zip(part) {
            *a += b;
        }
    }
}

/// Runs `f(image_index, image_block)` over the per-image blocks of a halo buffer in parallel.
/// A block starts at the image's pixel (0, 0) and holds `img()` pixels (its rows, each followed
/// by one halo pixel, then the halo row).
pub fn par_images(buf: &mut [f32], g: Geom, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    let c = g.c;
    buf[g.lead() * c..]
        .par_chunks_mut(g.img() * c)
        .enumerate()
        .for_each(|(i, b)| f(i, b));
}

/// Read-only view of image `i`'s block (see [`par_images`]).
pub fn image(buf: &[f32], g: Geom, i: usize) -> &[f32] {
    let s = g.at(i, 0, 0) * g.c;
    &buf[s..s + g.img() * g.c]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halo_round_trip_and_span_reads_stay_inside() {
        let g = Geom::new(3, 4, 5, 2);
        let dense: Vec<f32> = (0..3 * 4 * 5 * 2).map(|v| v as f32 + 1.0).collect();
        let halo = g.from_dense(&dense);
        assert_eq!(g.to_dense(&halo), dense);
        let nonzero = halo.iter().filter(|v| **v != 0.0).count();
        assert_eq!(nonzero, dense.len());
        let (first, count) = g.span();
        let lo = first as isize - g.row() as isize - 1;
        let hi = (first + count) as isize + g.row() as isize + 1;
        assert_eq!(lo, 0);
        assert!(hi as usize <= g.stored_pixels());
    }
}

#[cfg(test)]
mod grad_mode_tests;
#[cfg(test)]
#[path = "tests.rs"]
mod kernel_tests;
