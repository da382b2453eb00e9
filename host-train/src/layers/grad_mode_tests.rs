//! `GradMode::Write` must give exactly what `GradMode::Add` gives on a zeroed gradient, whatever
//! the gradient buffer held before (here NaN in every image element), and keep halos zero.
use super::{bn, conv, elementwise as ew, linear, pool, Geom, GradMode};
use crate::data::Rng;
use crate::graph::{Neighbourhood, ShiftSpec};

fn random(g: Geom, rng: &mut Rng) -> Vec<f32> {
    let dense: Vec<f32> = (0..g.n * g.h * g.w * g.c).map(|_| rng.normal()).collect();
    g.from_dense(&dense)
}

fn nan_interior(g: Geom) -> Vec<f32> {
    g.from_dense(&vec![f32::NAN; g.n * g.h * g.w * g.c])
}

/// Runs `f` once in Add mode on zeros and once in Write mode on NaN, and compares bitwise.
fn check(name: &str, g: Geom, f: impl Fn(&mut [f32], GradMode)) {
    let mut add = vec![0.0; g.len()];
    f(&mut add, GradMode::Add);
    let mut write = nan_interior(g);
    f(&mut write, GradMode::Write);
    let nonzero = add.iter().filter(|v| **v != 0.0).count();
    assert!(
        nonzero > 0,
        "{name}: the gradient is all zero, the test proves nothing"
    );
    for (i, (a, b)) in add.iter().zip(&write).enumerate() {
        assert!(
            a.to_bits() == b.to_bits(),
            "{name}: element {i}: add {a} vs write {b}"
        );
    }
}

#[test]
fn write_mode_equals_add_on_zero() {
    let mut rng = Rng::new(5);
    let gx = Geom::new(3, 6, 4, 10);
    let dy = random(gx, &mut rng);
    let x = random(gx, &mut rng);
    check("relu", gx, |dx, m| ew::relu_backward(dx, &dy, &x, m));
    check("accumulate", gx, |dx, m| ew::accumulate(dx, &dy, m));

    let (gamma, beta): (Vec<f32>, Vec<f32>) = (0..10).map(|_| (rng.normal(), rng.normal())).unzip();
    let (mut rm, mut rv) = (vec![0.0; 10], vec![1.0; 10]);
    let mut cache = bn::BnCache::default();
    let mut y = vec![0.0; gx.len()];
    bn::bn_forward_train(&mut y, &mut cache, &x, &gamma, &beta, &mut rm, &mut rv, gx);
    check("bn", gx, |dx, m| {
        let (mut dg, mut db) = (vec![0.0; 10], vec![0.0; 10]);
        bn::bn_backward(dx, &mut dg, &mut db, &dy, &x, &gamma, &cache, gx, m)
    });

    let gy = Geom { h: 3, w: 2, ..gx };
    let dyp = random(gy, &mut rng);
    check("avgpool2", gx, |dx, m| {
        pool::avgpool2_backward(dx, &dyp, gx, m)
    });
    let gm = Geom { h: 3, w: 2, ..gx };
    let dym = random(gm, &mut rng);
    check("maxpool", gx, |dx, m| {
        pool::maxpool3s2_backward(dx, &dym, &x, gx, m)
    });
    let g1 = Geom { h: 1, w: 1, ..gx };
    let dyg = random(g1, &mut rng);
    check("gap", gx, |dx, m| pool::gap_backward(dx, &dyg, gx, m));

    let cout = 7;
    let gyc = Geom { c: cout, ..gx };
    let dyc = random(gyc, &mut rng);
    let w: Vec<f32> = (0..10 * cout).map(|_| rng.normal()).collect();
    let groups = ShiftSpec {
        kind: Neighbourhood::C4,
        centre_group: true,
    }
    .groups(10);
    check("conv1x1 shifted", gx, |dx, m| {
        let mut dw = vec![0.0; w.len()];
        conv::conv1x1_backward(Some(dx), &mut dw, &dyc, &x, &w, gx, cout, &groups, m)
    });
    let w3: Vec<f32> = (0..9 * 10 * cout).map(|_| rng.normal()).collect();
    let s = conv::ConvShape {
        gx,
        gy: gyc,
        k: 3,
        stride: 1,
        pad: 1,
    };
    check("conv3x3", gx, |dx, m| {
        let mut dw = vec![0.0; w3.len()];
        conv::conv_backward(Some(dx), &mut dw, &dyc, &x, &w3, s, m)
    });

    let gl = Geom::new(3, 1, 1, 10);
    let xl = random(gl, &mut rng);
    let dyl = random(Geom { c: cout, ..gl }, &mut rng);
    check("linear", gl, |dx, m| {
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; cout]);
        linear::linear_backward(Some(dx), &mut dw, &mut db, &dyl, &xl, &w, gl, cout, m)
    });
}
