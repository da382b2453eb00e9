//! The float graph as the int8 engine will run it: BN folded into the conv before it, ReLU fused
//! into the conv or add that produces its input, the input normalisation folded into the stem.
//!
//! Every [`Folded`] tensor is one int8 tensor of the model file; `src` names the float-graph
//! tensor that holds the same values (the ReLU output of a fused conv+BN+ReLU, say), which is where
//! calibration and the SQNR report read the float model. Weights come out in the file's layouts:
//! conv OHWI `[cout][k][k][cin]`, FC `[cout][cin]`.
use crate::QuantError;
use host_train::graph::{Graph, Op, Shape, ShiftSpec, TensorId};
use host_train::model::{Model, Normalization};

/// BatchNorm epsilon of the trainer (PyTorch's default).
pub const BN_EPS: f32 = 1e-5;

#[derive(Clone, Debug)]
pub struct FTensor {
    pub shape: Shape,
    /// Float-graph tensor with the same values.
    pub src: TensorId,
    /// Output of a pool: shares the scale and zero point of this tensor (its input).
    pub same_as: Option<usize>,
}

#[derive(Clone, Debug)]
pub enum FOp {
    /// Conv (+ folded BN) (+ fused ReLU). `w` is OHWI `[cout][k][k][cin]`, `b` per cout.
    /// `pad_u8` is set for the stem (reads the u8 input): the pixel of normalised value 0.
    Conv {
        name: String,
        x: usize,
        y: usize,
        k: usize,
        stride: usize,
        pad: usize,
        shift: Option<ShiftSpec>,
        w: Vec<f32>,
        b: Vec<f32>,
        relu: bool,
        pad_u8: Option<Vec<u8>>,
    },
    Add {
        name: String,
        a: usize,
        b: usize,
        y: usize,
        relu: bool,
    },
    AvgPool2 {
        name: String,
        x: usize,
        y: usize,
    },
    MaxPool3s2 {
        name: String,
        x: usize,
        y: usize,
    },
    GlobalAvgPool {
        name: String,
        x: usize,
        y: usize,
    },
    /// `w` is `[cout][cin]`.
    Fc {
        name: String,
        x: usize,
        y: usize,
        w: Vec<f32>,
        b: Vec<f32>,
    },
}

impl FOp {
    pub fn name(&self) -> &str {
        match self {
            FOp::Conv { name, .. }
            | FOp::Add { name, .. }
            | FOp::AvgPool2 { name, .. }
            | FOp::MaxPool3s2 { name, .. }
            | FOp::GlobalAvgPool { name, .. }
            | FOp::Fc { name, .. } => name,
        }
    }
    pub fn output(&self) -> usize {
        match *self {
            FOp::Conv { y, .. }
            | FOp::Add { y, .. }
            | FOp::AvgPool2 { y, .. }
            | FOp::MaxPool3s2 { y, .. }
            | FOp::GlobalAvgPool { y, .. }
            | FOp::Fc { y, .. } => y,
        }
    }
    pub fn inputs(&self) -> Vec<usize> {
        match *self {
            FOp::Add { a, b, .. } => vec![a, b],
            FOp::Conv { x, .. }
            | FOp::AvgPool2 { x, .. }
            | FOp::MaxPool3s2 { x, .. }
            | FOp::GlobalAvgPool { x, .. }
            | FOp::Fc { x, .. } => vec![x],
        }
    }
    /// Short kind name for tables.
    pub fn kind(&self) -> &'static str {
        match self {
            FOp::Conv { shift: Some(_), .. } => "shift-conv",
            FOp::Conv { .. } => "conv",
            FOp::Add { .. } => "add",
            FOp::AvgPool2 { .. } => "avgpool2",
            FOp::MaxPool3s2 { .. } => "maxpool3s2",
            FOp::GlobalAvgPool { .. } => "gap",
            FOp::Fc { .. } => "fc",
        }
    }
}

