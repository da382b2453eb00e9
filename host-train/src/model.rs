//! A network ready to run: its graph, its parameters in one allocation, and the per-batch
//! workspace of activations and gradients. `forward` and `backward` walk the op list.
use crate::data::Rng;
use crate::graph::{Graph, Op, ParamInfo, ShiftSpec};
use crate::layers::{bn, conv, elementwise as ew, linear, loss, pool, Geom, GradMode};
use crate::zoo::Arch;

/// All parameters (and BN running statistics) in one flat buffer, with a view per tensor.
#[derive(Clone, Debug)]
pub struct Params {
    pub info: Vec<ParamInfo>,
    pub offsets: Vec<usize>,
    pub data: Vec<f32>,
}

impl Params {
    pub fn new(info: Vec<ParamInfo>) -> Params {
        let mut offsets = Vec::with_capacity(info.len());
        let mut total = 0;
        for p in &info {
            offsets.push(total);
            total += p.numel();
        }
        Params {
            info,
            offsets,
            data: vec![0.0; total],
        }
    }
    pub fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets[i] + self.info[i].numel()
    }
    pub fn get(&self, i: usize) -> &[f32] {
        &self.data[self.range(i)]
    }
    pub fn get_mut(&mut self, i: usize) -> &mut [f32] {
        let r = self.range(i);
        &mut self.data[r]
    }
    pub fn index(&self, name: &str) -> Option<usize> {
        self.info.iter().position(|p| p.name == name)
    }
    /// A zeroed buffer of the same layout (gradients, momentum).
    pub fn zeros_like(&self) -> Vec<f32> {
        vec![0.0; self.data.len()]
    }
}

/// Input normalisation: `(pixel / 255 - mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

pub struct Model {
    pub arch: Arch,
    pub graph: Graph,
    pub params: Params,
    /// First parameter index of each op (conv: weight; BN: gamma, beta, mean, var; FC: w, b).
    op_param: Vec<usize>,
}

/// Activations, their gradients and BN caches for one batch size.
pub struct Workspace {
    pub n: usize,
    pub geoms: Vec<Geom>,
    pub vals: Vec<Vec<f32>>,
    pub grads: Vec<Vec<f32>>,
    bn: Vec<bn::BnCache>,
    pub logits: Vec<f32>,
    dlogits: Vec<f32>,
    /// Seconds spent in each op (forward, backward), when profiling is on.
    pub profile: Option<Vec<(f64, f64)>>,
}

impl Model {
    pub fn new(arch: Arch) -> Model {
        let graph = arch.graph();
        let params = Params::new(graph.params());
        let op_param = graph.op_param_index();
        Model {
            arch,
            graph,
            params,
            op_param,
        }
    }

    /// Kaiming-normal (fan_out, ReLU gain) conv weights as the authors' code; BN gamma 1, beta 0,
    /// running var 1; FC as PyTorch's default (uniform +-1/sqrt(fan_in)).
    pub fn init(&mut self, seed: u64) {
        let mut rng = Rng::new(seed);
        for i in 0..self.params.info.len() {
            let info = self.params.info[i].clone();
            let prev_fc_fan_in = i
                .checked_sub(1)
                .map(|j| &self.params.info[j].shape)
                .filter(|s| s.len() == 2)
                .map(|s| s[0]);
            let v = self.params.get_mut(i);
            let name = info.name.as_str();
            if name.ends_with(".running_var") {
                v.fill(1.0);
            } else if name.ends_with(".running_mean") {
                v.fill(0.0);
            } else if info.shape.len() == 4 {
                let fan_out = info.shape[0] * info.shape[1] * info.shape[3];
                let std = (2.0 / fan_out as f32).sqrt();
                v.iter_mut().for_each(|w| *w = rng.normal() * std);
            } else if info.shape.len() == 2 {
                let bound = 1.0 / (info.shape[0] as f32).sqrt();
                v.iter_mut()
                    .for_each(|w| *w = (rng.uniform() * 2.0 - 1.0) * bound);
            } else if let Some(fan_in) = prev_fc_fan_in {
                // The FC bias (its weight comes just before it): same bound as the weight.
                let bound = 1.0 / (fan_in as f32).sqrt();
                v.iter_mut()
                    .for_each(|w| *w = (rng.uniform() * 2.0 - 1.0) * bound);
            } else if name.ends_with(".weight") {
                v.fill(1.0);
            } else {
                v.fill(0.0);
            }
        }
    }

