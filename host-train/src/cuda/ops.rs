//! Launch wrappers: one function per op, over [`DPtr`] views in the halo layout of [`Geom`],
//! mirroring `layers/` (`*_fwd` / `*_bwd`, parameter gradients accumulate). Lengths are
//! asserted against the geometry before each launch.
use super::{CResult, CudaError, DPtr, Gpu};
use crate::graph::ShiftGroup;
use crate::layers::{bn::EPS, bn::MOMENTUM, pool, Geom};
use cudarc::cublas::sys::cublasOperation_t as Op;
use cudarc::driver::{LaunchConfig, PushKernelArg};

const BLOCK: u32 = 256;

fn grid(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(BLOCK as usize).max(1) as u32, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn dense(g: Geom) -> usize {
    g.n * g.h * g.w * g.c
}

fn dims(g: Geom) -> [i32; 4] {
    [g.n as i32, g.h as i32, g.w as i32, g.c as i32]
}

fn lerr(name: &str) -> impl FnOnce(cudarc::driver::DriverError) -> CudaError + '_ {
    move |e| CudaError(format!("launch {name}: {e:?}"))
}

/// Launches kernel `$name` with the given arguments (pushed by reference, in order), written in
/// brackets; with a geometry `$g` after them, `n, h, w, c` of `$g` follow as i32.
macro_rules! launch {
    ($gpu:expr, $name:expr, $cfg:expr, [$($arg:expr),* $(,)?], $g:expr) => {{
        let [n, h, w, c] = dims($g);
        launch!($gpu, $name, $cfg, [$($arg,)* n, h, w, c])
    }};
    ($gpu:expr, $name:expr, $cfg:expr, [$($arg:expr),* $(,)?]) => {{
        let f = $gpu.func($name);
        let mut b = $gpu.stream.launch_builder(f);
        $( b.arg(&$arg); )*
        // SAFETY: the kernel's signature in kernels.cu matches these argument types in order;
        // every pointer argument comes from a DPtr whose length the caller asserted against the
        // geometry, and the kernel bounds-checks its thread index against that geometry.
        unsafe { b.launch($cfg) }.map(|_| ()).map_err(lerr($name))
    }};
}

