//! Layer tests: every fast f32 kernel (run in the halo layout) against the naive f64 reference
//! in `reference.rs`.
//!
//! For each layer: (a) the forward matches the reference forward; (b) the backward matches
//! central finite differences of the REFERENCE forward of `L = sum(y * r)` (so `dy = r`), for the
//! input and every parameter; (c) the halo of every output and every `dx` stays exactly zero.
//! Outputs are pre-filled with NaN in their image pixels, so a forward that accumulates into `y`
//! instead of overwriting it fails; gradients start from random values, so a backward that
//! overwrites instead of accumulating (`+=`) fails.
//!
//! Tolerances are relative to the largest expected magnitude, `|got - want| <= tol * max|want|`.
//! The unit roundoff of f32 is u = 6e-8. Inputs are f32 values, so both sides see the same
//! numbers and the only difference is the fast path's f32 rounding (plus, for gradients, the
//! finite-difference error, which is far smaller: see [`FD_LINEAR`], [`FD_SMOOTH`]).
use super::reference as refr;
use super::{bn, conv, elementwise as ew, linear, loss, pool, Geom, GradMode};
use crate::data::Rng;
use crate::graph::{Neighbourhood, ShiftGroup, ShiftSpec};

/// GEMM-based ops (conv, linear): each output is an f32 sum of K terms (K = k*k*cin <= 147 in
/// the forwards here; up to M = n*h*w <= 429 pixels in dw). The typical (random-walk) error is
/// about sqrt(K) u |terms| ~ 1e-6 of the largest output; the worst-case bound K u sum|terms| is
/// a few 1e-5. 1e-4 stays clear of both, while a wrong index, tap or shift moves an entry by O(1)
/// of the scale.
const TOL_GEMM: f64 = 1e-4;
/// Per-element ops with a handful of f32 operations (add, avg pool, gap over <= 42 pixels, BN's
/// affine map with f32 scale/shift): errors of a few u, relative to the scale, up to ~40 u.
const TOL_ELEM: f64 = 1e-5;
/// Finite-difference step for functions linear in the perturbed tensor (conv, pools, linear,
/// relu and max away from their kinks): central differences are exact up to f64 rounding,
/// ~1e-16 |L| / h ~ 1e-11 here.
const FD_LINEAR: f64 = 1e-3;
/// Step for smooth non-linear functions (BN, softmax): truncation error ~h^2 |L'''| ~ 1e-8,
/// rounding ~1e-16 |L| / h ~ 1e-10; both far below the tolerances.
const FD_SMOOTH: f64 = 1e-4;
/// Step for piecewise-linear ops (relu, max pool): must be smaller than the distance from any
/// input to a kink (0 for relu, the runner-up of a window for max); the inputs are drawn so
/// that holds (asserted), and then the difference is exact up to rounding ~1e-16 |L| / h.
const FD_KINK: f64 = 1e-6;
/// Entries checked by finite differences per tensor: all of them up to this, else a random sample.
const MAX_FD: usize = 300;

fn randn(rng: &mut Rng, len: usize, scale: f32) -> Vec<f32> {
    (0..len).map(|_| rng.normal() * scale).collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(p, q)| p * q).sum()
}

/// A halo buffer of shape `g` whose image pixels hold NaN: a forward must overwrite them all.
fn nan_output(g: Geom) -> Vec<f32> {
    g.from_dense(&vec![f32::NAN; refr::numel(g)])
}

/// Asserts every element of halo buffer `buf` outside the image pixels is exactly zero.
fn assert_halo_zero(buf: &[f32], g: Geom, what: &str) {
    assert_eq!(buf.len(), g.len(), "{what}: buffer length");
    let mut inside = vec![false; g.len()];
    for s in g.rows() {
        inside[s..s + g.w * g.c].fill(true);
    }
    let halo = inside.iter().filter(|v| !**v).count();
    assert!(halo > 0, "{what}: no halo to check");
    if let Some(e) = buf
        .iter()
        .zip(&inside)
        .position(|(v, ins)| !ins && *v != 0.0)
    {
        panic!(
            "{what}: halo element {e} (pixel {}, channel {}) = {}",
            e / g.c,
            e % g.c,
            buf[e]
        );
    }
}

/// Asserts `|got - want| <= tol * max|want|` entry by entry, and that `want` is not trivially zero.
fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(!want.is_empty(), "{what}: nothing compared");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(
        scale > 1e-3,
        "{what}: expected values are all ~0 (scale {scale})"
    );
    let (mut worst, mut at) = (0.0f64, 0);
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let e = (*g as f64 - w).abs();
        assert!(!e.is_nan(), "{what}: entry {k}: got {g}, want {w}");
        if e > worst {
            (worst, at) = (e, k);
        }
    }
    assert!(
        worst <= tol * scale,
        "{what}: entry {at}: got {} want {} (error {worst:.3e} > {tol:.0e} * scale {scale:.3e})",
        got[at],
        want[at]
    );
}

