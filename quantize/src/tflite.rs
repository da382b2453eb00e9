//! `.skq` -> `.tflite`: the int8 model as a TFLite flatbuffer (schema version 3, the published
//! `schema.fbs`, written through the `flatbuffers` crate's builder), for Google's LiteRT
//! interpreter, TFLite Micro and Netron (docs/tflite.md says what each op becomes and why).
//!
//! Everything comes from the validated `.skq` alone, through `firmware::Model`:
//! - every tensor is `[1, H, W, C]` int8 with its scale and zero point; the model input is int8
//!   `pixel - 128` (scale 1/255, zero point -128), the same real value as our u8 pixel;
//! - a conv or FC is `CONV_2D` with the same OHWI int8 weights, per-channel scales, and int32
//!   biases `ours + zp_in * sum(w)` (TFLite subtracts the input zero point at run time; we fold
//!   it into the bias);
//!   its weight scales are the f32 values for which TFLite's own `QuantizeMultiplier` of
//!   `s_in * s_w / s_out` gives back our constants (searched around the exact quotient);
//! - a shift is a `DEPTHWISE_CONV_2D` with one-hot 3x3 kernels (scale 1, multiplier exactly 1:
//!   a copy of each group from its neighbour, the zero point outside the image);
//! - padding that TFLite's `SAME` does not give (a stride-2 conv, which `SAME` pads below and
//!   right, not above and left; the stem's pad value, the pixel that normalises to 0) is an
//!   explicit `PADV2`, or two `CONCATENATION`s of constant borders when the value differs per
//!   channel; a max pool's padding is a `PADV2` of -128;
//! - 2x2 and global average pools are `AVERAGE_POOL_2D` (TFLite rounds as we do), an add is
//!   `ADD` (TFLite recomputes our constants from the scales), a fused ReLU is `RELU`.
use crate::requant::quantize_multiplier;
use firmware::format::{shift_groups, Op, Requant, Shift, Span, Tensor};
use firmware::Model;
use flatbuffers::{FlatBufferBuilder, WIPOffset};

/// What went wrong: the file is not a valid model, or holds something the target format (TFLite,
/// or ONNX through [`crate::onnx`]) cannot state.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a valid .skq model: {0}")]
    Model(String),
    #[error("cannot export: {0}")]
    Unsupported(String),
}

/// An exported model and how exactly TFLite reproduces our arithmetic.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The `.tflite` bytes.
    pub bytes: Vec<u8>,
    /// Conv and FC output channels, and those whose constants TFLite recomputes exactly.
    pub channels: usize,
    pub exact_channels: usize,
    /// Adds, and those whose constants TFLite recomputes exactly.
    pub adds: usize,
    pub exact_adds: usize,
    /// Each builtin operator written, with its count, in first-use order.
    pub ops: Vec<(&'static str, usize)>,
}

impl Exported {
    /// Whether TFLite's integer arithmetic on this file is ours, constant for constant.
    pub fn bit_exact(&self) -> bool {
        self.exact_channels == self.channels && self.exact_adds == self.adds
    }
}

// TFLite schema enums (schema.fbs).
const INT8: i8 = 9;
const INT32: i8 = 2;
const SAME: i8 = 0;
const VALID: i8 = 1;
const ACT_NONE: i8 = 0;
const ACT_RELU: i8 = 1;

/// A builtin operator: its schema code, its op version for int8, its schema name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Builtin {
    code: i32,
    version: i32,
    name: &'static str,
}
const fn builtin(code: i32, version: i32, name: &'static str) -> Builtin {
    Builtin {
        code,
        version,
        name,
    }
}
const ADD: Builtin = builtin(0, 2, "ADD");
const AVERAGE_POOL_2D: Builtin = builtin(1, 2, "AVERAGE_POOL_2D");
const CONCATENATION: Builtin = builtin(2, 2, "CONCATENATION");
const CONV_2D: Builtin = builtin(3, 3, "CONV_2D");
const DEPTHWISE_CONV_2D: Builtin = builtin(4, 3, "DEPTHWISE_CONV_2D");
const MAX_POOL_2D: Builtin = builtin(17, 2, "MAX_POOL_2D");
const PADV2: Builtin = builtin(60, 2, "PADV2");

/// Builtin options (the `BuiltinOptions` union: its type index and the table's fields).
#[derive(Clone, Debug)]
enum Options {
    Conv {
        padding: i8,
        stride: i32,
        act: i8,
    },
    Depthwise {
        padding: i8,
        act: i8,
    },
    Pool {
        padding: i8,
        stride: i32,
        filter_h: i32,
        filter_w: i32,
    },
    Add {
        act: i8,
    },
    Concat {
        axis: i32,
    },
    PadV2,
}

struct Quant {
    scale: Vec<f32>,
    zero_point: Vec<i64>,
    dim: i32,
}

struct TTensor {
    shape: Vec<i32>,
    ty: i8,
    buffer: u32,
    name: String,
    quant: Option<Quant>,
}

struct TOp {
    op: Builtin,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    options: Options,
}

