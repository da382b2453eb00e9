//! ONNX export (opset 13, NCHW): the float network of a run folder, and the int8 `.skq` as a QDQ
//! model, for onnxruntime and Netron (docs/tflite.md, "ONNX").
//!
//! - **Float** (`model.onnx`): the folded network ([`crate::fold`]: BN folded into its conv, the
//!   input normalisation into the stem), input `pixel / 255` as float `[1, C, H, W]`. The stem
//!   pads with the pixel that normalises to 0, per channel, which ONNX's `Pad` cannot say: the
//!   stem subtracts it first (`Sub`) and pads zeros, its bias taking `sum(w * p)` back. A shift
//!   is a depthwise `Conv` (`group = C`) of one-hot 3x3 kernels, as in the TFLite export.
//! - **QDQ int8** (`model.int8.onnx`): from the `.skq` alone. The input is the u8 pixels, every
//!   int8 tensor is a `QuantizeLinear`/`DequantizeLinear` pair with its scale and zero point,
//!   weights are int8 with per-channel scales (those of the TFLite export) and biases int32, so
//!   onnxruntime can run each conv as `QLinearConv`; its output is the int8 logits.
//!
//! The protobuf is written here, field by field (onnx.proto's numbers; a few dozen lines).
use crate::fold::{FOp, Folded};
use crate::tflite::{conv_params, shift_taps, ExportError};
use firmware::format::{Op, Shift, Tensor};
use firmware::Model;

/// A protobuf message being written.
#[derive(Default)]
struct Pb(Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }
    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }
    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(&mut self, field: u32, m: Pb) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

// TensorProto.DataType.
const FLOAT: i64 = 1;
const UINT8: i64 = 2;
const INT8: i64 = 3;
const INT32: i64 = 6;

/// An attribute value (AttributeProto: 1 name, 3 i, 8 ints, 20 type).
enum Attr {
    Int(i64),
    Ints(Vec<i64>),
}

/// The graph being written: nodes and initializers, already encoded.
#[derive(Default)]
struct Graph {
    nodes: Vec<Pb>,
    inits: Vec<Pb>,
    count: usize,
}

impl Graph {
    /// NodeProto: 1 input, 2 output, 3 name, 4 op_type, 5 attribute.
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: &[(&str, Attr)]) {
        let mut n = Pb::default();
        for i in inputs {
            n.str(1, i);
        }
        n.str(2, output);
        n.str(3, &format!("{op}_{}", self.count));
        n.str(4, op);
        for (name, a) in attrs {
            let mut p = Pb::default();
            p.str(1, name);
            match a {
                Attr::Int(v) => {
                    p.int(3, *v).int(20, 2);
                }
                Attr::Ints(v) => {
                    for &x in v {
                        p.int(8, x);
                    }
                    p.int(20, 7);
                }
            }
            n.msg(5, p);
        }
        self.count += 1;
        self.nodes.push(n);
    }
    /// TensorProto: 1 dims, 2 data_type, 8 name, 9 raw_data (little-endian).
    fn init(&mut self, name: &str, dims: &[usize], ty: i64, raw: Vec<u8>) {
        let mut t = Pb::default();
        for &d in dims {
            t.int(1, d as i64);
        }
        t.int(2, ty).str(8, name).bytes(9, &raw);
        self.inits.push(t);
    }
    fn f32s(&mut self, name: &str, dims: &[usize], v: &[f32]) {
        self.init(
            name,
            dims,
            FLOAT,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        );
    }
    fn scalar_f32(&mut self, name: &str, v: f32) {
        self.f32s(name, &[], &[v]);
    }
    /// A zero point: a 0-d (or per-channel 1-d) tensor of the quantized type.
    fn zero_point(&mut self, name: &str, ty: i64, v: &[i32], per_channel: bool) {
        let raw = match ty {
            INT32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            _ => v.iter().map(|&x| x as u8).collect(),
        };
        let dims: &[usize] = if per_channel { &[v.len()] } else { &[] };
        self.init(name, dims, ty, raw);
    }
}

