//! The `.skq` int8 model file: byte layout and the records of its graph section.
//!
//! ```text
//! offset  size  field
//! 0       4     magic  b"SKQ\x01"
//! 4       2     format version (u16 LE) = FORMAT_VERSION
//! 6       2     flags (u16 LE), 0
//! 8       4     total file length in bytes (u32 LE)
//! 12      4     CRC-32 (IEEE, reflected, as zlib) of bytes [16, length)
//! 16      4     graph section length G (u32 LE)
//! 20      4     weight section offset W (u32 LE), a multiple of 16, >= 24 + G
//! 24      G     graph section: postcard-encoded `Header`, then `Header::tensors` x `Tensor`,
//!               then `Header::ops` x `Op`, each record encoded one after another, then
//!               (version 5, optional) the class names: a postcard `Vec<String>` of
//!               `Header::classes` names
//! 24+G    ..    zero padding up to W
//! W       ..    weight section (raw little-endian arrays; every `Span` below is relative to W)
//! ```
//!
//! Records are postcard-encoded (quantize writes them through the `serde` derives below) and
//! decoded one at a time by [`crate::wire`], so reading a model needs no allocation and no
//! buffer sized by the model. All integers in spans are byte offsets and
//! element counts into the weight section; every one is checked at load time.
//!
//! # Integer semantics (TFLite int8 reference kernels; quantize computes every constant)
//! - `mbqm(x, m, s)` = TFLite `MultiplyByQuantizedMultiplier`: with `l = max(s, 0)`,
//!   `r = max(-s, 0)`: `rdbpot(srdhm(x << l, m), r)`, where `srdhm` is
//!   `SaturatingRoundingDoublingHighMul` (i64 product, nudge `1<<30` or `1-(1<<30)`, divide by
//!   2^31 truncating; `i32::MIN * i32::MIN` saturates to `i32::MAX`) and `rdbpot` is
//!   `RoundingDivideByPOT` (round half away from zero). `m` is in `[2^30, 2^31)`, a real
//!   multiplier `M = m * 2^(s - 31)`, except in a conv's or FC's single-rounding form
//!   (version 4): `s = 0` and any `m > 0`, so `mbqm(x, m, 0) = srdhm(x, m)` rounds once. Quantize
//!   writes that form for every channel whose `M` is in `[2^-14, 1)`, as `m = round(M * 2^31)`,
//!   the same TFLite formula with other constants (TFLite and CMSIS-NN compute it as they are).
//! - Conv / FC: `acc = bias[co] + sum w[co][ky][kx][ci] * X` where `X` is the input element as an
//!   integer (i8, or u8 for the model input) or `pad_value[ci]` for a tap outside the image
//!   (padding of a k x k conv, or the border of a shifted 1x1). `bias` already holds
//!   `round(b / (s_in * s_w[co])) - zp_in * sum(w[co])`, so with `pad_value = zp_in` a padded tap
//!   is exactly a real zero. Output: `clamp(zp_out + mbqm(acc, m[co], s[co]), act_min, act_max)`;
//!   a fused ReLU is `act_min = zp_out`.
//! - The model input is u8 pixels with scale 1/255 and zero point 0. Input normalisation is folded
//!   into the stem: `w' = w / std[ci]`, `b' = b - sum w * mean[ci] / std[ci]`, and the stem's
//!   `pad_value[ci] = round(255 * mean[ci])` (the pixel whose normalised value is 0).
//! - Add (TFLite ADD): `a' = (qa - zp_a) << left_shift`, `b' = (qb - zp_b) << left_shift`,
//!   `sum = mbqm(a', a_m, a_s) + mbqm(b', b_m, b_s)`,
//!   `out = clamp(zp_y + mbqm(sum, out_m, out_s), act_min, act_max)`; quantize uses
//!   `left_shift = 20`, `a_m,a_s ~ s_a / (2 max(s_a, s_b))`, likewise b, and
//!   `out_m,out_s ~ 2 max(s_a, s_b) / (2^20 s_y)`.
//! - Average pools (2x2 and global): `sum` of the int8 values, `n` taps:
//!   `sum > 0 ? (sum + n/2) / n : (sum - n/2) / n` (C division), clamped to [-128, 127]; output
//!   scale and zero point equal the input's. Max pool likewise keeps scale and zero point.
//!
//! # Memory plan (format version 3)
//! Every tensor but the input has an arena `offset`; `offset + bytes <= arena_bytes`. Tensors
//! whose lifetimes (from the op that writes them to the last op that reads them) do not overlap
//! may share bytes. An op's output may overlap one of its inputs only as
//! [`crate::plan_rules`] allows (version 1 allowed no overlap at all), and then no later op reads
//! that input:
//! - an add's output coincides exactly with an input (the other one coincides too or is
//!   disjoint);
//! - a stride-1 1x1 conv (shifted or not) has `y.offset + lag <= x.offset`, with the lag of
//!   [`crate::plan_rules::conv_lag`] (from the pixels, both channel counts, the shift's reach of
//!   one row (4C) or one row and a pixel (8C), and the kernels' block of 4 output pixels);
//! - a 2x2 average pool has `y.offset + c <= x.offset`.
//!
//! A shift is never a tensor: it is the input indexing of the 1x1 conv that follows it.
use serde::{Deserialize, Serialize};