/// The graph being written: tensors, buffers (0 is the empty one, as the schema asks), ops.
struct Graph {
    tensors: Vec<TTensor>,
    buffers: Vec<Vec<u8>>,
    ops: Vec<TOp>,
}

impl Graph {
    /// An `h x w` int8 tensor with `t`'s channels, scale and zero point, computed by an op.
    fn activation(&mut self, name: String, t: &Tensor, h: u16, w: u16) -> i32 {
        self.tensor(TTensor {
            shape: vec![1, h.into(), w.into(), t.c.into()],
            ty: INT8,
            buffer: 0,
            name,
            quant: per_tensor(t),
        })
    }
    /// A constant tensor: `data` in a buffer of its own.
    fn constant(
        &mut self,
        name: String,
        shape: Vec<i32>,
        ty: i8,
        quant: Option<Quant>,
        data: Vec<u8>,
    ) -> i32 {
        self.buffers.push(data);
        let buffer = (self.buffers.len() - 1) as u32;
        self.tensor(TTensor {
            shape,
            ty,
            buffer,
            name,
            quant,
        })
    }
    fn tensor(&mut self, t: TTensor) -> i32 {
        self.tensors.push(t);
        (self.tensors.len() - 1) as i32
    }
    fn op(&mut self, op: Builtin, inputs: Vec<i32>, outputs: Vec<i32>, options: Options) {
        self.ops.push(TOp {
            op,
            inputs,
            outputs,
            options,
        });
    }
}

/// The per-tensor quantisation of `t`.
fn per_tensor(t: &Tensor) -> Option<Quant> {
    Some(Quant {
        scale: vec![t.scale],
        zero_point: vec![t.zero_point.into()],
        dim: 0,
    })
}

fn bad(e: impl std::fmt::Display) -> ExportError {
    ExportError::Model(e.to_string())
}

/// The TFLite view of one of our tensors: the model input (u8 pixels, zero point 0) is int8
/// `pixel - 128`, zero point `zp - 128`; every other tensor is as it is.
fn tflite_tensor(t: Tensor, is_input: bool) -> Tensor {
    if is_input {
        Tensor {
            zero_point: (i16::from(t.zero_point) - 128) as i8,
            ..t
        }
    } else {
        t
    }
}

/// The f32 weight scale for which TFLite's `QuantizeMultiplier(f64(s_in) * f64(s_w) /
/// f64(s_out))` is `(m, s)`, if one exists; else the nearest (the multiplier of a channel in the
/// single-rounding form, `s = 0` and `m < 2^30`, has no f32 that TFLite's normalised form
/// reproduces exactly).
fn weight_scale(m: i32, s: i32, s_in: f32, s_out: f32) -> (f32, bool) {
    let real = f64::from(m) * 2f64.powi(s - 31);
    let approx = (real * f64::from(s_out) / f64::from(s_in)) as f32;
    let hits = |c: f32| quantize_multiplier(f64::from(s_in) * f64::from(c) / f64::from(s_out));
    let (mut up, mut down) = (approx, approx);
    for _ in 0..8 {
        for c in [up, down] {
            if hits(c) == Some((m, s)) {
                return (c, true);
            }
        }
        up = up.next_up();
        down = down.next_down();
    }
    (approx, false)
}

fn act(r: &Requant, zp_out: i8, what: &str) -> Result<i8, ExportError> {
    match (r.act_min, r.act_max) {
        (-128, 127) => Ok(ACT_NONE),
        (lo, 127) if lo == zp_out => Ok(ACT_RELU),
        (lo, hi) => Err(ExportError::Unsupported(format!(
            "{what}: the output clamp [{lo}, {hi}] is neither none nor a ReLU (zero point {zp_out})"
        ))),
    }
}

fn i32_bytes(v: impl IntoIterator<Item = i32>) -> Vec<u8> {
    v.into_iter().flat_map(i32::to_le_bytes).collect()
}