/// ValueInfoProto of a tensor `[1, c, h, w]` (1 name, 2 type; TypeProto 1 tensor_type:
/// 1 elem_type, 2 shape; TensorShapeProto 1 dim: 1 dim_value).
fn value_info(name: &str, ty: i64, dims: &[usize]) -> Pb {
    let mut shape = Pb::default();
    for &d in dims {
        let mut dim = Pb::default();
        dim.int(1, d as i64);
        shape.msg(1, dim);
    }
    let mut tt = Pb::default();
    tt.int(1, ty).msg(2, shape);
    let mut tp = Pb::default();
    tp.msg(1, tt);
    let mut v = Pb::default();
    v.str(1, name).msg(2, tp);
    v
}

/// ModelProto (1 ir_version, 2 producer_name, 3 producer_version, 7 graph, 8 opset_import;
/// GraphProto 1 node, 2 name, 5 initializer, 11 input, 12 output).
fn model(g: Graph, input: Pb, output: Pb, doc: &str) -> Vec<u8> {
    let mut graph = Pb::default();
    for n in g.nodes {
        graph.msg(1, n);
    }
    graph.str(2, "shiftkit");
    for t in g.inits {
        graph.msg(5, t);
    }
    graph.str(10, doc).msg(11, input).msg(12, output);
    let mut opset = Pb::default();
    opset.str(1, "").int(2, 13);
    let mut m = Pb::default();
    m.int(1, 8)
        .str(2, "shiftkit")
        .str(3, env!("CARGO_PKG_VERSION"))
        .msg(7, graph)
        .msg(8, opset);
    m.0
}

/// OHWI weights as OIHW.
fn oihw<T: Copy>(w: &[T], o: usize, k: usize, i: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(w.len());
    for co in 0..o {
        for ci in 0..i {
            for t in 0..k * k {
                out.push(w[(co * k * k + t) * i + ci]);
            }
        }
    }
    out
}

/// One-hot depthwise kernels `[c, 1, 3, 3]` of a shift.
fn shift_kernel(shift: Shift, c: usize, what: &str) -> Result<Vec<u8>, ExportError> {
    let mut k = vec![0u8; 9 * c];
    for (ch, (ky, kx)) in shift_taps(shift, c, what)?.into_iter().enumerate() {
        k[ch * 9 + ky * 3 + kx] = 1;
    }
    Ok(k)
}

fn conv_attrs(k: usize, stride: usize, pad: usize, group: usize) -> Vec<(&'static str, Attr)> {
    let (k, s, p) = (k as i64, stride as i64, pad as i64);
    let mut a = vec![
        ("kernel_shape", Attr::Ints(vec![k, k])),
        ("strides", Attr::Ints(vec![s, s])),
        ("pads", Attr::Ints(vec![p, p, p, p])),
    ];
    if group > 1 {
        a.push(("group", Attr::Int(group as i64)));
    }
    a
}

