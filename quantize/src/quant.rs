//! From the folded float network and its activation ranges to the int8 model in memory: tensor
//! quantisation, per-channel int8 weights, int32 biases with the input zero point folded in, and
//! every requantisation constant (`firmware::format` states the integer semantics).
use crate::fold::{FOp, Folded};
use crate::requant::{conv_multiplier, quantize_multiplier, quantize_multiplier_or_tiny};
use crate::{plan, QuantError};
use firmware::format::{AddMultipliers, Header, Op, Requant, Shift, Span, Tensor};
use host_train::graph::{Neighbourhood, ShiftSpec};

/// Left shift of both operands of an add before rescaling (TFLite's choice for int8).
pub const ADD_LEFT_SHIFT: u8 = 20;
/// Largest |bias| (before the zero-point fold) a channel may have, so that bias, fold and
/// accumulation stay well inside i32; a channel that would exceed it gets a coarser weight scale.
const BIAS_LIMIT: f64 = (1u64 << 29) as f64;

/// How a conv's or FC's requantisation constants are derived (`quantize --requant`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequantMode {
    /// The single-rounding form where it applies ([`conv_multiplier`], format 4): the engine's
    /// fastest form (two DSP instructions), and within 2^-9 LSB of the real multiplier before
    /// its one rounding.
    #[default]
    Single,
    /// TFLite's own constants, as TFLite and TFLite Micro derive them from a `.tflite` file's
    /// float scales: each weight scale rounded to f32, then
    /// `QuantizeMultiplier(f64(s_in) * f64(s_w) / f64(s_out))`, normalised and rounding twice.
    /// `export tflite` of such a file is bit-exact in TFLite (the DSP wide path does not take
    /// these convs, so the M4 runs them on the 2x2 path).
    Tflite,
}

impl std::str::FromStr for RequantMode {
    type Err = String;
    fn from_str(s: &str) -> Result<RequantMode, String> {
        match s {
            "single" => Ok(RequantMode::Single),
            "tflite" => Ok(RequantMode::Tflite),
            _ => Err(format!(
                "--requant {s}: expected single (the engine's single-rounding form) or tflite \
                 (TFLite's constants, for a bit-exact export tflite)"
            )),
        }
    }
}

impl RequantMode {
    /// The name `--requant` takes and the report prints.
    pub fn name(self) -> &'static str {
        match self {
            RequantMode::Single => "single",
            RequantMode::Tflite => "tflite",
        }
    }
}

/// Asymmetric int8 quantisation of a tensor: `real = scale * (q - zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i8,
}

impl QParams {
    /// The model input: u8 pixels / 255.
    pub const INPUT: QParams = QParams {
        scale: 1.0 / 255.0,
        zero_point: 0,
    };

    /// Covers `[lo, hi]` widened to hold 0; the zero point is the integer nearest to where real
    /// 0 falls (TFLite's nudged zero point), so 0 is exactly representable.
    pub fn from_range(lo: f32, hi: f32) -> QParams {
        let lo = lo.min(0.0) as f64;
        let hi = hi.max(0.0) as f64;
        let mut scale = (hi - lo) / 255.0;
        if !(scale.is_finite() && scale > 1e-12) {
            // An all-zero (or degenerate) tensor: any scale represents it.
            scale = 1e-6;
        }
        let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0);
        QParams {
            scale: scale as f32,
            zero_point: zp as i8,
        }
    }

    pub fn quantize(&self, v: f32) -> i8 {
        ((v / self.scale).round() + self.zero_point as f32).clamp(-128.0, 127.0) as i8
    }

    pub fn dequantize(&self, q: i8) -> f32 {
        self.scale * (q as i32 - self.zero_point as i32) as f32
    }
}

/// The int8 model in memory: exactly what the `.skq` file holds (see `skq.rs`), plus names.
#[derive(Clone, Debug)]
pub struct QModel {
    pub header: Header,
    pub tensors: Vec<Tensor>,
    pub ops: Vec<Op>,
    /// The weight section (spans are relative to its start).
    pub weights: Vec<u8>,
    /// One name per op, for reports.
    pub names: Vec<String>,
    /// Op kind per op, for reports.
    pub kinds: Vec<&'static str>,
    /// The class names the file carries (format 5; empty: none).
    pub class_names: Vec<String>,
}