/// Exports a `.skq` file (its bytes) to `.tflite`.
pub fn export(skq: &[u8]) -> Result<Exported, ExportError> {
    let m = Model::from_bytes(skq).map_err(bad)?;
    let input_id = m.header().input;
    let mut g = Graph {
        tensors: Vec::new(),
        buffers: vec![Vec::new()],
        ops: Vec::new(),
    };
    // Our tensor id -> TFLite tensor index.
    let mut map = vec![-1i32; m.header().tensors.into()];
    // Each tensor as TFLite sees it, and the zero point our biases fold in (the model input's is
    // that of the u8 pixels).
    let mut ours = Vec::with_capacity(map.len());
    let mut folded_zp = Vec::with_capacity(map.len());
    for (id, t) in m.tensors().enumerate() {
        let t = t.map_err(bad)?;
        folded_zp.push(t.zero_point);
        let t = tflite_tensor(t, id == usize::from(input_id));
        let name = if id == usize::from(input_id) {
            "input".to_string()
        } else {
            format!("t{id}")
        };
        map[id] = g.activation(name, &t, t.h, t.w);
        ours.push(t);
    }
    let (mut channels, mut exact_channels, mut adds, mut exact_adds) = (0, 0, 0, 0);
    for (i, op) in m.ops().enumerate() {
        let op = op.map_err(bad)?;
        let kind = op.kind();
        let what = format!("op {i} ({kind})");
        match op {
            Op::Conv {
                x,
                y,
                k,
                stride,
                pad,
                shift,
                weights,
                bias,
                requant,
                pad_value,
            } => {
                let (tx, ty) = (ours[usize::from(x)], ours[usize::from(y)]);
                let is_input = x == input_id;
                let mut src = map[usize::from(x)];
                let pads = m.span_bytes(pad_value, 1).ok_or_else(|| bad(&what))?;
                // The pad value in TFLite's int8 terms.
                let pads: Vec<i8> = pads
                    .iter()
                    .map(|&p| {
                        if is_input {
                            (i16::from(p) - 128) as i8
                        } else {
                            p as i8
                        }
                    })
                    .collect();
                if shift != Shift::None {
                    if pads.iter().any(|&p| p != tx.zero_point) {
                        return Err(ExportError::Unsupported(format!(
                            "{what}: a shift whose border value is not the input's zero point"
                        )));
                    }
                    src = shift_op(&mut g, &what, src, &tx, shift)?;
                }
                let padding = if pad == 0 {
                    VALID
                } else if same_pads(tx.h, k, stride, pad)
                    && same_pads(tx.w, k, stride, pad)
                    && pads.iter().all(|&p| p == tx.zero_point)
                {
                    SAME
                } else {
                    src = pad_op(&mut g, &what, src, &tx, pad, &pads)?;
                    VALID
                };
                let (cout, cin, kk) = (usize::from(ty.c), usize::from(tx.c), usize::from(k));
                let a = act(&requant, ty.zero_point, &what)?;
                let (w_idx, b_idx, exact) = conv_constants(
                    &m,
                    &mut g,
                    &what,
                    i,
                    [cout, kk, kk, cin],
                    (weights, bias, &requant),
                    (&tx, folded_zp[usize::from(x)], &ty),
                )?;
                channels += cout;
                exact_channels += exact;
                g.op(
                    CONV_2D,
                    vec![src, w_idx, b_idx],
                    vec![map[usize::from(y)]],
                    Options::Conv {
                        padding,
                        stride: stride.into(),
                        act: a,
                    },
                );
            }
            Op::FullyConnected {
                x,
                y,
                weights,
                bias,
                requant,
            } => {
                // A 1x1 conv on the 1x1xCin image: per-channel everywhere TFLite runs.
                let (tx, ty) = (ours[usize::from(x)], ours[usize::from(y)]);
                let (cout, cin) = (usize::from(ty.c), usize::from(tx.c));
                let a = act(&requant, ty.zero_point, &what)?;
                let (w_idx, b_idx, exact) = conv_constants(
                    &m,
                    &mut g,
                    &what,
                    i,
                    [cout, 1, 1, cin],
                    (weights, bias, &requant),
                    (&tx, folded_zp[usize::from(x)], &ty),
                )?;
                channels += cout;
                exact_channels += exact;
                g.op(
                    CONV_2D,
                    vec![map[usize::from(x)], w_idx, b_idx],
                    vec![map[usize::from(y)]],
                    Options::Conv {
                        padding: VALID,
                        stride: 1,
                        act: a,
                    },
                );
            }
            Op::Add {
                a,
                b,
                y,
                left_shift,
                multipliers,
                act_min,
                act_max,
            } => {
                let (ta, tb, ty) = (
                    ours[usize::from(a)],
                    ours[usize::from(b)],
                    ours[usize::from(y)],
                );
                if left_shift != 20 {
                    return Err(ExportError::Unsupported(format!(
                        "{what}: left shift {left_shift}; TFLite's int8 ADD shifts by 20"
                    )));
                }
                let r = Requant {
                    multiplier: Span {
                        offset: 0,
                        count: 0,
                    },
                    shift: Span {
                        offset: 0,
                        count: 0,
                    },
                    act_min,
                    act_max,
                };
                let a_act = act(&r, ty.zero_point, &what)?;
                // TFLite's ADD constants from the f32 scales (add.cc).
                let twice = f64::from(2.0 * ta.scale.max(tb.scale));
                let want = [
                    quantize_multiplier(f64::from(ta.scale) / twice),
                    quantize_multiplier(f64::from(tb.scale) / twice),
                    quantize_multiplier(twice / f64::from((1u32 << 20) as f32 * ty.scale)),
                ];
                let have = [
                    (multipliers.a_multiplier, multipliers.a_shift),
                    (multipliers.b_multiplier, multipliers.b_shift),
                    (multipliers.out_multiplier, multipliers.out_shift),
                ];
                adds += 1;
                exact_adds += usize::from(want.iter().zip(&have).all(|(w, h)| *w == Some(*h)));
                g.op(
                    ADD,
                    vec![map[usize::from(a)], map[usize::from(b)]],
                    vec![map[usize::from(y)]],
                    Options::Add { act: a_act },
                );
            }
            Op::AvgPool2 { x, y } => g.op(
                AVERAGE_POOL_2D,
                vec![map[usize::from(x)]],
                vec![map[usize::from(y)]],
                Options::Pool {
                    padding: VALID,
                    stride: 2,
                    filter_h: 2,
                    filter_w: 2,
                },
            ),
            Op::GlobalAvgPool { x, y } => {
                let tx = ours[usize::from(x)];
                g.op(
                    AVERAGE_POOL_2D,
                    vec![map[usize::from(x)]],
                    vec![map[usize::from(y)]],
                    Options::Pool {
                        padding: VALID,
                        stride: 1,
                        filter_h: tx.h.into(),
                        filter_w: tx.w.into(),
                    },
                )
            }
            Op::MaxPool3s2 { x, y } => {
                let tx = ours[usize::from(x)];
                let c = usize::from(tx.c);
                let src = pad_op(&mut g, &what, map[usize::from(x)], &tx, 1, &vec![-128; c])?;
                g.op(
                    MAX_POOL_2D,
                    vec![src],
                    vec![map[usize::from(y)]],
                    Options::Pool {
                        padding: VALID,
                        stride: 2,
                        filter_h: 3,
                        filter_w: 3,
                    },
                );
            }
        }
    }
    let input = map[usize::from(input_id)];
    let output = map[usize::from(m.header().output)];
    let mut ops: Vec<(&'static str, usize)> = Vec::new();
    for o in &g.ops {
        match ops.iter_mut().find(|(n, _)| *n == o.op.name) {
            Some((_, c)) => *c += 1,
            None => ops.push((o.op.name, 1)),
        }
    }
    Ok(Exported {
        bytes: serialize(&g, input, output),
        channels,
        exact_channels,
        adds,
        exact_adds,
        ops,
    })
}

/// Whether TFLite's `SAME` padding of a `k`-wide window at `stride` over `n` pixels is ours
/// (`pad` on both sides): the same output size and the same padding before the first pixel.
fn same_pads(n: u16, k: u8, stride: u8, pad: u8) -> bool {
    let (n, k, s, p) = (
        i64::from(n),
        i64::from(k),
        i64::from(stride),
        i64::from(pad),
    );
    let ours = (n + 2 * p - k) / s + 1;
    let out = (n + s - 1) / s;
    let total = ((out - 1) * s + k - n).max(0);
    ours == out && total / 2 == p
}

/// A conv's or FC's constants in TFLite's (and ONNX's QDQ) terms.
pub(crate) struct ConvParams<'a> {
    /// int8 weights, OHWI, as the file holds them.
    pub weights: &'a [u8],
    /// Per output channel: the weight scale ([`weight_scale`]) and the int32 bias at scale
    /// `s_in * s_w` with nothing folded (`ours + zp_in * sum(w)`).
    pub scales: Vec<f32>,
    pub bias: Vec<i32>,
    /// Channels whose requantisation TFLite recomputes exactly from `scales`.
    pub exact: usize,
}

