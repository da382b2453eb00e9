//! The zero-copy reader of `.skq` files ([`crate::format`]): [`Model::from_bytes`] validates the
//! whole file once (preamble, CRC, every record, shape, span, constant and arena offset), after
//! which the engine can run it without further checks able to fail on a well-formed file.
//!
//! Nothing is copied out of the file but the small header: tensors and ops are decoded from the
//! graph section on demand (postcard's wire format, read by [`crate::wire`]), weights are
//! borrowed slices of the weight section.
pub mod liveness;

use core::fmt;
use core::marker::PhantomData;

use crate::wire::{self, Record};

use crate::format::{
    crc32, shift_groups, Header, Op, Requant, Shift, Span, Tensor, FORMAT_VERSION, MAGIC,
    OLDEST_FORMAT_VERSION, PREAMBLE, WEIGHT_ALIGN,
};
use crate::kernels::{conv, global_avg_pool, I32s};
use crate::plan_rules;

/// Why a file is not a valid `.skq` model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ModelError {
    /// The file does not start with `SKQ\x01`: not a shiftkit int8 model.
    BadMagic,
    /// The file is shorter than its preamble or its length field says.
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The CRC-32 of bytes `[16, length)` does not match the stored one.
    Checksum {
        /// The CRC the file states.
        stored: u32,
        /// The CRC of its bytes.
        computed: u32,
    },
    /// The file was written for another format version.
    UnsupportedVersion {
        /// The file's version.
        found: u16,
    },
    /// A field, record, shape or constant breaks a rule; `what` says which, `index` is the op
    /// index for messages starting with "op", the tensor id for "tensor", else 0.
    Invalid {
        /// Which rule, as a message ("op: ...", "tensor: ...", ...).
        what: &'static str,
        /// The op index or tensor id the message names, else 0.
        index: u32,
    },
    /// A tensor of the memory plan ends past the arena size the file states.
    ArenaTooSmall {
        /// Bytes the tensor's end needs.
        need: usize,
        /// Arena bytes the file states.
        have: usize,
    },
    /// The memory plan is broken: op `op` writes tensor `by` over arena bytes of tensor
    /// `tensor`, which op `read_by` reads later ([`liveness`]).
    Clobbered {
        /// The tensor overwritten while still live.
        tensor: u16,
        /// The tensor written over it.
        by: u16,
        /// The op that writes `by`.
        op: u32,
        /// A later op that reads `tensor`.
        read_by: u32,
    },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ModelError::BadMagic => write!(f, "not a .skq model: the file does not start with \"SKQ\\x01\""),
            ModelError::Truncated { need, have } => {
                write!(f, "truncated .skq model: need {need} bytes, have {have} (copy the whole file)")
            }
            ModelError::Checksum { stored, computed } => write!(
                f,
                "corrupt .skq model: CRC-32 is {computed:#010x}, the file says {stored:#010x} (re-run quantize or re-copy the file)"
            ),
            ModelError::UnsupportedVersion { found } => write!(
                f,
                ".skq format version {found} is not supported (this firmware reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}; re-run quantize with the matching version)"
            ),
            ModelError::Invalid { what, index } => write!(f, "invalid .skq model: {what} (index {index})"),
            ModelError::ArenaTooSmall { need, have } => write!(
                f,
                "invalid .skq model: its memory plan needs {need} arena bytes but the header states {have}"
            ),
            ModelError::Clobbered {
                tensor,
                by,
                op,
                read_by,
            } => write!(
                f,
                "invalid .skq model: its memory plan is broken: op {op} writes tensor {by} over arena bytes of tensor {tensor}, which op {read_by} still reads (re-run quantize)"
            ),
        }
    }
}

fn invalid(what: &'static str, index: usize) -> ModelError {
    ModelError::Invalid {
        what,
        index: index as u32,
    }
}

/// A validated `.skq` model borrowing the file bytes.
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    header: Header,
    input: Tensor,
    output: Tensor,
    /// Graph bytes from the first `Tensor` record on.
    tensor_records: &'a [u8],
    /// Where tensor record `i` starts in `tensor_records`, for the first [`TENSOR_INDEX`]
    /// ids (records are variable-length; later ids decode on from the last indexed one).
    tensor_at: [u16; TENSOR_INDEX],
    /// How many of `tensor_at` are set (at least 1: record 0 starts at 0).
    indexed: u8,
    /// Graph bytes from the first `Op` record to the end of the graph section.
    op_records: &'a [u8],
    /// The weight section, `[W, length)`.
    weights: &'a [u8],
    /// The class-name record after the last op (format 5), empty when the file has none.
    names: &'a [u8],
}

