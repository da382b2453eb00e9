//! A plain integer interpreter of a [`QModel`], written straight from the semantics in
//! `firmware::format`, one tensor per `Vec`, no arena. It is the host-side reference the firmware
//! engine is checked against bit for bit (tests/), and what the quantizer's own unit tests run.
use crate::quant::QModel;
use crate::requant::{mbqm, round_div};
use firmware::format::{shift_groups, Op, Requant, Span};

fn i8s<'a>(w: &'a [u8], s: Span) -> impl Iterator<Item = i8> + 'a {
    w[s.offset as usize..(s.offset + s.count) as usize]
        .iter()
        .map(|&b| b as i8)
}

/// The i32 array `s` of weight section `w` (multipliers, shifts, biases).
pub fn i32s(w: &[u8], s: Span) -> Vec<i32> {
    w[s.offset as usize..s.offset as usize + 4 * s.count as usize]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn requantize(acc: i32, rq: &Requant, m: &[i32], s: &[i32], zp: i8, co: usize) -> i8 {
    mbqm(acc, m[co], s[co])
        .saturating_add(zp as i32)
        .clamp(rq.act_min as i32, rq.act_max as i32) as i8
}

/// Runs one image (`input`: u8 HWC) and calls `hook(op_index, output)` after every op.
/// Returns the int8 logits.
pub fn run(m: &QModel, input: &[u8], mut hook: impl FnMut(usize, &[i8])) -> Vec<i8> {
    let wb = &m.weights;
    let mut vals: Vec<Vec<i32>> = vec![vec![]; m.tensors.len()];
    vals[m.header.input as usize] = input.iter().map(|&v| v as i32).collect();
    for (i, op) in m.ops.iter().enumerate() {
        let y: Vec<i32> = match *op {
            Op::Conv {
                x,
                y,
                k,
                stride,
                pad,
                shift,
                weights,
                bias,
                ref requant,
                pad_value,
            } => {
                let (tx, ty) = (m.tensors[x as usize], m.tensors[y as usize]);
                let (h, w, cin) = (tx.h as isize, tx.w as isize, tx.c as usize);
                let (k, stride, pad) = (k as usize, stride as isize, pad as isize);
                let cout = ty.c as usize;
                let xin = &vals[x as usize];
                let padv: Vec<i32> = if x == m.header.input {
                    wb[pad_value.offset as usize..][..cin]
                        .iter()
                        .map(|&b| b as i32)
                        .collect()
                } else {
                    i8s(wb, pad_value).map(|v| v as i32).collect()
                };
                let wq: Vec<i32> = i8s(wb, weights).map(|v| v as i32).collect();
                let b = i32s(wb, bias);
                let (mm, ms) = (i32s(wb, requant.multiplier), i32s(wb, requant.shift));
                // Per input channel: where a 1x1 shifted conv reads it from.
                let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
                let ng = shift_groups(shift, cin, &mut groups);
                let mut d = vec![(0isize, 0isize); cin];
                for &(dh, dw, c0, c1) in &groups[..ng] {
                    d[c0..c1]
                        .iter_mut()
                        .for_each(|v| *v = (dh as isize, dw as isize));
                }
                let mut out = Vec::with_capacity(ty.bytes());
                let mut patch = vec![0i32; k * k * cin];
                for oy in 0..ty.h as isize {
                    for ox in 0..ty.w as isize {
                        for ky in 0..k {
                            for kx in 0..k {
                                for ci in 0..cin {
                                    let (dh, dw) = d[ci];
                                    let iy = oy * stride - pad + ky as isize - dh;
                                    let ix = ox * stride - pad + kx as isize - dw;
                                    patch[(ky * k + kx) * cin + ci] =
                                        if iy < 0 || ix < 0 || iy >= h || ix >= w {
                                            padv[ci]
                                        } else {
                                            xin[((iy * w + ix) as usize) * cin + ci]
                                        };
                                }
                            }
                        }
                        for co in 0..cout {
                            let wc = &wq[co * patch.len()..(co + 1) * patch.len()];
                            let acc =
                                b[co] + wc.iter().zip(&patch).map(|(a, b)| a * b).sum::<i32>();
                            out.push(requantize(acc, requant, &mm, &ms, ty.zero_point, co) as i32);
                        }
                    }
                }
                out
            }
            Op::FullyConnected {
                x,
                y,
                weights,
                bias,
                ref requant,
            } => {
                let ty = m.tensors[y as usize];
                let xin = &vals[x as usize];
                let cin = xin.len();
                let wq: Vec<i32> = i8s(wb, weights).map(|v| v as i32).collect();
                let b = i32s(wb, bias);
                let (mm, ms) = (i32s(wb, requant.multiplier), i32s(wb, requant.shift));
                (0..ty.c as usize)
                    .map(|co| {
                        let acc = b[co]
                            + wq[co * cin..(co + 1) * cin]
                                .iter()
                                .zip(xin)
                                .map(|(a, b)| a * b)
                                .sum::<i32>();
                        requantize(acc, requant, &mm, &ms, ty.zero_point, co) as i32
                    })
                    .collect()
            }
            Op::Add {
                a,
                b,
                y,
                left_shift,
                multipliers: r,
                act_min,
                act_max,
            } => {
                let (za, zb, zy) = (
                    m.tensors[a as usize].zero_point as i32,
                    m.tensors[b as usize].zero_point as i32,
                    m.tensors[y as usize].zero_point as i32,
                );
                vals[a as usize]
                    .iter()
                    .zip(&vals[b as usize])
                    .map(|(&qa, &qb)| {
                        let sa = mbqm((qa - za) << left_shift, r.a_multiplier, r.a_shift);
                        let sb = mbqm((qb - zb) << left_shift, r.b_multiplier, r.b_shift);
                        mbqm(sa + sb, r.out_multiplier, r.out_shift)
                            .saturating_add(zy)
                            .clamp(act_min as i32, act_max as i32)
                    })
                    .collect()
            }
            Op::AvgPool2 { x, y } => {
                let (tx, ty) = (m.tensors[x as usize], m.tensors[y as usize]);
                let (w, c) = (tx.w as usize, tx.c as usize);
                let xin = &vals[x as usize];
                let mut out = Vec::with_capacity(ty.bytes());
                for oy in 0..ty.h as usize {
                    for ox in 0..ty.w as usize {
                        for ch in 0..c {
                            let at = |dy: usize, dx: usize| {
                                xin[((2 * oy + dy) * w + 2 * ox + dx) * c + ch]
                            };
                            let s = at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1);
                            out.push(round_div(s, 4).clamp(-128, 127));
                        }
                    }
                }
                out
            }
            Op::MaxPool3s2 { x, y } => {
                let (tx, ty) = (m.tensors[x as usize], m.tensors[y as usize]);
                let (h, w, c) = (tx.h as isize, tx.w as isize, tx.c as usize);
                let xin = &vals[x as usize];
                let mut out = Vec::with_capacity(ty.bytes());
                for oy in 0..ty.h as isize {
                    for ox in 0..ty.w as isize {
                        for ch in 0..c {
                            let mut best = i32::MIN;
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = (2 * oy - 1 + ky, 2 * ox - 1 + kx);
                                    if iy >= 0 && ix >= 0 && iy < h && ix < w {
                                        best = best.max(xin[((iy * w + ix) as usize) * c + ch]);
                                    }
                                }
                            }
                            out.push(best);
                        }
                    }
                }
                out
            }
            Op::GlobalAvgPool { x, .. } => {
                let tx = m.tensors[x as usize];
                let (n, c) = (tx.h as usize * tx.w as usize, tx.c as usize);
                let xin = &vals[x as usize];
                (0..c)
                    .map(|ch| {
                        let s: i32 = (0..n).map(|p| xin[p * c + ch]).sum();
                        round_div(s, n as i32).clamp(-128, 127)
                    })
                    .collect()
            }
        };
        let out8: Vec<i8> = y.iter().map(|&v| v as i8).collect();
        hook(i, &out8);
        vals[m.op_output(i)] = y;
    }
    vals[m.header.output as usize]
        .iter()
        .map(|&v| v as i8)
        .collect()
}