/// Indices to check by finite differences: all of `0..len`, or `MAX_FD` distinct random ones.
fn pick(rng: &mut Rng, len: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    if len > MAX_FD {
        rng.shuffle(&mut idx);
        idx.truncate(MAX_FD);
    }
    idx
}

/// Checks the fast gradient `got` (dense, same layout as `x`) against central differences of
/// `f` at `x`, over all entries or a random sample.
fn check_grad(
    rng: &mut Rng,
    got: &[f32],
    f: impl Fn(&[f64]) -> f64,
    x: &[f32],
    h: f64,
    tol: f64,
    what: &str,
) {
    assert_eq!(got.len(), x.len(), "{what}: gradient length");
    let idx = pick(rng, x.len());
    let mut xp = f64s(x);
    let mut want = Vec::with_capacity(idx.len());
    for &k in &idx {
        let v = xp[k];
        xp[k] = v + h;
        let lp = f(&xp);
        xp[k] = v - h;
        let lm = f(&xp);
        xp[k] = v;
        want.push((lp - lm) / (2.0 * h));
    }
    let got: Vec<f32> = idx.iter().map(|&k| got[k]).collect();
    assert_close(&got, &want, tol, what);
}

/// `after - before`, i.e. what a backward added to a gradient buffer.
fn added(after: &[f32], before: &[f32]) -> Vec<f32> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

// ---------------------------------------------------------------- convolutions

#[derive(Clone, Copy)]
enum Kernel {
    /// `conv1x1_forward/backward` with these shift groups (`None`: one plain `(0,0)` group).
    OneByOne(Option<ShiftSpec>),
    /// `conv_forward/backward` with `k, stride, pad`.
    General { k: usize, stride: usize, pad: usize },
}

struct ConvCase {
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    kernel: Kernel,
    with_dx: bool,
    seed: u64,
}

fn run_conv(case: ConvCase) {
    let mut rng = Rng::new(case.seed);
    let gx = Geom::new(case.n, case.h, case.w, case.cin);
    let (k, stride, pad, groups) = match case.kernel {
        Kernel::OneByOne(spec) => {
            let groups = match spec {
                Some(s) => s.groups(case.cin),
                None => vec![ShiftGroup {
                    dh: 0,
                    dw: 0,
                    c0: 0,
                    c1: case.cin,
                }],
            };
            assert!(
                groups.iter().all(|g| g.c1 > g.c0),
                "every shift group must be non-empty"
            );
            (1, 1, 0, Some(groups))
        }
        Kernel::General { k, stride, pad } => (k, stride, pad, None),
    };
    let gy = refr::conv_out(gx, case.cout, k, stride, pad);
    let x = randn(&mut rng, refr::numel(gx), 1.0);
    let w = randn(
        &mut rng,
        k * k * case.cin * case.cout,
        1.0 / ((k * k * case.cin) as f32).sqrt(),
    );
    let r = randn(&mut rng, refr::numel(gy), 1.0);
    let shift = groups.as_deref();
    let reference = |x: &[f64], w: &[f64]| refr::conv(x, w, gx, case.cout, k, stride, pad, shift);
    let what = |s: &str| {
        format!(
            "{} ({}x{} s{} p{}, shift {:?})",
            s,
            k,
            k,
            stride,
            pad,
            groups.as_ref().map(|g| g.len())
        )
    };

    // (a) forward
    let xh = gx.from_dense(&x);
    let mut yh = nan_output(gy);
    let shape = conv::ConvShape {
        gx,
        gy,
        k,
        stride,
        pad,
    };
    match &groups {
        Some(gr) => conv::conv1x1_forward(&mut yh, &xh, &w, gx, case.cout, gr),
        None => conv::conv_forward(&mut yh, &xh, &w, shape),
    }
    assert_close(
        &gy.to_dense(&yh),
        &reference(&f64s(&x), &f64s(&w)),
        TOL_GEMM,
        &what("conv forward"),
    );
    assert_halo_zero(&yh, gy, &what("conv y"));

    // (b) backward, accumulating onto random gradients
    let dy = gy.from_dense(&r);
    let dw0 = randn(&mut rng, w.len(), 1.0);
    let mut dw = dw0.clone();
    let dx0 = gx.from_dense(&randn(&mut rng, refr::numel(gx), 1.0));
    let mut dx = dx0.clone();
    let dxo = if case.with_dx {
        Some(dx.as_mut_slice())
    } else {
        None
    };
    match &groups {
        Some(gr) => {
            conv::conv1x1_backward(dxo, &mut dw, &dy, &xh, &w, gx, case.cout, gr, GradMode::Add)
        }
        None => conv::conv_backward(dxo, &mut dw, &dy, &xh, &w, shape, GradMode::Add),
    }
    let (x64, w64, r64) = (f64s(&x), f64s(&w), f64s(&r));
    let lw = |wp: &[f64]| dot(&reference(&x64, wp), &r64);
    check_grad(
        &mut rng,
        &added(&dw, &dw0),
        lw,
        &w,
        FD_LINEAR,
        TOL_GEMM,
        &what("conv dw"),
    );
    if case.with_dx {
        let lx = |xp: &[f64]| dot(&reference(xp, &w64), &r64);
        let ddx = gx.to_dense(&added(&dx, &dx0));
        check_grad(
            &mut rng,
            &ddx,
            lx,
            &x,
            FD_LINEAR,
            TOL_GEMM,
            &what("conv dx"),
        );
        assert_halo_zero(&dx, gx, &what("conv dx"));
    }
}

