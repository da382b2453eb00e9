//! The network description every stage shares: a flat list of ops over numbered tensors.
//!
//! A zoo network is a [`Graph`]: tensors (each an HWC shape per image) and ops in execution order.
//! Every op writes a fresh tensor, which keeps backward a plain reverse walk. Parameter and MAC
//! counts follow the paper's convention (docs/paper.md): conv weights (no conv bias) + BN gamma/beta + FC weight and
//! bias; MACs of convs and FC only.
use serde::{Deserialize, Serialize};

pub type TensorId = usize;

/// Shape of one image's activation, HWC (the batch dimension is implicit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn new(h: usize, w: usize, c: usize) -> Shape {
        Shape { h, w, c }
    }
    pub fn pixels(&self) -> usize {
        self.h * self.w
    }
    pub fn numel(&self) -> usize {
        self.h * self.w * self.c
    }
}

/// 4-connected (up, down, left, right) or 8-connected (plus diagonals) shift neighbourhood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Neighbourhood {
    #[serde(rename = "4c")]
    C4,
    #[serde(rename = "8c")]
    C8,
}

/// How a shifted 1x1 conv groups its input channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftSpec {
    pub kind: Neighbourhood,
    /// Keep an unshifted centre group (the authors' default). Without it every channel moves.
    pub centre_group: bool,
}

/// One contiguous channel group `[c0, c1)` read at offset `(dh, dw)`: `out[h][w] = in[h-dh][w-dw]`,
/// zero outside the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShiftGroup {
    pub dh: isize,
    pub dw: isize,
    pub c0: usize,
    pub c1: usize,
}

impl ShiftSpec {
    /// The firmware format's name for this shift, whose [`firmware::format::shift_groups`] is the
    /// one definition of the channel split.
    pub fn format_shift(&self) -> firmware::format::Shift {
        let centre = self.centre_group;
        match self.kind {
            Neighbourhood::C4 => firmware::format::Shift::C4 { centre },
            Neighbourhood::C8 => firmware::format::Shift::C8 { centre },
        }
    }

    /// Fewest channels this shift can split (every group non-empty): one per group.
    pub fn min_channels(&self) -> usize {
        let mut g = [(0, 0, 0, 0); 9];
        firmware::format::shift_groups(self.format_shift(), 0, &mut g)
    }

    /// The channel groups of the paper (docs/paper.md), in the authors' order, as
    /// [`firmware::format::shift_groups`] splits them: with a centre group, `n` shifted groups of
    /// `c / (n+1)` channels, the rest unshifted; without, `n` groups of `c / n`, the last shifted
    /// group takes the remainder.
    pub fn groups(&self, c: usize) -> Vec<ShiftGroup> {
        let mut g = [(0, 0, 0, 0); 9];
        let n = firmware::format::shift_groups(self.format_shift(), c, &mut g);
        g[..n]
            .iter()
            .map(|&(dh, dw, c0, c1)| ShiftGroup {
                dh: dh as isize,
                dw: dw as isize,
                c0,
                c1,
            })
            .collect()
    }
}

/// One op. `x`/`y` are input/output tensor ids; cin/cout come from their shapes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// k x k convolution, zero padding `pad`, no bias. With `shift` (k must be 1) the input's
    /// channel groups are read at their offsets: the shift is part of the conv, not a tensor.
    Conv {
        name: String,
        x: TensorId,
        y: TensorId,
        k: usize,
        stride: usize,
        pad: usize,
        shift: Option<ShiftSpec>,
    },
    BatchNorm {
        name: String,
        x: TensorId,
        y: TensorId,
    },
    Relu {
        x: TensorId,
        y: TensorId,
    },
    Add {
        a: TensorId,
        b: TensorId,
        y: TensorId,
    },
    /// 2x2 average pool, stride 2 (H and W must be even).
    AvgPool2 {
        x: TensorId,
        y: TensorId,
    },
    /// 3x3 max pool, stride 2, padding 1 (the ImageNet stem).
    MaxPool3s2 {
        x: TensorId,
        y: TensorId,
    },
    GlobalAvgPool {
        x: TensorId,
        y: TensorId,
    },
    /// Fully connected with bias, input (1,1,cin) -> (1,1,cout).
    Linear {
        name: String,
        x: TensorId,
        y: TensorId,
    },
}