    pub fn workspace(&self, n: usize) -> Workspace {
        let geoms: Vec<Geom> = self
            .graph
            .tensors
            .iter()
            .map(|s| Geom::new(n, s.h, s.w, s.c))
            .collect();
        let vals = geoms.iter().map(|g| vec![0.0; g.len()]).collect();
        let grads = geoms.iter().map(|g| vec![0.0; g.len()]).collect();
        let classes = self.graph.classes();
        Workspace {
            n,
            geoms,
            vals,
            grads,
            bn: vec![bn::BnCache::default(); self.graph.ops.len()],
            logits: vec![0.0; n * classes],
            dlogits: vec![0.0; n * classes],
            profile: None,
        }
    }

    fn shift_groups(&self, shift: &Option<ShiftSpec>, cin: usize) -> Vec<crate::graph::ShiftGroup> {
        match shift {
            Some(s) => s.groups(cin),
            None => vec![crate::graph::ShiftGroup {
                dh: 0,
                dw: 0,
                c0: 0,
                c1: cin,
            }],
        }
    }

    /// Runs the network on `input` (dense u8 NHWC, `ws.n` images). `train` uses batch
    /// statistics and updates the BN running estimates. The logits land in `ws.logits`.
    pub fn forward(&mut self, ws: &mut Workspace, input: &[u8], norm: &Normalization, train: bool) {
        let g0 = ws.geoms[self.graph.input];
        assert_eq!(input.len(), g0.n * g0.h * g0.w * g0.c, "input batch size");
        let x0 = &mut ws.vals[self.graph.input];
        let c = g0.c;
        for (r, start) in g0.rows().enumerate() {
            let src = &input[r * g0.w * c..(r + 1) * g0.w * c];
            for (k, (d, s)) in x0[start..start + g0.w * c].iter_mut().zip(src).enumerate() {
                let ch = k % c;
                *d = (*s as f32 / 255.0 - norm.mean[ch]) / norm.std[ch];
            }
        }
        for (oi, op) in self.graph.ops.iter().enumerate() {
            let yi = op.output();
            let t0 = ws.profile.as_ref().map(|_| std::time::Instant::now());
            // Take the output buffer out so inputs can be borrowed alongside it.
            let mut y = std::mem::take(&mut ws.vals[yi]);
            let p0 = self.op_param[oi];
            match op {
                Op::Conv {
                    x,
                    k,
                    stride,
                    pad,
                    shift,
                    ..
                } => {
                    let (gx, gy) = (ws.geoms[*x], ws.geoms[yi]);
                    let w = self.params.get(p0);
                    if *k == 1 && *stride == 1 {
                        let groups = self.shift_groups(shift, gx.c);
                        conv::conv1x1_forward(&mut y, &ws.vals[*x], w, gx, gy.c, &groups);
                    } else {
                        let s = conv::ConvShape {
                            gx,
                            gy,
                            k: *k,
                            stride: *stride,
                            pad: *pad,
                        };
                        conv::conv_forward(&mut y, &ws.vals[*x], w, s);
                    }
                }
                Op::BatchNorm { x, .. } => {
                    let g = ws.geoms[*x];
                    let p = &mut self.params;
                    let (gamma, beta) = (p.get(p0).to_vec(), p.get(p0 + 1).to_vec());
                    if train {
                        let mut rm = p.get(p0 + 2).to_vec();
                        let mut rv = p.get(p0 + 3).to_vec();
                        bn::bn_forward_train(
                            &mut y,
                            &mut ws.bn[oi],
                            &ws.vals[*x],
                            &gamma,
                            &beta,
                            &mut rm,
                            &mut rv,
                            g,
                        );
                        p.get_mut(p0 + 2).copy_from_slice(&rm);
                        p.get_mut(p0 + 3).copy_from_slice(&rv);
                    } else {
                        bn::bn_forward_eval(
                            &mut y,
                            &ws.vals[*x],
                            &gamma,
                            &beta,
                            p.get(p0 + 2),
                            p.get(p0 + 3),
                            g,
                        );
                    }
                }
                Op::Relu { x, .. } => ew::relu_forward(&mut y, &ws.vals[*x]),
                Op::Add { a, b, .. } => ew::add_forward(&mut y, &ws.vals[*a], &ws.vals[*b]),
                Op::AvgPool2 { x, .. } => {
                    pool::avgpool2_forward(&mut y, &ws.vals[*x], ws.geoms[*x])
                }
                Op::MaxPool3s2 { x, .. } => {
                    pool::maxpool3s2_forward(&mut y, &ws.vals[*x], ws.geoms[*x])
                }
                Op::GlobalAvgPool { x, .. } => {
                    pool::gap_forward(&mut y, &ws.vals[*x], ws.geoms[*x])
                }
                Op::Linear { x, .. } => {
                    let (w, b) = (self.params.get(p0), self.params.get(p0 + 1));
                    linear::linear_forward(
                        &mut y,
                        &ws.vals[*x],
                        w,
                        b,
                        ws.geoms[*x],
                        ws.geoms[yi].c,
                    );
                }
            }
            ws.vals[yi] = y;
            if let (Some(t0), Some(p)) = (t0, ws.profile.as_mut()) {
                p[oi].0 += t0.elapsed().as_secs_f64();
            }
        }
        let go = ws.geoms[self.graph.output];
        let dense = go.to_dense(&ws.vals[self.graph.output]);
        ws.logits.copy_from_slice(&dense);
    }