const C4: ShiftSpec = ShiftSpec {
    kind: Neighbourhood::C4,
    centre_group: true,
};
const C4_NO_CENTRE: ShiftSpec = ShiftSpec {
    kind: Neighbourhood::C4,
    centre_group: false,
};
const C8: ShiftSpec = ShiftSpec {
    kind: Neighbourhood::C8,
    centre_group: true,
};
const C8_NO_CENTRE: ShiftSpec = ShiftSpec {
    kind: Neighbourhood::C8,
    centre_group: false,
};

fn one_by_one(
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    spec: Option<ShiftSpec>,
    seed: u64,
) -> ConvCase {
    ConvCase {
        n,
        h,
        w,
        cin,
        cout,
        kernel: Kernel::OneByOne(spec),
        with_dx: true,
        seed,
    }
}

#[allow(clippy::too_many_arguments)]
fn general(
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    seed: u64,
) -> ConvCase {
    ConvCase {
        n,
        h,
        w,
        cin,
        cout,
        kernel: Kernel::General { k, stride, pad },
        with_dx: true,
        seed,
    }
}

#[test]
fn conv1x1_shift_4c_with_centre() {
    // groups [2, 2, 2, 2, 3]
    run_conv(one_by_one(2, 5, 6, 11, 7, Some(C4), 1));
}

#[test]
fn conv1x1_shift_4c_without_centre() {
    // groups [2, 2, 2, 3]: every channel moves
    run_conv(one_by_one(3, 6, 4, 9, 6, Some(C4_NO_CENTRE), 2));
}

#[test]
fn conv1x1_shift_8c_with_centre() {
    // groups [2 x8, 3]
    run_conv(one_by_one(2, 7, 5, 19, 8, Some(C8), 3));
}

#[test]
fn conv1x1_shift_8c_without_centre() {
    // groups [2 x7, 3]
    run_conv(one_by_one(2, 5, 5, 17, 5, Some(C8_NO_CENTRE), 4));
}

#[test]
fn conv1x1_plain() {
    run_conv(one_by_one(3, 5, 6, 5, 13, None, 5));
}

#[test]
fn conv1x1_shift_4c_several_tiles() {
    // Span from the first to the last image pixel: 2*21*18 + 19*18 + 17 = 1115 pixels, five
    // 256-pixel tiles (conv.rs TILE) that start mid-image and mid-row.
    run_conv(one_by_one(3, 20, 17, 16, 8, Some(C4), 6));
}

#[test]
fn conv1x1_shift_8c_several_tiles() {
    // 21*18 + 19*18 + 17 = 737 pixels: three tiles.
    run_conv(one_by_one(2, 20, 17, 9, 6, Some(C8), 7));
}

#[test]
fn conv3x3_stride1_pad1() {
    run_conv(general(2, 7, 5, 6, 9, 3, 1, 1, 8));
}

#[test]
fn conv3x3_stride1_pad1_several_tiles() {
    // Each image's output span is 19*18 + 17 = 359 pixels: two 256-pixel tiles per image.
    run_conv(general(2, 20, 17, 5, 7, 3, 1, 1, 9));
}

#[test]
fn conv3x3_stride2_pad1() {
    run_conv(general(3, 7, 6, 5, 8, 3, 2, 1, 10));
}

#[test]
fn conv1x1_stride2() {
    run_conv(general(2, 7, 5, 12, 7, 1, 2, 0, 11));
}

#[test]
fn conv7x7_stride2_pad3() {
    run_conv(general(2, 9, 7, 3, 5, 7, 2, 3, 12));
}

#[test]
fn conv_backward_without_dx() {
    run_conv(ConvCase {
        with_dx: false,
        ..one_by_one(2, 5, 6, 11, 7, Some(C4), 13)
    });
    run_conv(ConvCase {
        with_dx: false,
        ..general(2, 7, 5, 6, 9, 3, 1, 1, 14)
    });
    run_conv(ConvCase {
        with_dx: false,
        ..general(2, 9, 7, 3, 5, 7, 2, 3, 15)
    });
}