impl Op {
    pub fn inputs(&self) -> Vec<TensorId> {
        match *self {
            Op::Add { a, b, .. } => vec![a, b],
            Op::Conv { x, .. }
            | Op::BatchNorm { x, .. }
            | Op::Relu { x, .. }
            | Op::AvgPool2 { x, .. }
            | Op::MaxPool3s2 { x, .. }
            | Op::GlobalAvgPool { x, .. }
            | Op::Linear { x, .. } => vec![x],
        }
    }

    pub fn output(&self) -> TensorId {
        match *self {
            Op::Conv { y, .. }
            | Op::BatchNorm { y, .. }
            | Op::Relu { y, .. }
            | Op::Add { y, .. }
            | Op::AvgPool2 { y, .. }
            | Op::MaxPool3s2 { y, .. }
            | Op::GlobalAvgPool { y, .. }
            | Op::Linear { y, .. } => y,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Op::Conv { name, .. } | Op::BatchNorm { name, .. } | Op::Linear { name, .. } => {
                Some(name)
            }
            _ => None,
        }
    }
}

/// A parameter tensor the graph owns: its name in `weights.safetensors` and its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Vec<usize>,
    /// Trained by SGD (false for BN running statistics).
    pub trainable: bool,
    /// Weight decay applies (conv and FC weights; not BN, not biases).
    pub decay: bool,
}

impl ParamInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub name: String,
    pub tensors: Vec<Shape>,
    pub ops: Vec<Op>,
    pub input: TensorId,
    pub output: TensorId,
}

impl Graph {
    pub fn input_shape(&self) -> Shape {
        self.tensors[self.input]
    }

    pub fn classes(&self) -> usize {
        self.tensors[self.output].c
    }

    /// Every parameter in op order. Layouts (documented in docs/formats.md):
    /// conv `{name}.weight` `[k, k, cin, cout]` (HWIO); BN `{name}.weight`, `.bias`,
    /// `.running_mean`, `.running_var` `[c]`; FC `{name}.weight` `[cin, cout]`, `.bias` `[cout]`.
    pub fn params(&self) -> Vec<ParamInfo> {
        let p = |name: String, shape: Vec<usize>, trainable: bool, decay: bool| ParamInfo {
            name,
            shape,
            trainable,
            decay,
        };
        let mut out = Vec::new();
        for op in &self.ops {
            match op {
                Op::Conv { name, x, y, k, .. } => out.push(p(
                    format!("{name}.weight"),
                    vec![*k, *k, self.tensors[*x].c, self.tensors[*y].c],
                    true,
                    true,
                )),
                Op::BatchNorm { name, x, .. } => {
                    let c = self.tensors[*x].c;
                    out.push(p(format!("{name}.weight"), vec![c], true, false));
                    out.push(p(format!("{name}.bias"), vec![c], true, false));
                    out.push(p(format!("{name}.running_mean"), vec![c], false, false));
                    out.push(p(format!("{name}.running_var"), vec![c], false, false));
                }
                Op::Linear { name, x, y } => {
                    let (ci, co) = (self.tensors[*x].c, self.tensors[*y].c);
                    out.push(p(format!("{name}.weight"), vec![ci, co], true, true));
                    out.push(p(format!("{name}.bias"), vec![co], true, false));
                }
                _ => {}
            }
        }
        out
    }

    /// Index into [`Graph::params`] of each op's first parameter (conv: weight; BN: gamma, beta,
    /// running mean, running var; FC: weight, bias), in op order.
    pub fn op_param_index(&self) -> Vec<usize> {
        let mut next = 0;
        self.ops
            .iter()
            .map(|op| {
                let first = next;
                next += match op {
                    Op::Conv { .. } => 1,
                    Op::BatchNorm { .. } => 4,
                    Op::Linear { .. } => 2,
                    _ => 0,
                };
                first
            })
            .collect()
    }