    /// Softmax cross-entropy on the last forward's logits, then backward through every op.
    /// Parameter gradients are added into `dparams` (same layout as `self.params.data`).
    /// Returns (mean loss, correct predictions).
    pub fn backward(&self, ws: &mut Workspace, labels: &[u8], dparams: &mut [f32]) -> (f32, usize) {
        let classes = self.graph.classes();
        let (l, correct) = loss::softmax_xent(&mut ws.dlogits, &ws.logits, labels, classes);
        let go = ws.geoms[self.graph.output];
        ws.grads[self.graph.output] = go.from_dense(&ws.dlogits);
        let mut touched = vec![false; ws.vals.len()];
        touched[self.graph.output] = true;
        for (oi, op) in self.graph.ops.iter().enumerate().rev() {
            let yi = op.output();
            let t0 = ws.profile.as_ref().map(|_| std::time::Instant::now());
            let dy = std::mem::take(&mut ws.grads[yi]);
            // The first op to reach a tensor in the backward walk writes its gradient; later
            // ones (a tensor read twice: block input, inner residual) add to it.
            let modes: Vec<GradMode> = op
                .inputs()
                .into_iter()
                .map(|t| {
                    let first = !std::mem::replace(&mut touched[t], true);
                    if first {
                        GradMode::Write
                    } else {
                        GradMode::Add
                    }
                })
                .collect();
            let p0 = self.op_param[oi];
            let pr = |i: usize| self.params.range(p0 + i);
            let need_dx = |t: usize| t != self.graph.input;
            match op {
                Op::Conv {
                    x,
                    k,
                    stride,
                    pad,
                    shift,
                    ..
                } => {
                    let (gx, gy) = (ws.geoms[*x], ws.geoms[yi]);
                    let w = self.params.get(p0);
                    let dw = &mut dparams[pr(0)];
                    let mut dx = std::mem::take(&mut ws.grads[*x]);
                    let dxo = if need_dx(*x) {
                        Some(dx.as_mut_slice())
                    } else {
                        None
                    };
                    if *k == 1 && *stride == 1 {
                        let groups = self.shift_groups(shift, gx.c);
                        conv::conv1x1_backward(
                            dxo,
                            dw,
                            &dy,
                            &ws.vals[*x],
                            w,
                            gx,
                            gy.c,
                            &groups,
                            modes[0],
                        );
                    } else {
                        let s = conv::ConvShape {
                            gx,
                            gy,
                            k: *k,
                            stride: *stride,
                            pad: *pad,
                        };
                        conv::conv_backward(dxo, dw, &dy, &ws.vals[*x], w, s, modes[0]);
                    }
                    ws.grads[*x] = dx;
                }
                Op::BatchNorm { x, .. } => {
                    let gamma = self.params.get(p0);
                    let (dg, db) = two_mut(dparams, pr(0), pr(1));
                    let mut dx = std::mem::take(&mut ws.grads[*x]);
                    bn::bn_backward(
                        &mut dx,
                        dg,
                        db,
                        &dy,
                        &ws.vals[*x],
                        gamma,
                        &ws.bn[oi],
                        ws.geoms[*x],
                        modes[0],
                    );
                    ws.grads[*x] = dx;
                }
                Op::Relu { x, .. } => {
                    ew::relu_backward(&mut ws.grads[*x], &dy, &ws.vals[yi], modes[0])
                }
                Op::Add { a, b, .. } => {
                    ew::accumulate(&mut ws.grads[*a], &dy, modes[0]);
                    ew::accumulate(&mut ws.grads[*b], &dy, modes[1]);
                }
                Op::AvgPool2 { x, .. } => {
                    pool::avgpool2_backward(&mut ws.grads[*x], &dy, ws.geoms[*x], modes[0])
                }
                Op::MaxPool3s2 { x, .. } => {
                    let mut dx = std::mem::take(&mut ws.grads[*x]);
                    pool::maxpool3s2_backward(&mut dx, &dy, &ws.vals[*x], ws.geoms[*x], modes[0]);
                    ws.grads[*x] = dx;
                }
                Op::GlobalAvgPool { x, .. } => {
                    pool::gap_backward(&mut ws.grads[*x], &dy, ws.geoms[*x], modes[0])
                }
                Op::Linear { x, .. } => {
                    let w = self.params.get(p0);
                    let (dw, db) = two_mut(dparams, pr(0), pr(1));
                    let mut dx = std::mem::take(&mut ws.grads[*x]);
                    let dxo = if need_dx(*x) {
                        Some(dx.as_mut_slice())
                    } else {
                        None
                    };
                    linear::linear_backward(
                        dxo,
                        dw,
                        db,
                        &dy,
                        &ws.vals[*x],
                        w,
                        ws.geoms[*x],
                        ws.geoms[yi].c,
                        modes[0],
                    );
                    ws.grads[*x] = dx;
                }
            }
            ws.grads[yi] = dy;
            if let (Some(t0), Some(p)) = (t0, ws.profile.as_mut()) {
                p[oi].1 += t0.elapsed().as_secs_f64();
            }
        }
        (l, correct)
    }
}

