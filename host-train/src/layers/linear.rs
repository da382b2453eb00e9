//! Fully connected layer on (n, 1, 1, cin) tensors: `y = x W + b`, W: [cin, cout].
use super::{sgemm, Geom, GradMode};

/// x: geometry (n, 1, 1, cin); y: (n, 1, 1, cout).
pub fn linear_forward(y: &mut [f32], x: &[f32], w: &[f32], b: &[f32], gx: Geom, cout: usize) {
    let gy = Geom { c: cout, ..gx };
    let cin = gx.c;
    assert_eq!(
        (x.len(), y.len(), w.len(), b.len()),
        (gx.len(), gy.len(), cin * cout, cout)
    );
    // SAFETY: n rows at stride img*c from the first image pixel stay inside x and y.
    unsafe {
        sgemm(
            gx.n,
            cout,
            cin,
            y[gy.lead() * cout..].as_mut_ptr(),
            (gy.img() * cout) as isize,
            1,
            false,
            x[gx.lead() * cin..].as_ptr(),
            (gx.img() * cin) as isize,
            1,
            w.as_ptr(),
            cout as isize,
            1,
        )
    };
    for i in 0..gx.n {
        let o = gy.at(i, 0, 0) * cout;
        for (v, bb) in y[o..o + cout].iter_mut().zip(b) {
            *v += bb;
        }
    }
}

/// `dw += x^T dy`, `db += sum dy`, `dx += dy W^T` (if given).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    gx: Geom,
    cout: usize,
    mode: GradMode,
) {
    let gy = Geom { c: cout, ..gx };
    let cin = gx.c;
    let (xs, ys) = ((gx.img() * cin) as isize, (gy.img() * cout) as isize);
    let (x0, y0) = (gx.lead() * cin, gy.lead() * cout);
    // SAFETY: as in the forward; x^T is read with row stride 1 and column stride img*cin.
    unsafe {
        sgemm(
            cin,
            cout,
            gx.n,
            dw.as_mut_ptr(),
            cout as isize,
            1,
            true,
            x[x0..].as_ptr(),
            1,
            xs,
            dy[y0..].as_ptr(),
            ys,
            1,
        )
    };
    for i in 0..gx.n {
        let o = gy.at(i, 0, 0) * cout;
        for (a, g) in db.iter_mut().zip(&dy[o..o + cout]) {
            *a += g;
        }
    }
    if let Some(dx) = dx {
        // SAFETY: dx rows as x's; W^T read as (cout x cin).
        unsafe {
            sgemm(
                gx.n,
                cin,
                cout,
                dx[x0..].as_mut_ptr(),
                xs,
                1,
                mode == GradMode::Add,
                dy[y0..].as_ptr(),
                ys,
                1,
                w.as_ptr(),
                1,
                cout as isize,
            )
        };
    }
}
