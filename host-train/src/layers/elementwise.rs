//! ReLU and residual add. Both map zero to zero, so they run over whole halo buffers.
use super::GradMode;
use rayon::prelude::*;

const CHUNK: usize = 1 << 14;

pub fn relu_forward(y: &mut [f32], x: &[f32]) {
    y.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (a, b) in y.iter_mut().zip(x) {
                *a = b.max(0.0);
            }
        });
}

/// `dx (+)= dy * (y > 0)`
pub fn relu_backward(dx: &mut [f32], dy: &[f32], y: &[f32], mode: GradMode) {
    dx.par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK).zip(y.par_chunks(CHUNK)))
        .for_each(|(dx, (dy, y))| {
            let it = dx.iter_mut().zip(dy).zip(y);
            // One plain loop per mode, branch-free inside, so each vectorises.
            match mode {
                GradMode::Write => it.for_each(|((a, g), v)| *a = if *v > 0.0 { *g } else { 0.0 }),
                GradMode::Add => it.for_each(|((a, g), v)| *a += if *v > 0.0 { *g } else { 0.0 }),
            }
        });
}

pub fn add_forward(y: &mut [f32], a: &[f32], b: &[f32]) {
    y.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(y, (a, b))| {
            for ((o, p), q) in y.iter_mut().zip(a).zip(b) {
                *o = p + q;
            }
        });
}

/// `dx (+)= dy` (used once per operand of an add).
pub fn accumulate(dx: &mut [f32], dy: &[f32], mode: GradMode) {
    dx.par_chunks_mut(CHUNK)
        .zip(dy.par_chunks(CHUNK))
        .for_each(|(d, g)| match mode {
            GradMode::Write => d.copy_from_slice(g),
            GradMode::Add => {
                for (a, b) in d.iter_mut().zip(g) {
                    *a += b;
                }
            }
        });
}
