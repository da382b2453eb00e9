//! Layer-by-layer checks of the CUDA ops against the CPU layers on random data: each op's
//! forward output and backward gradients, compared over whole halo buffers (so a non-zero halo is
//! caught too). `tests/cuda_parity.rs` runs them where a GPU is present.
//!
//! Tolerance: the GPU sums in a different order (cuBLAS tiles, block reductions, atomics), so
//! results differ by f32 rounding: a few ulps times the number of terms. We compare
//! `max |gpu - cpu| <= tol * max(1, max |cpu|)` with `tol = 1e-4` for direct ops and GEMMs of at
//! most a few hundred terms (f32 eps is 1.2e-7; 1e-4 leaves room for ~800 terms of rounding),
//! and `tol = 1e-3` for BN backward, whose `dy - mean(dy) - xhat * mean(dy * xhat)` cancels.
use super::{CResult, DBuf, Gpu};
use crate::data::Rng;
use crate::graph::{Neighbourhood, ShiftGroup, ShiftSpec};
use crate::layers::{bn, conv, elementwise as ew, linear, loss, pool, Geom, GradMode};

/// One comparison: the largest absolute difference and the reference's largest magnitude.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub max_abs: f32,
    pub ref_max: f32,
    pub tol: f32,
}

impl Check {
    pub fn ok(&self) -> bool {
        self.max_abs.is_finite() && self.max_abs <= self.tol * self.ref_max.max(1.0)
    }
}

fn cmp(name: &str, gpu: &[f32], cpu: &[f32], tol: f32) -> Check {
    assert_eq!(gpu.len(), cpu.len(), "{name}: lengths");
    let mut max_abs = 0.0f32;
    let mut ref_max = 0.0f32;
    for (a, b) in gpu.iter().zip(cpu) {
        let d = (a - b).abs();
        max_abs = if d.is_nan() { f32::NAN } else { max_abs.max(d) };
        ref_max = ref_max.max(b.abs());
    }
    Check {
        name: name.into(),
        max_abs,
        ref_max,
        tol,
    }
}

/// Random values on image pixels, zeros on the halo.
fn rand_halo(rng: &mut Rng, g: Geom) -> Vec<f32> {
    let dense: Vec<f32> = (0..g.n * g.h * g.w * g.c).map(|_| rng.normal()).collect();
    g.from_dense(&dense)
}

fn rand_vec(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal()).collect()
}

struct Ctx<'a> {
    gpu: &'a Gpu,
    out: Vec<Check>,
}

impl Ctx<'_> {
    fn up(&self, v: &[f32]) -> CResult<DBuf> {
        self.gpu.upload(v)
    }
    fn check(&mut self, name: &str, d: &DBuf, cpu: &[f32], tol: f32) -> CResult<()> {
        let g = self.gpu.download(d)?;
        self.out.push(cmp(name, &g, cpu, tol));
        Ok(())
    }
}

const TOL: f32 = 1e-4;
const TOL_BN_BWD: f32 = 1e-3;

fn conv1x1(
    cx: &mut Ctx,
    rng: &mut Rng,
    name: &str,
    gx: Geom,
    cout: usize,
    groups: &[ShiftGroup],
) -> CResult<()> {
    let gy = Geom { c: cout, ..gx };
    let (x, w, dy) = (
        rand_halo(rng, gx),
        rand_vec(rng, gx.c * cout),
        rand_halo(rng, gy),
    );
    let mut y = vec![0.0; gy.len()];
    conv::conv1x1_forward(&mut y, &x, &w, gx, cout, groups);
    let (mut dx, mut dw) = (vec![0.0; gx.len()], vec![0.0; w.len()]);
    conv::conv1x1_backward(
        Some(&mut dx),
        &mut dw,
        &dy,
        &x,
        &w,
        gx,
        cout,
        groups,
        GradMode::Add,
    );
    let (xd, wd, dyd) = (cx.up(&x)?, cx.up(&w)?, cx.up(&dy)?);
    let (yd, dxd, dwd) = (
        cx.gpu.zeros(gy.len())?,
        cx.gpu.zeros(gx.len())?,
        cx.gpu.zeros(w.len())?,
    );
    cx.gpu
        .conv1x1_fwd(yd.view(), xd.view(), wd.view(), gx, cout, groups)?;
    cx.gpu.conv1x1_bwd(
        Some(dxd.view()),
        dwd.view(),
        dyd.view(),
        xd.view(),
        wd.view(),
        gx,
        cout,
        groups,
    )?;
    cx.check(&format!("{name} forward y"), &yd, &y, TOL)?;
    cx.check(&format!("{name} backward dx"), &dxd, &dx, TOL)?;
    cx.check(&format!("{name} backward dw"), &dwd, &dw, TOL)
}

