//! The firmware's record reader (`shiftkit_engine::wire`) against postcard's own deserializer: the
//! same record from every encoding postcard writes, and the same verdict (and value) on corrupt
//! and truncated bytes.
#![forbid(unsafe_code)]
// tests/common is shared with crates that depend on this one as `firmware`.
extern crate shiftkit_engine as firmware;
mod common;

use common::Rng;
use serde::{de::DeserializeOwned, Serialize};
use shiftkit_engine::format::{AddMultipliers, Header, Op, Requant, Shift, Span, Tensor};
use shiftkit_engine::wire::{take, Record};

/// Values that stress the varints: 0, each byte-length boundary, the type's extremes, random.
fn u32v(rng: &mut Rng) -> u32 {
    const EDGES: [u32; 9] = [
        0,
        1,
        127,
        128,
        16_383,
        16_384,
        2_097_151,
        2_097_152,
        u32::MAX,
    ];
    match rng.below(3) {
        0 => EDGES[rng.below(EDGES.len())],
        1 => rng.next() as u32 >> rng.below(32),
        _ => rng.next() as u32,
    }
}

fn u16v(rng: &mut Rng) -> u16 {
    match rng.below(3) {
        0 => [0, 127, 128, 16_383, 16_384, u16::MAX][rng.below(6)],
        _ => rng.next() as u16,
    }
}

fn i32v(rng: &mut Rng) -> i32 {
    match rng.below(3) {
        0 => [0, -1, 1, -64, 64, -65, i32::MIN, i32::MAX][rng.below(8)],
        _ => u32v(rng) as i32,
    }
}

fn span(rng: &mut Rng) -> Span {
    Span {
        offset: u32v(rng),
        count: u32v(rng),
    }
}

fn requant(rng: &mut Rng) -> Requant {
    Requant {
        multiplier: span(rng),
        shift: span(rng),
        act_min: rng.next() as i8,
        act_max: rng.next() as i8,
    }
}

fn op(rng: &mut Rng) -> Op {
    let (x, y) = (u16v(rng), u16v(rng));
    match rng.below(6) {
        0 => Op::Conv {
            x,
            y,
            k: rng.next() as u8,
            stride: rng.next() as u8,
            pad: rng.next() as u8,
            shift: match rng.below(3) {
                0 => Shift::None,
                1 => Shift::C4 {
                    centre: rng.below(2) == 1,
                },
                _ => Shift::C8 {
                    centre: rng.below(2) == 1,
                },
            },
            weights: span(rng),
            bias: span(rng),
            requant: requant(rng),
            pad_value: span(rng),
        },
        1 => Op::Add {
            a: x,
            b: y,
            y: u16v(rng),
            left_shift: rng.next() as u8,
            multipliers: AddMultipliers {
                a_multiplier: i32v(rng),
                a_shift: i32v(rng),
                b_multiplier: i32v(rng),
                b_shift: i32v(rng),
                out_multiplier: i32v(rng),
                out_shift: i32v(rng),
            },
            act_min: rng.next() as i8,
            act_max: rng.next() as i8,
        },
        2 => Op::AvgPool2 { x, y },
        3 => Op::MaxPool3s2 { x, y },
        4 => Op::GlobalAvgPool { x, y },
        _ => Op::FullyConnected {
            x,
            y,
            weights: span(rng),
            bias: span(rng),
            requant: requant(rng),
        },
    }
}

fn tensor(rng: &mut Rng) -> Tensor {
    Tensor {
        h: u16v(rng),
        w: u16v(rng),
        c: u16v(rng),
        scale: f32::from_bits(rng.next() as u32),
        zero_point: rng.next() as i8,
        offset: u32v(rng),
    }
}

fn header(rng: &mut Rng) -> Header {
    Header {
        tensors: u16v(rng),
        ops: u16v(rng),
        input: u16v(rng),
        output: u16v(rng),
        arena_bytes: u32v(rng),
        arena_align: rng.next() as u8,
        classes: u16v(rng),
    }
}

/// Bitwise equality through the encoding (a NaN scale compares unequal to itself).
fn same<T: Serialize>(a: &T, b: &T) -> bool {
    postcard::to_allocvec(a).unwrap() == postcard::to_allocvec(b).unwrap()
}

/// Both readers on `bytes`: the same record and rest, or both refuse.
fn agree<T: Record + DeserializeOwned + Serialize + std::fmt::Debug>(bytes: &[u8]) -> bool {
    let ours = take::<T>(bytes);
    let theirs = postcard::take_from_bytes::<T>(bytes).ok();
    match (&ours, &theirs) {
        (Some((a, ra)), Some((b, rb))) => same(a, b) && ra == rb,
        (None, None) => true,
        _ => {
            eprintln!("bytes {bytes:02x?}: ours {ours:?}, postcard {theirs:?}");
            false
        }
    }
}