/// Hand-made example: one 1 per channel, identity weights, 4C with centre on 5 channels
/// (one channel per group). Checks the direction of each group, that nothing wraps across row or
/// image borders, for both the fast kernel and the reference.
#[test]
fn shift_directions_by_hand() {
    let (n, h, w, c) = (2, 4, 5, 5);
    let gx = Geom::new(n, h, w, c);
    let groups = C4.groups(c);
    assert_eq!(
        groups
            .iter()
            .map(|g| (g.dh, g.dw, g.c1 - g.c0))
            .collect::<Vec<_>>(),
        vec![(1, 0, 1), (0, -1, 1), (-1, 0, 1), (0, 1, 1), (0, 0, 1)]
    );
    let mut eye = vec![0.0f32; c * c];
    for ch in 0..c {
        eye[ch * c + ch] = 1.0;
    }
    let run = |x: &[f32]| -> (Vec<f32>, Vec<f64>) {
        let mut yh = nan_output(gx);
        conv::conv1x1_forward(&mut yh, &gx.from_dense(x), &eye, gx, c, &groups);
        assert_halo_zero(&yh, gx, "shift y");
        (
            gx.to_dense(&yh),
            refr::conv(&f64s(x), &f64s(&eye), gx, c, 1, 1, 0, Some(&groups)),
        )
    };
    let one_hot = |px: &[(usize, usize, usize, usize)]| {
        let mut v = vec![0.0f32; refr::numel(gx)];
        for &(i, y, x, ch) in px {
            v[refr::at(gx, i, y, x, ch)] = 1.0;
        }
        v
    };
    let check = |input: &[(usize, usize, usize, usize)],
                 expected: &[(usize, usize, usize, usize)],
                 what: &str| {
        let (fast, reference) = run(&one_hot(input));
        let want = one_hot(expected);
        assert!(!input.is_empty());
        assert_eq!(fast, want, "fast kernel: {what}");
        assert_eq!(reference, f64s(&want), "reference: {what}");
    };
    // Interior pixel (image 1, y 1, x 2) in every channel.
    let all = |i, y, x| (0..c).map(move |ch| (i, y, x, ch));
    check(
        &all(1, 1, 2).collect::<Vec<_>>(),
        &[
            (1, 2, 2, 0),
            (1, 1, 1, 1),
            (1, 0, 2, 2),
            (1, 1, 3, 3),
            (1, 1, 2, 4),
        ],
        "group 0 down, 1 left, 2 up, 3 right, 4 stays",
    );
    // Borders: each shifted pixel leaves the image and must vanish, not wrap.
    check(
        &[(0, 3, 2, 0)],
        &[],
        "down from the last row of image 0 (not into image 1's first row)",
    );
    check(
        &[(1, 2, 0, 1)],
        &[],
        "left from column 0 (not onto the previous row's last column)",
    );
    check(
        &[(1, 0, 3, 2)],
        &[],
        "up from the first row of image 1 (not into image 0's last row)",
    );
    check(
        &[(0, 1, 4, 3)],
        &[],
        "right from the last column (not onto the next row's column 0)",
    );
    check(
        &[(0, 3, 4, 3)],
        &[],
        "right from the last pixel of image 0 (not into image 1)",
    );
    // ...while the same pixels moving inwards land one step away.
    check(&[(0, 3, 2, 2)], &[(0, 2, 2, 2)], "up from the last row");
    check(&[(1, 2, 0, 3)], &[(1, 2, 1, 3)], "right from column 0");
    check(
        &[(0, 1, 4, 1)],
        &[(0, 1, 3, 1)],
        "left from the last column",
    );
    check(&[(1, 0, 3, 0)], &[(1, 1, 3, 0)], "down from the first row");
}

// ---------------------------------------------------------------- batch norm