/// The [`ConvParams`] of a conv or FC with `ohwi` weights; `(s_in, zp_in, s_out)`: the input's
/// scale, the input zero point our biases fold in, the output's scale.
pub(crate) fn conv_params<'a>(
    m: &Model<'a>,
    what: &str,
    ohwi: [usize; 4],
    weights: Span,
    bias: Span,
    requant: &Requant,
    (s_in, zp_in, s_out): (f32, i8, f32),
) -> Result<ConvParams<'a>, ExportError> {
    let cout = ohwi[0];
    let per = ohwi[1] * ohwi[2] * ohwi[3];
    let w = m.span_bytes(weights, 1).ok_or_else(|| bad(what))?;
    let biases = m.i32_span(bias).ok_or_else(|| bad(what))?;
    let mults = m.i32_span(requant.multiplier).ok_or_else(|| bad(what))?;
    let shifts = m.i32_span(requant.shift).ok_or_else(|| bad(what))?;
    if w.len() != cout * per {
        return Err(bad(what));
    }
    let (mut scales, mut b, mut exact) = (Vec::new(), Vec::new(), 0);
    for co in 0..cout {
        let (mu, sh) = (
            mults.get(co).ok_or_else(|| bad(what))?,
            shifts.get(co).ok_or_else(|| bad(what))?,
        );
        let (s_w, hit) = weight_scale(mu, sh, s_in, s_out);
        exact += usize::from(hit);
        scales.push(s_w);
        let sum: i64 = w[co * per..(co + 1) * per]
            .iter()
            .map(|&v| i64::from(v as i8))
            .sum();
        let v = i64::from(biases.get(co).ok_or_else(|| bad(what))?) + i64::from(zp_in) * sum;
        b.push(i32::try_from(v).map_err(|_| {
            ExportError::Unsupported(format!("{what}: channel {co}'s bias {v} overflows int32"))
        })?);
    }
    Ok(ConvParams {
        weights: w,
        scales,
        bias: b,
        exact,
    })
}

