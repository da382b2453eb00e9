//! Robustness: truncated, bit-flipped, random and structurally mutated files go through
//! `Model::from_bytes` and (when accepted) `run`. Each must return `Err` or `Ok`; a panic
//! (including an arithmetic overflow: tests build with overflow checks) fails the test.
//! No `catch_unwind`: the calls are made directly. Fixed seeds, so failures reproduce.
#![forbid(unsafe_code)]
// tests/common is shared with crates that depend on this one as `firmware`.
extern crate shiftkit_engine as firmware;
mod common;

use common::{encode, encode_raw, fix_crc, second_net, tiny_net, Builder, Rng};
use shiftkit_engine::format::{AddMultipliers, Header, Op, Requant, Shift, Span, Tensor};
use shiftkit_engine::{run, Model, NoProfiler};

/// Loads `f`; if it validates, runs it on a random input (and a wrong-size one, and a short
/// arena). Returns whether it validated.
fn exercise(f: &[u8], rng: &mut Rng) -> bool {
    let Ok(model) = Model::from_bytes(f) else {
        return false;
    };
    // Skip running absurdly large (but valid) models; validation itself was exercised.
    if model.arena_bytes() > 1 << 22 || model.input_len() > 1 << 22 {
        return true;
    }
    let input: Vec<u8> = (0..model.input_len()).map(|_| rng.next() as u8).collect();
    let mut arena = vec![0i8; model.arena_bytes()];
    let _ = run(&model, &input, &mut arena, &mut NoProfiler);
    let _ = run(
        &model,
        &input[..input.len() / 2],
        &mut arena,
        &mut NoProfiler,
    );
    let short = model.arena_bytes() / 2;
    let _ = run(&model, &input, &mut arena[..short], &mut NoProfiler);
    true
}

fn valid_files() -> Vec<Vec<u8>> {
    vec![tiny_net(0).1, second_net(1).1]
}

#[test]
fn truncated_at_every_length() {
    let mut rng = Rng(1);
    for f in valid_files() {
        for n in 0..f.len() {
            assert!(
                !exercise(&f[..n], &mut rng),
                "a file cut to {n} bytes validated"
            );
        }
        assert!(exercise(&f, &mut rng));
    }
}

#[test]
fn every_bit_flipped_with_and_without_crc_fixup() {
    let mut rng = Rng(2);
    for f in valid_files() {
        let mut accepted = 0;
        for bit in 0..f.len() * 8 {
            let mut g = f.clone();
            g[bit / 8] ^= 1 << (bit % 8);
            // The CRC catches every single-bit flip after the preamble...
            let before_crc = bit / 8 < 16;
            if !before_crc {
                assert!(!exercise(&g, &mut rng), "bit {bit} flipped: CRC missed it");
            } else {
                exercise(&g, &mut rng);
            }
            // ...so fix the CRC up to let the flip reach the graph decoder and the checks.
            fix_crc(&mut g);
            accepted += exercise(&g, &mut rng) as usize;
        }
        // Flips in weights and some constants give valid models, which must run.
        assert!(accepted > 0);
    }
}

#[test]
fn random_byte_mutations_with_crc_fixup() {
    let mut rng = Rng(3);
    for f in valid_files() {
        for _ in 0..3000 {
            let mut g = f.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(g.len());
                g[at] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                // change the length too
                let n = rng.below(g.len() + 40);
                g.resize(n, rng.next() as u8);
            }
            fix_crc(&mut g);
            exercise(&g, &mut rng);
        }
    }
}

#[test]
fn random_files() {
    let mut rng = Rng(4);
    for i in 0..3000 {
        let n = rng.below(400);
        let mut g: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && n >= 24 {
            // a valid preamble so the bytes reach the graph decoder
            let graph: Vec<u8> = g[24..].to_vec();
            g = encode_raw(&graph[..graph.len() / 2], &graph[graph.len() / 2..]);
        }
        exercise(&g, &mut rng);
    }
}

/// Random small values, biased towards ones that pass some checks.
fn small(rng: &mut Rng, n: u64) -> u64 {
    match rng.below(8) {
        0 => rng.next(),
        1 => 0,
        _ => rng.next() % n,
    }
}