impl QModel {
    pub fn qparams(&self, t: usize) -> QParams {
        QParams {
            scale: self.tensors[t].scale,
            zero_point: self.tensors[t].zero_point,
        }
    }
    /// The tensor op `i` writes.
    pub fn op_output(&self, i: usize) -> usize {
        self.ops[i].output() as usize
    }
}

/// Appends typed arrays to the weight section, each 4-aligned.
#[derive(Default)]
struct WeightWriter {
    bytes: Vec<u8>,
}

impl WeightWriter {
    fn align(&mut self) -> u32 {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
        self.bytes.len() as u32
    }
    fn i8s(&mut self, v: &[i8]) -> Span {
        let offset = self.align();
        self.bytes.extend(v.iter().map(|&x| x as u8));
        Span {
            offset,
            count: v.len() as u32,
        }
    }
    fn u8s(&mut self, v: &[u8]) -> Span {
        let offset = self.align();
        self.bytes.extend_from_slice(v);
        Span {
            offset,
            count: v.len() as u32,
        }
    }
    fn i32s(&mut self, v: &[i32]) -> Span {
        let offset = self.align();
        self.bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        Span {
            offset,
            count: v.len() as u32,
        }
    }
}

fn shift_of(s: Option<ShiftSpec>) -> Shift {
    match s {
        None => Shift::None,
        Some(ShiftSpec {
            kind: Neighbourhood::C4,
            centre_group,
        }) => Shift::C4 {
            centre: centre_group,
        },
        Some(ShiftSpec {
            kind: Neighbourhood::C8,
            centre_group,
        }) => Shift::C8 {
            centre: centre_group,
        },
    }
}

/// Per-channel int8 weights, i32 bias and requantisation of a conv or FC: `w` is `[cout][n]`.
struct Quantized {
    w: Vec<i8>,
    bias: Vec<i32>,
    multiplier: Vec<i32>,
    shift: Vec<i32>,
}

fn quantize_layer(
    name: &str,
    w: &[f32],
    b: &[f32],
    cout: usize,
    qin: QParams,
    qout: QParams,
    mode: RequantMode,
) -> Result<Quantized, QuantError> {
    let n = w.len() / cout;
    let mut out = Quantized {
        w: Vec::with_capacity(w.len()),
        bias: Vec::with_capacity(cout),
        multiplier: Vec::with_capacity(cout),
        shift: Vec::with_capacity(cout),
    };
    let s_in = qin.scale as f64;
    for co in 0..cout {
        let wc = &w[co * n..(co + 1) * n];
        let wmax = wc.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        // Symmetric per channel in [-127, 127]; coarser if the bias would not fit.
        let mut s_w = (wmax / 127.0).max((b[co] as f64).abs() / (s_in * BIAS_LIMIT));
        if s_w.is_nan() || s_w <= 0.0 {
            s_w = 1.0; // all-zero channel with zero bias: any scale
        }
        if mode == RequantMode::Tflite {
            // The scale a .tflite file states, and the one TFLite computes with.
            s_w = s_w as f32 as f64;
        }
        let mut sum = 0i64;
        for &v in wc {
            let q = (v as f64 / s_w).round().clamp(-127.0, 127.0) as i8;
            sum += q as i64;
            out.w.push(q);
        }
        let bias = (b[co] as f64 / (s_in * s_w)).round() as i64 - qin.zero_point as i64 * sum;
        out.bias.push(i32::try_from(bias).map_err(|_| {
            QuantError::Range(format!(
                "{name}: bias of channel {co} ({bias}) overflows i32"
            ))
        })?);
        let real = s_in * s_w / qout.scale as f64;
        let (m, s) = match mode {
            RequantMode::Single => conv_multiplier(real),
            RequantMode::Tflite => quantize_multiplier(real),
        }
        .ok_or_else(|| {
            QuantError::Range(format!(
                "{name}: requantisation multiplier {real:e} of channel {co} is out of range"
            ))
        })?;
        out.multiplier.push(m);
        out.shift.push(s);
    }
    Ok(out)
}

