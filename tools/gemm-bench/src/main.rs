//! Single-threaded f32 GEMM benchmark: `gemm` 0.18 (what host-train uses) vs `tract-linalg`.
//!
//! C(MxN) = A(MxK) B(KxN), f32, on the trainer's real shapes. Each variant is checked against
//! a naive f64 reference before timing. Timing: warm-up, then SAMPLES samples, each a batch of
//! calls lasting ~BATCH_MS; the variants of one shape are interleaved sample by sample so that
//! noise from the shared machine hits them alike; the median per-call time is reported.
//!
//! Run: `cargo run --release --manifest-path tools/gemm-bench/Cargo.toml`
//! (optional args: number of samples, default 31).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tract_data::internal::*;
use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul};
use tract_linalg::pack::PackedFormat;

const BATCH_MS: f64 = 2.0;

/// A matrix as the trainer hands it over: a pointer plus row/column strides (in elements).
#[derive(Clone, Copy)]
struct Layout {
    rs: isize,
    cs: isize,
}

struct Case {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    /// Layout of A (m x k) and B (k x n). Row-major unless the case says otherwise.
    a: Layout,
    b: Layout,
}

fn row_major(cols: usize) -> Layout {
    Layout {
        rs: cols as isize,
        cs: 1,
    }
}
fn col_major(rows: usize) -> Layout {
    Layout {
        rs: 1,
        cs: rows as isize,
    }
}

/// Deterministic pseudo-random fill in [-1, 1).
fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn at(buf: &[f32], l: Layout, i: usize, j: usize) -> f32 {
    buf[(i as isize * l.rs + j as isize * l.cs) as usize]
}

fn reference(c: &Case, a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; c.m * c.n];
    for i in 0..c.m {
        for j in 0..c.n {
            let mut acc = 0f64;
            for p in 0..c.k {
                acc += at(a, c.a, i, p) as f64 * at(b, c.b, p, j) as f64;
            }
            out[i * c.n + j] = acc as f32;
        }
    }
    out
}

