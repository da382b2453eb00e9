//! IDX files of unsigned bytes (MNIST's format), parsed in place: the one reader that the
//! trainer's data loader, `xtask deploy`, the boards' build script and the Jetson binary share.
//!
//! An IDX file is a 4-byte magic `00 00 08 R` (type 0x08 = unsigned byte, `R` = rank 1..=4),
//! `R` big-endian u32 dimensions, then exactly the product of the dimensions in bytes. The first
//! dimension is the record count: labels are rank 1 (`0x801`), grey images rank 3 (`0x803`,
//! count x rows x cols), colour images rank 4 (`0x804`, count x h x w x c).
use core::fmt;

/// The largest rank this reader takes (the IDX type byte allows more; no image data uses it).
pub const MAX_RANK: usize = 4;

/// One parsed IDX file: its dimensions and its payload, borrowed from the file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idx<'a> {
    dims: [usize; MAX_RANK],
    rank: usize,
    data: &'a [u8],
}

/// What is wrong with an IDX file. [`fmt::Display`] gives one line without the file name, which
/// the caller puts in front.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxError {
    /// Shorter than its own header.
    ShortHeader {
        /// The file's length.
        len: usize,
        /// The header's length.
        need: usize,
    },
    /// The magic is not `00 00 08 R` with `R` in 1..=4.
    BadMagic {
        /// The file's first four bytes.
        magic: [u8; 4],
    },
    /// A rank other than the one the caller needs.
    WrongRank {
        /// The file's rank.
        found: usize,
        /// The rank wanted.
        expected: usize,
    },
    /// The header's dimensions multiply past `usize`.
    TooLarge,
    /// A dimension after the count is 0 (an image of no pixels).
    ZeroDim {
        /// Which dimension (0 is the count).
        index: usize,
    },
    /// The payload is not exactly the product of the dimensions.
    Length {
        /// Payload bytes the header implies.
        expected: usize,
        /// Payload bytes present.
        found: usize,
    },
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IdxError::ShortHeader { len, need } => write!(
                f,
                "truncated: {len} bytes, shorter than the {need}-byte IDX header"
            ),
            IdxError::BadMagic { magic: m } => write!(
                f,
                "not an uncompressed IDX file of unsigned bytes (magic {:02x}{:02x}{:02x}{:02x}, expected 00000801..00000804; gunzip it if it is compressed)",
                m[0], m[1], m[2], m[3]
            ),
            IdxError::WrongRank { found, expected } => write!(
                f,
                "an IDX file of rank {found} (magic 0000080{found}), expected rank {expected} (magic 0000080{expected})"
            ),
            IdxError::TooLarge => {
                write!(f, "the header's dimensions are impossibly large (the file is corrupt)")
            }
            IdxError::ZeroDim { index } => write!(
                f,
                "dimension {index} of the header is 0; records must hold at least one byte (the file is corrupt)"
            ),
            IdxError::Length { expected, found } => write!(
                f,
                "truncated or padded: the header promises {expected} bytes of data, the file has {found}"
            ),
        }
    }
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