fn random_span(rng: &mut Rng, weights: usize) -> Span {
    Span {
        offset: (small(rng, weights as u64 + 8) & !if rng.below(2) == 0 { 3 } else { 0 }) as u32,
        count: small(rng, 64) as u32,
    }
}

fn random_requant(rng: &mut Rng, weights: usize) -> Requant {
    Requant {
        multiplier: random_span(rng, weights),
        shift: random_span(rng, weights),
        act_min: rng.next() as i8,
        act_max: 127,
    }
}

fn random_op(rng: &mut Rng, tensors: u64, weights: usize) -> Op {
    let mut id = || small(rng, tensors + 1) as u16;
    let (x, y, b) = (id(), id(), id());
    match rng.below(6) {
        0 => Op::Conv {
            x,
            y,
            k: [1, 3, 5, 7, 0, 255][rng.below(6)],
            stride: [1, 2, 0][rng.below(3)],
            pad: [0, 1, 2, 3][rng.below(4)],
            shift: [
                Shift::None,
                Shift::C4 { centre: true },
                Shift::C4 { centre: false },
                Shift::C8 { centre: true },
                Shift::C8 { centre: false },
            ][rng.below(5)],
            weights: random_span(rng, weights),
            bias: random_span(rng, weights),
            requant: random_requant(rng, weights),
            pad_value: random_span(rng, weights),
        },
        1 => Op::Add {
            a: x,
            b,
            y,
            left_shift: small(rng, 30) as u8,
            multipliers: AddMultipliers {
                a_multiplier: rng.next() as i32 | (1 << 30),
                a_shift: small(rng, 40) as i32 - 20,
                b_multiplier: rng.next() as i32,
                b_shift: small(rng, 40) as i32 - 20,
                out_multiplier: (rng.next() as i32 & i32::MAX) | (1 << 30),
                out_shift: small(rng, 64) as i32 - 32,
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
            weights: random_span(rng, weights),
            bias: random_span(rng, weights),
            requant: random_requant(rng, weights),
        },
    }
}

/// Random records (header, tensors, ops) with a valid preamble and CRC, so every case reaches
/// the record checks; the weights hold plausible multipliers and shifts. A quarter of the cases
/// are a valid net with one tensor or op record replaced by a random one, or none: those that
/// stay valid must validate and run.
#[test]
fn random_records_after_a_valid_preamble() {
    let mut rng = Rng(5);
    let nets = [tiny_net(0).0, second_net(1).0];
    let mut accepted = 0;
    for _ in 0..4000 {
        if rng.below(4) == 0 {
            let mut b = nets[rng.below(nets.len())].clone();
            let (nt, weights) = (b.tensors.len() as u64, b.weights.len());
            match rng.below(3) {
                0 => {
                    let i = rng.below(b.tensors.len());
                    b.tensors[i] = random_tensor(&mut rng);
                }
                1 => {
                    let i = rng.below(b.ops.len());
                    b.ops[i] = random_op(&mut rng, nt, weights);
                }
                _ => assert!(exercise(&b.encode(), &mut rng), "a valid net was rejected"),
            }
            accepted += exercise(&b.encode(), &mut rng) as usize;
            continue;
        }
        let nt = 2 + rng.below(6) as u64;
        let weights: Vec<u8> = (0..rng.below(600))
            .map(|i| match (i % 8, rng.below(3)) {
                (3, 0) => 0x50, // makes some i32 words multipliers in [2^30, 2^31)
                (7, 0) => 0xFF, // and some small negative shifts
                _ => rng.next() as u8,
            })
            .collect();
        let tensors: Vec<Tensor> = (0..nt).map(|_| random_tensor(&mut rng)).collect();
        let nops = 1 + rng.below(6);
        let ops: Vec<Op> = (0..nops)
            .map(|_| random_op(&mut rng, nt, weights.len()))
            .collect();
        let header = Header {
            tensors: if rng.below(10) == 0 {
                small(&mut rng, 10) as u16
            } else {
                nt as u16
            },
            ops: if rng.below(10) == 0 {
                small(&mut rng, 10) as u16
            } else {
                nops as u16
            },
            input: small(&mut rng, nt) as u16,
            output: small(&mut rng, nt) as u16,
            arena_bytes: small(&mut rng, 2000) as u32,
            arena_align: [1, 2, 4, 3, 0][rng.below(5)],
            classes: small(&mut rng, 12) as u16,
        };
        accepted += exercise(&encode(&header, &tensors, &ops, &weights), &mut rng) as usize;
    }
    eprintln!("{accepted} of 4000 record sets validated");
    // Valid models among them (the unchanged nets, some with a random record), which ran.
    assert!(accepted > 0);
}

fn random_tensor(rng: &mut Rng) -> Tensor {
    Tensor {
        h: small(rng, 8) as u16,
        w: small(rng, 8) as u16,
        c: small(rng, 12) as u16,
        scale: [0.1, 0.0, f32::NAN, -1.0, 0.5][rng.below(5)],
        zero_point: rng.next() as i8,
        offset: small(rng, 800) as u32,
    }
}

/// Structure-aware mutation: one field of one record of a valid net changes to a random or
/// boundary value; the file is re-encoded with a correct CRC. Reaches every check in turn.
#[test]
fn one_field_mutations_of_a_valid_net() {
    let mut rng = Rng(6);
    let (base, _) = second_net(3);
    let mut accepted = 0;
    let pick = |rng: &mut Rng| -> u64 {
        [0, 1, 2, 3, 255, 256, 65535, 1 << 31, u32::MAX as u64][rng.below(9)]
            ^ (rng.below(2) as u64 * rng.next() % 17)
    };
    for _ in 0..6000 {
        let mut b: Builder = base.clone();
        let v = pick(&mut rng);
        match rng.below(4) {
            0 => {
                let t = rng.below(b.tensors.len());
                let t = &mut b.tensors[t];
                match rng.below(5) {
                    0 => t.h = v as u16,
                    1 => t.w = v as u16,
                    2 => t.c = v as u16,
                    3 => t.offset = v as u32,
                    _ => t.zero_point = v as i8,
                }
            }
            1 => {
                let h = &mut b.header;
                match rng.below(5) {
                    0 => h.arena_bytes = v as u32,
                    1 => h.input = v as u16,
                    2 => h.output = v as u16,
                    3 => h.classes = v as u16,
                    _ => h.arena_align = v as u8,
                }
            }
            2 => {
                let i = rng.below(b.ops.len());
                mutate_op(&mut b.ops[i], v, &mut rng);
            }
            _ => {
                let i = rng.below(b.weights.len());
                b.weights[i] = v as u8;
            }
        }
        accepted += exercise(&b.encode(), &mut rng) as usize;
    }
    assert!(accepted > 0);
}

fn mutate_op(op: &mut Op, v: u64, rng: &mut Rng) {
    let which = rng.below(8);
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
        } => match which {
            0 => *x = v as u16,
            1 => *y = v as u16,
            2 => *k = v as u8,
            3 => *stride = v as u8,
            4 => *pad = v as u8,
            5 => {
                *shift = [
                    Shift::None,
                    Shift::C4 { centre: false },
                    Shift::C8 { centre: true },
                ][rng.below(3)]
            }
            6 => [
                &mut weights.offset,
                &mut bias.count,
                &mut requant.multiplier.offset,
                &mut requant.shift.count,
                &mut pad_value.count,
            ][rng.below(5)]
            .clone_from(&(v as u32)),
            _ => requant.act_min = v as i8,
        },
        Op::Add {
            a,
            b,
            y,
            left_shift,
            multipliers,
            ..
        } => match which {
            0 => *a = v as u16,
            1 => *b = v as u16,
            2 => *y = v as u16,
            3 => *left_shift = v as u8,
            4 => multipliers.a_multiplier = v as i32,
            _ => multipliers.out_shift = v as i32,
        },
        Op::AvgPool2 { x, y } | Op::MaxPool3s2 { x, y } | Op::GlobalAvgPool { x, y } => {
            if which.is_multiple_of(2) {
                *x = v as u16
            } else {
                *y = v as u16
            }
        }
        Op::FullyConnected {
            x,
            y,
            weights,
            bias,
            ..
        } => match which {
            0 => *x = v as u16,
            1 => *y = v as u16,
            2 => weights.count = v as u32,
            _ => bias.offset = v as u32,
        },
    }
}