/// The folded network. Tensor 0 is the u8 input.
#[derive(Clone, Debug)]
pub struct Folded {
    pub tensors: Vec<FTensor>,
    pub ops: Vec<FOp>,
    pub input: usize,
    pub output: usize,
}

/// Folds `model`'s graph and parameters (BN in eval mode) and the input normalisation.
pub fn fold(model: &Model, norm: &Normalization) -> Result<Folded, QuantError> {
    fold_with(&model.graph, Some((model, norm)))
}

/// The structure of the folded network of `g` alone (tensors and ops, which BN and ReLU fuse
/// where): what the memory plan needs. Weights, biases and pad values are left empty.
pub fn fold_graph(g: &Graph) -> Result<Folded, QuantError> {
    fold_with(g, None)
}

/// `fold` with the parameters and normalisation, `fold_graph` without.
fn fold_with(g: &Graph, src: Option<(&Model, &Normalization)>) -> Result<Folded, QuantError> {
    let unsupported = |why: String| QuantError::Unsupported(format!("{}: {why}", g.name));
    if let Some((_, norm)) = src {
        if norm.mean.len() != g.input_shape().c || norm.std.len() != g.input_shape().c {
            return Err(unsupported(format!(
                "normalisation has {} means / {} stds for {} input channels",
                norm.mean.len(),
                norm.std.len(),
                g.input_shape().c
            )));
        }
    }
    // Readers of every float tensor (op indices).
    let mut readers: Vec<Vec<usize>> = vec![vec![]; g.tensors.len()];
    for (i, op) in g.ops.iter().enumerate() {
        for t in op.inputs() {
            readers[t].push(i);
        }
    }
    let sole_reader = |t: TensorId| -> Option<usize> {
        (readers[t].len() == 1 && t != g.output).then(|| readers[t][0])
    };
    let param = |name: &str| -> Result<&[f32], QuantError> {
        let model = src
            .map(|s| s.0)
            .ok_or_else(|| unsupported(format!("no parameters to read {name} from")))?;
        let i = model
            .params
            .index(name)
            .ok_or_else(|| unsupported(format!("no parameter {name}")))?;
        Ok(model.params.get(i))
    };

    let mut out = Folded {
        tensors: vec![FTensor {
            shape: g.input_shape(),
            src: g.input,
            same_as: None,
        }],
        ops: vec![],
        input: 0,
        output: 0,
    };
    // Float tensor -> folded tensor.
    let mut home: Vec<Option<usize>> = vec![None; g.tensors.len()];
    home[g.input] = Some(0);
    let mut done = vec![false; g.ops.len()];
    // Name of the op that produced each folded tensor (for naming adds and pools).
    let mut producer: Vec<String> = vec!["input".into()];

    let new_tensor = |out: &mut Folded, src: TensorId, same_as: Option<usize>| -> usize {
        out.tensors.push(FTensor {
            shape: g.tensors[src],
            src,
            same_as,
        });
        out.tensors.len() - 1
    };
    let get = |home: &[Option<usize>], t: TensorId| -> Result<usize, QuantError> {
        home[t].ok_or_else(|| unsupported(format!("tensor {t} is read before it is written")))
    };

    for (i, op) in g.ops.iter().enumerate() {
        if done[i] {
            continue;
        }
        done[i] = true;
        // A fused ReLU after tensor `t`: (new end tensor, true).
        let fuse_relu = |t: TensorId, done: &mut [bool]| -> (TensorId, bool) {
            if let Some(r) = sole_reader(t) {
                if let Op::Relu { y, .. } = g.ops[r] {
                    done[r] = true;
                    return (y, true);
                }
            }
            (t, false)
        };
        let fop = match op {
            Op::Conv {
                name,
                x,
                y,
                k,
                stride,
                pad,
                shift,
            } => {
                let (cin, cout) = (g.tensors[*x].c, g.tensors[*y].c);
                let (mut w, mut b) = (vec![], vec![]);
                if src.is_some() {
                    let hwio = param(&format!("{name}.weight"))?;
                    w = vec![0.0f32; cout * k * k * cin];
                    for ky in 0..*k {
                        for kx in 0..*k {
                            for ci in 0..cin {
                                for co in 0..cout {
                                    w[((co * k + ky) * k + kx) * cin + ci] =
                                        hwio[((ky * k + kx) * cin + ci) * cout + co];
                                }
                            }
                        }
                    }
                    b = vec![0.0f32; cout];
                }
                let mut end = *y;
                if let Some(r) = sole_reader(*y) {
                    if let Op::BatchNorm { y: by, .. } = g.ops[r] {
                        done[r] = true;
                        end = by;
                    }
                    if let (Op::BatchNorm { name: bn, .. }, true) = (&g.ops[r], src.is_some()) {
                        let gamma = param(&format!("{bn}.weight"))?;
                        let beta = param(&format!("{bn}.bias"))?;
                        let mean = param(&format!("{bn}.running_mean"))?;
                        let var = param(&format!("{bn}.running_var"))?;
                        for co in 0..cout {
                            let a = gamma[co] / (var[co] + BN_EPS).sqrt();
                            w[co * k * k * cin..(co + 1) * k * k * cin]
                                .iter_mut()
                                .for_each(|v| *v *= a);
                            b[co] = beta[co] - mean[co] * a;
                        }
                    }
                }
                let (end, relu) = fuse_relu(end, &mut done);
                let mut pad_u8 = None;
                if let (true, Some((_, norm))) = (*x == g.input, src) {
                    // w' = w / std, b' = b - sum w * mean / std; a padded tap reads the pixel
                    // whose normalised value is 0.
                    for co in 0..cout {
                        let wc = &mut w[co * k * k * cin..(co + 1) * k * k * cin];
                        for (j, v) in wc.iter_mut().enumerate() {
                            let ci = j % cin;
                            *v /= norm.std[ci];
                            b[co] -= *v * norm.mean[ci];
                        }
                    }
                    pad_u8 = Some(
                        norm.mean
                            .iter()
                            .map(|m| (255.0 * m).round().clamp(0.0, 255.0) as u8)
                            .collect(),
                    );
                }
                let xq = get(&home, *x)?;
                let yq = new_tensor(&mut out, end, None);
                home[end] = Some(yq);
                producer.push(name.clone());
                FOp::Conv {
                    name: name.clone(),
                    x: xq,
                    y: yq,
                    k: *k,
                    stride: *stride,
                    pad: *pad,
                    shift: *shift,
                    w,
                    b,
                    relu,
                    pad_u8,
                }
            }
            Op::Add { a, b, y } => {
                let (end, relu) = fuse_relu(*y, &mut done);
                let (aq, bq) = (get(&home, *a)?, get(&home, *b)?);
                // "layer1.0.conv3" feeding the add -> "layer1.0.add3".
                let pa = &producer[aq];
                let name = match pa.rsplit_once('.') {
                    Some((block, last)) => {
                        format!(
                            "{block}.add{}",
                            last.trim_start_matches(|c: char| !c.is_ascii_digit())
                        )
                    }
                    None => format!("{pa}.add"),
                };
                let yq = new_tensor(&mut out, end, None);
                home[end] = Some(yq);
                producer.push(name.clone());
                FOp::Add {
                    name,
                    a: aq,
                    b: bq,
                    y: yq,
                    relu,
                }
            }
            Op::AvgPool2 { x, y } | Op::MaxPool3s2 { x, y } | Op::GlobalAvgPool { x, y } => {
                let xq = get(&home, *x)?;
                if xq == 0 {
                    return Err(unsupported("a pool reads the u8 input".into()));
                }
                let yq = new_tensor(&mut out, *y, Some(xq));
                home[*y] = Some(yq);
                // Named after the conv that reads it: "layer2.0.shortcut.conv" ->
                // "layer2.0.shortcut.pool", "layer2.0.conv2" -> "layer2.0.pool".
                let reader = readers[*y]
                    .first()
                    .and_then(|&r| g.ops[r].name())
                    .map(|n| n.rsplit_once('.').map_or(n, |(p, _)| p).to_string());
                let (name, fop): (String, fn(String, usize, usize) -> FOp) = match op {
                    Op::AvgPool2 { .. } => (
                        format!("{}.pool", reader.unwrap_or_else(|| producer[xq].clone())),
                        |name, x, y| FOp::AvgPool2 { name, x, y },
                    ),
                    Op::MaxPool3s2 { .. } => (
                        format!(
                            "{}.maxpool",
                            producer[xq].rsplit_once('.').map_or("", |p| p.0)
                        ),
                        |name, x, y| FOp::MaxPool3s2 { name, x, y },
                    ),
                    _ => ("gap".to_string(), |name, x, y| FOp::GlobalAvgPool {
                        name,
                        x,
                        y,
                    }),
                };
                producer.push(name.clone());
                fop(name, xq, yq)
            }
            Op::Linear { name, x, y } => {
                let (cin, cout) = (g.tensors[*x].c, g.tensors[*y].c);
                let (mut w, mut b) = (vec![], vec![]);
                if src.is_some() {
                    let wt = param(&format!("{name}.weight"))?;
                    b = param(&format!("{name}.bias"))?.to_vec();
                    w = vec![0.0f32; cout * cin];
                    for ci in 0..cin {
                        for co in 0..cout {
                            w[co * cin + ci] = wt[ci * cout + co];
                        }
                    }
                }
                let xq = get(&home, *x)?;
                if xq == 0 {
                    return Err(unsupported("the FC layer reads the u8 input".into()));
                }
                let yq = new_tensor(&mut out, *y, None);
                home[*y] = Some(yq);
                producer.push(name.clone());
                FOp::Fc {
                    name: name.clone(),
                    x: xq,
                    y: yq,
                    w,
                    b,
                }
            }
            Op::BatchNorm { name, .. } => {
                return Err(unsupported(format!(
                    "BN {name} does not follow a conv whose only reader it is"
                )))
            }
            Op::Relu { .. } => {
                return Err(unsupported(
                    "a ReLU that does not follow a conv or an add".into(),
                ))
            }
        };
        out.ops.push(fop);
    }
    out.output = get(&home, g.output)?;
    if out.output == 0 {
        return Err(unsupported("the output is the input".into()));
    }
    Ok(out)
}