impl<'a> Idx<'a> {
    /// Parses a whole IDX file of unsigned bytes: the header, then exactly the bytes it promises.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, IdxError> {
        let magic = match bytes.get(0..4) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => {
                return Err(IdxError::ShortHeader {
                    len: bytes.len(),
                    need: 4,
                })
            }
        };
        let rank = match magic {
            [0, 0, 0x08, r @ 1..=4] => r as usize,
            _ => return Err(IdxError::BadMagic { magic }),
        };
        let header = 4 + 4 * rank;
        let mut dims = [0usize; MAX_RANK];
        for (i, d) in dims.iter_mut().take(rank).enumerate() {
            *d = be32(bytes, 4 + 4 * i).ok_or(IdxError::ShortHeader {
                len: bytes.len(),
                need: header,
            })?;
        }
        if let Some(index) = (1..rank).find(|&i| dims[i] == 0) {
            return Err(IdxError::ZeroDim { index });
        }
        // The record size on its own too: with a count of 0 the whole product is 0 even when
        // the record size does not fit a usize, and `record_len` must not overflow.
        let record_len = dims[1..rank]
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or(IdxError::TooLarge)?;
        let expected = dims[0].checked_mul(record_len).ok_or(IdxError::TooLarge)?;
        let data = &bytes[header..];
        if data.len() != expected {
            return Err(IdxError::Length {
                expected,
                found: data.len(),
            });
        }
        Ok(Idx { dims, rank, data })
    }

    /// [`Idx::parse`], then checks the rank (1 for labels, 3 for grey images).
    pub fn parse_rank(bytes: &'a [u8], rank: usize) -> Result<Self, IdxError> {
        let idx = Self::parse(bytes)?;
        if idx.rank != rank {
            return Err(IdxError::WrongRank {
                found: idx.rank,
                expected: rank,
            });
        }
        Ok(idx)
    }

    /// The dimensions the header states, count first, e.g. `[60000, 28, 28]`.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// The number of records (the first dimension).
    pub fn count(&self) -> usize {
        self.dims[0]
    }

    /// Bytes per record: the product of the dimensions after the first (1 for labels).
    pub fn record_len(&self) -> usize {
        self.dims[1..self.rank].iter().product()
    }

    /// Every record's bytes, record after record.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The first `n` records (all of them if the file holds fewer) as one slice.
    pub fn first(&self, n: usize) -> &'a [u8] {
        &self.data[..n.min(self.count()) * self.record_len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(rank: u8, dims: &[u32], payload: &[u8]) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[2] = 0x08;
        b[3] = rank;
        for (i, d) in dims.iter().enumerate() {
            b[4 + 4 * i..8 + 4 * i].copy_from_slice(&d.to_be_bytes());
        }
        let h = 4 + 4 * dims.len();
        b[h..h + payload.len()].copy_from_slice(payload);
        b
    }

    #[test]
    fn images_and_labels_parse() {
        let b = file(3, &[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let i = Idx::parse_rank(&b[..28], 3).unwrap();
        assert_eq!(i.dims(), &[2, 2, 3]);
        assert_eq!((i.count(), i.record_len()), (2, 6));
        assert_eq!(i.first(1), &[1, 2, 3, 4, 5, 6]);
        assert_eq!(i.first(9).len(), 12);
        let l = file(1, &[3], &[7, 8, 9]);
        let l = Idx::parse_rank(&l[..11], 1).unwrap();
        assert_eq!(
            (l.count(), l.record_len(), l.data()),
            (3, 1, &[7u8, 8, 9][..])
        );
    }

    /// Found by the `data_loaders` fuzz target: 0 records of 5120 x 2^24 x 973,135,622 bytes
    /// each. The whole product is 0, so the file passed; `record_len` then overflowed.
    #[test]
    fn fuzz_zero_records_whose_size_overflows_are_refused() {
        let b = [
            0, 0, 0x08, 4, 0, 0, 0, 0, 0, 0, 0x14, 0, 1, 0, 0, 0, 0x3a, 0, 0xdf, 0x06,
        ];
        assert_eq!(Idx::parse(&b), Err(IdxError::TooLarge));
        // The same shape with a record size that fits is a valid empty file.
        let ok = [0, 0, 0x08, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28];
        let idx = Idx::parse(&ok).unwrap();
        assert_eq!(
            (idx.count(), idx.record_len(), idx.data().len()),
            (0, 784, 0)
        );
    }

    #[test]
    fn bad_files_are_typed_errors() {
        let b = file(3, &[2, 2, 3], &[0; 12]);
        assert_eq!(
            Idx::parse(&b[..27]),
            Err(IdxError::Length {
                expected: 12,
                found: 11
            })
        );
        assert_eq!(
            Idx::parse(&b[..29]),
            Err(IdxError::Length {
                expected: 12,
                found: 13
            })
        );
        assert_eq!(
            Idx::parse(&b[..10]),
            Err(IdxError::ShortHeader { len: 10, need: 16 })
        );
        assert_eq!(
            Idx::parse(&b[..3]),
            Err(IdxError::ShortHeader { len: 3, need: 4 })
        );
        assert_eq!(
            Idx::parse_rank(&b[..28], 1),
            Err(IdxError::WrongRank {
                found: 3,
                expected: 1
            })
        );
        let gz = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0];
        assert!(matches!(Idx::parse(&gz), Err(IdxError::BadMagic { .. })));
        let huge = file(3, &[u32::MAX, u32::MAX, u32::MAX], &[]);
        assert!(matches!(
            Idx::parse(&huge[..16]),
            Err(IdxError::TooLarge | IdxError::Length { .. })
        ));
        let zero = file(3, &[5, 0, 3], &[]);
        assert_eq!(Idx::parse(&zero[..16]), Err(IdxError::ZeroDim { index: 1 }));
    }
}