fn check<T: Record + DeserializeOwned + Serialize + std::fmt::Debug>(
    rng: &mut Rng,
    make: fn(&mut Rng) -> T,
) {
    for _ in 0..3000 {
        let value = make(rng);
        let mut bytes = postcard::to_allocvec(&value).unwrap();
        bytes.extend([0xA5, 0x01]); // the next record's bytes stay unread
        let (read, rest) = take::<T>(&bytes).expect("a record postcard wrote");
        assert!(same(&read, &value), "{value:?} read back as {read:?}");
        assert_eq!(rest, &[0xA5, 0x01]);
        // Every truncation, and a few corruptions, get postcard's verdict.
        for cut in 0..bytes.len() - 2 {
            assert!(agree::<T>(&bytes[..cut]), "{value:?} cut at {cut}");
        }
        for _ in 0..4 {
            let mut bad = bytes.clone();
            let at = rng.below(bad.len());
            bad[at] = match rng.below(3) {
                0 => 0xFF,
                1 => 0x80,
                _ => rng.next() as u8,
            };
            assert!(
                agree::<T>(&bad),
                "{value:?} with byte {at} set to {:#x}",
                bad[at]
            );
        }
    }
}

#[test]
fn ops_read_as_postcard_reads_them() {
    check(&mut Rng(11), op);
}

#[test]
fn tensors_read_as_postcard_reads_them() {
    check(&mut Rng(12), tensor);
}

#[test]
fn headers_read_as_postcard_reads_them() {
    check(&mut Rng(13), header);
}

#[test]
fn random_bytes_get_postcards_verdict() {
    let mut rng = Rng(14);
    for _ in 0..20_000 {
        let n = rng.below(40);
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        assert!(agree::<Op>(&bytes));
        assert!(agree::<Tensor>(&bytes));
        assert!(agree::<Header>(&bytes));
    }
}

/// `Op::Add` as format 4 first wrote it, its twelve fields flat in the variant: the layout that
/// `Op::Add` with its `AddMultipliers` struct must keep (postcard writes a struct as its fields
/// in order). Variant 0 stands in for `Conv`, so `Add` keeps index 1.
#[derive(Serialize)]
#[allow(dead_code)]
enum FlatOp {
    Conv,
    Add {
        a: u16,
        b: u16,
        y: u16,
        left_shift: u8,
        a_multiplier: i32,
        a_shift: i32,
        b_multiplier: i32,
        b_shift: i32,
        out_multiplier: i32,
        out_shift: i32,
        act_min: i8,
        act_max: i8,
    },
}

fn flat(op: &Op) -> FlatOp {
    let Op::Add {
        a,
        b,
        y,
        left_shift,
        multipliers: m,
        act_min,
        act_max,
    } = *op
    else {
        panic!("not an add: {op:?}");
    };
    FlatOp::Add {
        a,
        b,
        y,
        left_shift,
        a_multiplier: m.a_multiplier,
        a_shift: m.a_shift,
        b_multiplier: m.b_multiplier,
        b_shift: m.b_shift,
        out_multiplier: m.out_multiplier,
        out_shift: m.out_shift,
        act_min,
        act_max,
    }
}

#[test]
fn an_add_is_encoded_as_its_twelve_flat_fields() {
    let op = Op::Add {
        a: 3,
        b: 200,
        y: 7,
        left_shift: 20,
        multipliers: AddMultipliers {
            a_multiplier: 1 << 30,
            a_shift: -1,
            b_multiplier: 1_500_000_000,
            b_shift: 2,
            out_multiplier: i32::MAX,
            out_shift: -19,
        },
        act_min: -128,
        act_max: 127,
    };
    // Variant 1; a, b, y as u16 varints; left_shift one byte; the six i32s zigzag varints;
    // act_min, act_max one byte each.
    let want = [
        0x01, // Add
        0x03, 0xC8, 0x01, 0x07, // a = 3, b = 200, y = 7
        0x14, // left_shift = 20
        0x80, 0x80, 0x80, 0x80, 0x08, // a_multiplier = 2^30 (zigzag 2^31)
        0x01, // a_shift = -1
        0x80, 0xBC, 0xC1, 0x96, 0x0B, // b_multiplier = 1_500_000_000
        0x04, // b_shift = 2
        0xFE, 0xFF, 0xFF, 0xFF, 0x0F, // out_multiplier = i32::MAX
        0x25, // out_shift = -19
        0x80, 0x7F, // act_min = -128, act_max = 127
    ];
    let bytes = postcard::to_allocvec(&op).unwrap();
    assert_eq!(bytes, want);
    assert_eq!(postcard::to_allocvec(&flat(&op)).unwrap(), want);
    assert_eq!(take::<Op>(&want), Some((op, &[][..])));
}

#[test]
fn random_adds_encode_as_the_flat_layout() {
    let mut rng = Rng(15);
    let mut adds = 0;
    while adds < 2000 {
        let op = op(&mut rng);
        if !matches!(op, Op::Add { .. }) {
            continue;
        }
        adds += 1;
        let bytes = postcard::to_allocvec(&op).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&flat(&op)).unwrap(), "{op:?}");
        assert_eq!(take::<Op>(&bytes), Some((op, &[][..])), "{op:?}");
    }
}