/// The first four bytes of every `.skq` file.
pub const MAGIC: [u8; 4] = *b"SKQ\x01";
/// Version 2: the memory plan may place an op's output over its input (in-place ops).
/// Version 3: an in-place conv's lag allows for blocks of 4 output pixels (was 2).
/// Version 4: a conv's or FC's requantisation may be the single-rounding form (shift 0, any
/// positive multiplier). Every version 3 file is a valid version 4 file.
/// Version 5: the graph section may end with the class names after the last op
/// ([`crate::wire::check_names`]). Every version 3 and 4 file is a valid version 5 file.
pub const FORMAT_VERSION: u16 = 5;
/// The oldest version this firmware reads (the memory plan's rules are those of version 3).
pub const OLDEST_FORMAT_VERSION: u16 = 3;
/// Bytes before the graph section.
pub const PREAMBLE: usize = 24;
/// Alignment of the weight section and of every span in it.
pub const WEIGHT_ALIGN: usize = 16;

/// A typed array in the weight section: `count` elements starting `offset` bytes after W.
/// `offset` is a multiple of the element size (4 for i32, 1 for i8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Byte offset from the start of the weight section.
    pub offset: u32,
    /// Number of elements.
    pub count: u32,
}

/// The graph section's first record: counts, the input and output tensors, the arena.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Number of `Tensor` records that follow.
    pub tensors: u16,
    /// Number of `Op` records after the tensors.
    pub ops: u16,
    /// Tensor id of the input (u8 pixels, HWC).
    pub input: u16,
    /// Tensor id of the output (int8 logits).
    pub output: u16,
    /// Arena bytes the memory plan needs.
    pub arena_bytes: u32,
    /// Alignment the arena must have (1 for the portable kernels).
    pub arena_align: u8,
    /// Number of classes (= output channels).
    pub classes: u16,
}

/// An activation tensor of one image, HWC int8 (the input tensor is u8 pixels).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Height in pixels.
    pub h: u16,
    /// Width in pixels.
    pub w: u16,
    /// Channels.
    pub c: u16,
    /// Real value = scale * (q - zero_point).
    pub scale: f32,
    /// The integer that stands for real 0.
    pub zero_point: i8,
    /// Byte offset in the arena (the input tensor is not in the arena: it is the caller's slice).
    pub offset: u32,
}

impl Tensor {
    /// Bytes of one image of this tensor: `h * w * c`.
    pub fn bytes(&self) -> usize {
        self.h as usize * self.w as usize * self.c as usize
    }
}

/// Shift neighbourhood of a shifted 1x1 conv; see `shift_groups` for the channel split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shift {
    /// No shift: a plain 1x1 conv.
    None,
    /// 4-connected; `centre` keeps an unshifted centre group.
    C4 {
        /// Whether a centre group stays unshifted.
        centre: bool,
    },
    /// 8-connected; `centre` keeps an unshifted centre group.
    C8 {
        /// Whether a centre group stays unshifted.
        centre: bool,
    },
}

/// Output rescaling of a conv or FC: per output channel,
/// `out = clamp(out_zp + mul_q31(acc, multiplier[c], shift[c]), act_min, act_max)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requant {
    /// i32 x cout: Q31 multipliers in [2^30, 2^31), or with shift 0 any positive one.
    pub multiplier: Span,
    /// i32 x cout: power-of-two exponents (positive = left shift), as TFLite.
    pub shift: Span,
    /// Lowest output value (the output zero point for a fused ReLU, else -128).
    pub act_min: i8,
    /// Highest output value.
    pub act_max: i8,
}

