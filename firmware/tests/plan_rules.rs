//! The in-place conv rule of `shiftkit_engine::plan_rules`, by brute force: a simulated blocked kernel
//! reads and writes the arena byte by byte, on random shapes, shifts and block splits, with the
//! output placed exactly `conv_lag` bytes below the input, and no read may see a byte that was
//! already written; likewise the average pool. Then the real portable conv through a `Shared` io,
//! placed by the rule, must give the same output as with separate slices, the engine must run
//! in-place plans like the naive reference, and model validation must reject plans that break
//! the rules.
#![forbid(unsafe_code)]
// tests/common is shared with crates that depend on this one as `firmware`.
extern crate shiftkit_engine as firmware;
mod common;

use common::{reference, second_net, tiny_net, Builder, Rng};
use shiftkit_engine::format::{shift_groups, Op, Shift};
use shiftkit_engine::kernels::{conv, I32s, Rescale, Shape, Shared, Split};
use shiftkit_engine::plan_rules::{
    avg_pool2_lag, conv_lag, in_place, reach, InPlace, IN_PLACE_BLOCK,
};
use shiftkit_engine::{run, Model, ModelError, Profiler};

const SHIFTS: [Shift; 5] = [
    Shift::None,
    Shift::C4 { centre: true },
    Shift::C4 { centre: false },
    Shift::C8 { centre: true },
    Shift::C8 { centre: false },
];

/// One simulated conv over `(h, w, cin) -> (h, w, cout)`: input at arena byte `x`, output at `y`.
struct Sim {
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    shift: Shift,
    x: usize,
    y: usize,
}

/// How the simulated kernel orders the reads and writes inside one block.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// Per pixel, per output channel: read its inputs, write it (the portable kernel).
    PixelByPixel,
    /// Every read of the block, then every write.
    ReadsFirst,
    /// Every write of the block, then every read: the worst interleaving a block may have.
    WritesFirst,
}

impl Sim {
    /// Arena bytes the output pixel `p` reads: the real taps of every shift group, in-image only.
    fn reads(&self, p: usize) -> Vec<usize> {
        let mut g = [(0, 0, 0, 0); 9];
        let n = shift_groups(self.shift, self.cin, &mut g);
        let (oy, ox) = ((p / self.w) as isize, (p % self.w) as isize);
        let mut out = vec![];
        for &(dh, dw, c0, c1) in &g[..n] {
            let (iy, ix) = (oy - dh as isize, ox - dw as isize);
            if iy < 0 || ix < 0 || iy >= self.h as isize || ix >= self.w as isize {
                continue; // a pad value, not the input
            }
            let q = iy as usize * self.w + ix as usize;
            out.extend((c0..c1).map(|c| self.x + q * self.cin + c));
        }
        out
    }

    fn writes(&self, p: usize) -> std::ops::Range<usize> {
        self.y + p * self.cout..self.y + (p + 1) * self.cout
    }

    /// Runs the kernel over `blocks` (lengths summing to h*w) in `order`; returns the first
    /// (block start, arena byte) whose read saw a byte already written, if any.
    fn run(&self, blocks: &[usize], order: Order) -> Option<(usize, usize)> {
        let size = (self.x + self.h * self.w * self.cin).max(self.y + self.h * self.w * self.cout);
        let mut written = vec![false; size];
        let mut p = 0;
        for &len in blocks {
            let block = p..p + len;
            let mut bad = None;
            let mut read = |written: &[bool], q: usize| {
                for a in self.reads(q) {
                    if written[a] && bad.is_none() {
                        bad = Some((p, a));
                    }
                }
            };
            match order {
                Order::PixelByPixel => {
                    for q in block.clone() {
                        for a in self.writes(q) {
                            read(&written, q);
                            written[a] = true;
                        }
                    }
                }
                Order::ReadsFirst => {
                    block.clone().for_each(|q| read(&written, q));
                    for q in block.clone() {
                        self.writes(q).for_each(|a| written[a] = true);
                    }
                }
                Order::WritesFirst => {
                    for q in block.clone() {
                        self.writes(q).for_each(|a| written[a] = true);
                    }
                    block.clone().for_each(|q| read(&written, q));
                }
            }
            if bad.is_some() {
                return bad;
            }
            p += len;
        }
        None
    }
}