/// Weights and biases of a conv or FC as TFLite constants; returns their tensor indices and
/// how many channels' constants TFLite recomputes exactly. `zp_in` is the input zero point our
/// biases fold in; `tx` and `ty` are the tensors as TFLite sees them.
fn conv_constants(
    m: &Model,
    g: &mut Graph,
    what: &str,
    i: usize,
    ohwi: [usize; 4],
    (weights, bias, requant): (Span, Span, &Requant),
    (tx, zp_in, ty): (&Tensor, i8, &Tensor),
) -> Result<(i32, i32, usize), ExportError> {
    let cout = ohwi[0];
    let p = conv_params(
        m,
        what,
        ohwi,
        weights,
        bias,
        requant,
        (tx.scale, zp_in, ty.scale),
    )?;
    let (w, scales, b, exact) = (p.weights, p.scales, p.bias, p.exact);
    let bias_scales: Vec<f32> = scales
        .iter()
        .map(|&s_w| (f64::from(tx.scale) * f64::from(s_w)) as f32)
        .collect();
    let shape: Vec<i32> = ohwi.iter().map(|&d| d as i32).collect();
    let w_idx = g.constant(
        format!("op{i}.weights"),
        shape,
        INT8,
        Some(Quant {
            scale: scales,
            zero_point: vec![0; cout],
            dim: 0,
        }),
        w.to_vec(),
    );
    let b_idx = g.constant(
        format!("op{i}.bias"),
        vec![cout as i32],
        INT32,
        Some(Quant {
            scale: bias_scales,
            zero_point: vec![0; cout],
            dim: 0,
        }),
        i32_bytes(b),
    );
    Ok((w_idx, b_idx, exact))
}

/// The shift as a depthwise 3x3 conv of one-hot kernels: channel `c` of group `(dh, dw)` has a
/// 1 at tap `(1 - dh, 1 - dw)`, so output `(h, w)` reads input `(h - dh, w - dw)`, and TFLite's
/// `SAME` padding gives the zero point outside the image. Scale 1 and multiplier 1: an exact
/// copy. Returns the shifted tensor.
fn shift_op(
    g: &mut Graph,
    what: &str,
    src: i32,
    t: &Tensor,
    shift: Shift,
) -> Result<i32, ExportError> {
    let c = usize::from(t.c);
    let mut k = vec![0u8; 9 * c];
    for (ch, (ky, kx)) in shift_taps(shift, c, what)?.into_iter().enumerate() {
        k[(ky * 3 + kx) * c + ch] = 1;
    }
    let i = g.ops.len();
    let filter = g.constant(
        format!("shift{i}.kernel"),
        vec![1, 3, 3, c as i32],
        INT8,
        Some(Quant {
            scale: vec![1.0; c],
            zero_point: vec![0; c],
            dim: 3,
        }),
        k,
    );
    let bias = g.constant(
        format!("shift{i}.bias"),
        vec![c as i32],
        INT32,
        Some(Quant {
            scale: vec![t.scale; c],
            zero_point: vec![0; c],
            dim: 0,
        }),
        vec![0; 4 * c],
    );
    let out = g.activation(format!("shift{i}"), t, t.h, t.w);
    g.op(
        DEPTHWISE_CONV_2D,
        vec![src, filter, bias],
        vec![out],
        Options::Depthwise {
            padding: SAME,
            act: ACT_NONE,
        },
    );
    Ok(out)
}

/// The tap `(ky, kx)` of a 3x3 window (centre `(1, 1)`) that channel `c` of a shift over `c`
/// channels reads: `(1 - dh, 1 - dw)` for its group `(dh, dw)` (`firmware::format::shift_groups`).
pub(crate) fn shift_taps(
    shift: Shift,
    c: usize,
    what: &str,
) -> Result<Vec<(usize, usize)>, ExportError> {
    let mut groups = [(0i8, 0i8, 0usize, 0usize); 9];
    let n = shift_groups(shift, c, &mut groups);
    let mut taps = vec![(1, 1); c];
    for &(dh, dw, c0, c1) in &groups[..n] {
        if !(-1..=1).contains(&dh) || !(-1..=1).contains(&dw) || c1 > c {
            return Err(ExportError::Unsupported(format!(
                "{what}: a shift group beyond 3x3"
            )));
        }
        for t in &mut taps[c0..c1] {
            *t = ((1 - dh) as usize, (1 - dw) as usize);
        }
    }
    Ok(taps)
}

