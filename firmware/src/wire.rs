//! The device's reader of the graph section's records. They are postcard's wire format (quantize
//! writes them with `postcard::to_allocvec` through the `serde` derives in [`crate::format`]);
//! this reads that format by hand for the few types a model holds, which on a Cortex-M is about
//! 6 KB less code than postcard's `serde` deserializer (docs/decisions.md, "Reading the graph
//! section"). The host tests check that both readers agree on every record, valid or corrupt.
//!
//! The format, for these types: `u8`, `i8` one byte; `bool` one byte, 0 or 1; `u16`, `u32`
//! LEB128 varints of at most 3 and 5 bytes whose value fits the type; `i32` the zigzag of its
//! value as a `u32` varint; `f32` four little-endian bytes; a struct its fields in order; an enum
//! its variant index as a `u32` varint, then the variant's fields.
use crate::format::{AddMultipliers, Header, Op, Requant, Shift, Span, Tensor};

/// A cursor over record bytes; every read is `None` past the end or on a bad encoding.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn i8(&mut self) -> Option<i8> {
        Some(self.u8()? as i8)
    }

    fn bool(&mut self) -> Option<bool> {
        match self.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    /// A varint of at most `max_bytes` bytes whose value is at most `max`.
    fn varint(&mut self, max_bytes: u32, max: u32) -> Option<u32> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let b = self.u8()?;
            value |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(value).ok().filter(|&v| v <= max);
            }
        }
        None
    }

    fn u16(&mut self) -> Option<u16> {
        Some(self.varint(3, u16::MAX as u32)? as u16)
    }

    fn u32(&mut self) -> Option<u32> {
        self.varint(5, u32::MAX)
    }

    fn i32(&mut self) -> Option<i32> {
        let z = self.u32()?;
        Some((z >> 1) as i32 ^ -((z & 1) as i32))
    }

    fn f32(&mut self) -> Option<f32> {
        let (b, rest) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = rest;
        Some(f32::from_le_bytes(*b))
    }
}

impl<'a> Reader<'a> {
    /// A string: its length as a `u32` varint, then that many bytes of UTF-8.
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        if n > self.bytes.len() {
            return None;
        }
        let (s, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        core::str::from_utf8(s).ok()
    }
}

/// The most bytes a class name may have.
pub const MAX_NAME: usize = 64;

/// The class-name record (format 5): postcard's encoding of a `Vec<String>`, the count as a
/// `u32` varint, then each name. `Some(count)` if `bytes` is exactly one such record, each name
/// valid UTF-8 of 1 to [`MAX_NAME`] bytes.
pub fn check_names(bytes: &[u8]) -> Option<u32> {
    let mut r = Reader::new(bytes);
    let n = r.u32()?;
    for _ in 0..n {
        let s = r.str()?;
        if s.is_empty() || s.len() > MAX_NAME {
            return None;
        }
    }
    r.rest().is_empty().then_some(n)
}

/// Name `i` of a class-name record that [`check_names`] accepted.
pub fn name(bytes: &[u8], i: u32) -> Option<&str> {
    let mut r = Reader::new(bytes);
    let n = r.u32()?;
    if i >= n {
        return None;
    }
    for _ in 0..i {
        r.str()?;
    }
    r.str()
}

/// A type the graph section holds.
pub trait Record: Sized {
    /// Reads one record, `None` past the end or on a bad encoding.
    fn read(r: &mut Reader) -> Option<Self>;
}

/// Reads one `T` from the front of `bytes`; the record and the bytes after it.
pub fn take<T: Record>(bytes: &[u8]) -> Option<(T, &[u8])> {
    let mut r = Reader::new(bytes);
    let t = T::read(&mut r)?;
    Some((t, r.rest()))
}

impl Record for Header {
    fn read(r: &mut Reader) -> Option<Self> {
        Some(Header {
            tensors: r.u16()?,
            ops: r.u16()?,
            input: r.u16()?,
            output: r.u16()?,
            arena_bytes: r.u32()?,
            arena_align: r.u8()?,
            classes: r.u16()?,
        })
    }
}

impl Record for Tensor {
    fn read(r: &mut Reader) -> Option<Self> {
        Some(Tensor {
            h: r.u16()?,
            w: r.u16()?,
            c: r.u16()?,
            scale: r.f32()?,
            zero_point: r.i8()?,
            offset: r.u32()?,
        })
    }
}

impl Record for Span {
    fn read(r: &mut Reader) -> Option<Self> {
        Some(Span {
            offset: r.u32()?,
            count: r.u32()?,
        })
    }
}

impl Record for Shift {
    fn read(r: &mut Reader) -> Option<Self> {
        Some(match r.u32()? {
            0 => Shift::None,
            1 => Shift::C4 { centre: r.bool()? },
            2 => Shift::C8 { centre: r.bool()? },
            _ => return None,
        })
    }
}

impl Record for Requant {
    fn read(r: &mut Reader) -> Option<Self> {
        Some(Requant {
            multiplier: Span::read(r)?,
            shift: Span::read(r)?,
            act_min: r.i8()?,
            act_max: r.i8()?,
        })
    }
}

impl Record for Op {
    fn read(r: &mut Reader) -> Option<Self> {
        Some(match r.u32()? {
            0 => Op::Conv {
                x: r.u16()?,
                y: r.u16()?,
                k: r.u8()?,
                stride: r.u8()?,
                pad: r.u8()?,
                shift: Shift::read(r)?,
                weights: Span::read(r)?,
                bias: Span::read(r)?,
                requant: Requant::read(r)?,
                pad_value: Span::read(r)?,
            },
            1 => Op::Add {
                a: r.u16()?,
                b: r.u16()?,
                y: r.u16()?,
                left_shift: r.u8()?,
                // Read in place (not through a `Record` of its own): the decoder's code stays
                // the one of the fields read one by one.
                multipliers: AddMultipliers {
                    a_multiplier: r.i32()?,
                    a_shift: r.i32()?,
                    b_multiplier: r.i32()?,
                    b_shift: r.i32()?,
                    out_multiplier: r.i32()?,
                    out_shift: r.i32()?,
                },
                act_min: r.i8()?,
                act_max: r.i8()?,
            },
            2 => Op::AvgPool2 {
                x: r.u16()?,
                y: r.u16()?,
            },
            3 => Op::MaxPool3s2 {
                x: r.u16()?,
                y: r.u16()?,
            },
            4 => Op::GlobalAvgPool {
                x: r.u16()?,
                y: r.u16()?,
            },
            5 => Op::FullyConnected {
                x: r.u16()?,
                y: r.u16()?,
                weights: Span::read(r)?,
                bias: Span::read(r)?,
                requant: Requant::read(r)?,
            },
            _ => return None,
        })
    }
}