fn convk(
    cx: &mut Ctx,
    rng: &mut Rng,
    gx: Geom,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
) -> CResult<()> {
    let oh = (gx.h + 2 * pad - k) / stride + 1;
    let ow = (gx.w + 2 * pad - k) / stride + 1;
    let gy = Geom::new(gx.n, oh, ow, cout);
    let s = conv::ConvShape {
        gx,
        gy,
        k,
        stride,
        pad,
    };
    let (x, w, dy) = (
        rand_halo(rng, gx),
        rand_vec(rng, k * k * gx.c * cout),
        rand_halo(rng, gy),
    );
    let mut y = vec![0.0; gy.len()];
    conv::conv_forward(&mut y, &x, &w, s);
    let (mut dx, mut dw) = (vec![0.0; gx.len()], vec![0.0; w.len()]);
    conv::conv_backward(Some(&mut dx), &mut dw, &dy, &x, &w, s, GradMode::Add);
    let colmax = gy.span().1 * k * k * gx.c;
    let (xd, wd, dyd) = (cx.up(&x)?, cx.up(&w)?, cx.up(&dy)?);
    let (yd, dxd, dwd) = (
        cx.gpu.zeros(gy.len())?,
        cx.gpu.zeros(gx.len())?,
        cx.gpu.zeros(w.len())?,
    );
    let (col, dcol) = (cx.gpu.zeros(colmax)?, cx.gpu.zeros(colmax)?);
    cx.gpu.conv_fwd(
        yd.view(),
        xd.view(),
        wd.view(),
        col.view(),
        gx,
        gy,
        k,
        stride,
        pad,
    )?;
    cx.gpu.conv_bwd(
        Some(dxd.view()),
        dwd.view(),
        dyd.view(),
        xd.view(),
        wd.view(),
        col.view(),
        dcol.view(),
        gx,
        gy,
        k,
        stride,
        pad,
    )?;
    let name = format!("conv{k}x{k}/s{stride} cin {} cout {cout}", gx.c);
    cx.check(&format!("{name} forward y"), &yd, &y, TOL)?;
    cx.check(&format!("{name} backward dx"), &dxd, &dx, TOL)?;
    cx.check(&format!("{name} backward dw"), &dwd, &dw, TOL)
}

