//! The in-place conv rule of `firmware::plan_rules`, by brute force: a simulated blocked kernel
//! reads and writes the arena byte by byte, on random shapes, shifts and block splits, with the
//! output placed exactly `conv_lag` bytes below the input, and no read may see a byte that was
//! already written. Then the real portable conv through a `Shared` io, placed by the rule, must
//! give the same output as with separate slices.
mod common;

use common::Rng;
use firmware::format::{shift_groups, Shift};
use firmware::kernels::{conv, I32s, Rescale, Shape, Shared, Split};
use firmware::plan_rules::{conv_lag, reach, IN_PLACE_BLOCK};

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