/// A random split of `n` pixels into blocks of 1..=IN_PLACE_BLOCK pixels.
fn random_blocks(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut v = vec![];
    let mut left = n;
    while left > 0 {
        let b = (1 + rng.below(IN_PLACE_BLOCK)).min(left);
        v.push(b);
        left -= b;
    }
    v
}

fn lag_of(h: usize, w: usize, cin: usize, cout: usize, shift: Shift) -> usize {
    conv_lag(
        (h * w) as u64,
        cin as u64,
        cout as u64,
        reach(shift, w) as u64,
    ) as usize
}

#[test]
fn no_read_sees_a_written_byte_when_the_output_starts_lag_bytes_lower() {
    let mut rng = Rng(0x1a9);
    let mut runs = 0;
    for _ in 0..600 {
        let (h, w) = (1 + rng.below(7), 1 + rng.below(7));
        let shift = SHIFTS[rng.below(SHIFTS.len())];
        let min_c = match shift {
            Shift::None => 1,
            Shift::C4 { .. } => 5,
            Shift::C8 { .. } => 9,
        };
        let cin = min_c + rng.below(12);
        let cout = 1 + rng.below(20);
        let lag = lag_of(h, w, cin, cout, shift);
        let x = lag + rng.below(3);
        let sim = Sim {
            h,
            w,
            cin,
            cout,
            shift,
            x,
            y: x - lag,
        };
        for order in [Order::PixelByPixel, Order::ReadsFirst, Order::WritesFirst] {
            for blocks in [vec![1; h * w], random_blocks(&mut rng, h * w)] {
                let bad = sim.run(&blocks, order);
                assert_eq!(
                    bad, None,
                    "{h}x{w} {cin}->{cout} {shift:?} lag {lag} {order:?} blocks {blocks:?}"
                );
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 600 * 3 * 2);
}

/// Without a shift the rule is tight: one byte less lag and the worst block order reads a byte
/// it already wrote. (So the checker above can fail.)
#[test]
fn one_byte_less_lag_is_caught_by_the_checker() {
    let mut rng = Rng(0x7e57);
    for _ in 0..200 {
        let (h, w) = (1 + rng.below(6), 1 + rng.below(6));
        let (cin, cout) = (1 + rng.below(12), 1 + rng.below(12));
        let n = h * w;
        let lag = lag_of(h, w, cin, cout, Shift::None);
        // The block start where the bound is reached.
        let b = IN_PLACE_BLOCK;
        let worst = (0..n)
            .max_by_key(|&p| ((p + b).min(n) * cout) as i64 - (p * cin) as i64)
            .unwrap();
        let mut blocks = vec![1; worst];
        let mut left = n - worst;
        while left > 0 {
            blocks.push(b.min(left));
            left -= b.min(left);
        }
        let sim = Sim {
            h,
            w,
            cin,
            cout,
            shift: Shift::None,
            x: lag,
            y: 1,
        };
        assert!(
            sim.run(&blocks, Order::WritesFirst).is_some(),
            "{h}x{w} {cin}->{cout}: lag {} not caught",
            lag - 1
        );
        let exact = Sim { y: 0, ..sim };
        assert_eq!(exact.run(&blocks, Order::WritesFirst), None);
    }
}

fn le_bytes(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The portable conv through one shared buffer, output `lag` bytes below the input, equals the
/// conv with separate slices.
#[test]
fn the_portable_conv_in_place_matches_the_split_conv() {
    let mut rng = Rng(0xc0de);
    for case in 0..60 {
        let (h, w) = (1 + rng.below(6), 1 + rng.below(6));
        let shift = SHIFTS[case % SHIFTS.len()];
        let cin = 9 + rng.below(10);
        let cout = 1 + rng.below(24);
        let weights: Vec<u8> = (0..cout * cin)
            .map(|_| rng.range(-127, 127) as u8)
            .collect();
        let bias = le_bytes(
            &(0..cout)
                .map(|_| rng.range(-3000, 3000) as i32)
                .collect::<Vec<_>>(),
        );
        let mult = le_bytes(&vec![1_500_000_000; cout]);
        let shifts = le_bytes(&vec![-7; cout]);
        let pad_value = vec![rng.range(-128, 127) as u8; cin];
        let p = conv::ConvParams {
            k: 1,
            stride: 1,
            pad: 0,
            shift,
            weights: &weights,
            bias: I32s::new(&bias).unwrap(),
            pad_value: &pad_value,
            rescale: Rescale {
                multiplier: I32s::new(&mult).unwrap(),
                shift: I32s::new(&shifts).unwrap(),
                zero_point: -3,
                act_min: -128,
                act_max: 127,
            },
        };
        let (xs, ys) = (Shape::new(h, w, cin), Shape::new(h, w, cout));
        let x: Vec<i8> = (0..h * w * cin)
            .map(|_| rng.range(-128, 127) as i8)
            .collect();
        let mut want = vec![0i8; h * w * cout];
        conv::forward(
            &mut Split {
                x: &x,
                y: &mut want,
            },
            ys,
            xs,
            &p,
        )
        .unwrap();

        let lag = lag_of(h, w, cin, cout, shift);
        let x_at = lag;
        let len = (x_at + x.len()).max(want.len());
        let mut buf = vec![0x55i8; len];
        buf[x_at..x_at + x.len()].copy_from_slice(&x);
        let mut io = Shared::new(&mut buf, x_at..x_at + x.len(), 0..want.len()).unwrap();
        conv::forward(&mut io, ys, xs, &p).unwrap();
        assert_eq!(io.y(), &want[..], "{h}x{w} {cin}->{cout} {shift:?}");
    }
}

/// Like the conv: a simulated 2x2 average pool (per pixel, any order inside a pixel) with the
/// output exactly `avg_pool2_lag` below the input reads no written byte; one byte less does.
#[test]
fn the_average_pool_rule_holds_and_is_tight() {
    let mut rng = Rng(0xa7e);
    for _ in 0..300 {
        let (h, w, c) = (2 + rng.below(7), 2 + rng.below(7), 1 + rng.below(9));
        let lag = avg_pool2_lag(c as u64) as usize;
        // Returns whether some read saw a written byte, output at `y`, input at `x`.
        let run = |x: usize, y: usize, writes_first: bool| {
            let mut written = vec![false; x + h * w * c + y];
            let mut bad = false;
            for oy in 0..h / 2 {
                for ox in 0..w / 2 {
                    let q = oy * (w / 2) + ox;
                    let reads: Vec<usize> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .iter()
                        .flat_map(|&(dy, dx)| {
                            let r = (2 * oy + dy) * w + 2 * ox + dx;
                            (0..c).map(move |ch| x + r * c + ch)
                        })
                        .collect();
                    let writes = y + q * c..y + (q + 1) * c;
                    if writes_first {
                        writes.clone().for_each(|a| written[a] = true);
                    }
                    bad |= reads.iter().any(|&a| written[a]);
                    writes.for_each(|a| written[a] = true);
                }
            }
            bad
        };
        let x = lag + rng.below(3);
        assert!(!run(x, x - lag, true), "{h}x{w}x{c}");
        assert!(!run(x, x - lag, false), "{h}x{w}x{c}");
        assert!(run(lag, 1, true), "{h}x{w}x{c}: lag {} not caught", lag - 1);
    }
}

/// Records every op's output.
#[derive(Default)]
struct Outputs(Vec<Vec<i8>>);

impl Profiler for Outputs {
    fn end(&mut self, _: usize, output: &[i8]) {
        self.0.push(output.to_vec());
    }
}

/// Runs `b`'s file through the engine on random images and compares every op's output with the
/// naive reference.
fn engine_matches_reference(b: &Builder, seed: u64) {
    let file = b.encode();
    let model = Model::from_bytes(&file).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(seed);
    for _ in 0..10 {
        let input: Vec<u8> = (0..model.input_len())
            .map(|_| rng.range(0, 255) as u8)
            .collect();
        let want = reference(b, &input);
        let mut arena = vec![0x5ai8; model.arena_bytes()];
        let mut got = Outputs::default();
        run(&model, &input, &mut arena, &mut got).unwrap();
        for (i, out) in got.0.iter().enumerate() {
            let y = b.ops[i].output() as usize;
            let want: Vec<i8> = want[y].iter().map(|&v| v as i8).collect();
            assert_eq!(out, &want, "op {i}");
        }
    }
}

/// Moves tensor `t` to `offset` and grows the arena to hold it.
fn place(b: &mut Builder, t: u16, offset: u32) {
    b.tensors[t as usize].offset = offset;
    let end = offset + b.tensors[t as usize].bytes() as u32;
    b.arena = b.arena.max(end);
    b.header.arena_bytes = b.arena;
}

fn lag(b: &Builder, op: usize) -> u32 {
    let (x, y) = match b.ops[op] {
        Op::Conv { x, y, .. } | Op::AvgPool2 { x, y } => (x, y),
        _ => panic!("op {op} is not a conv or a pool"),
    };
    let (xt, yt) = (&b.tensors[x as usize], &b.tensors[y as usize]);
    match in_place(&b.ops[op], xt, yt) {
        Some(InPlace::Below { lag }) => lag as u32,
        other => panic!("op {op}: {other:?}"),
    }
}

/// second_net with every in-place op it allows: C8 conv over its input, the add over that
/// conv's output, a plain 1x1 conv below the add.
#[test]
fn the_engine_runs_in_place_convs_and_adds_like_the_reference() {
    let (mut b, _) = second_net(3);
    // ops: 0 stem t1, 1 maxpool t2, 2 conv t3 (t2 read later), 3 conv t4 over t3,
    // 4 add t5 = t2 + t4 over t4, 5 conv t6 over t5, 6 gap t7, 7 fc t8.
    let base = 2000;
    place(&mut b, 3, base);
    let t4 = base - lag(&b, 3);
    place(&mut b, 4, t4);
    place(&mut b, 5, t4);
    let t6 = t4 - lag(&b, 5);
    place(&mut b, 6, t6);
    engine_matches_reference(&b, 11);
}

/// tiny_net with the add over either input and the average pool below the add.
#[test]
fn the_engine_runs_in_place_adds_over_either_input_and_pools_like_the_reference() {
    for over in [1u16, 2] {
        let (mut b, _) = tiny_net(5);
        // ops: 0 stem t1, 1 conv t2 (t1 read later), 2 add t3 = t1 + t2, 3 avg pool t4, 4 gap t5,
        // 5 fc t6.
        place(&mut b, 1, 1000);
        place(&mut b, 2, 1400);
        let at = b.tensors[over as usize].offset;
        place(&mut b, 3, at);
        let t4 = at - lag(&b, 3);
        place(&mut b, 4, t4);
        engine_matches_reference(&b, 12 + over as u64);
    }
}

#[test]
fn plans_that_break_the_rules_are_rejected() {
    let invalid = |b: &Builder| match Model::from_bytes(&b.encode()) {
        Err(ModelError::Invalid { what, index }) => (what, index),
        other => panic!("got {:?}", other.err()),
    };
    // The shifted conv over t1, which the add still reads.
    let (mut b, _) = tiny_net(1);
    place(&mut b, 1, 3000);
    let l = lag(&b, 1);
    place(&mut b, 2, 3000 - l);
    assert_eq!(
        invalid(&b),
        (
            "op: writes its output over an input that a later op still reads",
            1
        )
    );
    // One byte less than the conv's lag.
    place(&mut b, 2, 3000 - l + 1);
    assert_eq!(
        invalid(&b),
        ("op: output overlaps an input in the arena", 1)
    );
    // An add over an input, shifted by one byte.
    let (mut b, _) = tiny_net(1);
    let at = b.tensors[2].offset;
    place(&mut b, 3, at + 1);
    assert_eq!(
        invalid(&b),
        ("op: output overlaps an input in the arena", 2)
    );
    // A pool one byte short of its lag.
    let (mut b, _) = tiny_net(1);
    let (p, l) = (b.tensors[3].offset, lag(&b, 3));
    place(&mut b, 4, p - l + 1);
    assert_eq!(
        invalid(&b),
        ("op: output overlaps an input in the arena", 3)
    );
    // A max pool may never overlap.
    let (mut b, _) = second_net(1);
    let p = b.tensors[1].offset;
    place(&mut b, 2, p);
    assert_eq!(
        invalid(&b),
        ("op: output overlaps an input in the arena", 1)
    );
}