/// Iterator over `left` consecutive postcard records of type `T`; yields an error (never
/// panics) if a record does not decode, and stops there.
#[derive(Clone, Debug)]
pub struct Records<'a, T> {
    rest: &'a [u8],
    left: u16,
    index: usize,
    what: &'static str,
    _t: PhantomData<T>,
}

impl<'a, T> Records<'a, T> {
    fn new(rest: &'a [u8], left: u16, what: &'static str) -> Self {
        Records {
            rest,
            left,
            index: 0,
            what,
            _t: PhantomData,
        }
    }
}

impl<'a, T: Record> Iterator for Records<'a, T> {
    type Item = Result<T, ModelError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let i = self.index;
        self.index += 1;
        match wire::take::<T>(self.rest) {
            Some((record, rest)) => {
                self.rest = rest;
                Some(Ok(record))
            }
            None => {
                self.left = 0;
                Some(Err(invalid(self.what, i)))
            }
        }
    }
}

/// The op records, in execution order.
pub type Ops<'a> = Records<'a, Op>;
/// The tensor records, by id.
pub type Tensors<'a> = Records<'a, Tensor>;

const BAD_OP: &str = "op: record does not decode";
const BAD_TENSOR: &str = "tensor: record does not decode";

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Elements of a tensor, as u64 so it cannot overflow (at most (2^16-1)^3).
fn elements(t: &Tensor) -> u64 {
    t.h as u64 * t.w as u64 * t.c as u64
}

/// Tensor records whose start [`Model`] keeps (2 bytes each), for constant-time lookups.
pub const TENSOR_INDEX: usize = 64;

/// Largest accepted `left_shift` of an add: `255 << 23 < 2^31`.
pub const MAX_ADD_LEFT_SHIFT: u8 = 23;
/// Accepted range of requantisation shifts.
pub const SHIFT_RANGE: core::ops::RangeInclusive<i32> = -31..=30;

/// An add's multiplier: TFLite's Q31 mantissa, in `[2^30, 2^31)`, or 0.
fn check_multiplier(m: i32) -> bool {
    m == 0 || m >= 1 << 30
}

/// A conv's or FC's multiplier and shift: as an add's, or the single-rounding form, shift 0 with
/// any positive multiplier (`crate::format`, version 4).
fn check_conv_multiplier(m: i32, s: i32) -> bool {
    check_multiplier(m) || (s == 0 && m > 0)
}