fn max_abs_diff(x: &[f32], y: &[f32]) -> f32 {
    x.iter()
        .zip(y)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Exactly how host-train's `sgemm` calls the gemm crate (overwrite, no threads).
///
/// # Safety
/// `a` must hold `c.m * c.k` and `b` `c.k * c.n` elements at the strides of `c.a` and `c.b`, and
/// `dst` `c.m * c.n` (row-major); the buffers must not overlap.
unsafe fn gemm_crate(c: &Case, dst: &mut [f32], a: &[f32], b: &[f32]) {
    // SAFETY: the caller's contract: every element the shapes and strides address is inside
    // `a`, `b` and `dst`, and `dst` (a unique borrow) aliases neither input.
    unsafe {
        gemm::gemm(
            c.m,
            c.n,
            c.k,
            dst.as_mut_ptr(),
            1,
            c.n as isize,
            false,
            a.as_ptr(),
            c.a.cs,
            c.a.rs,
            b.as_ptr(),
            c.b.cs,
            c.b.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Everything tract needs kept across calls for one shape: the kernel, its scratch space, the
/// operands wrapped as tensors (tract packs from a `TensorView`), reusable packed buffers.
struct Tract {
    mmm: Box<dyn MatMatMul>,
    scratch: Box<dyn tract_linalg::mmm::ScratchSpace>,
    fa: PackedFormat,
    fb: PackedFormat,
    ta: Tensor,
    tb: Tensor,
    a_shape: [usize; 2],
    a_strides: [isize; 2],
    b_shape: [usize; 2],
    b_strides: [isize; 2],
    pa: tract_linalg::mmm::EagerPackedInput,
    pb: tract_linalg::mmm::EagerPackedInput,
    c: Tensor,
}

impl Tract {
    fn new(c: &Case, a: &[f32], b: &[f32]) -> Tract {
        let mmm = tract_linalg::MmmDispatch::native()
            .preferred_kernel(DatumType::F32, Some(c.m), Some(c.k), Some(c.n))
            .expect("no f32 kernel");
        let (fa, fb) = {
            let (pa, pb) = &mmm.packings()[0];
            (
                pa.downcast_ref::<PackedFormat>()
                    .expect("A packing is not PackedFormat")
                    .clone(),
                pb.downcast_ref::<PackedFormat>()
                    .expect("B packing is not PackedFormat")
                    .clone(),
            )
        };
        // Raw storage of the operands, laid out exactly like the gemm crate sees them; the views
        // below give tract the shapes and strides.
        let ta = Tensor::from_shape(&[a.len()], a).unwrap();
        let tb = Tensor::from_shape(&[b.len()], b).unwrap();
        let pa = fa.new_packed_buffer(c.k, c.m).unwrap();
        let pb = fb.new_packed_buffer(c.k, c.n).unwrap();
        // SAFETY: the scratch space is only ever used with this `mmm` (in `run`).
        let scratch = unsafe { mmm.allocate_scratch_space() };
        Tract {
            scratch,
            fa,
            fb,
            ta,
            tb,
            a_shape: [c.m, c.k],
            a_strides: [c.a.rs, c.a.cs],
            b_shape: [c.k, c.n],
            b_strides: [c.b.rs, c.b.cs],
            pa,
            pb,
            c: Tensor::zero::<f32>(&[c.m, c.n]).unwrap(),
            mmm,
        }
    }

    fn pack_a(&mut self) {
        // SAFETY: `ta` holds the m x k operand at these strides (built from `a` in `new`).
        let v = unsafe { TensorView::from_bytes(&self.ta, 0, &self.a_shape, &self.a_strides) };
        self.fa.repack_tensor_view(&mut self.pa, &v, 1, 0).unwrap();
    }

    fn pack_b(&mut self) {
        // SAFETY: `tb` holds the k x n operand at these strides (built from `b` in `new`).
        let v = unsafe { TensorView::from_bytes(&self.tb, 0, &self.b_shape, &self.b_strides) };
        self.fb.repack_tensor_view(&mut self.pb, &v, 0, 1).unwrap();
    }

    fn run(&mut self, m: usize, n: usize) {
        // SAFETY: `pa`/`pb` were packed by this kernel's own packings for an m x k and k x n
        // product, `c` is an m x n f32 tensor, and the scratch space belongs to this `mmm`.
        unsafe {
            let store = self.mmm.c_view(Some(0), Some(1)).wrap(&self.c.view_mut());
            self.mmm
                .run_with_scratch_space(
                    m,
                    n,
                    &mut *self.scratch,
                    &[
                        FusedSpec::AddMatMul {
                            a: AsInputValue::Borrowed(&self.pa),
                            b: AsInputValue::Borrowed(&self.pb),
                            packing: 0,
                        },
                        FusedSpec::Store(store),
                    ],
                )
                .unwrap();
        }
    }

    fn c(&self) -> &[f32] {
        // SAFETY: `c` is an f32 tensor in plain memory, created by `Tensor::zero::<f32>`.
        unsafe { self.c.as_slice_unchecked::<f32>() }
    }
}

/// Calls per sample so that one sample lasts about BATCH_MS.
fn calibrate(mut f: impl FnMut()) -> usize {
    let t = Instant::now();
    let mut calls = 0;
    while t.elapsed() < Duration::from_millis(50) {
        f();
        calls += 1;
    }
    let per_call = t.elapsed().as_secs_f64() / calls as f64;
    ((BATCH_MS * 1e-3 / per_call).ceil() as usize).max(1)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let samples: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(31);
    assert!(samples >= 20, "use at least 20 samples");

    let cases = [
        Case {
            name: "fwd",
            m: 128,
            k: 16,
            n: 32,
            a: row_major(16),
            b: row_major(32),
        },
        Case {
            name: "fwd",
            m: 128,
            k: 32,
            n: 32,
            a: row_major(32),
            b: row_major(32),
        },
        Case {
            name: "fwd",
            m: 128,
            k: 32,
            n: 64,
            a: row_major(32),
            b: row_major(64),
        },
        Case {
            name: "fwd",
            m: 128,
            k: 64,
            n: 64,
            a: row_major(64),
            b: row_major(64),
        },
        Case {
            name: "fwd",
            m: 128,
            k: 256,
            n: 256,
            a: row_major(256),
            b: row_major(256),
        },
        // Not in the original list: the cifar bottleneck's stage-3 reduce/expand 1x1 convs.
        Case {
            name: "fwd",
            m: 128,
            k: 256,
            n: 64,
            a: row_major(256),
            b: row_major(64),
        },
        Case {
            name: "fwd",
            m: 128,
            k: 64,
            n: 256,
            a: row_major(64),
            b: row_major(256),
        },
        Case {
            name: "dW",
            m: 32,
            k: 128,
            n: 32,
            a: row_major(128),
            b: row_major(32),
        },
        Case {
            name: "dx",
            m: 128,
            k: 64,
            n: 13,
            a: row_major(64),
            b: row_major(13),
        },
        // The same backward products with the layouts the trainer really passes: dW reads A as
        // X^T (X is pixels x cin, row-major), dx reads B as a slice of W^T (W is cin x cout).
        Case {
            name: "dW A=X^T",
            m: 32,
            k: 128,
            n: 32,
            a: col_major(32),
            b: row_major(32),
        },
        Case {
            name: "dx B=W^T",
            m: 128,
            k: 64,
            n: 13,
            a: row_major(64),
            b: col_major(64),
        },
    ];

    println!(
        "single-threaded f32 C = A*B, median of {samples} samples of ~{BATCH_MS} ms each; GFLOP/s"
    );
    println!(
        "{:<10} {:>14} {:>8} {:>15} {:>15} {:>15} {:>9} {:>9}  tract kernel",
        "case",
        "M,K,N",
        "gemm",
        "tract+packAB",
        "tract+packA",
        "tract prepacked",
        "tAB/gemm",
        "tA/gemm"
    );

    for (ci, c) in cases.iter().enumerate() {
        // Buffers sized to cover the strided layouts.
        let a = fill(c.m * c.k, 2 * ci as u64 + 1);
        let b = fill(c.k * c.n, 2 * ci as u64 + 2);
        let want = reference(c, &a, &b);

        let mut dst = vec![f32::NAN; c.m * c.n];
        // SAFETY: `a`, `b`, `dst` hold m*k, k*n, m*n elements: every (dense or transposed)
        // layout of the cases addresses only those.
        unsafe { gemm_crate(c, &mut dst, &a, &b) };
        let d_gemm = max_abs_diff(&dst, &want);

        let mut t = Tract::new(c, &a, &b);
        t.pack_a();
        t.pack_b();
        t.run(c.m, c.n);
        let d_tract = max_abs_diff(t.c(), &want);
        let d_between = max_abs_diff(t.c(), &dst);
        let tol = 1e-4 * c.k as f32;
        assert!(
            d_gemm < tol && d_tract < tol,
            "{}: mismatch gemm {d_gemm} tract {d_tract}",
            c.name
        );

        let (m, n) = (c.m, c.n);
        let t = std::cell::RefCell::new(t);
        let t = &t;
        let mut variants: Vec<Box<dyn FnMut()>> = Vec::new();
        {
            let (a, b, dst) = (&a, &b, &mut dst);
            // SAFETY: the same buffers as the checked call above.
            variants.push(Box::new(move || unsafe {
                gemm_crate(c, black_box(&mut dst[..]), black_box(a), black_box(b))
            }));
        }
        // tract: both operands packed on every call (what we pay when A and B both change).
        // tract: A (pixels) packed on every call, B (weights) packed once per step, i.e. free.
        // tract: both pre-packed (kernel alone: a lower bound, not reachable for us).
        variants.push(Box::new(move || {
            let mut t = t.borrow_mut();
            t.pack_a();
            t.pack_b();
            t.run(black_box(m), black_box(n));
            black_box(t.c());
        }));
        variants.push(Box::new(move || {
            let mut t = t.borrow_mut();
            t.pack_a();
            t.run(black_box(m), black_box(n));
            black_box(t.c());
        }));
        variants.push(Box::new(move || {
            let mut t = t.borrow_mut();
            t.run(black_box(m), black_box(n));
            black_box(t.c());
        }));

        // Warm-up and calibration.
        let reps: Vec<usize> = variants.iter_mut().map(|f| calibrate(f)).collect();
        let mut times = vec![Vec::with_capacity(samples); variants.len()];
        for _ in 0..samples {
            for (vi, f) in variants.iter_mut().enumerate() {
                let start = Instant::now();
                for _ in 0..reps[vi] {
                    f();
                }
                times[vi].push(start.elapsed().as_secs_f64() / reps[vi] as f64);
            }
        }
        let flop = 2.0 * (c.m * c.k * c.n) as f64;
        let gf: Vec<f64> = times.iter_mut().map(|v| flop / median(v) / 1e9).collect();
        drop(variants);
        let kernel = t.borrow().mmm.name().to_string();
        println!(
            "{:<10} {:>14} {:>8.1} {:>15.1} {:>15.1} {:>15.1} {:>9.2} {:>9.2}  {} (max|diff| gemm/ref {:.1e}, tract/ref {:.1e}, gemm/tract {:.1e})",
            c.name,
            format!("{},{},{}", c.m, c.k, c.n),
            gf[0],
            gf[1],
            gf[2],
            gf[3],
            gf[1] / gf[0],
            gf[2] / gf[0],
            kernel,
            d_gemm,
            d_tract,
            d_between
        );
    }
}