/// `pad` pixels of `values` (one per channel, TFLite int8) around `src`: a `PADV2` when every
/// channel has the same value, else a `CONCATENATION` of constant columns, then of rows.
fn pad_op(
    g: &mut Graph,
    what: &str,
    src: i32,
    t: &Tensor,
    pad: u8,
    values: &[i8],
) -> Result<i32, ExportError> {
    let (h, w, c, p) = (t.h, t.w, usize::from(t.c), u16::from(pad));
    let (hp, wp) = (h.checked_add(2 * p), w.checked_add(2 * p));
    let (Some(hp), Some(wp)) = (hp, wp) else {
        return Err(ExportError::Unsupported(format!(
            "{what}: the padded image is too large"
        )));
    };
    let i = g.ops.len();
    if values.iter().all(|&v| v == values[0]) {
        let paddings = g.constant(
            format!("pad{i}.paddings"),
            vec![4, 2],
            INT32,
            None,
            i32_bytes([0, 0, p.into(), p.into(), p.into(), p.into(), 0, 0]),
        );
        let value = g.constant(
            format!("pad{i}.value"),
            vec![1],
            INT8,
            per_tensor(t),
            vec![values[0] as u8],
        );
        let out = g.activation(format!("pad{i}"), t, hp, wp);
        g.op(PADV2, vec![src, paddings, value], vec![out], Options::PadV2);
        return Ok(out);
    }
    let fill = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|_| values.iter().map(|&v| v as u8))
            .collect()
    };
    let col = g.constant(
        format!("pad{i}.column"),
        vec![1, h.into(), p.into(), c as i32],
        INT8,
        per_tensor(t),
        fill(usize::from(h) * usize::from(p)),
    );
    let wide = g.activation(format!("pad{i}.w"), t, h, wp);
    g.op(
        CONCATENATION,
        vec![col, src, col],
        vec![wide],
        Options::Concat { axis: 2 },
    );
    let row = g.constant(
        format!("pad{i}.row"),
        vec![1, p.into(), wp.into(), c as i32],
        INT8,
        per_tensor(t),
        fill(usize::from(p) * usize::from(wp)),
    );
    let out = g.activation(format!("pad{i}"), t, hp, wp);
    g.op(
        CONCATENATION,
        vec![row, wide, row],
        vec![out],
        Options::Concat { axis: 1 },
    );
    Ok(out)
}

/// A byte vector whose data starts 16 bytes from the buffer's end times a whole number (the
/// schema's `force_align: 16` for buffer data; [`serialize`] then aligns the whole file).
fn aligned_bytes<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    data: &[u8],
) -> WIPOffset<flatbuffers::Vector<'a, u8>> {
    let used = fbb.unfinished_data().len();
    for _ in 0..(16 - (used + data.len()) % 16) % 16 {
        fbb.push(0u8);
    }
    fbb.create_vector(data)
}

/// Field `i` of a table (its vtable slot).
const fn slot(i: u16) -> u16 {
    4 + 2 * i
}

fn serialize(g: &Graph, input: i32, output: i32) -> Vec<u8> {
    let mut fbb = FlatBufferBuilder::with_capacity(1 << 16);
    // Buffers (Buffer: 0 data).
    let mut buffers = Vec::with_capacity(g.buffers.len());
    for b in &g.buffers {
        let data = (!b.is_empty()).then(|| aligned_bytes(&mut fbb, b));
        let t = fbb.start_table();
        if let Some(d) = data {
            fbb.push_slot_always(slot(0), d);
        }
        buffers.push(fbb.end_table(t));
    }
    let buffers = fbb.create_vector(&buffers);
    // Tensors (Tensor: 0 shape, 1 type, 2 buffer, 3 name, 4 quantization;
    // QuantizationParameters: 2 scale, 3 zero_point, 6 quantized_dimension).
    let mut tensors = Vec::with_capacity(g.tensors.len());
    for t in &g.tensors {
        let q = t.quant.as_ref().map(|q| {
            let scale = fbb.create_vector(&q.scale);
            let zp = fbb.create_vector(&q.zero_point);
            let qt = fbb.start_table();
            fbb.push_slot_always(slot(2), scale);
            fbb.push_slot_always(slot(3), zp);
            fbb.push_slot(slot(6), q.dim, 0);
            fbb.end_table(qt)
        });
        let shape = fbb.create_vector(&t.shape);
        let name = fbb.create_string(&t.name);
        let tt = fbb.start_table();
        fbb.push_slot_always(slot(0), shape);
        fbb.push_slot(slot(1), t.ty, 0);
        fbb.push_slot(slot(2), t.buffer, 0);
        fbb.push_slot_always(slot(3), name);
        if let Some(q) = q {
            fbb.push_slot_always(slot(4), q);
        }
        tensors.push(fbb.end_table(tt));
    }
    let tensors = fbb.create_vector(&tensors);
    // Operator codes, in first-use order (OperatorCode: 0 deprecated_builtin_code, 2 version,
    // 3 builtin_code).
    let mut codes: Vec<Builtin> = Vec::new();
    for o in &g.ops {
        if !codes.contains(&o.op) {
            codes.push(o.op);
        }
    }
    let code_tables: Vec<_> = codes
        .iter()
        .map(|c| {
            let t = fbb.start_table();
            fbb.push_slot(slot(0), c.code.min(127) as i8, 0);
            fbb.push_slot(slot(2), c.version, 1);
            fbb.push_slot(slot(3), c.code, 0);
            fbb.end_table(t)
        })
        .collect();
    let codes_vec = fbb.create_vector(&code_tables);
    // Operators (Operator: 0 opcode_index, 1 inputs, 2 outputs, 3 builtin_options_type,
    // 4 builtin_options).
    let mut ops = Vec::with_capacity(g.ops.len());
    for o in &g.ops {
        let (kind, opts) = options(&mut fbb, &o.options);
        let inputs = fbb.create_vector(&o.inputs);
        let outputs = fbb.create_vector(&o.outputs);
        let index = codes.iter().position(|c| *c == o.op).unwrap_or(0) as u32;
        let t = fbb.start_table();
        fbb.push_slot(slot(0), index, 0);
        fbb.push_slot_always(slot(1), inputs);
        fbb.push_slot_always(slot(2), outputs);
        fbb.push_slot(slot(3), kind, 0);
        fbb.push_slot_always(slot(4), opts);
        ops.push(fbb.end_table(t));
    }
    let ops = fbb.create_vector(&ops);
    // The subgraph (SubGraph: 0 tensors, 1 inputs, 2 outputs, 3 operators, 4 name) and the
    // model (Model: 0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers).
    let ins = fbb.create_vector(&[input]);
    let outs = fbb.create_vector(&[output]);
    let name = fbb.create_string("main");
    let sg = fbb.start_table();
    fbb.push_slot_always(slot(0), tensors);
    fbb.push_slot_always(slot(1), ins);
    fbb.push_slot_always(slot(2), outs);
    fbb.push_slot_always(slot(3), ops);
    fbb.push_slot_always(slot(4), name);
    let sg = fbb.end_table(sg);
    let subgraphs = fbb.create_vector(&[sg]);
    let description = fbb.create_string(concat!(
        "shiftkit export tflite (quantize ",
        env!("CARGO_PKG_VERSION"),
        ")"
    ));
    let model = fbb.start_table();
    fbb.push_slot(slot(0), 3u32, 0);
    fbb.push_slot_always(slot(1), codes_vec);
    fbb.push_slot_always(slot(2), subgraphs);
    fbb.push_slot_always(slot(3), description);
    fbb.push_slot_always(slot(4), buffers);
    let model = fbb.end_table(model);
    fbb.finish(model, Some("TFL3"));
    let mut out = fbb.finished_data().to_vec();
    // Every buffer's data lies a multiple of 16 from the end, and the file's length is a
    // multiple of 8 (its widest scalar, the i64 zero points): 8 bytes after the file identifier
    // move them all to multiples of 16 from the start, keeping every 8-byte alignment. Only the
    // root offset, at byte 0, points across the gap.
    let gap = out.len() % 16;
    if gap != 0 {
        let root = u32::from_le_bytes([out[0], out[1], out[2], out[3]]) + gap as u32;
        out[0..4].copy_from_slice(&root.to_le_bytes());
        out.splice(8..8, std::iter::repeat_n(0u8, gap));
    }
    out
}