/// The element-wise kernels, one line each: `name(first, rest...)` is `Gpu::name` over DPtrs of
/// equal length, launching kernel `name` over every element with the pointers in that order and
/// then the length as i64.
macro_rules! elementwise_ops {
    ($($(#[$doc:meta])* $name:ident($first:ident $(, $p:ident)*);)*) => {
        impl Gpu {$(
            $(#[$doc])*
            pub fn $name(&self, $first: DPtr $(, $p: DPtr)*) -> CResult<()> {
                $( assert_eq!($p.len, $first.len, concat!(stringify!($name), ": ", stringify!($p))); )*
                let len = $first.len as i64;
                launch!(self, stringify!($name), grid($first.len), [$first.ptr $(, $p.ptr)*, len])
            }
        )*}
    };
}

elementwise_ops! {
    /// `y = max(x, 0)`.
    relu_fwd(y, x);
    /// `dx += dy` where `y > 0`.
    relu_bwd(dx, dy, y);
    /// `y = a + b`.
    add_fwd(y, a, b);
    /// `dx += dy`.
    accum(dx, dy);
}

/// The pooling kernels, one line each: `name(ptr: geom, ...) gx -> gy = out_geometry, dims g,
/// threads t` is `Gpu::name(ptr, ..., gx)`: `gy` is the output geometry of input `gx`, each
/// pointer's length is asserted against the geometry named after it, and kernel `name` runs over
/// `t` threads with the pointers in order and then `n, h, w, c` of `g`.
macro_rules! pool_ops {
    ($($(#[$doc:meta])*
       $name:ident($($p:ident: $pg:ident),+) $gx:ident -> $gy:ident = $out:path,
       dims $dg:ident, threads $t:expr;)*) => {
        impl Gpu {$(
            $(#[$doc])*
            pub fn $name(&self, $($p: DPtr,)+ $gx: Geom) -> CResult<()> {
                let $gy = $out($gx);
                $( assert_eq!($p.len, $pg.len(), concat!(stringify!($name), ": ", stringify!($p))); )+
                launch!(self, stringify!($name), grid($t), [$($p.ptr),+], $dg)
            }
        )*}
    };
}

pool_ops! {
    /// 2x2 average pool, stride 2 (`gx` has even h, w).
    avgpool2_fwd(y: gy, x: gx) gx -> gy = pool::avgpool2_out, dims gy, threads dense(gy);
    /// Backward of [`Gpu::avgpool2_fwd`]: `dx += dy / 4` over each window.
    avgpool2_bwd(dx: gx, dy: gy) gx -> gy = pool::avgpool2_out, dims gy, threads dense(gy);
    /// 3x3 max pool, stride 2, padding 1.
    maxpool_fwd(y: gy, x: gx) gx -> gy = pool::maxpool_out, dims gx, threads dense(gy);
    /// Backward of [`Gpu::maxpool_fwd`]: `dy` is added at the window's first maximum of `x`.
    maxpool_bwd(dx: gx, dy: gy, x: gx) gx -> gy = pool::maxpool_out, dims gx, threads dense(gy);
    /// Global average pool to (n, 1, 1, c).
    gap_fwd(y: gy, x: gx) gx -> gy = pool::gap_out, dims gx, threads gx.n * gx.c;
    /// Backward of [`Gpu::gap_fwd`]: `dx += dy / (h w)` at every pixel.
    gap_bwd(dx: gx, dy: gy) gx -> gy = pool::gap_out, dims gx, threads dense(gx);
}

impl Gpu {
    /// Row-major `C (m x n) = op(A) op(B) + beta C` on device addresses with row strides.
    /// cuBLAS is column-major, so this computes `C^T = op(B)^T op(A)^T`.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        &self,
        ta: bool,
        tb: bool,
        (m, n, k): (usize, usize, usize),
        a: u64,
        lda: usize,
        b: u64,
        ldb: usize,
        beta: f32,
        c: u64,
        ldc: usize,
    ) -> CResult<()> {
        if m == 0 || n == 0 {
            return Ok(());
        }
        let op = |t| if t { Op::CUBLAS_OP_T } else { Op::CUBLAS_OP_N };
        let alpha = 1.0f32;
        // SAFETY: callers pass addresses inside live device buffers whose extents cover the
        // (m, n, k) shapes at these strides (each caller states why); alpha/beta are host scalars
        // (the handle's default pointer mode); the handle is bound to our stream.
        unsafe {
            cudarc::cublas::result::sgemm(
                *self.blas.handle(),
                op(tb),
                op(ta),
                n as i32,
                m as i32,
                k as i32,
                &alpha,
                b as *const f32,
                ldb as i32,
                a as *const f32,
                lda as i32,
                &beta,
                c as *mut f32,
                ldc as i32,
            )
        }
        .map_err(|e| CudaError(format!("cublasSgemm: {e:?}")))
    }

    pub fn input_norm(
        &self,
        x: DPtr,
        input: u64,
        input_len: usize,
        mean: DPtr,
        std: DPtr,
        g: Geom,
    ) -> CResult<()> {
        assert!(x.len == g.len() && input_len == dense(g) && mean.len == g.c && std.len == g.c);
        launch!(
            self,
            "input_norm",
            grid(dense(g)),
            [x.ptr, input, mean.ptr, std.ptr],
            g
        )
    }

    pub fn zero_halo(&self, b: DPtr, g: Geom) -> CResult<()> {
        assert_eq!(b.len, g.len());
        launch!(
            self,
            "zero_halo",
            grid(g.n * (g.h + g.w + 1) * g.c),
            [b.ptr],
            g
        )
    }

    /// `s1 (c f64) = sum a`, `s2 = sum a*b` (or `a*a` with no b) over image pixels; `sums` holds
    /// at least 2c f64 (reinterpreted as 4c f32 slots) and is zeroed here.
    fn bn_sums(&self, sums: DPtr, a: DPtr, b: Option<DPtr>, g: Geom) -> CResult<(u64, u64)> {
        assert!(sums.len >= 4 * g.c && a.len == g.len());
        let (s1, s2) = (sums.ptr, sums.ptr + 8 * g.c as u64);
        let zl = 2 * g.c as i32;
        launch!(self, "zero_f64", grid(2 * g.c), [s1, zl])?;
        let bp = match b {
            Some(b) => {
                assert_eq!(b.len, g.len());
                b.ptr
            }
            None => 0u64,
        };
        let pixels = g.n * g.h * g.w;
        let cfg = LaunchConfig {
            grid_dim: (
                g.c.div_ceil(32) as u32,
                pixels.div_ceil(8 * 64).clamp(1, 256) as u32,
                1,
            ),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        launch!(self, "bn_sums", cfg, [s1, s2, a.ptr, bp], g)?;
        Ok((s1, s2))
    }

    /// `y = x * scale + shift` per channel (`scale`, `shift`: c floats each).
    fn bn_apply(&self, y: DPtr, x: DPtr, scale: u64, shift: u64, g: Geom) -> CResult<()> {
        launch!(
            self,
            "bn_apply",
            grid(dense(g)),
            [y.ptr, x.ptr, scale, shift],
            g
        )
    }

    /// Training-mode BN forward; `mean`/`invstd` (c each) are kept for backward; `scratch`
    /// holds at least 6c floats.
    #[allow(clippy::too_many_arguments)]
    pub fn bn_fwd_train(
        &self,
        y: DPtr,
        x: DPtr,
        p: [DPtr; 4],
        mean: DPtr,
        invstd: DPtr,
        scratch: DPtr,
        g: Geom,
    ) -> CResult<()> {
        let c = g.c;
        assert!(
            y.len == g.len()
                && p.iter().all(|t| t.len == c)
                && mean.len == c
                && invstd.len == c
                && scratch.len >= 6 * c
        );
        let (s1, s2) = self.bn_sums(scratch, x, None, g)?;
        let (scale, shift) = (scratch.at(4 * c), scratch.at(5 * c));
        let count = (g.n * g.h * g.w) as f64;
        let ci = c as i32;
        launch!(
            self,
            "bn_train_coef",
            grid(c),
            [
                s1, s2, p[0].ptr, p[1].ptr, p[2].ptr, p[3].ptr, mean.ptr, invstd.ptr, scale, shift,
                count, EPS, MOMENTUM, ci
            ]
        )?;
        self.bn_apply(y, x, scale, shift, g)
    }

    pub fn bn_fwd_eval(
        &self,
        y: DPtr,
        x: DPtr,
        p: [DPtr; 4],
        scratch: DPtr,
        g: Geom,
    ) -> CResult<()> {
        let c = g.c;
        assert!(
            y.len == g.len()
                && x.len == g.len()
                && p.iter().all(|t| t.len == c)
                && scratch.len >= 2 * c
        );
        let (scale, shift) = (scratch.at(0), scratch.at(c));
        let ci = c as i32;
        launch!(
            self,
            "bn_eval_coef",
            grid(c),
            [p[0].ptr, p[1].ptr, p[2].ptr, p[3].ptr, scale, shift, EPS, ci]
        )?;
        self.bn_apply(y, x, scale, shift, g)
    }

    /// `dgamma += sum(dy*xhat)`, `dbeta += sum(dy)`, `dx += ...` as `bn::bn_backward`.
    #[allow(clippy::too_many_arguments)]
    pub fn bn_bwd(
        &self,
        dx: DPtr,
        dgamma: DPtr,
        dbeta: DPtr,
        dy: DPtr,
        x: DPtr,
        gamma: DPtr,
        mean: DPtr,
        invstd: DPtr,
        scratch: DPtr,
        g: Geom,
    ) -> CResult<()> {
        let c = g.c;
        assert!(
            dx.len == g.len()
                && dgamma.len == c
                && dbeta.len == c
                && gamma.len == c
                && mean.len == c
                && invstd.len == c
                && scratch.len >= 7 * c
        );
        let (s1, s2) = self.bn_sums(scratch, dy, Some(x), g)?;
        let (k0, k1, k2) = (scratch.at(4 * c), scratch.at(5 * c), scratch.at(6 * c));
        let m = (g.n * g.h * g.w) as f64;
        let ci = c as i32;
        launch!(
            self,
            "bn_bwd_coef",
            grid(c),
            [s1, s2, gamma.ptr, mean.ptr, invstd.ptr, dgamma.ptr, dbeta.ptr, k0, k1, k2, m, ci]
        )?;
        launch!(
            self,
            "bn_bwd_apply",
            grid(dense(g)),
            [dx.ptr, dy.ptr, x.ptr, mean.ptr, invstd.ptr, k0, k1, k2],
            g
        )
    }

    /// y (n,1,1,cout) = x (n,1,1,cin) W + b. Rows of x/y are one stored image apart.
    pub fn linear_fwd(
        &self,
        y: DPtr,
        x: DPtr,
        w: DPtr,
        b: DPtr,
        gx: Geom,
        cout: usize,
    ) -> CResult<()> {
        let gy = Geom { c: cout, ..gx };
        let cin = gx.c;
        assert!(x.len == gx.len() && y.len == gy.len() && w.len == cin * cout && b.len == cout);
        // x rows: n at stride img*cin from the lead (inside x); y likewise; w is cin x cout.
        self.gemm(
            false,
            false,
            (gx.n, cout, cin),
            x.at(gx.lead() * cin),
            gx.img() * cin,
            w.ptr,
            cout,
            0.0,
            y.at(gy.lead() * cout),
            gy.img() * cout,
        )?;
        let (n, c) = (gx.n as i32, cout as i32);
        launch!(self, "bias_add", grid(gx.n * cout), [y.ptr, b.ptr, n, c])
    }
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bwd(
        &self,
        dx: Option<DPtr>,
        dw: DPtr,
        db: DPtr,
        dy: DPtr,
        x: DPtr,
        w: DPtr,
        gx: Geom,
        cout: usize,
    ) -> CResult<()> {
        let gy = Geom { c: cout, ..gx };
        let cin = gx.c;
        assert!(
            x.len == gx.len()
                && dy.len == gy.len()
                && w.len == cin * cout
                && dw.len == cin * cout
                && db.len == cout
        );
        let (xs, ys) = (gx.img() * cin, gy.img() * cout);
        let (x0, y0) = (x.at(gx.lead() * cin), dy.at(gy.lead() * cout));
        // dw (cin x cout) += x^T dy, as in the forward's extents.
        self.gemm(
            true,
            false,
            (cin, cout, gx.n),
            x0,
            xs,
            y0,
            ys,
            1.0,
            dw.ptr,
            cout,
        )?;
        let (n, c) = (gx.n as i32, cout as i32);
        launch!(self, "bias_grad", grid(cout), [db.ptr, dy.ptr, n, c])?;
        if let Some(dx) = dx {
            assert_eq!(dx.len, gx.len());
            // dx (n x cin) += dy W^T; W read transposed from its cin x cout storage.
            self.gemm(
                false,
                true,
                (gx.n, cin, cout),
                y0,
                ys,
                w.ptr,
                cout,
                1.0,
                dx.at(gx.lead() * cin),
                xs,
            )?;
        }
        Ok(())
    }

    /// Softmax cross-entropy on (n,1,1,classes) logits: writes `dz`, adds the summed loss and
    /// the correct count to `out` (2 f64 = 4 f32 slots, zeroed by the caller).
    pub fn softmax_xent(&self, dz: DPtr, out: DPtr, z: DPtr, labels: u64, g: Geom) -> CResult<()> {
        assert!(dz.len == g.len() && z.len == g.len() && out.len >= 4 && g.h == 1 && g.w == 1);
        let (n, c) = (g.n as i32, g.c as i32);
        launch!(
            self,
            "softmax_xent",
            grid(g.n),
            [dz.ptr, out.ptr, z.ptr, labels, n, c]
        )
    }

    pub fn zero_f64(&self, b: DPtr, count: usize) -> CResult<()> {
        assert!(b.len >= 2 * count);
        let c = count as i32;
        launch!(self, "zero_f64", grid(count), [b.ptr, c])
    }

    /// y = conv1x1(shift(x)): one GEMM per channel group over the whole span, the group's input
    /// read from `x + (first - off_g) * cin + c0` with `lda = cin` (the shift is this offset);
    /// groups accumulate (`beta = 1` after the first). Then the span's halo is zeroed.
    pub fn conv1x1_fwd(
        &self,
        y: DPtr,
        x: DPtr,
        w: DPtr,
        gx: Geom,
        cout: usize,
        groups: &[ShiftGroup],
    ) -> CResult<()> {
        let gy = Geom { c: cout, ..gx };
        let cin = gx.c;
        assert!(x.len == gx.len() && y.len == gy.len() && w.len == cin * cout);
        let (first, count) = gx.span();
        for (gi, g) in groups.iter().enumerate() {
            let off = g.dh * gx.row() as isize + g.dw;
            let src = (first as isize - off) as usize;
            // Rows src..src+count of x stay inside x (span +- one row and pixel, see Geom::span);
            // w rows c0..c1; y rows first..first+count.
            self.gemm(
                false,
                false,
                (count, cout, g.c1 - g.c0),
                x.at(src * cin + g.c0),
                cin,
                w.at(g.c0 * cout),
                cout,
                if gi == 0 { 0.0 } else { 1.0 },
                y.at(first * cout),
                cout,
            )?;
        }
        self.zero_halo(y, gy)
    }

    /// Backward of [`Gpu::conv1x1_fwd`]: `dw_g += shift(x)_g^T dy` and `dx[q, g] += dy[q + off_g] W_g^T`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv1x1_bwd(
        &self,
        dx: Option<DPtr>,
        dw: DPtr,
        dy: DPtr,
        x: DPtr,
        w: DPtr,
        gx: Geom,
        cout: usize,
        groups: &[ShiftGroup],
    ) -> CResult<()> {
        let gy = Geom { c: cout, ..gx };
        let cin = gx.c;
        assert!(
            x.len == gx.len() && dy.len == gy.len() && w.len == cin * cout && dw.len == cin * cout
        );
        let (first, count) = gx.span();
        for g in groups {
            let off = g.dh * gx.row() as isize + g.dw;
            let src = (first as isize - off) as usize;
            self.gemm(
                true,
                false,
                (g.c1 - g.c0, cout, count),
                x.at(src * cin + g.c0),
                cin,
                dy.at(first * cout),
                cout,
                1.0,
                dw.at(g.c0 * cout),
                cout,
            )?;
        }
        let Some(dx) = dx else { return Ok(()) };
        assert_eq!(dx.len, gx.len());
        for g in groups {
            let off = g.dh * gx.row() as isize + g.dw;
            let src = (first as isize + off) as usize;
            self.gemm(
                false,
                true,
                (count, g.c1 - g.c0, cout),
                dy.at(src * cout),
                cout,
                w.at(g.c0 * cout),
                cout,
                1.0,
                dx.at(first * cin + g.c0),
                cin,
            )?;
        }
        self.zero_halo(dx, gx)
    }

    /// k x k conv by im2col over the output span (`col` holds at least span * k*k*cin) and one GEMM.
    #[allow(clippy::too_many_arguments)]
    pub fn conv_fwd(
        &self,
        y: DPtr,
        x: DPtr,
        w: DPtr,
        col: DPtr,
        gx: Geom,
        gy: Geom,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> CResult<()> {
        let (cin, cout, kkc) = (gx.c, gy.c, k * k * gx.c);
        assert!(x.len == gx.len() && y.len == gy.len() && w.len == kkc * cout);
        let (first, count) = gy.span();
        self.im2col(col, x, gx, gy, k, stride, pad)?;
        let _ = cin;
        self.gemm(
            false,
            false,
            (count, cout, kkc),
            col.ptr,
            kkc,
            w.ptr,
            cout,
            0.0,
            y.at(first * cout),
            cout,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn im2col(
        &self,
        col: DPtr,
        x: DPtr,
        gx: Geom,
        gy: Geom,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> CResult<()> {
        let kkc = k * k * gx.c;
        let (first, count) = gy.span();
        assert!(col.len >= count * kkc);
        let (f, cn) = (first as i64, count as i64);
        let a = [
            gx.h as i32,
            gx.w as i32,
            gx.c as i32,
            gy.h as i32,
            gy.w as i32,
            k as i32,
            stride as i32,
            pad as i32,
        ];
        launch!(
            self,
            "im2col",
            grid(count * kkc),
            [col.ptr, x.ptr, f, cn, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]
        )
    }

    /// Backward of [`Gpu::conv_fwd`] (`col`, `dcol` scratch as in the forward).
    #[allow(clippy::too_many_arguments)]
    pub fn conv_bwd(
        &self,
        dx: Option<DPtr>,
        dw: DPtr,
        dy: DPtr,
        x: DPtr,
        w: DPtr,
        col: DPtr,
        dcol: DPtr,
        gx: Geom,
        gy: Geom,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> CResult<()> {
        let (cout, kkc) = (gy.c, k * k * gx.c);
        assert!(
            x.len == gx.len() && dy.len == gy.len() && w.len == kkc * cout && dw.len == kkc * cout
        );
        let (first, count) = gy.span();
        self.im2col(col, x, gx, gy, k, stride, pad)?;
        self.gemm(
            true,
            false,
            (kkc, cout, count),
            col.ptr,
            kkc,
            dy.at(first * cout),
            cout,
            1.0,
            dw.ptr,
            cout,
        )?;
        let Some(dx) = dx else { return Ok(()) };
        assert!(dx.len == gx.len() && dcol.len >= count * kkc);
        self.gemm(
            false,
            true,
            (count, kkc, cout),
            dy.at(first * cout),
            cout,
            w.ptr,
            cout,
            0.0,
            dcol.ptr,
            kkc,
        )?;
        let f = first as i64;
        let a = [
            gx.n as i32,
            gx.h as i32,
            gx.w as i32,
            gx.c as i32,
            gy.h as i32,
            gy.w as i32,
            k as i32,
            stride as i32,
            pad as i32,
        ];
        launch!(
            self,
            "col2im",
            grid(dense(gx)),
            [dx.ptr, dcol.ptr, f, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]]
        )
    }

    /// SGD with momentum (PyTorch semantics) where `mask[i] == 1`.
    #[allow(clippy::too_many_arguments)]
    pub fn sgd(
        &self,
        p: DPtr,
        buf: DPtr,
        g: DPtr,
        mask: u64,
        lr: f32,
        mom: f32,
        wd: f32,
        nesterov: bool,
    ) -> CResult<()> {
        assert!(p.len == buf.len && p.len == g.len);
        let (len, nes) = (p.len as i64, i32::from(nesterov));
        launch!(
            self,
            "sgd",
            grid(p.len),
            [p.ptr, buf.ptr, g.ptr, mask, len, lr, mom, wd, nes]
        )
    }
}