fn batchnorm(cx: &mut Ctx, rng: &mut Rng, g: Geom) -> CResult<()> {
    let c = g.c;
    let x: Vec<f32> = rand_halo(rng, g).iter().map(|v| v * 2.0 + 0.5).collect();
    let dy = rand_halo(rng, g);
    let gamma: Vec<f32> = (0..c).map(|_| 1.0 + 0.3 * rng.normal()).collect();
    let beta = rand_vec(rng, c);
    let (mut rm, mut rv) = (vec![0.1; c], vec![0.9; c]);
    let mut cache = bn::BnCache::default();
    let mut y = vec![0.0; g.len()];
    bn::bn_forward_train(&mut y, &mut cache, &x, &gamma, &beta, &mut rm, &mut rv, g);
    let (mut dx, mut dg, mut db) = (vec![0.0; g.len()], vec![0.0; c], vec![0.0; c]);
    bn::bn_backward(
        &mut dx,
        &mut dg,
        &mut db,
        &dy,
        &x,
        &gamma,
        &cache,
        g,
        GradMode::Add,
    );
    let mut ye = vec![0.0; g.len()];
    bn::bn_forward_eval(&mut ye, &x, &gamma, &beta, &rm, &rv, g);
    let gp = cx.gpu;
    let (xd, dyd, gd, bd) = (cx.up(&x)?, cx.up(&dy)?, cx.up(&gamma)?, cx.up(&beta)?);
    let (rmd, rvd) = (cx.up(&vec![0.1; c])?, cx.up(&vec![0.9; c])?);
    let (md, sd, scratch) = (gp.zeros(c)?, gp.zeros(c)?, gp.zeros(8 * c)?);
    let (yd, yed, dxd, dgd, dbd) = (
        gp.zeros(g.len())?,
        gp.zeros(g.len())?,
        gp.zeros(g.len())?,
        gp.zeros(c)?,
        gp.zeros(c)?,
    );
    let p = [gd.view(), bd.view(), rmd.view(), rvd.view()];
    gp.bn_fwd_train(
        yd.view(),
        xd.view(),
        p,
        md.view(),
        sd.view(),
        scratch.view(),
        g,
    )?;
    gp.bn_bwd(
        dxd.view(),
        dgd.view(),
        dbd.view(),
        dyd.view(),
        xd.view(),
        gd.view(),
        md.view(),
        sd.view(),
        scratch.view(),
        g,
    )?;
    gp.bn_fwd_eval(yed.view(), xd.view(), p, scratch.view(), g)?;
    cx.check("batchnorm train forward y", &yd, &y, TOL)?;
    cx.check("batchnorm running mean", &rmd, &rm, TOL)?;
    cx.check("batchnorm running var", &rvd, &rv, TOL)?;
    cx.check("batchnorm eval forward y", &yed, &ye, TOL)?;
    cx.check("batchnorm backward dx", &dxd, &dx, TOL_BN_BWD)?;
    cx.check("batchnorm backward dgamma", &dgd, &dg, TOL_BN_BWD)?;
    cx.check("batchnorm backward dbeta", &dbd, &db, TOL_BN_BWD)
}

fn elementwise(cx: &mut Ctx, rng: &mut Rng, g: Geom) -> CResult<()> {
    let (a, b, dy) = (rand_halo(rng, g), rand_halo(rng, g), rand_halo(rng, g));
    let mut y = vec![0.0; g.len()];
    ew::relu_forward(&mut y, &a);
    let mut dx = b.clone();
    ew::relu_backward(&mut dx, &dy, &y, GradMode::Add);
    let mut s = vec![0.0; g.len()];
    ew::add_forward(&mut s, &a, &b);
    let mut acc = a.clone();
    ew::accumulate(&mut acc, &dy, GradMode::Add);
    let gp = cx.gpu;
    let (ad, bd, dyd) = (cx.up(&a)?, cx.up(&b)?, cx.up(&dy)?);
    let (yd, sd, accd) = (gp.zeros(g.len())?, gp.zeros(g.len())?, cx.up(&a)?);
    let dxd = cx.up(&b)?;
    gp.relu_fwd(yd.view(), ad.view())?;
    gp.relu_bwd(dxd.view(), dyd.view(), yd.view())?;
    gp.add_fwd(sd.view(), ad.view(), bd.view())?;
    gp.accum(accd.view(), dyd.view())?;
    cx.check("relu forward", &yd, &y, TOL)?;
    cx.check("relu backward (accumulating)", &dxd, &dx, TOL)?;
    cx.check("add forward", &sd, &s, TOL)?;
    cx.check("add backward (accumulate)", &accd, &acc, TOL)
}

