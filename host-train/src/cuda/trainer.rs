//! A network on the GPU: parameters, gradients and momentum in one allocation each (the host
//! `Params` layout), activations and their gradients per tensor in the halo layout, and the
//! training step: upload the batch, forward, softmax cross-entropy, backward, SGD, then one read
//! of the loss and correct count.
use super::{CResult, DBuf, DPtr, Gpu};
use crate::graph::{Graph, Op, ShiftGroup, ShiftSpec};
use crate::layers::Geom;
use crate::model::{Model, Normalization};

/// Activations for one batch size.
struct Ws {
    n: usize,
    geoms: Vec<Geom>,
    vals: Vec<DBuf>,
    grads: Vec<DBuf>,
    /// Per op: BN batch mean and invstd (empty for other ops).
    bn: Vec<Option<(DBuf, DBuf)>>,
    col: DBuf,
    dcol: DBuf,
    input: DBuf<u8>,
    labels: DBuf<u8>,
}

pub struct CudaTrainer {
    pub gpu: Gpu,
    graph: Graph,
    op_param: Vec<usize>,
    offsets: Vec<usize>,
    numel: Vec<usize>,
    params: DBuf,
    grads: DBuf,
    momentum: DBuf,
    mask: DBuf<u8>,
    mean: DBuf,
    std: DBuf,
    scratch: DBuf,
    out: DBuf,
    train_ws: Option<Ws>,
    eval_ws: Option<Ws>,
}

fn groups(shift: &Option<ShiftSpec>, cin: usize) -> Vec<ShiftGroup> {
    match shift {
        Some(s) => s.groups(cin),
        None => vec![ShiftGroup {
            dh: 0,
            dw: 0,
            c0: 0,
            c1: cin,
        }],
    }
}

impl CudaTrainer {
    /// Uploads `model`'s parameters and `momentum` (host `Params` layout).
    pub fn new(model: &Model, momentum: &[f32], norm: &Normalization) -> CResult<CudaTrainer> {
        let gpu = Gpu::new()?;
        let graph = model.graph.clone();
        let op_param = graph.op_param_index();
        let p = &model.params;
        let mut mask = vec![0u8; p.data.len()];
        for i in 0..p.info.len() {
            if p.info[i].trainable {
                mask[p.range(i)].fill(1);
            }
        }
        let maxc = graph.tensors.iter().map(|s| s.c).max().unwrap_or(1);
        Ok(CudaTrainer {
            params: gpu.upload(&p.data)?,
            grads: gpu.zeros(p.data.len())?,
            momentum: gpu.upload(momentum)?,
            mask: gpu.upload(&mask)?,
            mean: gpu.upload(&norm.mean)?,
            std: gpu.upload(&norm.std)?,
            scratch: gpu.zeros(8 * maxc)?,
            out: gpu.zeros(4)?,
            offsets: p.offsets.clone(),
            numel: p.info.iter().map(|i| i.numel()).collect(),
            op_param,
            graph,
            gpu,
            train_ws: None,
            eval_ws: None,
        })
    }

    fn param(&self, i: usize) -> DPtr {
        self.params.slice(self.offsets[i], self.numel[i])
    }
    fn dparam(&self, i: usize) -> DPtr {
        self.grads.slice(self.offsets[i], self.numel[i])
    }

    fn workspace(&self, n: usize) -> CResult<Ws> {
        let g = &self.gpu;
        let geoms: Vec<Geom> = self
            .graph
            .tensors
            .iter()
            .map(|s| Geom::new(n, s.h, s.w, s.c))
            .collect();
        let mut colmax = 1;
        let mut bn = Vec::new();
        for op in &self.graph.ops {
            let mut b = None;
            match op {
                Op::Conv {
                    x, y, k, stride, ..
                } if !(*k == 1 && *stride == 1) => {
                    colmax = colmax.max(geoms[*y].span().1 * k * k * geoms[*x].c);
                }
                Op::BatchNorm { x, .. } => b = Some((g.zeros(geoms[*x].c)?, g.zeros(geoms[*x].c)?)),
                _ => {}
            }
            bn.push(b);
        }
        let gi = geoms[self.graph.input];
        Ok(Ws {
            n,
            vals: geoms
                .iter()
                .map(|q| g.zeros(q.len()))
                .collect::<CResult<_>>()?,
            grads: geoms
                .iter()
                .map(|q| g.zeros(q.len()))
                .collect::<CResult<_>>()?,
            geoms,
            bn,
            col: g.zeros(colmax)?,
            dcol: g.zeros(colmax)?,
            input: g.zeros(gi.n * gi.h * gi.w * gi.c)?,
            labels: g.zeros(n)?,
        })
    }