impl Folded {
    /// Runs op `i` in float on one image: `xs` are the real values of its inputs (dense HWC; the
    /// model input as pixel / 255). The naive reference of the folded network: on float inputs
    /// it reproduces the trainer's float model (BN eval), on dequantized int8 inputs it gives
    /// the error one int8 op adds by itself.
    pub fn eval_op(&self, i: usize, xs: &[&[f32]]) -> Vec<f32> {
        let shape = |t: usize| self.tensors[t].shape;
        let relu = |v: f32, on: bool| if on { v.max(0.0) } else { v };
        match &self.ops[i] {
            FOp::Conv {
                x,
                y,
                k,
                stride,
                pad,
                shift,
                w,
                b,
                relu: r,
                pad_u8,
                ..
            } => {
                let (sx, sy) = (shape(*x), shape(*y));
                let (h, wd, cin) = (sx.h as isize, sx.w as isize, sx.c);
                let (k, stride, pad) = (*k, *stride as isize, *pad as isize);
                let padv: Vec<f32> = match pad_u8 {
                    Some(p) => p.iter().map(|&v| v as f32 / 255.0).collect(),
                    None => vec![0.0; cin],
                };
                let mut d = vec![(0isize, 0isize); cin];
                if let Some(s) = shift {
                    for g in s.groups(cin) {
                        d[g.c0..g.c1].iter_mut().for_each(|v| *v = (g.dh, g.dw));
                    }
                }
                let mut out = Vec::with_capacity(sy.numel());
                let mut patch = vec![0f32; k * k * cin];
                for oy in 0..sy.h as isize {
                    for ox in 0..sy.w as isize {
                        for ky in 0..k {
                            for kx in 0..k {
                                for ci in 0..cin {
                                    let (dh, dw) = d[ci];
                                    let iy = oy * stride - pad + ky as isize - dh;
                                    let ix = ox * stride - pad + kx as isize - dw;
                                    patch[(ky * k + kx) * cin + ci] =
                                        if iy < 0 || ix < 0 || iy >= h || ix >= wd {
                                            padv[ci]
                                        } else {
                                            xs[0][((iy * wd + ix) as usize) * cin + ci]
                                        };
                                }
                            }
                        }
                        for co in 0..sy.c {
                            let wc = &w[co * patch.len()..(co + 1) * patch.len()];
                            let acc: f32 = wc.iter().zip(&patch).map(|(a, b)| a * b).sum();
                            out.push(relu(acc + b[co], *r));
                        }
                    }
                }
                out
            }
            FOp::Add { relu: r, .. } => xs[0]
                .iter()
                .zip(xs[1])
                .map(|(a, b)| relu(a + b, *r))
                .collect(),
            FOp::AvgPool2 { x, .. } => {
                let s = shape(*x);
                let mut out = Vec::with_capacity(s.numel() / 4);
                for oy in 0..s.h / 2 {
                    for ox in 0..s.w / 2 {
                        for ch in 0..s.c {
                            let at = |dy: usize, dx: usize| {
                                xs[0][((2 * oy + dy) * s.w + 2 * ox + dx) * s.c + ch]
                            };
                            out.push(0.25 * (at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)));
                        }
                    }
                }
                out
            }
            FOp::MaxPool3s2 { x, y, .. } => {
                let (s, so) = (shape(*x), shape(*y));
                let mut out = Vec::with_capacity(so.numel());
                for oy in 0..so.h as isize {
                    for ox in 0..so.w as isize {
                        for ch in 0..s.c {
                            let mut best = f32::NEG_INFINITY;
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = (2 * oy - 1 + ky, 2 * ox - 1 + kx);
                                    if iy >= 0 && ix >= 0 && iy < s.h as isize && ix < s.w as isize
                                    {
                                        best = best.max(
                                            xs[0][(iy as usize * s.w + ix as usize) * s.c + ch],
                                        );
                                    }
                                }
                            }
                            out.push(best);
                        }
                    }
                }
                out
            }
            FOp::GlobalAvgPool { x, .. } => {
                let s = shape(*x);
                let n = s.h * s.w;
                (0..s.c)
                    .map(|ch| (0..n).map(|p| xs[0][p * s.c + ch]).sum::<f32>() / n as f32)
                    .collect()
            }
            FOp::Fc { x, y, w, b, .. } => {
                let (cin, cout) = (shape(*x).c, shape(*y).c);
                (0..cout)
                    .map(|co| {
                        b[co]
                            + w[co * cin..(co + 1) * cin]
                                .iter()
                                .zip(xs[0])
                                .map(|(a, b)| a * b)
                                .sum::<f32>()
                    })
                    .collect()
            }
        }
    }

    /// The whole folded network in float on one image (u8 HWC): every tensor's values.
    pub fn forward(&self, pixels: &[u8]) -> Vec<Vec<f32>> {
        let mut vals: Vec<Vec<f32>> = vec![vec![]; self.tensors.len()];
        vals[self.input] = pixels.iter().map(|&p| p as f32 / 255.0).collect();
        for i in 0..self.ops.len() {
            let ins = self.ops[i].inputs();
            let xs: Vec<&[f32]> = ins.iter().map(|&t| vals[t].as_slice()).collect();
            let y = self.eval_op(i, &xs);
            vals[self.ops[i].output()] = y;
        }
        vals
    }
}