#[test]
fn bn_train_forward_running_stats_and_backward() {
    let mut rng = Rng::new(21);
    let g = Geom::new(3, 5, 7, 13);
    // Non-zero mean, as after a conv, so E[x^2] - mean^2 is exercised.
    let x: Vec<f32> = randn(&mut rng, refr::numel(g), 1.5)
        .iter()
        .map(|v| v + 2.0)
        .collect();
    let gamma: Vec<f32> = (0..g.c).map(|_| 0.5 + rng.uniform()).collect();
    let beta = randn(&mut rng, g.c, 0.5);
    let r = randn(&mut rng, refr::numel(g), 1.0);
    let rm0 = randn(&mut rng, g.c, 0.3);
    let rv0: Vec<f32> = (0..g.c).map(|_| 0.5 + rng.uniform()).collect();
    let (x64, g64, b64, r64) = (f64s(&x), f64s(&gamma), f64s(&beta), f64s(&r));

    // (a) forward and running statistics
    let xh = g.from_dense(&x);
    let mut yh = nan_output(g);
    let mut cache = bn::BnCache::default();
    let (mut rm, mut rv) = (rm0.clone(), rv0.clone());
    bn::bn_forward_train(&mut yh, &mut cache, &xh, &gamma, &beta, &mut rm, &mut rv, g);
    assert_close(
        &g.to_dense(&yh),
        &refr::bn_train(&x64, &g64, &b64, g),
        TOL_ELEM,
        "bn train y",
    );
    assert_halo_zero(&yh, g, "bn train y");
    let (mean, var) = refr::channel_stats(&x64, g);
    let m = (g.n * g.h * g.w) as f64;
    let want_rm: Vec<f64> = (0..g.c)
        .map(|ch| 0.9 * rm0[ch] as f64 + 0.1 * mean[ch])
        .collect();
    let want_rv: Vec<f64> = (0..g.c)
        .map(|ch| 0.9 * rv0[ch] as f64 + 0.1 * var[ch] * m / (m - 1.0))
        .collect();
    // A handful of f32 operations on values ~2 (the stats themselves are summed in f64).
    assert_close(&rm, &want_rm, TOL_ELEM, "bn running_mean");
    assert_close(&rv, &want_rv, TOL_ELEM, "bn running_var (unbiased)");

    // (b) backward, accumulating onto random gradients
    let dy = g.from_dense(&r);
    let dx0 = g.from_dense(&randn(&mut rng, refr::numel(g), 1.0));
    let (dg0, db0) = (randn(&mut rng, g.c, 1.0), randn(&mut rng, g.c, 1.0));
    let (mut dx, mut dg, mut db) = (dx0.clone(), dg0.clone(), db0.clone());
    bn::bn_backward(
        &mut dx,
        &mut dg,
        &mut db,
        &dy,
        &xh,
        &gamma,
        &cache,
        g,
        GradMode::Add,
    );
    // dx = gamma invstd / M (M dy - sum dy - xhat sum(dy xhat)): f32 terms ~1 that cancel to
    // ~1, sums over M = 105 pixels accumulated per row in f32: a few 1e-6 of the scale.
    let lx = |xp: &[f64]| dot(&refr::bn_train(xp, &g64, &b64, g), &r64);
    check_grad(
        &mut rng,
        &g.to_dense(&added(&dx, &dx0)),
        lx,
        &x,
        FD_SMOOTH,
        TOL_GEMM,
        "bn dx",
    );
    assert_halo_zero(&dx, g, "bn dx");
    let lg = |gp: &[f64]| dot(&refr::bn_train(&x64, gp, &b64, g), &r64);
    check_grad(
        &mut rng,
        &added(&dg, &dg0),
        lg,
        &gamma,
        FD_LINEAR,
        TOL_GEMM,
        "bn dgamma",
    );
    let lb = |bp: &[f64]| dot(&refr::bn_train(&x64, &g64, bp, g), &r64);
    check_grad(
        &mut rng,
        &added(&db, &db0),
        lb,
        &beta,
        FD_LINEAR,
        TOL_GEMM,
        "bn dbeta",
    );
}

#[test]
fn bn_eval_forward() {
    let mut rng = Rng::new(22);
    let g = Geom::new(2, 6, 5, 7);
    let x: Vec<f32> = randn(&mut rng, refr::numel(g), 2.0)
        .iter()
        .map(|v| v - 1.0)
        .collect();
    let gamma: Vec<f32> = (0..g.c).map(|_| 0.5 + rng.uniform()).collect();
    let beta = randn(&mut rng, g.c, 0.5);
    let mean = randn(&mut rng, g.c, 1.0);
    let var: Vec<f32> = (0..g.c).map(|_| 0.2 + 3.0 * rng.uniform()).collect();
    let mut yh = nan_output(g);
    bn::bn_forward_eval(&mut yh, &g.from_dense(&x), &gamma, &beta, &mean, &var, g);
    let want = refr::bn_eval(
        &f64s(&x),
        &f64s(&gamma),
        &f64s(&beta),
        &f64s(&mean),
        &f64s(&var),
        g,
    );
    assert_close(&g.to_dense(&yh), &want, TOL_ELEM, "bn eval y");
    assert_halo_zero(&yh, g, "bn eval y");
}

// ---------------------------------------------------------------- relu, add

/// A scalar function of one tensor (the `L = sum(y * r)` of a layer).
type LossFn<'a> = dyn Fn(&[f64]) -> f64 + 'a;

/// Standard normals pushed at least 0.01 away from zero (relu's kink), see [`FD_KINK`].
fn away_from_zero(rng: &mut Rng, len: usize) -> Vec<f32> {
    randn(rng, len, 1.0)
        .into_iter()
        .map(|v| {
            if v.abs() < 0.01 {
                v + 0.02f32.copysign(v)
            } else {
                v
            }
        })
        .collect()
}