/// The float network of a run folder, folded (the `Folded` of its model), as ONNX.
pub fn export_float(f: &Folded) -> Result<Vec<u8>, ExportError> {
    let mut g = Graph::default();
    let name = |t: usize| {
        if t == f.input {
            "input".to_string()
        } else {
            format!("t{t}")
        }
    };
    for (i, op) in f.ops.iter().enumerate() {
        let what = format!("op {i} ({})", op.kind());
        match op {
            FOp::Conv {
                x,
                y,
                k,
                stride,
                pad,
                shift,
                w,
                b,
                relu,
                pad_u8,
                ..
            } => {
                let (cin, cout) = (f.tensors[*x].shape.c, f.tensors[*y].shape.c);
                let mut src = name(*x);
                let mut bias = b.clone();
                if let Some(p) = pad_u8 {
                    // x - p, padded with zeros, then the bias takes sum(w * p) back.
                    let p: Vec<f32> = p.iter().map(|&v| f32::from(v) / 255.0).collect();
                    g.f32s(&format!("op{i}_pad"), &[1, cin, 1, 1], &p);
                    let out = format!("op{i}_sub");
                    g.node("Sub", &[&src, &format!("op{i}_pad")], &out, &[]);
                    src = out;
                    let per = k * k * cin;
                    for (co, bv) in bias.iter_mut().enumerate() {
                        let wc = &w[co * per..(co + 1) * per];
                        *bv += wc
                            .iter()
                            .enumerate()
                            .map(|(j, wv)| wv * p[j % cin])
                            .sum::<f32>();
                    }
                }
                if let Some(s) = shift {
                    let kern: Vec<f32> = shift_kernel(s.format_shift(), cin, &what)?
                        .into_iter()
                        .map(f32::from)
                        .collect();
                    g.f32s(&format!("op{i}_shift"), &[cin, 1, 3, 3], &kern);
                    let out = format!("op{i}_shifted");
                    g.node(
                        "Conv",
                        &[&src, &format!("op{i}_shift")],
                        &out,
                        &conv_attrs(3, 1, 1, cin),
                    );
                    src = out;
                }
                g.f32s(
                    &format!("op{i}_w"),
                    &[cout, cin, *k, *k],
                    &oihw(w, cout, *k, cin),
                );
                g.f32s(&format!("op{i}_b"), &[cout], &bias);
                let out = if *relu {
                    format!("op{i}_conv")
                } else {
                    name(*y)
                };
                g.node(
                    "Conv",
                    &[&src, &format!("op{i}_w"), &format!("op{i}_b")],
                    &out,
                    &conv_attrs(*k, *stride, *pad, 1),
                );
                if *relu {
                    g.node("Relu", &[&out], &name(*y), &[]);
                }
            }
            FOp::Fc { x, y, w, b, .. } => {
                let (cin, cout) = (f.tensors[*x].shape.c, f.tensors[*y].shape.c);
                g.f32s(&format!("op{i}_w"), &[cout, cin, 1, 1], w);
                g.f32s(&format!("op{i}_b"), &[cout], b);
                g.node(
                    "Conv",
                    &[&name(*x), &format!("op{i}_w"), &format!("op{i}_b")],
                    &name(*y),
                    &conv_attrs(1, 1, 0, 1),
                );
            }
            FOp::Add { a, b, y, relu, .. } => {
                let out = if *relu {
                    format!("op{i}_add")
                } else {
                    name(*y)
                };
                g.node("Add", &[&name(*a), &name(*b)], &out, &[]);
                if *relu {
                    g.node("Relu", &[&out], &name(*y), &[]);
                }
            }
            FOp::AvgPool2 { x, y, .. } => g.node(
                "AveragePool",
                &[&name(*x)],
                &name(*y),
                &[
                    ("kernel_shape", Attr::Ints(vec![2, 2])),
                    ("strides", Attr::Ints(vec![2, 2])),
                ],
            ),
            FOp::MaxPool3s2 { x, y, .. } => g.node(
                "MaxPool",
                &[&name(*x)],
                &name(*y),
                &[
                    ("kernel_shape", Attr::Ints(vec![3, 3])),
                    ("strides", Attr::Ints(vec![2, 2])),
                    ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                ],
            ),
            FOp::GlobalAvgPool { x, y, .. } => {
                g.node("GlobalAveragePool", &[&name(*x)], &name(*y), &[])
            }
        }
    }
    let s = f.tensors[f.input].shape;
    let o = f.tensors[f.output].shape;
    let input = value_info("input", FLOAT, &[1, s.c, s.h, s.w]);
    g.node(
        "Flatten",
        &[&name(f.output)],
        "logits",
        &[("axis", Attr::Int(1))],
    );
    let output = value_info("logits", FLOAT, &[1, o.h * o.w * o.c]);
    Ok(model(
        g,
        input,
        output,
        "shiftkit float network (BN folded); input: pixel / 255, NCHW",
    ))
}