/// Quantises the folded network: `q[t]` holds the calibrated quantisation of every tensor with
/// its own range (conv, add and FC outputs); the input is u8/255, pools take their input's.
pub fn lower(
    folded: &Folded,
    q: &[Option<QParams>],
    mode: RequantMode,
) -> Result<QModel, QuantError> {
    let nt = folded.tensors.len();
    let mut qp: Vec<QParams> = Vec::with_capacity(nt);
    for t in 0..nt {
        let p = if t == folded.input {
            QParams::INPUT
        } else if let Some(s) = folded.tensors[t].same_as {
            qp[s]
        } else {
            q.get(t)
                .copied()
                .flatten()
                .ok_or_else(|| QuantError::Range(format!("tensor {t} has no calibrated range")))?
        };
        qp.push(p);
    }
    let too_big = |what: &str, v: usize| {
        QuantError::Unsupported(format!("{what} {v} exceeds the format's u16"))
    };
    if nt > u16::MAX as usize {
        return Err(too_big("tensor count", nt));
    }
    let mut tensors = Vec::with_capacity(nt);
    for (t, ft) in folded.tensors.iter().enumerate() {
        let s = ft.shape;
        for d in [s.h, s.w, s.c] {
            if d > u16::MAX as usize {
                return Err(too_big("dimension", d));
            }
        }
        tensors.push(Tensor {
            h: s.h as u16,
            w: s.w as u16,
            c: s.c as u16,
            scale: qp[t].scale,
            zero_point: qp[t].zero_point,
            offset: 0,
        });
    }
    let act = |relu: bool, y: usize| -> (i8, i8) {
        if relu {
            (qp[y].zero_point, 127)
        } else {
            (-128, 127)
        }
    };
    let mut ww = WeightWriter::default();
    let mut ops = Vec::with_capacity(folded.ops.len());
    for fop in &folded.ops {
        let op = match fop {
            FOp::Conv {
                name,
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
            } => {
                let (cin, cout) = (folded.tensors[*x].shape.c, folded.tensors[*y].shape.c);
                let l = quantize_layer(name, w, b, cout, qp[*x], qp[*y], mode)?;
                let pad_value = match pad_u8 {
                    Some(p) => ww.u8s(p),
                    None => ww.i8s(&vec![qp[*x].zero_point; cin]),
                };
                let (act_min, act_max) = act(*relu, *y);
                Op::Conv {
                    x: *x as u16,
                    y: *y as u16,
                    k: *k as u8,
                    stride: *stride as u8,
                    pad: *pad as u8,
                    shift: shift_of(*shift),
                    weights: ww.i8s(&l.w),
                    bias: ww.i32s(&l.bias),
                    requant: Requant {
                        multiplier: ww.i32s(&l.multiplier),
                        shift: ww.i32s(&l.shift),
                        act_min,
                        act_max,
                    },
                    pad_value,
                }
            }
            FOp::Fc { name, x, y, w, b } => {
                let cout = folded.tensors[*y].shape.c;
                let l = quantize_layer(name, w, b, cout, qp[*x], qp[*y], mode)?;
                Op::FullyConnected {
                    x: *x as u16,
                    y: *y as u16,
                    weights: ww.i8s(&l.w),
                    bias: ww.i32s(&l.bias),
                    requant: Requant {
                        multiplier: ww.i32s(&l.multiplier),
                        shift: ww.i32s(&l.shift),
                        act_min: -128,
                        act_max: 127,
                    },
                }
            }
            FOp::Add {
                name,
                a,
                b,
                y,
                relu,
            } => {
                let (sa, sb, sy) = (
                    qp[*a].scale as f64,
                    qp[*b].scale as f64,
                    qp[*y].scale as f64,
                );
                let twice_max = 2.0 * sa.max(sb);
                let mq = |real: f64, what: &str| {
                    quantize_multiplier_or_tiny(real).ok_or_else(|| {
                        QuantError::Range(format!(
                            "{name}: {what} multiplier {real:e} out of range"
                        ))
                    })
                };
                let (a_multiplier, a_shift) = mq(sa / twice_max, "input a")?;
                let (b_multiplier, b_shift) = mq(sb / twice_max, "input b")?;
                let (out_multiplier, out_shift) =
                    mq(twice_max / ((1u64 << ADD_LEFT_SHIFT) as f64 * sy), "output")?;
                let (act_min, act_max) = act(*relu, *y);
                Op::Add {
                    a: *a as u16,
                    b: *b as u16,
                    y: *y as u16,
                    left_shift: ADD_LEFT_SHIFT,
                    multipliers: AddMultipliers {
                        a_multiplier,
                        a_shift,
                        b_multiplier,
                        b_shift,
                        out_multiplier,
                        out_shift,
                    },
                    act_min,
                    act_max,
                }
            }
            FOp::AvgPool2 { x, y, .. } => Op::AvgPool2 {
                x: *x as u16,
                y: *y as u16,
            },
            FOp::MaxPool3s2 { x, y, .. } => Op::MaxPool3s2 {
                x: *x as u16,
                y: *y as u16,
            },
            FOp::GlobalAvgPool { x, y, .. } => Op::GlobalAvgPool {
                x: *x as u16,
                y: *y as u16,
            },
        };
        ops.push(op);
    }
    let arena_bytes = plan::plan(&mut tensors, &ops, folded.input, folded.output)?;
    if ops.len() > u16::MAX as usize {
        return Err(too_big("op count", ops.len()));
    }
    let classes = tensors[folded.output].c;
    Ok(QModel {
        header: Header {
            tensors: nt as u16,
            ops: ops.len() as u16,
            input: folded.input as u16,
            output: folded.output as u16,
            arena_bytes: arena_bytes as u32,
            arena_align: 1,
            classes,
        },
        tensors,
        ops,
        weights: ww.bytes,
        names: folded.ops.iter().map(|o| o.name().to_string()).collect(),
        kinds: folded.ops.iter().map(|o| o.kind()).collect(),
        class_names: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_exact_and_relu_ranges_start_at_the_bottom() {
        let q = QParams::from_range(-1.3, 2.7);
        assert_eq!(q.dequantize(q.zero_point), 0.0);
        assert!((q.scale - 4.0 / 255.0).abs() < 1e-7);
        let r = QParams::from_range(0.0, 6.0);
        assert_eq!(r.zero_point, -128);
        assert_eq!(r.quantize(6.0), 127);
        // A range that excludes 0 is widened to hold it.
        let p = QParams::from_range(1.0, 2.0);
        assert_eq!(p.zero_point, -128);
        assert_eq!(p.quantize(2.0), 127);
    }

    #[test]
    fn weights_are_symmetric_per_channel_and_bias_folds_the_zero_point() {
        // Two channels of three weights; input scale 0.5, zero point 10; output scale 1.
        let w = [1.0, -0.5, 0.25, 0.0, 0.0, 2.0];
        let b = [1.0, -3.0];
        let qin = QParams {
            scale: 0.5,
            zero_point: 10,
        };
        let qout = QParams {
            scale: 1.0,
            zero_point: 0,
        };
        let l = quantize_layer("t", &w, &b, 2, qin, qout, RequantMode::Single).unwrap();
        assert_eq!(l.w, vec![127, -64, 32, 0, 0, 127]);
        // bias = round(1 / (0.5 * 1/127)) - 10 * (127 - 64 + 32) = 254 - 950.
        assert_eq!(l.bias[0], 254 - 950);
        // channel 1: s_w = 2/127: round(-3 / (0.5 * 2/127)) - 10 * 127 = -381 - 1270.
        assert_eq!(l.bias[1], -381 - 1270);
        // multiplier of channel 0: 0.5 / 127 = 0.0039370.., in the single-rounding form:
        // round(0.0039370 * 2^31) = round(8454660.03) = 8454660, shift 0.
        assert_eq!((l.multiplier[0], l.shift[0]), (8_454_660, 0));
    }

    #[test]
    fn tflite_mode_rounds_the_weight_scale_to_f32_and_keeps_tflites_constants() {
        let w = [1.0, -0.5, 0.25, 0.0, 0.0, 2.0];
        let b = [1.0, -3.0];
        let qin = QParams {
            scale: 0.5,
            zero_point: 10,
        };
        let qout = QParams {
            scale: 1.0,
            zero_point: 0,
        };
        let l = quantize_layer("t", &w, &b, 2, qin, qout, RequantMode::Tflite).unwrap();
        // TFLite: QuantizeMultiplier(0.5 * f64(f32(1 / 127)) / 1), normalised.
        let want = quantize_multiplier(0.5 * (1.0f64 / 127.0) as f32 as f64).unwrap();
        assert_eq!((l.multiplier[0], l.shift[0]), want);
        assert!(l.multiplier[0] >= 1 << 30 && l.shift[0] < 0, "{want:?}");
        assert_eq!(l.w, vec![127, -64, 32, 0, 0, 127]);
    }
}