#[test]
fn relu_forward_backward() {
    let mut rng = Rng::new(31);
    let g = Geom::new(2, 5, 6, 9);
    let x = away_from_zero(&mut rng, refr::numel(g));
    let r = randn(&mut rng, refr::numel(g), 1.0);
    let xh = g.from_dense(&x);
    let mut yh = nan_output(g);
    ew::relu_forward(&mut yh, &xh);
    // max(x, 0) is exact in f32.
    assert_close(&g.to_dense(&yh), &refr::relu(&f64s(&x)), 0.0, "relu y");
    assert_halo_zero(&yh, g, "relu y");
    let dx0 = g.from_dense(&randn(&mut rng, refr::numel(g), 1.0));
    let mut dx = dx0.clone();
    ew::relu_backward(&mut dx, &g.from_dense(&r), &yh, GradMode::Add);
    let r64 = f64s(&r);
    let l = |xp: &[f64]| dot(&refr::relu(xp), &r64);
    // dx0 + dy rounds once in f32; subtracting dx0 again: a few u of values ~3.
    check_grad(
        &mut rng,
        &g.to_dense(&added(&dx, &dx0)),
        l,
        &x,
        FD_KINK,
        TOL_ELEM,
        "relu dx",
    );
    assert_halo_zero(&dx, g, "relu dx");
}