fn pools(cx: &mut Ctx, rng: &mut Rng) -> CResult<()> {
    let gp = cx.gpu;
    // 2x2 average pool
    let gx = Geom::new(3, 6, 8, 5);
    let gy = Geom { h: 3, w: 4, ..gx };
    let (x, dy) = (rand_halo(rng, gx), rand_halo(rng, gy));
    let mut y = vec![0.0; gy.len()];
    pool::avgpool2_forward(&mut y, &x, gx);
    let mut dx = vec![0.0; gx.len()];
    pool::avgpool2_backward(&mut dx, &dy, gx, GradMode::Add);
    let (xd, dyd, yd, dxd) = (
        cx.up(&x)?,
        cx.up(&dy)?,
        gp.zeros(gy.len())?,
        gp.zeros(gx.len())?,
    );
    gp.avgpool2_fwd(yd.view(), xd.view(), gx)?;
    gp.avgpool2_bwd(dxd.view(), dyd.view(), gx)?;
    cx.check("avgpool2 forward", &yd, &y, TOL)?;
    cx.check("avgpool2 backward", &dxd, &dx, TOL)?;
    // 3x3/2 max pool, odd size
    let gx = Geom::new(2, 7, 9, 4);
    let gy = Geom { h: 4, w: 5, ..gx };
    let (x, dy) = (rand_halo(rng, gx), rand_halo(rng, gy));
    let mut y = vec![0.0; gy.len()];
    pool::maxpool3s2_forward(&mut y, &x, gx);
    let mut dx = vec![0.0; gx.len()];
    pool::maxpool3s2_backward(&mut dx, &dy, &x, gx, GradMode::Add);
    let (xd, dyd, yd, dxd) = (
        cx.up(&x)?,
        cx.up(&dy)?,
        gp.zeros(gy.len())?,
        gp.zeros(gx.len())?,
    );
    gp.maxpool_fwd(yd.view(), xd.view(), gx)?;
    gp.maxpool_bwd(dxd.view(), dyd.view(), xd.view(), gx)?;
    cx.check("maxpool3s2 forward", &yd, &y, TOL)?;
    cx.check("maxpool3s2 backward", &dxd, &dx, TOL)?;
    // global average pool
    let gx = Geom::new(3, 5, 6, 7);
    let gy = Geom { h: 1, w: 1, ..gx };
    let (x, dy) = (rand_halo(rng, gx), rand_halo(rng, gy));
    let mut y = vec![0.0; gy.len()];
    pool::gap_forward(&mut y, &x, gx);
    let mut dx = vec![0.0; gx.len()];
    pool::gap_backward(&mut dx, &dy, gx, GradMode::Add);
    let (xd, dyd, yd, dxd) = (
        cx.up(&x)?,
        cx.up(&dy)?,
        gp.zeros(gy.len())?,
        gp.zeros(gx.len())?,
    );
    gp.gap_fwd(yd.view(), xd.view(), gx)?;
    gp.gap_bwd(dxd.view(), dyd.view(), gx)?;
    cx.check("global avgpool forward", &yd, &y, TOL)?;
    cx.check("global avgpool backward", &dxd, &dx, TOL)
}

fn fc_and_loss(cx: &mut Ctx, rng: &mut Rng) -> CResult<()> {
    let gp = cx.gpu;
    let (n, cin, cout) = (5, 24, 10);
    let gx = Geom::new(n, 1, 1, cin);
    let gy = Geom { c: cout, ..gx };
    let (x, w, b, dy) = (
        rand_halo(rng, gx),
        rand_vec(rng, cin * cout),
        rand_vec(rng, cout),
        rand_halo(rng, gy),
    );
    let mut y = vec![0.0; gy.len()];
    linear::linear_forward(&mut y, &x, &w, &b, gx, cout);
    let (mut dx, mut dw, mut db) = (vec![0.0; gx.len()], vec![0.0; w.len()], vec![0.0; cout]);
    linear::linear_backward(
        Some(&mut dx),
        &mut dw,
        &mut db,
        &dy,
        &x,
        &w,
        gx,
        cout,
        GradMode::Add,
    );
    let (xd, wd, bd, dyd) = (cx.up(&x)?, cx.up(&w)?, cx.up(&b)?, cx.up(&dy)?);
    let (yd, dxd, dwd, dbd) = (
        gp.zeros(gy.len())?,
        gp.zeros(gx.len())?,
        gp.zeros(w.len())?,
        gp.zeros(cout)?,
    );
    gp.linear_fwd(yd.view(), xd.view(), wd.view(), bd.view(), gx, cout)?;
    gp.linear_bwd(
        Some(dxd.view()),
        dwd.view(),
        dbd.view(),
        dyd.view(),
        xd.view(),
        wd.view(),
        gx,
        cout,
    )?;
    cx.check("linear forward", &yd, &y, TOL)?;
    cx.check("linear backward dx", &dxd, &dx, TOL)?;
    cx.check("linear backward dw", &dwd, &dw, TOL)?;
    cx.check("linear backward db", &dbd, &db, TOL)?;
    // softmax cross-entropy on the linear's output
    let labels: Vec<u8> = (0..n).map(|_| rng.below(cout) as u8).collect();
    let dense = gy.to_dense(&y);
    let mut dz = vec![0.0; dense.len()];
    let (l, correct) = loss::softmax_xent(&mut dz, &dense, &labels, cout);
    let (ld, out, dzd) = (gp.upload(&labels)?, gp.zeros(4)?, gp.zeros(gy.len())?);
    gp.softmax_xent(dzd.view(), out.view(), yd.view(), ld.ptr, gy)?;
    cx.check("softmax xent dlogits", &dzd, &gy.from_dense(&dz), TOL)?;
    let o = gp.download(&out)?;
    let f = |i: usize| {
        f64::from_le_bytes(
            [o[2 * i].to_le_bytes(), o[2 * i + 1].to_le_bytes()]
                .concat()
                .try_into()
                .expect("8 bytes"),
        )
    };
    cx.out.push(cmp(
        "softmax xent loss",
        &[(f(0) / n as f64) as f32],
        &[l],
        TOL,
    ));
    cx.out.push(cmp(
        "softmax xent correct",
        &[f(1) as f32],
        &[correct as f32],
        0.0,
    ));
    Ok(())
}

