//! Portable reference kernels, one file per op: dense HWC int8 tensors of one image, no halo,
//! written for clarity. Every future fast kernel is tested bit-exactly against these.
//!
//! Each kernel checks once, at entry, that every slice length matches the shapes it is given
//! and returns [`KernelError`] if not; after that check all indexing is in bounds, so no
//! kernel panics whatever the data. Weight-section arrays arrive as raw bytes (`&[u8]`): i8
//! arrays are read with `as i8`, i32 arrays through [`I32s`] (little-endian, no alignment
//! needed), so no `unsafe` reinterpretation is required.
pub mod add;
pub mod avg_pool2;
pub mod conv;
pub mod fast;
pub mod global_avg_pool;
pub mod max_pool3s2;

use crate::requant;

/// Shape of one HWC tensor (one image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Height in pixels.
    pub h: usize,
    /// Width in pixels.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// An `h x w x c` shape.
    pub const fn new(h: usize, w: usize, c: usize) -> Self {
        Shape { h, w, c }
    }

    /// Number of elements, `None` if it overflows `usize`.
    pub fn elements(self) -> Option<usize> {
        self.h.checked_mul(self.w)?.checked_mul(self.c)
    }

    /// Index of element `(y, x, ch)`; callers keep the coordinates inside the shape.
    #[inline]
    pub fn at(self, y: usize, x: usize, ch: usize) -> usize {
        (y * self.w + x) * self.c + ch
    }
}

/// A kernel was called with slices that do not match its shapes (a bug in the caller: the
/// engine only calls kernels on validated models). Says which argument was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelError(pub &'static str);

/// An element type a conv can read: the u8 model input or an i8 activation.
pub trait Element: Copy {
    /// The element as an integer.
    fn value(self) -> i32;
    /// Reinterpret a raw byte of the weight section (a pad value) as this type.
    fn from_byte(b: u8) -> Self;
    /// The element's raw byte.
    fn byte(self) -> u8;
    /// Whether the byte is read as signed (i8) or unsigned (u8).
    const SIGNED: bool;
    /// The slice as an [`XView`].
    fn view(s: &[Self]) -> XView<'_>;
}

/// An input tensor's elements, u8 (the model input) or i8 (an activation).
#[derive(Clone, Copy, Debug)]
pub enum XView<'a> {
    /// The model input: u8 pixels.
    U8(&'a [u8]),
    /// An activation: int8.
    I8(&'a [i8]),
}

impl Element for u8 {
    #[inline]
    fn value(self) -> i32 {
        self as i32
    }
    #[inline]
    fn from_byte(b: u8) -> Self {
        b
    }
    #[inline]
    fn byte(self) -> u8 {
        self
    }
    const SIGNED: bool = false;
    #[inline]
    fn view(s: &[u8]) -> XView<'_> {
        XView::U8(s)
    }
}

impl Element for i8 {
    #[inline]
    fn value(self) -> i32 {
        self as i32
    }
    #[inline]
    fn from_byte(b: u8) -> Self {
        b as i8
    }
    #[inline]
    fn byte(self) -> u8 {
        self as u8
    }
    const SIGNED: bool = true;
    #[inline]
    fn view(s: &[i8]) -> XView<'_> {
        XView::I8(s)
    }
}

/// Where a conv reads its input and writes its output: two separate slices ([`Split`]) or one
/// buffer holding both ([`Shared`], an in-place op whose output overlaps its input under the
/// memory plan's rules). Kernels read every input element an output needs before they write that
/// output, in raster order, so an in-place op placed by the rules never reads a byte it already
/// overwrote. Indices are element indices into the (h*w*c) input or output tensor; out-of-range
/// indices read 0 and drop writes (never a panic; kernels check lengths at entry).
pub trait Io {
    /// The input element type: the u8 model input or an i8 activation.
    type X: Element;
    /// Elements of the input tensor.
    fn x_len(&self) -> usize;
    /// Elements of the output tensor.
    fn y_len(&self) -> usize;
    /// Input element `i`.
    fn x(&self, i: usize) -> Self::X;
    /// Copies input elements `at..at + dst.len()` into `dst` as raw bytes (zeros past the end).
    fn x_bytes(&self, at: usize, dst: &mut [u8]);
    /// The whole input tensor.
    fn x_view(&self) -> XView<'_>;
    /// The whole output tensor (in place: over the input, which a kernel must have read).
    fn y_mut(&mut self) -> &mut [i8];
    /// Writes output element `i`.
    fn set_y(&mut self, i: usize, v: i8);
    /// Writes output elements `at..at + src.len()` (those past the end are dropped).
    fn y_bytes(&mut self, at: usize, src: &[i8]) {
        for (i, &v) in src.iter().enumerate() {
            self.set_y(at + i, v);
        }
    }
}