    fn take_ws(&mut self, n: usize, train: bool) -> CResult<Ws> {
        let slot = if train {
            &mut self.train_ws
        } else {
            &mut self.eval_ws
        };
        match slot.take() {
            Some(w) if w.n == n => Ok(w),
            _ => self.workspace(n),
        }
    }

    fn forward(&mut self, ws: &Ws, input: &[u8], train: bool) -> CResult<()> {
        let gpu = &self.gpu;
        gpu.write(&ws.input, 0, input)?;
        let gi = ws.geoms[self.graph.input];
        gpu.input_norm(
            ws.vals[self.graph.input].view(),
            ws.input.ptr,
            ws.input.len,
            self.mean.view(),
            self.std.view(),
            gi,
        )?;
        let scratch = self.scratch.view();
        for (oi, op) in self.graph.ops.iter().enumerate() {
            let yi = op.output();
            let y = ws.vals[yi].view();
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
                    if *k == 1 && *stride == 1 {
                        gpu.conv1x1_fwd(
                            y,
                            ws.vals[*x].view(),
                            self.param(p0),
                            gx,
                            gy.c,
                            &groups(shift, gx.c),
                        )?;
                    } else {
                        gpu.conv_fwd(
                            y,
                            ws.vals[*x].view(),
                            self.param(p0),
                            ws.col.view(),
                            gx,
                            gy,
                            *k,
                            *stride,
                            *pad,
                        )?;
                    }
                }
                Op::BatchNorm { x, .. } => {
                    let g = ws.geoms[*x];
                    let p = [
                        self.param(p0),
                        self.param(p0 + 1),
                        self.param(p0 + 2),
                        self.param(p0 + 3),
                    ];
                    if train {
                        let (m, s) = ws.bn[oi].as_ref().expect("BN cache allocated");
                        gpu.bn_fwd_train(y, ws.vals[*x].view(), p, m.view(), s.view(), scratch, g)?;
                    } else {
                        gpu.bn_fwd_eval(y, ws.vals[*x].view(), p, scratch, g)?;
                    }
                }
                Op::Relu { x, .. } => gpu.relu_fwd(y, ws.vals[*x].view())?,
                Op::Add { a, b, .. } => gpu.add_fwd(y, ws.vals[*a].view(), ws.vals[*b].view())?,
                Op::AvgPool2 { x, .. } => gpu.avgpool2_fwd(y, ws.vals[*x].view(), ws.geoms[*x])?,
                Op::MaxPool3s2 { x, .. } => gpu.maxpool_fwd(y, ws.vals[*x].view(), ws.geoms[*x])?,
                Op::GlobalAvgPool { x, .. } => gpu.gap_fwd(y, ws.vals[*x].view(), ws.geoms[*x])?,
                Op::Linear { x, .. } => gpu.linear_fwd(
                    y,
                    ws.vals[*x].view(),
                    self.param(p0),
                    self.param(p0 + 1),
                    ws.geoms[*x],
                    ws.geoms[yi].c,
                )?,
            }
        }
        Ok(())
    }

    /// Loss kernel on the output (adds into `self.out`), with the labels uploaded.
    fn loss(&self, ws: &Ws, labels: &[u8]) -> CResult<()> {
        self.gpu.write(&ws.labels, 0, labels)?;
        let o = self.graph.output;
        self.gpu.softmax_xent(
            ws.grads[o].view(),
            self.out.view(),
            ws.vals[o].view(),
            ws.labels.ptr,
            ws.geoms[o],
        )
    }

    fn backward(&self, ws: &Ws) -> CResult<()> {
        let gpu = &self.gpu;
        let mut touched = vec![false; ws.vals.len()];
        touched[self.graph.output] = true;
        let scratch = self.scratch.view();
        for (oi, op) in self.graph.ops.iter().enumerate().rev() {
            let yi = op.output();
            for t in op.inputs() {
                if !touched[t] && t != self.graph.input {
                    gpu.clear(&ws.grads[t], 0, ws.grads[t].len)?;
                    touched[t] = true;
                }
            }
            let dy = ws.grads[yi].view();
            let p0 = self.op_param[oi];
            let dx_of = |t: usize| (t != self.graph.input).then(|| ws.grads[t].view());
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
                    if *k == 1 && *stride == 1 {
                        gpu.conv1x1_bwd(
                            dx_of(*x),
                            self.dparam(p0),
                            dy,
                            ws.vals[*x].view(),
                            self.param(p0),
                            gx,
                            gy.c,
                            &groups(shift, gx.c),
                        )?;
                    } else {
                        gpu.conv_bwd(
                            dx_of(*x),
                            self.dparam(p0),
                            dy,
                            ws.vals[*x].view(),
                            self.param(p0),
                            ws.col.view(),
                            ws.dcol.view(),
                            gx,
                            gy,
                            *k,
                            *stride,
                            *pad,
                        )?;
                    }
                }
                Op::BatchNorm { x, .. } => {
                    let (m, s) = ws.bn[oi].as_ref().expect("BN cache allocated");
                    gpu.bn_bwd(
                        ws.grads[*x].view(),
                        self.dparam(p0),
                        self.dparam(p0 + 1),
                        dy,
                        ws.vals[*x].view(),
                        self.param(p0),
                        m.view(),
                        s.view(),
                        scratch,
                        ws.geoms[*x],
                    )?;
                }
                Op::Relu { x, .. } => gpu.relu_bwd(ws.grads[*x].view(), dy, ws.vals[yi].view())?,
                Op::Add { a, b, .. } => {
                    gpu.accum(ws.grads[*a].view(), dy)?;
                    gpu.accum(ws.grads[*b].view(), dy)?;
                }
                Op::AvgPool2 { x, .. } => {
                    gpu.avgpool2_bwd(ws.grads[*x].view(), dy, ws.geoms[*x])?
                }
                Op::MaxPool3s2 { x, .. } => {
                    gpu.maxpool_bwd(ws.grads[*x].view(), dy, ws.vals[*x].view(), ws.geoms[*x])?
                }
                Op::GlobalAvgPool { x, .. } => {
                    gpu.gap_bwd(ws.grads[*x].view(), dy, ws.geoms[*x])?
                }
                Op::Linear { x, .. } => gpu.linear_bwd(
                    dx_of(*x),
                    self.dparam(p0),
                    self.dparam(p0 + 1),
                    dy,
                    ws.vals[*x].view(),
                    self.param(p0),
                    ws.geoms[*x],
                    ws.geoms[yi].c,
                )?,
            }
        }
        Ok(())
    }

    /// One SGD step on a batch (dense u8 NHWC images, labels): (mean loss, correct).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        imgs: &[u8],
        labels: &[u8],
        lr: f32,
        momentum: f32,
        wd: f32,
        nesterov: bool,
    ) -> CResult<(f32, usize)> {
        let n = labels.len();
        let ws = self.take_ws(n, true)?;
        let r = self.step_in(&ws, imgs, labels, lr, momentum, wd, nesterov);
        self.train_ws = Some(ws);
        let (sum, correct) = r?;
        Ok(((sum / n as f64) as f32, correct))
    }

    #[allow(clippy::too_many_arguments)]
    fn step_in(
        &mut self,
        ws: &Ws,
        imgs: &[u8],
        labels: &[u8],
        lr: f32,
        m: f32,
        wd: f32,
        nes: bool,
    ) -> CResult<(f64, usize)> {
        self.gpu.zero_f64(self.out.view(), 2)?;
        self.forward(ws, imgs, true)?;
        self.loss(ws, labels)?;
        self.gpu.clear(&self.grads, 0, self.grads.len)?;
        self.backward(ws)?;
        self.gpu.sgd(
            self.params.view(),
            self.momentum.view(),
            self.grads.view(),
            self.mask.ptr,
            lr,
            m,
            wd,
            nes,
        )?;
        self.read_out()
    }

    fn read_out(&self) -> CResult<(f64, usize)> {
        let v = self.gpu.read(&self.out, 0, 4)?;
        let f = |i: usize| {
            f64::from_le_bytes(
                [v[2 * i].to_le_bytes(), v[2 * i + 1].to_le_bytes()]
                    .concat()
                    .try_into()
                    .expect("8 bytes"),
            )
        };
        Ok((f(0), f(1) as usize))
    }

    /// Loss and accuracy with BN in inference mode, batches of `batch` images.
    pub fn evaluate(&mut self, images: &[u8], labels: &[u8], batch: usize) -> CResult<(f32, f32)> {
        let n_all = labels.len();
        if n_all == 0 {
            return Ok((0.0, 0.0));
        }
        let il = images.len() / n_all;
        self.gpu.zero_f64(self.out.view(), 2)?;
        for s in (0..n_all).step_by(batch.max(1)) {
            let e = (s + batch).min(n_all);
            let ws = self.take_ws(e - s, false)?;
            let r = self
                .forward(&ws, &images[s * il..e * il], false)
                .and_then(|_| self.loss(&ws, &labels[s..e]));
            self.eval_ws = Some(ws);
            r?;
        }
        let (sum, correct) = self.read_out()?;
        Ok(((sum / n_all as f64) as f32, correct as f32 / n_all as f32))
    }

    /// Copies parameters (with BN running statistics) and momentum back to the host layout.
    pub fn download(&self, model: &mut Model, momentum: &mut [f32]) -> CResult<()> {
        model
            .params
            .data
            .copy_from_slice(&self.gpu.download(&self.params)?);
        momentum.copy_from_slice(&self.gpu.download(&self.momentum)?);
        Ok(())
    }

    /// Waits for queued work (for timing).
    pub fn sync(&self) -> CResult<()> {
        self.gpu.sync()
    }
}