/// A conv's int8 weights (`op{i}_w`, OIHW, per-channel scales) and int32 bias (`op{i}_b`, at
/// `s_in * s_w`), each through a per-axis `DequantizeLinear`; or, for the stem whose pad value
/// moved into its bias, that float bias.
fn qdq_constants(
    g: &mut Graph,
    i: usize,
    [cout, cin, k, _]: [usize; 4],
    p: &crate::tflite::ConvParams,
    s_in: f32,
    float_bias: Option<Vec<f32>>,
) {
    let dq = |g: &mut Graph, q: &str, what: &str| {
        let (s, z) = (format!("op{i}_{what}_scale"), format!("op{i}_{what}_zp"));
        g.node(
            "DequantizeLinear",
            &[q, &s, &z],
            &format!("op{i}_{what}"),
            &[("axis", Attr::Int(0))],
        );
    };
    let wq = format!("op{i}_w_q");
    g.init(&wq, &[cout, cin, k, k], INT8, oihw(p.weights, cout, k, cin));
    g.f32s(&format!("op{i}_w_scale"), &[cout], &p.scales);
    g.zero_point(&format!("op{i}_w_zp"), INT8, &vec![0; cout], true);
    dq(g, &wq, "w");
    if let Some(b) = float_bias {
        g.f32s(&format!("op{i}_b"), &[cout], &b);
        return;
    }
    let bq = format!("op{i}_b_q");
    let raw = p.bias.iter().flat_map(|v| v.to_le_bytes()).collect();
    g.init(&bq, &[cout], INT32, raw);
    let bs: Vec<f32> = p
        .scales
        .iter()
        .map(|&s| (f64::from(s_in) * f64::from(s)) as f32)
        .collect();
    g.f32s(&format!("op{i}_b_scale"), &[cout], &bs);
    g.zero_point(&format!("op{i}_b_zp"), INT32, &vec![0; cout], true);
    dq(g, &bq, "b");
}

/// `out` through a `Relu` when the op's clamp is a ReLU (its lowest value the output zero
/// point, above -128); the tensor to requantize.
fn relu_if(g: &mut Graph, i: usize, out: String, act_min: i8, zp: i8) -> String {
    if act_min == zp && act_min > -128 {
        let r = format!("op{i}_relu");
        g.node("Relu", &[&out], &r, &[]);
        r
    } else {
        out
    }
}