/// Copies `src` into `dst`, as many bytes as the shorter holds (kernels' output rows; the
/// compiler may turn the loop into a `memcpy` call).
#[inline]
pub fn copy_i8(dst: &mut [i8], src: &[i8]) {
    let n = dst.len().min(src.len());
    let (d4, d1) = dst[..n].as_chunks_mut::<4>();
    let (s4, s1) = src[..n].as_chunks::<4>();
    for (d, s) in d4.iter_mut().zip(s4) {
        *d = *s;
    }
    for (d, s) in d1.iter_mut().zip(s1) {
        *d = *s;
    }
}

/// Input and output in separate slices.
pub struct Split<'a, X> {
    /// The input tensor.
    pub x: &'a [X],
    /// The output tensor.
    pub y: &'a mut [i8],
}

impl<X: Element> Io for Split<'_, X> {
    type X = X;
    #[inline]
    fn x_len(&self) -> usize {
        self.x.len()
    }
    #[inline]
    fn y_len(&self) -> usize {
        self.y.len()
    }
    #[inline]
    fn x(&self, i: usize) -> X {
        self.x.get(i).copied().unwrap_or(X::from_byte(0))
    }
    #[inline]
    fn x_bytes(&self, at: usize, dst: &mut [u8]) {
        match self.x.get(at..at.saturating_add(dst.len())) {
            Some(src) => {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s.byte();
                }
            }
            None => {
                let src = self.x.get(at..).unwrap_or(&[]);
                dst.fill(0);
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s.byte();
                }
            }
        }
    }
    #[inline]
    fn x_view(&self) -> XView<'_> {
        X::view(self.x)
    }
    #[inline]
    fn y_mut(&mut self) -> &mut [i8] {
        self.y
    }
    #[inline]
    fn set_y(&mut self, i: usize, v: i8) {
        if let Some(y) = self.y.get_mut(i) {
            *y = v;
        }
    }
    #[inline]
    fn y_bytes(&mut self, at: usize, src: &[i8]) {
        let end = self.y.len().min(at.saturating_add(src.len()));
        if let Some(y) = self.y.get_mut(at.min(end)..end) {
            copy_i8(y, src);
        }
    }
}

/// Input and output in one buffer (an in-place op): `x` is `buf[x_at..x_at + x_len]`, `y` is
/// `buf[y_at..y_at + y_len]`; the two may overlap.
pub struct Shared<'a> {
    buf: &'a mut [i8],
    x_at: usize,
    x_len: usize,
    y_at: usize,
    y_len: usize,
}

impl<'a> Shared<'a> {
    /// `None` unless both ranges lie inside `buf`.
    pub fn new(
        buf: &'a mut [i8],
        x: core::ops::Range<usize>,
        y: core::ops::Range<usize>,
    ) -> Option<Self> {
        if x.start > x.end || y.start > y.end || x.end > buf.len() || y.end > buf.len() {
            return None;
        }
        Some(Shared {
            buf,
            x_at: x.start,
            x_len: x.end - x.start,
            y_at: y.start,
            y_len: y.end - y.start,
        })
    }

    /// The output slice (after the kernel ran).
    pub fn y(&self) -> &[i8] {
        &self.buf[self.y_at..self.y_at + self.y_len]
    }
}