#[test]
fn add_forward_backward() {
    let mut rng = Rng::new(32);
    let g = Geom::new(3, 5, 4, 6);
    let (a, b, r) = (
        randn(&mut rng, refr::numel(g), 1.0),
        randn(&mut rng, refr::numel(g), 1.0),
        randn(&mut rng, refr::numel(g), 1.0),
    );
    let mut yh = nan_output(g);
    ew::add_forward(&mut yh, &g.from_dense(&a), &g.from_dense(&b));
    // One f32 rounding per entry.
    assert_close(
        &g.to_dense(&yh),
        &refr::add(&f64s(&a), &f64s(&b)),
        TOL_ELEM,
        "add y",
    );
    assert_halo_zero(&yh, g, "add y");
    // Backward of an add is `accumulate(dx, dy)` once per operand.
    let (a64, b64, r64) = (f64s(&a), f64s(&b), f64s(&r));
    let dy = g.from_dense(&r);
    let la = |p: &[f64]| dot(&refr::add(p, &b64), &r64);
    let lb = |p: &[f64]| dot(&refr::add(&a64, p), &r64);
    let operands: [(&[f32], &LossFn<'_>, &str); 2] = [(&a, &la, "add da"), (&b, &lb, "add db")];
    for (operand, l, name) in operands {
        let dx0 = g.from_dense(&randn(&mut rng, refr::numel(g), 1.0));
        let mut dx = dx0.clone();
        ew::accumulate(&mut dx, &dy, GradMode::Add);
        check_grad(
            &mut rng,
            &g.to_dense(&added(&dx, &dx0)),
            l,
            operand,
            FD_LINEAR,
            TOL_ELEM,
            name,
        );
        assert_halo_zero(&dx, g, name);
    }
}

// ---------------------------------------------------------------- pools

#[test]
fn avgpool2_forward_backward() {
    let mut rng = Rng::new(41);
    // Odd sizes: the last row and column are dropped (floor), as in PyTorch.
    for (seed, gx) in [(0, Geom::new(2, 7, 5, 6)), (1, Geom::new(3, 6, 6, 5))] {
        let gy = refr::avgpool2_out(gx);
        let x = randn(&mut rng, refr::numel(gx), 1.0);
        let r = randn(&mut rng, refr::numel(gy), 1.0);
        let mut yh = nan_output(gy);
        pool::avgpool2_forward(&mut yh, &gx.from_dense(&x), gx);
        // Four-term f32 sum times 0.25.
        assert_close(
            &gy.to_dense(&yh),
            &refr::avgpool2(&f64s(&x), gx),
            TOL_ELEM,
            &format!("avgpool y {seed}"),
        );
        assert_halo_zero(&yh, gy, "avgpool y");
        let dx0 = gx.from_dense(&randn(&mut rng, refr::numel(gx), 1.0));
        let mut dx = dx0.clone();
        pool::avgpool2_backward(&mut dx, &gy.from_dense(&r), gx, GradMode::Add);
        let r64 = f64s(&r);
        let l = |xp: &[f64]| dot(&refr::avgpool2(xp, gx), &r64);
        let ddx = gx.to_dense(&added(&dx, &dx0));
        check_grad(
            &mut rng,
            &ddx,
            l,
            &x,
            FD_LINEAR,
            TOL_ELEM,
            &format!("avgpool dx {seed}"),
        );
        assert_halo_zero(&dx, gx, "avgpool dx");
        // Dropped rows/columns get no gradient.
        if gx.h % 2 == 1 {
            for i in 0..gx.n {
                for xx in 0..gx.w {
                    for ch in 0..gx.c {
                        assert_eq!(ddx[refr::at(gx, i, gx.h - 1, xx, ch)], 0.0);
                    }
                }
            }
        }
    }
}

#[test]
fn maxpool3s2_forward_backward() {
    let mut rng = Rng::new(42);
    for (seed, gx) in [(0, Geom::new(2, 7, 6, 5)), (1, Geom::new(3, 6, 5, 7))] {
        let gy = refr::maxpool3s2_out(gx);
        let x = randn(&mut rng, refr::numel(gx), 1.0);
        let r = randn(&mut rng, refr::numel(gy), 1.0);
        let x64 = f64s(&x);
        // FD precondition: within each window the max beats the runner-up by more than 2h.
        let mut gaps = f64::INFINITY;
        for i in 0..gx.n {
            for oy in 0..gy.h {
                for ox in 0..gy.w {
                    for ch in 0..gx.c {
                        let mut v: Vec<f64> = Vec::new();
                        for iy in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(gx.h) {
                            for ix in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(gx.w) {
                                v.push(x64[refr::at(gx, i, iy, ix, ch)]);
                            }
                        }
                        v.sort_by(|a, b| b.total_cmp(a));
                        if v.len() > 1 {
                            gaps = gaps.min(v[0] - v[1]);
                        }
                    }
                }
            }
        }
        assert!(
            gaps > 2.0 * FD_KINK,
            "pick another seed: window max gap {gaps}"
        );
        let mut yh = nan_output(gy);
        pool::maxpool3s2_forward(&mut yh, &gx.from_dense(&x), gx);
        // A max is exact.
        assert_close(
            &gy.to_dense(&yh),
            &refr::maxpool3s2(&x64, gx),
            0.0,
            &format!("maxpool y {seed}"),
        );
        assert_halo_zero(&yh, gy, "maxpool y");
        let dx0 = gx.from_dense(&randn(&mut rng, refr::numel(gx), 1.0));
        let mut dx = dx0.clone();
        pool::maxpool3s2_backward(
            &mut dx,
            &gy.from_dense(&r),
            &gx.from_dense(&x),
            gx,
            GradMode::Add,
        );
        let r64 = f64s(&r);
        let l = |xp: &[f64]| dot(&refr::maxpool3s2(xp, gx), &r64);
        // dx0 plus up to four routed gradients (overlapping windows), f32 rounding of each add.
        check_grad(
            &mut rng,
            &gx.to_dense(&added(&dx, &dx0)),
            l,
            &x,
            FD_KINK,
            TOL_ELEM,
            &format!("maxpool dx {seed}"),
        );
        assert_halo_zero(&dx, gx, "maxpool dx");
    }
}

/// Ties (e.g. the zeros after a ReLU): each window routes its gradient to its first tap in
/// row-major order, as PyTorch does, so the gradient is neither lost nor duplicated.
#[test]
fn maxpool3s2_ties_go_to_first_tap() {
    let gx = Geom::new(1, 5, 5, 2);
    let gy = refr::maxpool3s2_out(gx);
    let x = vec![0.0f32; refr::numel(gx)];
    let r = vec![1.0f32; refr::numel(gy)];
    let mut dx = vec![0.0f32; gx.len()];
    pool::maxpool3s2_backward(
        &mut dx,
        &gy.from_dense(&r),
        &gx.from_dense(&x),
        gx,
        GradMode::Add,
    );
    let mut want = vec![0.0f32; refr::numel(gx)];
    for oy in 0..gy.h {
        for ox in 0..gy.w {
            for ch in 0..gx.c {
                want[refr::at(
                    gx,
                    0,
                    (2 * oy).saturating_sub(1),
                    (2 * ox).saturating_sub(1),
                    ch,
                )] += 1.0;
            }
        }
    }
    assert_eq!(gx.to_dense(&dx), want);
    assert_eq!(want.iter().sum::<f32>(), refr::numel(gy) as f32);
    assert_halo_zero(&dx, gx, "maxpool tie dx");
}

#[test]
fn gap_forward_backward() {
    let mut rng = Rng::new(43);
    let gx = Geom::new(3, 7, 6, 11);
    let gy = Geom { h: 1, w: 1, ..gx };
    let x = randn(&mut rng, refr::numel(gx), 1.0);
    let r = randn(&mut rng, gx.n * gx.c, 1.0);
    let mut yh = nan_output(gy);
    pool::gap_forward(&mut yh, &gx.from_dense(&x), gx);
    // 42-term f32 sum: error <= 42 u sum|x| / 42 ~ 3e-6 of values ~0.5-1.
    assert_close(
        &gy.to_dense(&yh),
        &refr::gap(&f64s(&x), gx),
        TOL_ELEM,
        "gap y",
    );
    assert_halo_zero(&yh, gy, "gap y");
    let dx0 = gx.from_dense(&randn(&mut rng, refr::numel(gx), 1.0));
    let mut dx = dx0.clone();
    pool::gap_backward(&mut dx, &gy.from_dense(&r), gx, GradMode::Add);
    let r64 = f64s(&r);
    let l = |xp: &[f64]| dot(&refr::gap(xp, gx), &r64);
    // dy / 42 added onto dx0 ~ 1: the rounding of the add is u * 3 against a scale of ~0.06.
    check_grad(
        &mut rng,
        &gx.to_dense(&added(&dx, &dx0)),
        l,
        &x,
        FD_LINEAR,
        TOL_GEMM,
        "gap dx",
    );
    assert_halo_zero(&dx, gx, "gap dx");
}

// ---------------------------------------------------------------- linear, loss

#[test]
fn linear_forward_backward() {
    let mut rng = Rng::new(51);
    let (n, cin, cout) = (3, 17, 10);
    let (gx, gy) = (Geom::new(n, 1, 1, cin), Geom::new(n, 1, 1, cout));
    let x = randn(&mut rng, n * cin, 1.0);
    let w = randn(&mut rng, cin * cout, 1.0 / (cin as f32).sqrt());
    let b = randn(&mut rng, cout, 1.0);
    let r = randn(&mut rng, n * cout, 1.0);
    let (x64, w64, b64, r64) = (f64s(&x), f64s(&w), f64s(&b), f64s(&r));
    let xh = gx.from_dense(&x);
    let mut yh = nan_output(gy);
    linear::linear_forward(&mut yh, &xh, &w, &b, gx, cout);
    assert_close(
        &gy.to_dense(&yh),
        &refr::linear(&x64, &w64, &b64, n, cin, cout),
        TOL_GEMM,
        "linear y",
    );
    assert_halo_zero(&yh, gy, "linear y");
    let dy = gy.from_dense(&r);
    for with_dx in [true, false] {
        let (dw0, db0) = (randn(&mut rng, w.len(), 1.0), randn(&mut rng, cout, 1.0));
        let dx0 = gx.from_dense(&randn(&mut rng, n * cin, 1.0));
        let (mut dw, mut db, mut dx) = (dw0.clone(), db0.clone(), dx0.clone());
        let dxo = if with_dx {
            Some(dx.as_mut_slice())
        } else {
            None
        };
        linear::linear_backward(dxo, &mut dw, &mut db, &dy, &xh, &w, gx, cout, GradMode::Add);
        let lw = |p: &[f64]| dot(&refr::linear(&x64, p, &b64, n, cin, cout), &r64);
        check_grad(
            &mut rng,
            &added(&dw, &dw0),
            lw,
            &w,
            FD_LINEAR,
            TOL_GEMM,
            "linear dw",
        );
        let lb = |p: &[f64]| dot(&refr::linear(&x64, &w64, p, n, cin, cout), &r64);
        check_grad(
            &mut rng,
            &added(&db, &db0),
            lb,
            &b,
            FD_LINEAR,
            TOL_GEMM,
            "linear db",
        );
        if with_dx {
            let lx = |p: &[f64]| dot(&refr::linear(p, &w64, &b64, n, cin, cout), &r64);
            check_grad(
                &mut rng,
                &gx.to_dense(&added(&dx, &dx0)),
                lx,
                &x,
                FD_LINEAR,
                TOL_GEMM,
                "linear dx",
            );
            assert_halo_zero(&dx, gx, "linear dx");
        }
    }
}

#[test]
fn softmax_xent_loss_and_gradient() {
    let mut rng = Rng::new(61);
    let (n, classes) = (5, 10);
    let labels: Vec<u8> = (0..n).map(|_| rng.below(classes) as u8).collect();
    let base = randn(&mut rng, n * classes, 3.0);
    // Large logits too: the max subtraction must keep exp() finite.
    for offset in [0.0f32, 80.0] {
        let logits: Vec<f32> = base.iter().map(|v| v + offset).collect();
        let z64 = f64s(&logits);
        let mut dz = vec![f32::NAN; n * classes];
        let (l, correct) = loss::softmax_xent(&mut dz, &logits, &labels, classes);
        // `z - max` is formed in f32 (one rounding of values up to ~20: ~1e-6 absolute), the
        // rest in f64, and the mean rounded once to f32.
        let want = refr::softmax_xent(&z64, &labels, classes);
        assert!(want > 0.1 && l.is_finite());
        assert!(
            ((l as f64) - want).abs() <= 1e-5 * want,
            "loss {l} vs {want} (offset {offset})"
        );
        let want_correct = (0..n)
            .filter(|&i| {
                let z = &z64[i * classes..(i + 1) * classes];
                let best = (0..classes).fold(0, |b, k| if z[k] > z[b] { k } else { b });
                best == labels[i] as usize
            })
            .count();
        assert_eq!(correct, want_correct);
        // dlogits: f64 rounded to f32 (u relative) against a smooth-function FD.
        let f = |zp: &[f64]| refr::softmax_xent(zp, &labels, classes);
        check_grad(
            &mut rng,
            &dz,
            f,
            &logits,
            FD_SMOOTH,
            TOL_ELEM,
            &format!("softmax dlogits (offset {offset})"),
        );
    }
}