/// An add's three rescalings (TFLite ADD, see the module docs): input `a` and input `b` to the
/// common scale, and the sum to the output, each a Q31 multiplier and a power-of-two shift.
/// In [`Op::Add`] it sits between `left_shift` and the activation range, where these fields
/// were when they were the variant's own: postcard writes a struct as its fields in order, so
/// the file's bytes are the same, and `Op`'s layout in memory is the same too (rustc places
/// the variant's fields by alignment, and this 4-aligned block lands where the six `i32`s
/// were), so the engine's code is the same instruction for instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddMultipliers {
    /// Q31 multiplier of input `a` to the common scale.
    pub a_multiplier: i32,
    /// Power-of-two exponent of input `a`'s rescaling (positive = left shift).
    pub a_shift: i32,
    /// Q31 multiplier of input `b` to the common scale.
    pub b_multiplier: i32,
    /// Power-of-two exponent of input `b`'s rescaling.
    pub b_shift: i32,
    /// Q31 multiplier of the sum to the output scale.
    pub out_multiplier: i32,
    /// Power-of-two exponent of the output rescaling.
    pub out_shift: i32,
}

/// One op of the graph, in execution order. Tensor fields (`x`, `y`, `a`, `b`) are tensor ids;
/// the variant index is the record's postcard tag (the format's op table).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// k x k conv (k = 1 with an optional shift) over int8 input, or over the u8 input tensor for
    /// the stem. Weights `[cout][k][k][cin]` i8 (OHWI, as TFLite/CMSIS-NN). Bias i32 x cout at
    /// scale `s_in * s_w[c]`, with the input zero point already folded in:
    /// `acc = bias[c] + sum w * x_q` where out-of-image taps read `pad[ci]`.
    Conv {
        /// Input tensor.
        x: u16,
        /// Output tensor.
        y: u16,
        /// Kernel size (k x k).
        k: u8,
        /// Stride, the same in both directions.
        stride: u8,
        /// Padding on every side, in pixels.
        pad: u8,
        /// The shift of a 1x1 conv's input ([`Shift::None`] for k > 1).
        shift: Shift,
        /// i8 weights, `cout * k * k * cin` of them (OHWI).
        weights: Span,
        /// i32 biases, one per output channel.
        bias: Span,
        /// The per-channel output rescaling.
        requant: Requant,
        /// Value of an out-of-image tap, per input channel (u8 for the stem, else the int8 zero
        /// point repeated): i8 or u8 bytes x cin, read as the input's element type.
        pad_value: Span,
    },
    /// TFLite ADD: both inputs are shifted left by `left_shift`, rescaled to a common scale,
    /// summed, rescaled to the output ([`AddMultipliers`]), clamped to `act_min..=act_max`.
    Add {
        /// First input tensor.
        a: u16,
        /// Second input tensor.
        b: u16,
        /// Output tensor.
        y: u16,
        /// Left shift of both inputs before rescaling (20, as TFLite).
        left_shift: u8,
        /// The three rescalings.
        multipliers: AddMultipliers,
        /// Lowest output value.
        act_min: i8,
        /// Highest output value.
        act_max: i8,
    },
    /// 2x2 average, stride 2, rounding half away from zero; same scale and zero point.
    AvgPool2 {
        /// Input tensor.
        x: u16,
        /// Output tensor.
        y: u16,
    },
    /// 3x3 max, stride 2, padding 1 (padding never wins); same scale and zero point.
    MaxPool3s2 {
        /// Input tensor.
        x: u16,
        /// Output tensor.
        y: u16,
    },
    /// Mean over H x W, rounding half away from zero; same scale and zero point.
    GlobalAvgPool {
        /// Input tensor.
        x: u16,
        /// Output tensor.
        y: u16,
    },
    /// Fully connected on a 1x1xCin tensor: weights `[cout][cin]` i8, bias i32, requant as Conv.
    FullyConnected {
        /// Input tensor (1 x 1 x cin).
        x: u16,
        /// Output tensor (1 x 1 x cout).
        y: u16,
        /// i8 weights, `cout * cin` of them.
        weights: Span,
        /// i32 biases, one per output channel.
        bias: Span,
        /// The per-channel output rescaling.
        requant: Requant,
    },
}

impl Op {
    /// A short name of the op's kind, as the boards print it in their `layer` lines and the
    /// benchmarks group layers: `conv1x1`, `shift-conv1x1`, `conv3x3`, `conv` (other k), `add`,
    /// `avgpool2`, `maxpool3s2`, `global-avgpool`, `fc`.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv {
                k: 1,
                shift: Shift::None,
                ..
            } => "conv1x1",
            Op::Conv { k: 1, .. } => "shift-conv1x1",
            Op::Conv { k: 3, .. } => "conv3x3",
            Op::Conv { .. } => "conv",
            Op::Add { .. } => "add",
            Op::AvgPool2 { .. } => "avgpool2",
            Op::MaxPool3s2 { .. } => "maxpool3s2",
            Op::GlobalAvgPool { .. } => "global-avgpool",
            Op::FullyConnected { .. } => "fc",
        }
    }

    /// The tensor the op writes.
    pub fn output(&self) -> u16 {
        match *self {
            Op::Conv { y, .. }
            | Op::Add { y, .. }
            | Op::AvgPool2 { y, .. }
            | Op::MaxPool3s2 { y, .. }
            | Op::GlobalAvgPool { y, .. }
            | Op::FullyConnected { y, .. } => y,
        }
    }

    /// The tensors the op reads, in order: `[Some(x), None]`, or `[Some(a), Some(b)]` for an
    /// add.
    pub fn inputs(&self) -> [Option<u16>; 2] {
        match *self {
            Op::Add { a, b, .. } => [Some(a), Some(b)],
            Op::Conv { x, .. }
            | Op::AvgPool2 { x, .. }
            | Op::MaxPool3s2 { x, .. }
            | Op::GlobalAvgPool { x, .. }
            | Op::FullyConnected { x, .. } => [Some(x), None],
        }
    }
}