fn sgd(cx: &mut Ctx, rng: &mut Rng) -> CResult<()> {
    let gp = cx.gpu;
    let len = 1000;
    let (p, g, m) = (rand_vec(rng, len), rand_vec(rng, len), rand_vec(rng, len));
    let mask: Vec<u8> = (0..len).map(|i| u8::from(i % 7 != 3)).collect();
    for nesterov in [false, true] {
        let (lr, mo, wd) = (0.05f32, 0.9f32, 5e-4f32);
        let (mut pc, mut mc) = (p.clone(), m.clone());
        for i in 0..len {
            if mask[i] == 0 {
                continue;
            }
            let d = g[i] + wd * pc[i];
            mc[i] = mo * mc[i] + d;
            pc[i] -= lr * if nesterov { d + mo * mc[i] } else { mc[i] };
        }
        let (pd, gd, md, maskd) = (cx.up(&p)?, cx.up(&g)?, cx.up(&m)?, gp.upload(&mask)?);
        gp.sgd(
            pd.view(),
            md.view(),
            gd.view(),
            maskd.ptr,
            lr,
            mo,
            wd,
            nesterov,
        )?;
        cx.check(&format!("sgd nesterov={nesterov} params"), &pd, &pc, TOL)?;
        cx.check(&format!("sgd nesterov={nesterov} momentum"), &md, &mc, TOL)?;
    }
    Ok(())
}

/// Runs every layer check on `gpu`.
pub fn layer_checks(gpu: &Gpu) -> CResult<Vec<Check>> {
    let mut cx = Ctx {
        gpu,
        out: Vec::new(),
    };
    let mut rng = Rng::new(2024);
    let gx = Geom::new(3, 6, 7, 20);
    conv1x1(
        &mut cx,
        &mut rng,
        "conv1x1 plain",
        gx,
        12,
        &[ShiftGroup {
            dh: 0,
            dw: 0,
            c0: 0,
            c1: 20,
        }],
    )?;
    let s4 = ShiftSpec {
        kind: Neighbourhood::C4,
        centre_group: true,
    };
    conv1x1(
        &mut cx,
        &mut rng,
        "conv1x1 shift 4C+centre",
        gx,
        12,
        &s4.groups(20),
    )?;
    let s8 = ShiftSpec {
        kind: Neighbourhood::C8,
        centre_group: false,
    };
    conv1x1(&mut cx, &mut rng, "conv1x1 shift 8C", gx, 9, &s8.groups(20))?;
    convk(&mut cx, &mut rng, Geom::new(2, 8, 9, 3), 8, 3, 1, 1)?;
    convk(&mut cx, &mut rng, Geom::new(2, 9, 10, 6), 7, 3, 2, 1)?;
    convk(&mut cx, &mut rng, Geom::new(2, 12, 11, 3), 5, 7, 2, 3)?;
    batchnorm(&mut cx, &mut rng, Geom::new(4, 5, 6, 40))?;
    elementwise(&mut cx, &mut rng, Geom::new(2, 5, 4, 6))?;
    pools(&mut cx, &mut rng)?;
    fc_and_loss(&mut cx, &mut rng)?;
    sgd(&mut cx, &mut rng)?;
    Ok(cx.out)
}