/// An op's options table and its `BuiltinOptions` type index (schema.fbs's union order).
fn options<'a>(
    fbb: &mut FlatBufferBuilder<'a>,
    o: &Options,
) -> (u8, WIPOffset<flatbuffers::UnionWIPOffset>) {
    let t = fbb.start_table();
    let kind = match *o {
        // Conv2DOptions: 0 padding, 1 stride_w, 2 stride_h, 3 fused_activation_function.
        Options::Conv {
            padding,
            stride,
            act,
        } => {
            fbb.push_slot(slot(0), padding, 0);
            fbb.push_slot(slot(1), stride, 0);
            fbb.push_slot(slot(2), stride, 0);
            fbb.push_slot(slot(3), act, 0);
            1
        }
        // DepthwiseConv2DOptions: 0 padding, 1 stride_w, 2 stride_h, 3 depth_multiplier,
        // 4 fused_activation_function.
        Options::Depthwise { padding, act } => {
            fbb.push_slot(slot(0), padding, 0);
            fbb.push_slot(slot(1), 1i32, 0);
            fbb.push_slot(slot(2), 1i32, 0);
            fbb.push_slot(slot(3), 1i32, 0);
            fbb.push_slot(slot(4), act, 0);
            2
        }
        // Pool2DOptions: 0 padding, 1 stride_w, 2 stride_h, 3 filter_width, 4 filter_height.
        Options::Pool {
            padding,
            stride,
            filter_h,
            filter_w,
        } => {
            fbb.push_slot(slot(0), padding, 0);
            fbb.push_slot(slot(1), stride, 0);
            fbb.push_slot(slot(2), stride, 0);
            fbb.push_slot(slot(3), filter_w, 0);
            fbb.push_slot(slot(4), filter_h, 0);
            5
        }
        // ConcatenationOptions: 0 axis.
        Options::Concat { axis } => {
            fbb.push_slot(slot(0), axis, 0);
            10
        }
        // AddOptions: 0 fused_activation_function.
        Options::Add { act } => {
            fbb.push_slot(slot(0), act, 0);
            11
        }
        Options::PadV2 => 43,
    };
    let t = fbb.end_table(t);
    (kind, t.as_union_value())
}