/// The int8 `.skq` as a QDQ ONNX model.
pub fn export_qdq(skq: &[u8]) -> Result<Vec<u8>, ExportError> {
    let m = Model::from_bytes(skq).map_err(|e| ExportError::Model(e.to_string()))?;
    let input_id = m.header().input;
    let tensors: Vec<Tensor> = m
        .tensors()
        .collect::<Result<_, _>>()
        .map_err(|e| ExportError::Model(e.to_string()))?;
    let mut g = Graph::default();
    // Every tensor's scale and zero point as initializers; `t{id}` is its real value (the
    // DequantizeLinear of `t{id}_q`, the int8 tensor; the model input `input`, uint8).
    for (id, t) in tensors.iter().enumerate() {
        g.scalar_f32(&format!("t{id}_scale"), t.scale);
        if id == usize::from(input_id) {
            g.zero_point(
                &format!("t{id}_zp"),
                UINT8,
                &[i32::from(t.zero_point as u8)],
                false,
            );
            g.node(
                "DequantizeLinear",
                &["input", &format!("t{id}_scale"), &format!("t{id}_zp")],
                &format!("t{id}"),
                &[],
            );
        } else {
            g.zero_point(
                &format!("t{id}_zp"),
                INT8,
                &[i32::from(t.zero_point)],
                false,
            );
        }
    }
    // `real` rounded to tensor `y`'s int8 and back.
    let requantize = |g: &mut Graph, real: &str, y: u16| {
        let (q, s, z) = (format!("t{y}_q"), format!("t{y}_scale"), format!("t{y}_zp"));
        g.node("QuantizeLinear", &[real, &s, &z], &q, &[]);
        g.node("DequantizeLinear", &[&q, &s, &z], &format!("t{y}"), &[]);
    };
    for (i, op) in m.ops().enumerate() {
        let op = op.map_err(|e| ExportError::Model(e.to_string()))?;
        let what = format!("op {i} ({})", op.kind());
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
                let (tx, ty) = (tensors[usize::from(x)], tensors[usize::from(y)]);
                let (cin, cout, kk) = (usize::from(tx.c), usize::from(ty.c), usize::from(k));
                let p = conv_params(
                    &m,
                    &what,
                    [cout, kk, kk, cin],
                    weights,
                    bias,
                    &requant,
                    (tx.scale, tx.zero_point, ty.scale),
                )?;
                let pads = m
                    .span_bytes(pad_value, 1)
                    .ok_or_else(|| ExportError::Model(what.clone()))?;
                let mut src = format!("t{x}");
                let mut conv_pad = usize::from(pad);
                let mut float_bias = None;
                if x == input_id && pad > 0 && pads.iter().any(|&v| v != 0) {
                    // The stem's pad value (a pixel): x - p, zeros around, sum(w * p) into the bias.
                    let pv: Vec<f32> = pads.iter().map(|&v| f32::from(v) * tx.scale).collect();
                    g.f32s(&format!("op{i}_pad"), &[1, cin, 1, 1], &pv);
                    let out = format!("op{i}_sub");
                    g.node("Sub", &[&src, &format!("op{i}_pad")], &out, &[]);
                    src = out;
                    let per = kk * kk * cin;
                    let b: Vec<f32> = (0..cout)
                        .map(|co| {
                            let wc = &p.weights[co * per..(co + 1) * per];
                            let extra: f32 = wc
                                .iter()
                                .enumerate()
                                .map(|(j, &w)| f32::from(w as i8) * p.scales[co] * pv[j % cin])
                                .sum();
                            p.bias[co] as f32 * tx.scale * p.scales[co] + extra
                        })
                        .collect();
                    float_bias = Some(b);
                } else if pads.iter().any(|&v| v as i8 != tx.zero_point) && x != input_id {
                    return Err(ExportError::Unsupported(format!(
                        "{what}: a pad value other than the zero point"
                    )));
                }
                if shift != Shift::None {
                    let kern = shift_kernel(shift, cin, &what)?;
                    g.init(&format!("op{i}_shift_q"), &[cin, 1, 3, 3], INT8, kern);
                    g.scalar_f32(&format!("op{i}_one"), 1.0);
                    g.zero_point(&format!("op{i}_zero"), INT8, &[0], false);
                    g.node(
                        "DequantizeLinear",
                        &[
                            &format!("op{i}_shift_q"),
                            &format!("op{i}_one"),
                            &format!("op{i}_zero"),
                        ],
                        &format!("op{i}_shift"),
                        &[],
                    );
                    let out = format!("op{i}_shifted");
                    g.node(
                        "Conv",
                        &[&src, &format!("op{i}_shift")],
                        &out,
                        &conv_attrs(3, 1, 1, cin),
                    );
                    // The shifted tensor keeps x's scale and zero point (an exact copy).
                    let (q, sc, z) = (
                        format!("op{i}_shifted_q"),
                        format!("t{x}_scale"),
                        format!("t{x}_zp"),
                    );
                    g.node("QuantizeLinear", &[&out, &sc, &z], &q, &[]);
                    src = format!("op{i}_shifted_real");
                    g.node("DequantizeLinear", &[&q, &sc, &z], &src, &[]);
                    conv_pad = 0;
                }
                qdq_constants(&mut g, i, [cout, cin, kk, kk], &p, tx.scale, float_bias);
                let out = format!("op{i}_conv");
                g.node(
                    "Conv",
                    &[&src, &format!("op{i}_w"), &format!("op{i}_b")],
                    &out,
                    &conv_attrs(kk, usize::from(stride), conv_pad, 1),
                );
                let real = relu_if(&mut g, i, out, requant.act_min, ty.zero_point);
                requantize(&mut g, &real, y);
            }
            Op::FullyConnected {
                x,
                y,
                weights,
                bias,
                requant,
            } => {
                let (tx, ty) = (tensors[usize::from(x)], tensors[usize::from(y)]);
                let (cin, cout) = (usize::from(tx.c), usize::from(ty.c));
                let p = conv_params(
                    &m,
                    &what,
                    [cout, 1, 1, cin],
                    weights,
                    bias,
                    &requant,
                    (tx.scale, tx.zero_point, ty.scale),
                )?;
                qdq_constants(&mut g, i, [cout, cin, 1, 1], &p, tx.scale, None);
                let out = format!("op{i}_fc");
                g.node(
                    "Conv",
                    &[&format!("t{x}"), &format!("op{i}_w"), &format!("op{i}_b")],
                    &out,
                    &conv_attrs(1, 1, 0, 1),
                );
                requantize(&mut g, &out, y);
            }
            Op::Add {
                a, b, y, act_min, ..
            } => {
                let ty = tensors[usize::from(y)];
                let out = format!("op{i}_add");
                g.node("Add", &[&format!("t{a}"), &format!("t{b}")], &out, &[]);
                let real = relu_if(&mut g, i, out, act_min, ty.zero_point);
                requantize(&mut g, &real, y);
            }
            Op::AvgPool2 { x, y } => {
                let out = format!("op{i}_pool");
                g.node(
                    "AveragePool",
                    &[&format!("t{x}")],
                    &out,
                    &[
                        ("kernel_shape", Attr::Ints(vec![2, 2])),
                        ("strides", Attr::Ints(vec![2, 2])),
                    ],
                );
                requantize(&mut g, &out, y);
            }
            Op::MaxPool3s2 { x, y } => {
                let out = format!("op{i}_pool");
                g.node(
                    "MaxPool",
                    &[&format!("t{x}")],
                    &out,
                    &[
                        ("kernel_shape", Attr::Ints(vec![3, 3])),
                        ("strides", Attr::Ints(vec![2, 2])),
                        ("pads", Attr::Ints(vec![1, 1, 1, 1])),
                    ],
                );
                requantize(&mut g, &out, y);
            }
            Op::GlobalAvgPool { x, y } => {
                let out = format!("op{i}_pool");
                g.node("GlobalAveragePool", &[&format!("t{x}")], &out, &[]);
                requantize(&mut g, &out, y);
            }
        }
    }
    let (ti, to) = (m.input(), m.output());
    let out_id = m.header().output;
    g.node(
        "Flatten",
        &[&format!("t{out_id}_q")],
        "logits",
        &[("axis", Attr::Int(1))],
    );
    let input = value_info(
        "input",
        UINT8,
        &[1, usize::from(ti.c), usize::from(ti.h), usize::from(ti.w)],
    );
    let output = value_info("logits", INT8, &[1, to.bytes()]);
    Ok(model(
        g,
        input,
        output,
        "shiftkit int8 network as QDQ; input: u8 pixels, NCHW; output: int8 logits",
    ))
}