impl Model {
    /// Per-op time table of a profiled workspace: one line per op, slowest first.
    pub fn profile_table(&self, ws: &Workspace) -> String {
        let Some(p) = &ws.profile else {
            return String::new();
        };
        let total: f64 = p.iter().map(|(f, b)| f + b).sum();
        let mut rows: Vec<(usize, f64, f64)> = p
            .iter()
            .enumerate()
            .map(|(i, (f, b))| (i, *f, *b))
            .collect();
        rows.sort_by(|a, b| (b.1 + b.2).total_cmp(&(a.1 + a.2)));
        let mut s = format!(
            "{:<4} {:<34} {:>12} {:>9} {:>9} {:>6}\n",
            "op", "name", "shape out", "fwd s", "bwd s", "%"
        );
        for (i, f, b) in rows {
            let op = &self.graph.ops[i];
            let t = self.graph.tensors[op.output()];
            let kind = format!("{op:?}");
            let kind = kind.split([' ', '{']).next().unwrap_or("").to_string();
            let name = op.name().map(|n| format!("{kind} {n}")).unwrap_or(kind);
            s.push_str(&format!(
                "{i:<4} {name:<34} {:>12} {f:>9.3} {b:>9.3} {:>6.1}\n",
                format!("{}x{}x{}", t.h, t.w, t.c),
                100.0 * (f + b) / total
            ));
        }
        s
    }
}

/// Two disjoint mutable ranges of one buffer (`a` before `b`).
fn two_mut(
    buf: &mut [f32],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
) -> (&mut [f32], &mut [f32]) {
    assert!(a.end <= b.start);
    let (lo, hi) = buf.split_at_mut(b.start);
    (&mut lo[a], &mut hi[..b.end - b.start])
}