impl<'a> Model<'a> {
    /// Validates `bytes` as a `.skq` model and borrows it. `bytes` may be longer than the file's
    /// length field (e.g. a flash region); the rest is ignored.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>, ModelError> {
        let have = bytes.len();
        if have < 4 {
            return Err(ModelError::Truncated {
                need: PREAMBLE,
                have,
            });
        }
        if bytes[..4] != MAGIC {
            return Err(ModelError::BadMagic);
        }
        if have < PREAMBLE {
            return Err(ModelError::Truncated {
                need: PREAMBLE,
                have,
            });
        }
        let version = u16_at(bytes, 4);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(ModelError::UnsupportedVersion { found: version });
        }
        if u16_at(bytes, 6) != 0 {
            return Err(invalid("header: flags are not 0", 0));
        }
        let length = u32_at(bytes, 8) as usize;
        if length < PREAMBLE {
            return Err(invalid(
                "header: length field is smaller than the 24-byte preamble",
                0,
            ));
        }
        if length > have {
            return Err(ModelError::Truncated { need: length, have });
        }
        let file = &bytes[..length];
        let stored = u32_at(file, 12);
        let computed = crc32(&file[16..]);
        if stored != computed {
            return Err(ModelError::Checksum { stored, computed });
        }
        let g = u32_at(file, 16) as usize;
        let w = u32_at(file, 20) as usize;
        let graph_end = PREAMBLE
            .checked_add(g)
            .ok_or(invalid("header: graph length overflows", 0))?;
        if !w.is_multiple_of(WEIGHT_ALIGN) {
            return Err(invalid(
                "header: weight section offset is not a multiple of 16",
                0,
            ));
        }
        if graph_end > w {
            return Err(invalid(
                "header: weight section offset is inside the graph section",
                0,
            ));
        }
        if w > length {
            return Err(invalid(
                "header: weight section offset is past the end of the file",
                0,
            ));
        }
        if file[graph_end..w].iter().any(|&b| b != 0) {
            return Err(invalid(
                "header: padding between graph and weights is not zero",
                0,
            ));
        }
        let graph = &file[PREAMBLE..graph_end];
        let weights = &file[w..];

        let (header, tensor_records) =
            wire::take::<Header>(graph).ok_or(invalid("header: record does not decode", 0))?;
        let h = &header;
        if h.tensors < 2 {
            return Err(invalid("header: fewer than 2 tensors", 0));
        }
        if h.ops == 0 {
            return Err(invalid("header: no ops", 0));
        }
        if h.input >= h.tensors || h.output >= h.tensors {
            return Err(invalid("header: input or output tensor id out of range", 0));
        }
        if h.input == h.output {
            return Err(invalid("header: input and output are the same tensor", 0));
        }
        if !h.arena_align.is_power_of_two() {
            return Err(invalid("header: arena alignment is not a power of two", 0));
        }

        // Tensors: shapes, scales, arena bounds.
        let mut tensors = Tensors::new(tensor_records, h.tensors, BAD_TENSOR);
        let mut input = None;
        let mut output = None;
        let mut tensor_at = [0u16; TENSOR_INDEX];
        let mut indexed = 0;
        for i in 0..h.tensors as usize {
            // Records from byte 2^16 on are not indexed (u16 offsets: 64 records take far less).
            let at = u16::try_from(tensor_records.len() - tensors.rest.len());
            if let (Some(slot), Ok(at)) = (tensor_at.get_mut(i), at) {
                *slot = at;
                indexed = i + 1;
            }
            let t = match tensors.next() {
                Some(Ok(t)) => t,
                _ => return Err(invalid(BAD_TENSOR, i)),
            };
            if t.h == 0 || t.w == 0 || t.c == 0 {
                return Err(invalid("tensor: a dimension is 0", i));
            }
            if !(t.scale.is_finite() && t.scale > 0.0) {
                return Err(invalid("tensor: scale is not a positive finite number", i));
            }
            if elements(&t) > u32::MAX as u64 {
                return Err(invalid("tensor: more than 2^32-1 elements", i));
            }
            if i == h.input as usize {
                input = Some(t);
            } else {
                let end = t.offset as u64 + elements(&t);
                if end > h.arena_bytes as u64 {
                    return Err(ModelError::ArenaTooSmall {
                        need: end as usize,
                        have: h.arena_bytes as usize,
                    });
                }
            }
            if i == h.output as usize {
                output = Some(t);
            }
        }
        let (Some(input), Some(output)) = (input, output) else {
            return Err(invalid("header: input or output tensor missing", 0));
        };
        if usize::try_from(elements(&input)).is_err() {
            return Err(invalid(
                "tensor: input does not fit this target's memory",
                h.input as usize,
            ));
        }
        if output.h != 1 || output.w != 1 || output.c != h.classes || h.classes == 0 {
            return Err(invalid(
                "tensor: output is not 1 x 1 x classes",
                h.output as usize,
            ));
        }

        let model = Model {
            header,
            input,
            output,
            tensor_records,
            tensor_at,
            indexed: indexed as u8,
            op_records: tensors.rest,
            weights,
            names: &[],
        };

        // Ops: each one on its own, then the dataflow between them.
        let mut ops = model.ops();
        let mut last_y = None;
        for i in 0..h.ops as usize {
            let op = ops.next().unwrap_or(Err(invalid(BAD_OP, i)))?;
            if i == 0 && op.inputs()[0] != Some(h.input) {
                return Err(invalid(
                    "op: the first op does not read the input tensor",
                    0,
                ));
            }
            model.check_op(&op, i)?;
            last_y = Some(op.output());
        }
        let names = ops.rest;
        if !names.is_empty() {
            if version < 5 {
                return Err(invalid(
                    "header: bytes left in the graph section after the last op",
                    0,
                ));
            }
            if crate::wire::check_names(names) != Some(u32::from(h.classes)) {
                return Err(invalid(
                    "names: the bytes after the last op are not one class name (1 to 64 bytes of UTF-8) per class",
                    0,
                ));
            }
        }
        let model = Model { names, ..model };
        if last_y != Some(h.output) {
            return Err(invalid(
                "op: the last op does not write the output tensor",
                h.ops as usize - 1,
            ));
        }
        model.check_dataflow()?;
        liveness::check(&model)?;
        Ok(model)
    }

    /// Runs the whole-plan liveness check ([`liveness`]) again. [`Model::from_bytes`] has
    /// already passed it, so this is `Ok`; the boards call it once more to time what the
    /// check costs at load (the report's `load` line).
    pub fn check_plan(&self) -> Result<(), ModelError> {
        liveness::check(self)
    }

    /// The name of class `i` (`None` if the file has no names: format 3 and 4 files, or a
    /// quantizer that wrote none, or `i` out of range).
    pub fn class_name(&self, i: usize) -> Option<&'a str> {
        crate::wire::name(self.names, u32::try_from(i).ok()?)
    }

    /// The header record.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The input tensor (u8 pixels, HWC; not in the arena).
    pub fn input(&self) -> &Tensor {
        &self.input
    }

    /// Bytes `run` expects as input: `h * w * c` of the input tensor.
    pub fn input_len(&self) -> usize {
        elements(&self.input) as usize // checked to fit usize in from_bytes
    }

    /// The output tensor (int8 logits, 1 x 1 x classes).
    pub fn output(&self) -> &Tensor {
        &self.output
    }

    /// Number of classes (the output's channels).
    pub fn classes(&self) -> usize {
        self.header.classes as usize
    }

    /// Arena bytes the memory plan needs (`run` needs an arena at least this long).
    pub fn arena_bytes(&self) -> usize {
        self.header.arena_bytes as usize
    }

    /// Alignment (bytes) the arena must have.
    pub fn arena_align(&self) -> usize {
        self.header.arena_align as usize
    }

    /// The op records, in execution order.
    pub fn ops(&self) -> Ops<'a> {
        Ops::new(self.op_records, self.header.ops, BAD_OP)
    }

    /// The tensor records, by id.
    pub fn tensors(&self) -> Tensors<'a> {
        Tensors::new(self.tensor_records, self.header.tensors, BAD_TENSOR)
    }

    /// Tensor `id`: decoded from its indexed record (ids past [`TENSOR_INDEX`] decode on from
    /// the last indexed one).
    pub fn tensor(&self, id: u16) -> Result<Tensor, ModelError> {
        let out_of_range = invalid("tensor: id out of range", id as usize);
        if id >= self.header.tensors {
            return Err(out_of_range);
        }
        let k = (id as usize).min(usize::from(self.indexed.max(1)) - 1);
        let rest = self
            .tensor_records
            .get(self.tensor_at[k] as usize..)
            .ok_or(out_of_range)?;
        let mut records = Tensors::new(rest, self.header.tensors - k as u16, BAD_TENSOR);
        records.index = k;
        match records.nth(id as usize - k) {
            Some(t) => t,
            None => Err(out_of_range),
        }
    }

    /// The weight section.
    pub fn weights(&self) -> &'a [u8] {
        self.weights
    }

    /// The bytes of a span of `elem`-byte elements, `None` if outside the weight section.
    pub fn span_bytes(&self, span: Span, elem: usize) -> Option<&'a [u8]> {
        let start = span.offset as usize;
        let len = (span.count as usize).checked_mul(elem)?;
        self.weights.get(start..start.checked_add(len)?)
    }

    /// An i32 span as an [`I32s`] view, `None` if outside the weight section.
    pub fn i32_span(&self, span: Span) -> Option<I32s<'a>> {
        I32s::new(self.span_bytes(span, 4)?)
    }

    // ----- validation -----

    /// Checks a span: in the weight section, aligned to `elem`, exactly `count` elements.
    fn check_span(
        &self,
        span: Span,
        elem: usize,
        count: u64,
        what: &'static str,
        i: usize,
    ) -> Result<&'a [u8], ModelError> {
        if span.count as u64 != count {
            return Err(invalid(what, i));
        }
        if !(span.offset as usize).is_multiple_of(elem) {
            return Err(invalid("op: an i32 span is not 4-byte aligned", i));
        }
        self.span_bytes(span, elem)
            .ok_or(invalid("op: a span reaches past the weight section", i))
    }

    fn check_requant(&self, r: &Requant, cout: u64, i: usize) -> Result<(), ModelError> {
        let m = self.check_span(
            r.multiplier,
            4,
            cout,
            "op: multiplier count != output channels",
            i,
        )?;
        let s = self.check_span(r.shift, 4, cout, "op: shift count != output channels", i)?;
        let word = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        for (m, s) in m.chunks_exact(4).map(word).zip(s.chunks_exact(4).map(word)) {
            if !check_conv_multiplier(m, s) {
                return Err(invalid(
                    "op: a multiplier is outside [2^30, 2^31), not 0, and not positive with shift 0",
                    i,
                ));
            }
            if !SHIFT_RANGE.contains(&s) {
                return Err(invalid("op: a requantisation shift is outside -31..=30", i));
            }
        }
        if r.act_min > r.act_max {
            return Err(invalid("op: act_min > act_max", i));
        }
        Ok(())
    }

    /// Fetches an op's tensor, checking the id.
    fn op_tensor(&self, id: u16, i: usize) -> Result<Tensor, ModelError> {
        if id >= self.header.tensors {
            return Err(invalid("op: tensor id out of range", i));
        }
        self.tensor(id)
    }

    /// Checks one op on its own: ids, shapes, spans, constants, arena overlap.
    fn check_op(&self, op: &Op, i: usize) -> Result<(), ModelError> {
        let input = self.header.input;
        let y_id = op.output();
        let y = self.op_tensor(y_id, i)?;
        if y_id == input {
            return Err(invalid("op: writes the input tensor", i));
        }
        let mut xs = [None; 2];
        for (slot, id) in xs.iter_mut().zip(op.inputs()) {
            if let Some(id) = id {
                let x = self.op_tensor(id, i)?;
                if id == y_id {
                    return Err(invalid("op: output is one of its inputs", i));
                }
                if id == input && !matches!(op, Op::Conv { .. }) {
                    return Err(invalid("op: only a conv may read the u8 input tensor", i));
                }
                *slot = Some(x);
            }
        }
        for (slot, id) in op.inputs().into_iter().enumerate() {
            let (Some(id), Some(x)) = (id, xs[slot]) else {
                continue;
            };
            if id != input
                && !plan_rules::output_may_overlap(op, slot, &x, xs[1 - slot].as_ref(), &y)
            {
                return Err(invalid("op: output overlaps an input in the arena", i));
            }
        }
        let Some(x) = xs[0] else {
            return Err(invalid("op: has no input", i));
        };
        let same_quant = |a: &Tensor, b: &Tensor| {
            a.zero_point == b.zero_point && a.scale.to_bits() == b.scale.to_bits()
        };
        match *op {
            Op::Conv {
                k,
                stride,
                pad,
                shift,
                weights,
                bias,
                requant,
                pad_value,
                ..
            } => {
                let (k, stride, pad) = (k as usize, stride as usize, pad as usize);
                if k == 0 || stride == 0 {
                    return Err(invalid("op: conv k or stride is 0", i));
                }
                if pad >= k {
                    return Err(invalid("op: conv pad >= k", i));
                }
                if conv::out_size(x.h as usize, k, stride, pad) != Some(y.h as usize)
                    || conv::out_size(x.w as usize, k, stride, pad) != Some(y.w as usize)
                {
                    return Err(invalid(
                        "op: conv output size does not follow from input, k, stride and pad",
                        i,
                    ));
                }
                if shift != Shift::None {
                    if (k, stride, pad) != (1, 1, 0) {
                        return Err(invalid(
                            "op: a shift needs a 1x1 conv with stride 1 and pad 0",
                            i,
                        ));
                    }
                    let mut g = [(0, 0, 0, 0); 9];
                    let n = shift_groups(shift, x.c as usize, &mut g);
                    if g[..n].iter().any(|&(_, _, c0, c1)| c1 <= c0) {
                        return Err(invalid(
                            "op: too few input channels for the shift's groups",
                            i,
                        ));
                    }
                }
                let (cin, cout) = (x.c as u64, y.c as u64);
                self.check_span(
                    weights,
                    1,
                    cout * (k * k) as u64 * cin,
                    "op: conv weight count != cout*k*k*cin",
                    i,
                )?;
                self.check_span(bias, 4, cout, "op: bias count != cout", i)?;
                self.check_span(pad_value, 1, cin, "op: pad value count != cin", i)?;
                self.check_requant(&requant, cout, i)?;
            }
            Op::FullyConnected {
                weights,
                bias,
                requant,
                ..
            } => {
                if x.h != 1 || x.w != 1 || y.h != 1 || y.w != 1 {
                    return Err(invalid(
                        "op: fully connected input or output is not 1 x 1",
                        i,
                    ));
                }
                let (cin, cout) = (x.c as u64, y.c as u64);
                self.check_span(
                    weights,
                    1,
                    cout * cin,
                    "op: fully connected weight count != cout*cin",
                    i,
                )?;
                self.check_span(bias, 4, cout, "op: bias count != cout", i)?;
                self.check_requant(&requant, cout, i)?;
            }
            Op::Add {
                left_shift,
                multipliers: m,
                act_min,
                act_max,
                ..
            } => {
                let b = xs[1].ok_or(invalid("op: add has no second input", i))?;
                if (x.h, x.w, x.c) != (y.h, y.w, y.c) || (b.h, b.w, b.c) != (y.h, y.w, y.c) {
                    return Err(invalid("op: add shapes differ", i));
                }
                if left_shift > MAX_ADD_LEFT_SHIFT {
                    return Err(invalid("op: add left_shift > 23", i));
                }
                if ![m.a_multiplier, m.b_multiplier, m.out_multiplier]
                    .into_iter()
                    .all(check_multiplier)
                {
                    return Err(invalid(
                        "op: an add multiplier is outside [2^30, 2^31) and not 0",
                        i,
                    ));
                }
                if ![m.a_shift, m.b_shift, m.out_shift]
                    .iter()
                    .all(|s| SHIFT_RANGE.contains(s))
                {
                    return Err(invalid("op: an add shift is outside -31..=30", i));
                }
                if act_min > act_max {
                    return Err(invalid("op: act_min > act_max", i));
                }
            }
            Op::AvgPool2 { .. } => {
                if x.h < 2 || x.w < 2 || (y.h, y.w, y.c) != (x.h / 2, x.w / 2, x.c) {
                    return Err(invalid("op: avg pool output is not (h/2, w/2, c)", i));
                }
                if !same_quant(&x, &y) {
                    return Err(invalid("op: avg pool changes scale or zero point", i));
                }
            }
            Op::MaxPool3s2 { .. } => {
                if (y.h, y.w, y.c) != ((x.h - 1) / 2 + 1, (x.w - 1) / 2 + 1, x.c) {
                    return Err(invalid(
                        "op: max pool output is not ((h-1)/2+1, (w-1)/2+1, c)",
                        i,
                    ));
                }
                if !same_quant(&x, &y) {
                    return Err(invalid("op: max pool changes scale or zero point", i));
                }
            }
            Op::GlobalAvgPool { .. } => {
                if (y.h, y.w, y.c) != (1, 1, x.c) {
                    return Err(invalid("op: global avg pool output is not (1, 1, c)", i));
                }
                if x.h as u64 * x.w as u64 > global_avg_pool::MAX_PIXELS as u64 {
                    return Err(invalid("op: global avg pool over more than 2^23 pixels", i));
                }
                if !same_quant(&x, &y) {
                    return Err(invalid(
                        "op: global avg pool changes scale or zero point",
                        i,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every tensor is written by one op at most, every tensor an op reads (but the input) was
    /// written by an earlier op, and an input an op writes its output over (in place) is read by
    /// no later op. O(ops^2) record decodes, once.
    fn check_dataflow(&self) -> Result<(), ModelError> {
        for (i, op) in self.ops().enumerate() {
            let op = op?;
            let y = op.output();
            let ins = op.inputs();
            let mut written = [false; 2];
            for earlier in self.ops().take(i) {
                let e = earlier?.output();
                if e == y {
                    return Err(invalid("op: writes a tensor an earlier op wrote", i));
                }
                for (w, x) in written.iter_mut().zip(ins) {
                    *w |= x == Some(e);
                }
            }
            let yt = self.tensor(y)?;
            for x in ins.into_iter().flatten() {
                if x == self.header.input || !plan_rules::overlaps(&self.tensor(x)?, &yt) {
                    continue;
                }
                for later in self.ops().skip(i + 1) {
                    if later?.inputs().contains(&Some(x)) {
                        return Err(invalid(
                            "op: writes its output over an input that a later op still reads",
                            i,
                        ));
                    }
                }
            }
            for (w, x) in written.iter().zip(ins) {
                if let Some(x) = x {
                    if x != self.header.input && !w {
                        return Err(invalid("op: reads a tensor no earlier op wrote", i));
                    }
                }
            }
        }
        Ok(())
    }
}