/// `shiftkit-quantize export-tflite MODEL.skq [--out FILE]`: writes the `.tflite` (default:
/// beside the model, `.tflite` for `.skq`) and says what it holds and whether it is bit-exact.
pub fn command(args: Vec<String>) -> Result<(), crate::QuantError> {
    use crate::QuantError;
    use std::path::PathBuf;
    let usage = "usage: shiftkit-quantize export-tflite MODEL.skq [--out FILE]";
    let (mut model, mut out) = (None, None);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => {
                out = Some(PathBuf::from(it.next().ok_or_else(|| {
                    QuantError::Usage(format!("--out needs a file\n{usage}"))
                })?))
            }
            s if s.starts_with("--") => {
                return Err(QuantError::Usage(format!("unknown option {s}\n{usage}")))
            }
            _ if model.is_none() => model = Some(PathBuf::from(a)),
            _ => {
                return Err(QuantError::Usage(format!(
                    "unexpected argument {a}\n{usage}"
                )))
            }
        }
    }
    let model = model
        .ok_or_else(|| QuantError::Usage(format!("export-tflite needs MODEL.skq\n{usage}")))?;
    let out = out.unwrap_or_else(|| model.with_extension("tflite"));
    let bytes = std::fs::read(&model).map_err(host_train::io::io_err(&model))?;
    let e = export(&bytes).map_err(|e| {
        QuantError::Engine(format!(
            "{}: {e} (export tflite takes shiftkit's own .skq, as quantize writes it)",
            model.display()
        ))
    })?;
    host_train::io::write_atomic(&out, &e.bytes)?;
    let ops: Vec<String> = e.ops.iter().map(|(n, c)| format!("{n} x{c}")).collect();
    println!(
        "wrote {} ({} B, from {} B of .skq): {}",
        out.display(),
        e.bytes.len(),
        bytes.len(),
        ops.join(", ")
    );
    println!("input: int8, pixel - 128 (scale 1/255, zero point -128); output: int8 logits");
    if e.bit_exact() {
        println!(
            "bit-exact: TFLite recomputes every constant from the file's scales ({} conv/FC \
             channels, {} adds)",
            e.channels, e.adds
        );
    } else {
        println!(
            "not bit-exact: TFLite recomputes {} of {} conv/FC channels' and {} of {} adds' \
             constants exactly; the others (the single-rounding form) may differ by 1 LSB. \
             Quantize with --requant tflite for a file TFLite runs bit for bit",
            e.exact_channels, e.channels, e.exact_adds, e.adds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &[u8] = include_bytes!("../../firmware/examples/mnist-flat-4c.skq");

    #[test]
    fn exports_the_default_network_with_every_buffer_16_aligned() {
        let e = export(MODEL).unwrap();
        assert_eq!(&e.bytes[4..8], b"TFL3");
        assert_eq!(e.bytes.len() % 16, 0);
        // 12 shifts, 16 convs (the FC among them), 8 adds, 5 pools, the stem's pad.
        let count = |n: &str| e.ops.iter().find(|(o, _)| *o == n).map_or(0, |o| o.1);
        assert_eq!(count("DEPTHWISE_CONV_2D"), 12);
        assert_eq!(count("CONV_2D"), 16);
        assert_eq!(count("ADD"), 8);
        assert_eq!(count("PADV2"), 1);
        // The shipped model has the single-rounding constants: TFLite recomputes its adds exactly,
        // not its convs.
        assert_eq!((e.exact_adds, e.adds), (8, 8));
        assert!(!e.bit_exact());
        // Every buffer's data starts on 16 bytes: find each weight tensor's bytes in the file.
        let m = Model::from_bytes(MODEL).unwrap();
        let mut found = 0;
        for op in m.ops() {
            if let Op::Conv { weights, .. } = op.unwrap() {
                let w = m.span_bytes(weights, 1).unwrap();
                if w.len() >= 64 {
                    let at = e.bytes.windows(w.len()).position(|x| x == w).unwrap();
                    assert_eq!(at % 16, 0, "weights at {at}");
                    found += 1;
                }
            }
        }
        assert!(found > 10);
    }

    #[test]
    fn refuses_what_is_not_a_valid_skq() {
        let e = export(b"TFL3 not a model").unwrap_err();
        assert!(e.to_string().starts_with("not a valid .skq model"), "{e}");
        let e = export(&MODEL[..MODEL.len() / 2]).unwrap_err();
        assert!(matches!(e, ExportError::Model(_)), "{e}");
    }

    #[test]
    fn same_padding_is_ours_only_where_it_pads_above_and_left_alike() {
        // 3x3 stride 1 pad 1: SAME. 3x3 stride 2 pad 1 on an even image: SAME pads 0 above.
        assert!(same_pads(28, 3, 1, 1));
        assert!(!same_pads(28, 3, 2, 1));
        assert!(same_pads(27, 3, 2, 1));
        assert!(!same_pads(28, 3, 1, 0));
    }

    #[test]
    fn the_weight_scale_found_gives_back_tflites_constants() {
        let (s_in, s_out) = (0.0123f32, 0.0456f32);
        let s_w = 0.00789f32;
        let (m, s) =
            quantize_multiplier(f64::from(s_in) * f64::from(s_w) / f64::from(s_out)).unwrap();
        let (found, exact) = weight_scale(m, s, s_in, s_out);
        assert!(exact);
        assert_eq!(
            quantize_multiplier(f64::from(s_in) * f64::from(found) / f64::from(s_out)),
            Some((m, s))
        );
        // A single-rounding constant (shift 0, m < 2^30) has none.
        assert!(!weight_scale(12_345_679, 0, s_in, s_out).1);
    }
}