impl Io for Shared<'_> {
    type X = i8;
    #[inline]
    fn x_len(&self) -> usize {
        self.x_len
    }
    #[inline]
    fn y_len(&self) -> usize {
        self.y_len
    }
    #[inline]
    fn x(&self, i: usize) -> i8 {
        if i < self.x_len {
            self.buf.get(self.x_at + i).copied().unwrap_or(0)
        } else {
            0
        }
    }
    #[inline]
    fn x_bytes(&self, at: usize, dst: &mut [u8]) {
        let end = self.x_len.min(at.saturating_add(dst.len()));
        let src = self
            .buf
            .get(self.x_at + at.min(end)..self.x_at + end)
            .unwrap_or(&[]);
        // The bytes the input has, zeros past its end (as `Split`).
        let (d, rest) = dst.split_at_mut(src.len().min(dst.len()));
        for (d, s) in d.iter_mut().zip(src) {
            *d = *s as u8;
        }
        rest.fill(0);
    }
    #[inline]
    fn x_view(&self) -> XView<'_> {
        XView::I8(
            self.buf
                .get(self.x_at..self.x_at + self.x_len)
                .unwrap_or(&[]),
        )
    }
    #[inline]
    fn y_mut(&mut self) -> &mut [i8] {
        self.buf
            .get_mut(self.y_at..self.y_at + self.y_len)
            .unwrap_or(&mut [])
    }
    #[inline]
    fn set_y(&mut self, i: usize, v: i8) {
        if i < self.y_len {
            if let Some(y) = self.buf.get_mut(self.y_at + i) {
                *y = v;
            }
        }
    }
    #[inline]
    fn y_bytes(&mut self, at: usize, src: &[i8]) {
        let end = self.y_len.min(at.saturating_add(src.len()));
        let start = at.min(end);
        if let Some(y) = self.buf.get_mut(self.y_at + start..self.y_at + end) {
            copy_i8(y, src);
        }
    }
}

/// A little-endian i32 array stored as bytes (a weight-section span).
#[derive(Clone, Copy, Debug)]
pub struct I32s<'a> {
    bytes: &'a [u8],
}

impl<'a> I32s<'a> {
    /// `None` unless `bytes.len()` is a multiple of 4.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        bytes.len().is_multiple_of(4).then_some(I32s { bytes })
    }

    /// Number of i32 values.
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Element `i`, `None` out of range.
    #[inline]
    pub fn get(&self, i: usize) -> Option<i32> {
        let b = self
            .bytes
            .get(i.checked_mul(4)?..i.checked_mul(4)?.checked_add(4)?)?;
        Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        self.bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Per-output-channel output stage of a conv or FC:
/// `y = clamp(zero_point + mbqm(acc, multiplier[c], shift[c]), act_min, act_max)`.
#[derive(Clone, Copy, Debug)]
pub struct Rescale<'a> {
    /// i32 x cout, Q31 multipliers.
    pub multiplier: I32s<'a>,
    /// i32 x cout, power-of-two exponents (positive = left).
    pub shift: I32s<'a>,
    /// Output zero point.
    pub zero_point: i8,
    /// Lowest output value (the zero point for a fused ReLU).
    pub act_min: i8,
    /// Highest output value.
    pub act_max: i8,
}

impl Rescale<'_> {
    /// Checks that there are `cout` multipliers and shifts.
    fn check(&self, cout: usize) -> Result<(), KernelError> {
        if self.multiplier.len() != cout {
            return Err(KernelError("multiplier count != output channels"));
        }
        if self.shift.len() != cout {
            return Err(KernelError("shift count != output channels"));
        }
        Ok(())
    }

    /// Channel `co`'s output stage for accumulators of `bias` plus a `patch`-byte dot product of
    /// u8 or i8 inputs with i8 weights: `|acc| <= |bias| + patch * 255 * 128`.
    #[inline(always)]
    pub fn requantizer(&self, co: usize, bias: i32, patch: usize) -> requant::Requantizer {
        let bound = (patch as u32).saturating_mul(255 * 128);
        requant::Requantizer::new(
            self.multiplier.get(co).unwrap_or(0),
            self.shift.get(co).unwrap_or(0),
            self.zero_point,
            self.act_min,
            self.act_max,
            bias.unsigned_abs().saturating_add(bound),
        )
    }

    /// Output value of channel `co` for accumulator `acc` (`co` in range after `check`).
    #[inline]
    fn apply(&self, acc: i32, co: usize) -> i8 {
        let m = self.multiplier.get(co).unwrap_or(0);
        let s = self.shift.get(co).unwrap_or(0);
        requant::requantize(acc, m, s, self.zero_point, self.act_min, self.act_max)
    }
}

/// `Err(KernelError(what))` unless `len == shape.len()`.
fn check_len(len: usize, shape: Shape, what: &'static str) -> Result<(), KernelError> {
    if shape.elements() == Some(len) {
        Ok(())
    } else {
        Err(KernelError(what))
    }
}