    /// Learnable parameters by the paper's convention (docs/paper.md) (BN running statistics not counted).
    pub fn param_count(&self) -> usize {
        self.params()
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.numel())
            .sum()
    }

    /// Multiply-accumulates of one image's forward pass (convs and FC only).
    pub fn macs(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Conv { x, y, k, .. } => {
                    let (xs, ys) = (self.tensors[*x], self.tensors[*y]);
                    (ys.pixels() * xs.c * ys.c * k * k) as u64
                }
                Op::Linear { x, y, .. } => (self.tensors[*x].c * self.tensors[*y].c) as u64,
                _ => 0,
            })
            .sum()
    }

    /// Peak int8 activation bytes of a conventional liveness plan on the int8 graph: BN and ReLU
    /// are folded/fused into the producing conv or add, every other op writes a new buffer, and a
    /// buffer is freed after its last reader. (The in-place, shift-as-view plan of the firmware
    /// issue improves on this; the figure here is the plain baseline.)
    pub fn peak_activation_bytes(&self) -> usize {
        // Follow BN/ReLU chains back to the tensor that really holds the bytes.
        let mut home: Vec<TensorId> = (0..self.tensors.len()).collect();
        for op in &self.ops {
            if let Op::BatchNorm { x, y, .. } | Op::Relu { x, y } = *op {
                home[y] = home[x];
            }
        }
        let real: Vec<&Op> = self
            .ops
            .iter()
            .filter(|op| !matches!(op, Op::BatchNorm { .. } | Op::Relu { .. }))
            .collect();
        let mut last_use = vec![0usize; self.tensors.len()];
        for (i, op) in real.iter().enumerate() {
            for t in op.inputs() {
                last_use[home[t]] = i;
            }
        }
        last_use[home[self.output]] = real.len();
        let mut live = vec![false; self.tensors.len()];
        live[home[self.input]] = true;
        let bytes = |live: &[bool]| -> usize {
            live.iter()
                .enumerate()
                .filter(|(_, &l)| l)
                .map(|(t, _)| self.tensors[t].numel())
                .sum()
        };
        let mut peak = bytes(&live);
        for (i, op) in real.iter().enumerate() {
            live[home[op.output()]] = true;
            peak = peak.max(bytes(&live));
            for t in op.inputs() {
                if last_use[home[t]] == i {
                    live[home[t]] = false;
                }
            }
        }
        peak
    }

    /// Checks the graph is well formed: ids in range, shapes consistent with each op.
    pub fn validate(&self) -> Result<(), String> {
        let t = |id: TensorId| -> Result<Shape, String> {
            self.tensors
                .get(id)
                .copied()
                .ok_or_else(|| format!("tensor {id} out of range"))
        };
        t(self.input)?;
        t(self.output)?;
        for (i, op) in self.ops.iter().enumerate() {
            let e = |msg: &str| format!("op {i} ({op:?}): {msg}");
            let ys = t(op.output())?;
            match *op {
                Op::Conv {
                    x,
                    k,
                    stride,
                    pad,
                    shift,
                    ..
                } => {
                    let xs = t(x)?;
                    if k == 0 || stride == 0 {
                        return Err(e("zero kernel or stride"));
                    }
                    let ho = (xs.h + 2 * pad).checked_sub(k).map(|v| v / stride + 1);
                    let wo = (xs.w + 2 * pad).checked_sub(k).map(|v| v / stride + 1);
                    if ho != Some(ys.h) || wo != Some(ys.w) {
                        return Err(e("output size does not match kernel/stride/pad"));
                    }
                    if let Some(s) = shift {
                        if k != 1 || stride != 1 || pad != 0 {
                            return Err(e("a shift needs a 1x1/1 conv"));
                        }
                        if xs.c < s.min_channels() {
                            return Err(e("too few channels for this shift"));
                        }
                    }
                }
                Op::BatchNorm { x, .. } | Op::Relu { x, .. } => {
                    if t(x)? != ys {
                        return Err(e("shape changes"));
                    }
                }
                Op::Add { a, b, .. } => {
                    if t(a)? != ys || t(b)? != ys {
                        return Err(e("operand shapes differ"));
                    }
                }
                Op::AvgPool2 { x, .. } => {
                    let xs = t(x)?;
                    if xs.h % 2 != 0 || xs.w % 2 != 0 || ys != Shape::new(xs.h / 2, xs.w / 2, xs.c)
                    {
                        return Err(e("2x2 pool needs even H, W and halves them"));
                    }
                }
                Op::MaxPool3s2 { x, .. } => {
                    let xs = t(x)?;
                    if ys != Shape::new((xs.h - 1) / 2 + 1, (xs.w - 1) / 2 + 1, xs.c) {
                        return Err(e("3x3/2 max pool output size"));
                    }
                }
                Op::GlobalAvgPool { x, .. } => {
                    if ys != Shape::new(1, 1, t(x)?.c) {
                        return Err(e("global pool output must be 1x1xC"));
                    }
                }
                Op::Linear { x, .. } => {
                    let xs = t(x)?;
                    if xs.h != 1 || xs.w != 1 || ys.h != 1 || ys.w != 1 {
                        return Err(e("linear needs 1x1 input and output"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(g: &[ShiftGroup]) -> Vec<usize> {
        g.iter().map(|g| g.c1 - g.c0).collect()
    }

    #[test]
    fn shift_groups_match_paper_examples() {
        let c4 = ShiftSpec {
            kind: Neighbourhood::C4,
            centre_group: true,
        };
        let c8 = ShiftSpec {
            kind: Neighbourhood::C8,
            centre_group: true,
        };
        assert_eq!(sizes(&c4.groups(64)), vec![12, 12, 12, 12, 16]);
        assert_eq!(sizes(&c8.groups(64)), vec![7, 7, 7, 7, 7, 7, 7, 7, 8]);
        assert_eq!(sizes(&c4.groups(256)), vec![51, 51, 51, 51, 52]);
        assert_eq!(
            sizes(&c8.groups(256)),
            vec![28, 28, 28, 28, 28, 28, 28, 28, 32]
        );
        let dirs: Vec<_> = c4.groups(64).iter().map(|g| (g.dh, g.dw)).collect();
        assert_eq!(dirs, vec![(1, 0), (0, -1), (-1, 0), (0, 1), (0, 0)]);
    }

    #[test]
    fn shift_groups_without_centre_cover_all_channels() {
        let s = ShiftSpec {
            kind: Neighbourhood::C4,
            centre_group: false,
        };
        assert_eq!(sizes(&s.groups(66)), vec![16, 16, 16, 18]);
        assert!(s.groups(66).iter().all(|g| (g.dh, g.dw) != (0, 0)));
    }

    /// The split the paper states, written out independently of the firmware's code: every
    /// channel count 1..=1024, 4C and 8C, with and without the centre group.
    #[test]
    fn shift_groups_are_the_papers_split_for_every_channel_count() {
        let d4: &[(isize, isize)] = &[(1, 0), (0, -1), (-1, 0), (0, 1)];
        let d8: &[(isize, isize)] = &[
            (1, 1),
            (1, 0),
            (1, -1),
            (0, -1),
            (-1, -1),
            (-1, 0),
            (-1, 1),
            (0, 1),
        ];
        for (kind, dirs) in [(Neighbourhood::C4, d4), (Neighbourhood::C8, d8)] {
            for centre_group in [false, true] {
                let s = ShiftSpec { kind, centre_group };
                let n = dirs.len();
                assert_eq!(s.min_channels(), n + usize::from(centre_group));
                for c in 1..=1024 {
                    let g = if centre_group { c / (n + 1) } else { c / n };
                    let mut want: Vec<ShiftGroup> = dirs
                        .iter()
                        .enumerate()
                        .map(|(i, &(dh, dw))| ShiftGroup {
                            dh,
                            dw,
                            c0: i * g,
                            c1: if !centre_group && i == n - 1 {
                                c
                            } else {
                                (i + 1) * g
                            },
                        })
                        .collect();
                    if centre_group {
                        want.push(ShiftGroup {
                            dh: 0,
                            dw: 0,
                            c0: n * g,
                            c1: c,
                        });
                    }
                    assert_eq!(s.groups(c), want, "{kind:?} centre {centre_group} c {c}");
                }
            }
        }
    }
}