/// The channel groups of a shift over `c` channels, as `(dh, dw, c0, c1)`: channel group
/// `c0..c1` is read at `(h - dh, w - dw)`, zero point outside the image. Same split as the
/// trainer (docs/paper.md): 4C = four groups of c/5 (down, left, up, right) + centre; 8C = eight
/// groups of c/9 + centre; without a centre, c/4 (c/8) and the last group takes the rest.
/// Returns the number of groups written into `out`.
pub fn shift_groups(shift: Shift, c: usize, out: &mut [(i8, i8, usize, usize); 9]) -> usize {
    const D4: [(i8, i8); 4] = [(1, 0), (0, -1), (-1, 0), (0, 1)];
    const D8: [(i8, i8); 8] = [
        (1, 1),
        (1, 0),
        (1, -1),
        (0, -1),
        (-1, -1),
        (-1, 0),
        (-1, 1),
        (0, 1),
    ];
    let (dirs, centre): (&[(i8, i8)], bool) = match shift {
        Shift::None => {
            out[0] = (0, 0, 0, c);
            return 1;
        }
        Shift::C4 { centre } => (&D4, centre),
        Shift::C8 { centre } => (&D8, centre),
    };
    let n = dirs.len();
    let g = if centre { c / (n + 1) } else { c / n };
    for (i, &(dh, dw)) in dirs.iter().enumerate() {
        let c1 = if !centre && i == n - 1 {
            c
        } else {
            (i + 1) * g
        };
        out[i] = (dh, dw, i * g, c1);
    }
    if centre {
        out[n] = (0, 0, n * g, c);
        n + 1
    } else {
        n
    }
}

/// The CRC-32 of each 4-bit value, for [`crc32`]'s half-byte steps (64 bytes of flash).
const CRC_NIBBLES: [u32; 16] = {
    let mut table = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 4 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib), four bits a step through a
/// 16-entry table: a quarter of the bitwise loop's work at load, for 64 bytes of table.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        crc = (crc >> 4) ^ CRC_NIBBLES[(crc & 0xF) as usize];
        crc = (crc >> 4) ^ CRC_NIBBLES[(crc & 0xF) as usize];
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Against the bitwise definition, on every byte value and a longer run.
        let bitwise = |bytes: &[u8]| {
            let mut crc = !0u32;
            for &b in bytes {
                crc ^= b as u32;
                for _ in 0..8 {
                    crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
                }
            }
            !crc
        };
        let mut all = [0u8; 256];
        for (i, b) in all.iter_mut().enumerate() {
            *b = i as u8;
        }
        for n in [1, 2, 3, 255, 256] {
            assert_eq!(crc32(&all[..n]), bitwise(&all[..n]), "first {n} bytes");
        }
        for b in 0..=255u8 {
            assert_eq!(crc32(&[b]), bitwise(&[b]), "byte {b}");
        }
    }

    #[test]
    fn shift_groups_match_the_paper_split() {
        let mut g = [(0, 0, 0, 0); 9];
        let n = shift_groups(Shift::C4 { centre: true }, 64, &mut g);
        assert_eq!(
            &g[..n],
            &[
                (1, 0, 0, 12),
                (0, -1, 12, 24),
                (-1, 0, 24, 36),
                (0, 1, 36, 48),
                (0, 0, 48, 64)
            ]
        );
        let n = shift_groups(Shift::C8 { centre: true }, 256, &mut g);
        assert_eq!(n, 9);
        assert_eq!(g[8], (0, 0, 224, 256));
        let n = shift_groups(Shift::C4 { centre: false }, 66, &mut g);
        assert_eq!(
            &g[..n],
            &[
                (1, 0, 0, 16),
                (0, -1, 16, 32),
                (-1, 0, 32, 48),
                (0, 1, 48, 66)
            ]
        );
    }
}