/// `shiftkit-quantize export-onnx RUN_DIR|MODEL.skq [--out DIR]`: `model.onnx` (float, from the
/// run folder's `model.json` and weights) and `model.int8.onnx` (QDQ, from its `model.skq`),
/// whichever the argument has, into `--out` (default: the run folder).
pub fn command(args: Vec<String>) -> Result<(), crate::QuantError> {
    use crate::QuantError;
    use std::path::PathBuf;
    let usage = "usage: shiftkit-quantize export-onnx RUN_DIR|MODEL.skq [--out DIR]";
    let (mut from, mut out) = (None, None);
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => {
                out = Some(PathBuf::from(it.next().ok_or_else(|| {
                    QuantError::Usage(format!("--out needs a folder\n{usage}"))
                })?))
            }
            s if s.starts_with("--") => {
                return Err(QuantError::Usage(format!("unknown option {s}\n{usage}")))
            }
            _ if from.is_none() => from = Some(PathBuf::from(a)),
            _ => {
                return Err(QuantError::Usage(format!(
                    "unexpected argument {a}\n{usage}"
                )))
            }
        }
    }
    let from = from.ok_or_else(|| {
        QuantError::Usage(format!("export-onnx needs RUN_DIR or MODEL.skq\n{usage}"))
    })?;
    let (run, skq) = if from.is_dir() {
        (from.clone(), from.join("model.skq"))
    } else {
        let run = from
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        (run, from.clone())
    };
    let out = out.unwrap_or_else(|| run.clone());
    std::fs::create_dir_all(&out).map_err(host_train::io::io_err(&out))?;
    // The int8 file first: a bad .skq is refused before anything is written.
    let qdq = if skq.is_file() {
        let bytes = std::fs::read(&skq).map_err(host_train::io::io_err(&skq))?;
        Some(export_qdq(&bytes).map_err(|e| {
            QuantError::Engine(format!(
                "{}: {e} (export onnx takes shiftkit's own .skq)",
                skq.display()
            ))
        })?)
    } else {
        None
    };
    let mut wrote = 0;
    if run.join("model.json").is_file() && run.join("weights.safetensors").is_file() {
        let fm = crate::read_run(&run)?;
        let folded = crate::fold::fold(&fm.model, &fm.json.normalization)?;
        let bytes = export_float(&folded)
            .map_err(|e| QuantError::Engine(format!("{}: {e}", run.display())))?;
        let path = out.join("model.onnx");
        host_train::io::write_atomic(&path, &bytes)?;
        println!(
            "wrote {} ({} B): the float network, input pixel / 255 as float NCHW",
            path.display(),
            bytes.len()
        );
        wrote += 1;
    }
    if let Some(onnx) = qdq {
        let path = out.join("model.int8.onnx");
        host_train::io::write_atomic(&path, &onnx)?;
        println!(
            "wrote {} ({} B): the int8 network as QDQ, input u8 pixels NCHW, output int8 logits",
            path.display(),
            onnx.len()
        );
        wrote += 1;
    }
    if wrote == 0 {
        return Err(QuantError::Usage(format!(
            "{}: neither a run folder (model.json + weights.safetensors) nor a .skq model",
            from.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &[u8] = include_bytes!("../../firmware/examples/mnist-flat-4c.skq");

    #[test]
    fn varints_are_protobufs() {
        let mut p = Pb::default();
        p.int(1, 300).int(2, -1);
        // field 1 varint 300 = ac 02; field 2 varint -1 = ten bytes, the last 01.
        assert_eq!(&p.0[..3], &[0x08, 0xac, 0x02]);
        assert_eq!(p.0[3], 0x10);
        assert_eq!(p.0.len(), 4 + 10);
        assert_eq!(*p.0.last().unwrap(), 0x01);
    }

    #[test]
    fn exports_the_default_network_as_qdq_and_refuses_a_bad_file() {
        let b = export_qdq(MODEL).unwrap();
        // ModelProto field 1 (ir_version 8) first.
        assert_eq!(&b[..2], &[0x08, 8]);
        for op in [
            "QuantizeLinear",
            "DequantizeLinear",
            "Conv",
            "Add",
            "AveragePool",
            "Flatten",
        ] {
            assert!(b.windows(op.len()).any(|w| w == op.as_bytes()), "{op}");
        }
        assert!(matches!(
            export_qdq(&MODEL[..100]),
            Err(ExportError::Model(_))
        ));
    }

    #[test]
    fn ohwi_becomes_oihw() {
        // 1 output, 2x2 kernel, 3 inputs: OHWI index (t * 3 + ci) -> OIHW (ci * 4 + t).
        let w: Vec<u8> = (0..12).collect();
        assert_eq!(
            oihw(&w, 1, 2, 3),
            vec![0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
        );
    }
}
