//! Test-only `.skq` writer and a naive re-computation of the integer formulas of
//! `firmware::format`, written independently of the firmware kernels: the shift is a
//! materialised shifted copy, padding a padded copy, rounding via i64 / f64 formulas.
#![allow(dead_code)]

use firmware::format::{
    crc32, shift_groups, AddMultipliers, Header, Op, Requant, Shift, Span, Tensor, FORMAT_VERSION,
    MAGIC, PREAMBLE, WEIGHT_ALIGN,
};

/// Small fixed-seed PRNG (SplitMix64). Not `firmware::kernels::fast::selftest::Rng`
/// (xorshift64*, another generator): that one's state 0 is a fixed point (it would give 0
/// forever, so it is seeded `seed | 1`), while these tests seed with 0 too (`tiny_net(0)`), and
/// every pinned test case (nets, mutations, images) comes from this stream.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Encodes a `.skq` file from its records, exactly as format.rs lays it out, with a correct
/// CRC; validates nothing (error tests build bad files with it).
pub fn encode(header: &Header, tensors: &[Tensor], ops: &[Op], weights: &[u8]) -> Vec<u8> {
    let mut graph = postcard::to_allocvec(header).unwrap();
    for t in tensors {
        graph.extend(postcard::to_allocvec(t).unwrap());
    }
    for op in ops {
        graph.extend(postcard::to_allocvec(op).unwrap());
    }
    encode_raw(&graph, weights)
}

/// Preamble + the given graph bytes + padding + weights, with a correct CRC.
pub fn encode_raw(graph: &[u8], weights: &[u8]) -> Vec<u8> {
    let w = (PREAMBLE + graph.len()).div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
    let mut f = Vec::new();
    f.extend(MAGIC);
    f.extend(FORMAT_VERSION.to_le_bytes());
    f.extend(0u16.to_le_bytes());
    f.extend(((w + weights.len()) as u32).to_le_bytes());
    f.extend(0u32.to_le_bytes()); // CRC, below
    f.extend((graph.len() as u32).to_le_bytes());
    f.extend((w as u32).to_le_bytes());
    f.extend(graph);
    f.resize(w, 0);
    f.extend(weights);
    fix_crc(&mut f);
    f
}

/// Recomputes the CRC over `[16, length)` (or the whole tail if the length field is off).
pub fn fix_crc(f: &mut [u8]) {
    if f.len() < 16 {
        return;
    }
    let len = u32::from_le_bytes([f[8], f[9], f[10], f[11]]) as usize;
    let end = len.clamp(16, f.len());
    let crc = crc32(&f[16..end]);
    f[12..16].copy_from_slice(&crc.to_le_bytes());
}

/// Builds a valid model: tensors get disjoint arena regions (a trivially correct plan).
#[derive(Clone, Debug)]
pub struct Builder {
    pub header: Header,
    pub tensors: Vec<Tensor>,
    pub ops: Vec<Op>,
    pub weights: Vec<u8>,
    pub arena: u32,
}

impl Builder {
    pub fn new() -> Self {
        let header = Header {
            tensors: 0,
            ops: 0,
            input: 0,
            output: 0,
            arena_bytes: 0,
            arena_align: 1,
            classes: 0,
        };
        Builder {
            header,
            tensors: vec![],
            ops: vec![],
            weights: vec![],
            arena: 0,
        }
    }

    /// The u8 input tensor (scale 1/255, zero point 0, not in the arena).
    pub fn input(&mut self, h: u16, w: u16, c: u16) -> u16 {
        self.header.input = self.tensors.len() as u16;
        self.tensors.push(Tensor {
            h,
            w,
            c,
            scale: 1.0 / 255.0,
            zero_point: 0,
            offset: 0,
        });
        self.header.input
    }

    pub fn tensor(&mut self, h: u16, w: u16, c: u16, scale: f32, zero_point: i8) -> u16 {
        let offset = self.arena;
        self.arena += h as u32 * w as u32 * c as u32;
        self.tensors.push(Tensor {
            h,
            w,
            c,
            scale,
            zero_point,
            offset,
        });
        self.tensors.len() as u16 - 1
    }

    /// A tensor with the shape, scale and zero point of `like` (pool outputs), new offset.
    pub fn tensor_like(&mut self, like: u16, h: u16, w: u16, c: u16) -> u16 {
        let t = self.tensors[like as usize];
        self.tensor(h, w, c, t.scale, t.zero_point)
    }

    pub fn bytes(&mut self, v: &[u8]) -> Span {
        let offset = self.weights.len() as u32;
        self.weights.extend(v);
        Span {
            offset,
            count: v.len() as u32,
        }
    }

    pub fn i8s(&mut self, v: &[i8]) -> Span {
        self.bytes(&v.iter().map(|&x| x as u8).collect::<Vec<_>>())
    }

    pub fn i32s(&mut self, v: &[i32]) -> Span {
        while !self.weights.len().is_multiple_of(4) {
            self.weights.push(0);
        }
        let offset = self.weights.len() as u32;
        for x in v {
            self.weights.extend(x.to_le_bytes());
        }
        Span {
            offset,
            count: v.len() as u32,
        }
    }

    pub fn op(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Fills the header and encodes.
    pub fn finish(&mut self, output: u16) -> Vec<u8> {
        self.header.tensors = self.tensors.len() as u16;
        self.header.ops = self.ops.len() as u16;
        self.header.output = output;
        self.header.arena_bytes = self.arena;
        self.header.classes = self.tensors[output as usize].c;
        self.encode()
    }

    pub fn encode(&self) -> Vec<u8> {
        encode(&self.header, &self.tensors, &self.ops, &self.weights)
    }

    // --- reading spans back, for the reference ---
    pub fn get_i8(&self, s: Span) -> Vec<i32> {
        self.weights[s.offset as usize..][..s.count as usize]
            .iter()
            .map(|&b| b as i8 as i32)
            .collect()
    }
    pub fn get_u8(&self, s: Span) -> Vec<i32> {
        self.weights[s.offset as usize..][..s.count as usize]
            .iter()
            .map(|&b| b as i32)
            .collect()
    }
    pub fn get_i32(&self, s: Span) -> Vec<i32> {
        self.weights[s.offset as usize..][..4 * s.count as usize]
            .chunks(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// Random per-channel requant constants: multipliers in [2^30, 2^31), shifts near `shift`.
    pub fn requant(
        &mut self,
        rng: &mut Rng,
        cout: usize,
        shift: i32,
        act_min: i8,
        act_max: i8,
    ) -> Requant {
        let m: Vec<i32> = (0..cout)
            .map(|_| rng.range(1 << 30, (1i64 << 31) - 1) as i32)
            .collect();
        let s: Vec<i32> = (0..cout).map(|_| shift + rng.range(-1, 1) as i32).collect();
        Requant {
            multiplier: self.i32s(&m),
            shift: self.i32s(&s),
            act_min,
            act_max,
        }
    }

    /// Adds a conv op with random weights and bias.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        rng: &mut Rng,
        x: u16,
        y: u16,
        k: u8,
        stride: u8,
        pad: u8,
        shift: Shift,
        rq_shift: i32,
        relu: bool,
    ) {
        let (cin, cout) = (
            self.tensors[x as usize].c as usize,
            self.tensors[y as usize].c as usize,
        );
        let w: Vec<i8> = (0..cout * k as usize * k as usize * cin)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let b: Vec<i32> = (0..cout).map(|_| rng.range(-3000, 3000) as i32).collect();
        let pad_value: Vec<u8> = if x == self.header.input {
            (0..cin).map(|_| rng.range(90, 140) as u8).collect()
        } else {
            vec![self.tensors[x as usize].zero_point as u8; cin]
        };
        let zp = self.tensors[y as usize].zero_point;
        let (weights, bias, pad_value) = (self.i8s(&w), self.i32s(&b), self.bytes(&pad_value));
        let requant = self.requant(rng, cout, rq_shift, if relu { zp } else { -128 }, 127);
        self.op(Op::Conv {
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
        });
    }

    pub fn fc(&mut self, rng: &mut Rng, x: u16, y: u16, rq_shift: i32) {
        let (cin, cout) = (
            self.tensors[x as usize].c as usize,
            self.tensors[y as usize].c as usize,
        );
        let w: Vec<i8> = (0..cout * cin)
            .map(|_| rng.range(-127, 127) as i8)
            .collect();
        let b: Vec<i32> = (0..cout).map(|_| rng.range(-3000, 3000) as i32).collect();
        let (weights, bias) = (self.i8s(&w), self.i32s(&b));
        let requant = self.requant(rng, cout, rq_shift, -128, 127);
        self.op(Op::FullyConnected {
            x,
            y,
            weights,
            bias,
            requant,
        });
    }

    /// TFLite-style add constants: left shift 20, inputs at about half scale, output ~2^-20.
    pub fn add(&mut self, rng: &mut Rng, a: u16, b: u16, y: u16, relu: bool) {
        let zp = self.tensors[y as usize].zero_point;
        let mut m = || rng.range(1 << 30, (1i64 << 31) - 1) as i32;
        let (a_multiplier, b_multiplier, out_multiplier) = (m(), m(), m());
        self.op(Op::Add {
            a,
            b,
            y,
            left_shift: 20,
            multipliers: AddMultipliers {
                a_multiplier,
                a_shift: 0,
                b_multiplier,
                b_shift: -1,
                out_multiplier,
                out_shift: -19,
            },
            act_min: if relu { zp } else { -128 },
            act_max: 127,
        });
    }
}

/// The small test network of the brief: stem 3x3 conv on u8 input (ReLU), a 4C-shifted 1x1
/// conv, add, 2x2 avg pool, global avg pool, FC. Returns the builder (for the reference) and
/// the file.
pub fn tiny_net(seed: u64) -> (Builder, Vec<u8>) {
    let mut rng = Rng(seed);
    let mut b = Builder::new();
    let x = b.input(6, 6, 3);
    let t1 = b.tensor(6, 6, 10, 0.05, -128 + 3);
    let t2 = b.tensor(6, 6, 10, 0.04, 7);
    let t3 = b.tensor(6, 6, 10, 0.07, -5);
    let t4 = b.tensor_like(t3, 3, 3, 10);
    let t5 = b.tensor_like(t4, 1, 1, 10);
    let t6 = b.tensor(1, 1, 4, 0.1, 2);
    b.conv(&mut rng, x, t1, 3, 1, 1, Shift::None, -9, true);
    b.conv(
        &mut rng,
        t1,
        t2,
        1,
        1,
        0,
        Shift::C4 { centre: true },
        -7,
        false,
    );
    b.add(&mut rng, t1, t2, t3, false);
    b.op(Op::AvgPool2 { x: t3, y: t4 });
    b.op(Op::GlobalAvgPool { x: t4, y: t5 });
    b.fc(&mut rng, t5, t6, -7);
    let f = b.finish(t6);
    (b, f)
}

/// A second net for the other kernels: 5x5/2 stem, 3x3/2 max pool, 8C shifts with and without
/// centre, add, plain 1x1 conv, odd sizes, global pool, FC.
pub fn second_net(seed: u64) -> (Builder, Vec<u8>) {
    let mut rng = Rng(seed);
    let mut b = Builder::new();
    let x = b.input(11, 11, 3);
    let t1 = b.tensor(6, 6, 12, 0.05, -100);
    let t2 = b.tensor_like(t1, 3, 3, 12);
    let t3 = b.tensor(3, 3, 12, 0.03, 11);
    let t4 = b.tensor(3, 3, 12, 0.03, -20);
    let t5 = b.tensor(3, 3, 12, 0.06, 0);
    let t6 = b.tensor(3, 3, 16, 0.06, -128);
    let t7 = b.tensor_like(t6, 1, 1, 16);
    let t8 = b.tensor(1, 1, 5, 0.2, -3);
    b.conv(&mut rng, x, t1, 5, 2, 2, Shift::None, -10, true);
    b.op(Op::MaxPool3s2 { x: t1, y: t2 });
    b.conv(
        &mut rng,
        t2,
        t3,
        1,
        1,
        0,
        Shift::C8 { centre: true },
        -7,
        false,
    );
    b.conv(
        &mut rng,
        t3,
        t4,
        1,
        1,
        0,
        Shift::C8 { centre: false },
        -7,
        false,
    );
    b.add(&mut rng, t2, t4, t5, true);
    b.conv(&mut rng, t5, t6, 1, 1, 0, Shift::None, -7, true);
    b.op(Op::GlobalAvgPool { x: t6, y: t7 });
    b.fc(&mut rng, t7, t8, -7);
    let f = b.finish(t8);
    (b, f)
}

// ---------------- naive reference ----------------

/// `SaturatingRoundingDoublingHighMul` as "round half up of a*b / 2^31", saturated.
fn ref_srdhm(a: i32, b: i32) -> i32 {
    ((a as i64 * b as i64 + (1 << 30)) >> 31).min(i32::MAX as i64) as i32
}

/// x / 2^e rounded half away from zero.
fn ref_rdbpot(x: i32, e: i32) -> i32 {
    let (v, d) = (x as i64, 1i64 << e);
    (if v >= 0 {
        (v + d / 2) / d
    } else {
        -((-v + d / 2) / d)
    }) as i32
}

pub fn ref_mbqm(x: i32, m: i32, s: i32) -> i32 {
    let xl = ((x as i64) << s.max(0)) as i32; // wraps, as two's-complement hardware
    ref_rdbpot(ref_srdhm(xl, m), (-s).max(0))
}

fn ref_out(acc: i32, m: i32, s: i32, zp: i8, lo: i8, hi: i8) -> i32 {
    (zp as i32 + ref_mbqm(acc, m, s)).clamp(lo as i32, hi as i32)
}

fn ref_avg(sum: i32, n: i32) -> i32 {
    (sum as f64 / n as f64).round() as i32 // f64::round is half away from zero
}

/// Runs the builder's net naively on `input`; returns every tensor's values by id.
pub fn reference(b: &Builder, input: &[u8]) -> Vec<Vec<i32>> {
    let mut vals: Vec<Vec<i32>> = vec![vec![]; b.tensors.len()];
    vals[b.header.input as usize] = input.iter().map(|&p| p as i32).collect();
    let shp = |id: u16| {
        let t = b.tensors[id as usize];
        (t.h as usize, t.w as usize, t.c as usize)
    };
    for op in &b.ops {
        match *op {
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
            } => {
                let ((h, w, cin), (oh, ow, cout)) = (shp(x), shp(y));
                let (k, stride, pad) = (k as usize, stride as usize, pad as usize);
                let pv = if x == b.header.input {
                    b.get_u8(pad_value)
                } else {
                    b.get_i8(pad_value)
                };
                let xv = &vals[x as usize];
                // 1. the shift, materialised as a shifted copy (borders get the pad value)
                let mut groups = [(0, 0, 0, 0); 9];
                let n = shift_groups(shift, cin, &mut groups);
                let mut sh = vec![0i32; h * w * cin];
                for (dh, dw, c0, c1) in groups[..n].iter().copied() {
                    for i in 0..h as i64 {
                        for j in 0..w as i64 {
                            let (si, sj) = (i - dh as i64, j - dw as i64);
                            for c in c0..c1 {
                                let inside = si >= 0 && sj >= 0 && si < h as i64 && sj < w as i64;
                                sh[(i as usize * w + j as usize) * cin + c] = if inside {
                                    xv[(si as usize * w + sj as usize) * cin + c]
                                } else {
                                    pv[c]
                                };
                            }
                        }
                    }
                }
                // 2. padding, as a padded copy
                let (ph, pw) = (h + 2 * pad, w + 2 * pad);
                let mut padded = vec![0i32; ph * pw * cin];
                for i in 0..ph {
                    for j in 0..pw {
                        for c in 0..cin {
                            let inside = i >= pad && j >= pad && i - pad < h && j - pad < w;
                            padded[(i * pw + j) * cin + c] = if inside {
                                sh[((i - pad) * w + j - pad) * cin + c]
                            } else {
                                pv[c]
                            };
                        }
                    }
                }
                // 3. the plain convolution
                let (wt, bs) = (b.get_i8(weights), b.get_i32(bias));
                let (m, s) = (b.get_i32(requant.multiplier), b.get_i32(requant.shift));
                let zp = b.tensors[y as usize].zero_point;
                let mut out = vec![0; oh * ow * cout];
                for i in 0..oh {
                    for j in 0..ow {
                        for co in 0..cout {
                            let mut acc = bs[co] as i64;
                            for ky in 0..k {
                                for kx in 0..k {
                                    for c in 0..cin {
                                        let xval = padded
                                            [((i * stride + ky) * pw + j * stride + kx) * cin + c];
                                        acc += wt[((co * k + ky) * k + kx) * cin + c] as i64
                                            * xval as i64;
                                    }
                                }
                            }
                            out[(i * ow + j) * cout + co] = ref_out(
                                acc as i32,
                                m[co],
                                s[co],
                                zp,
                                requant.act_min,
                                requant.act_max,
                            );
                        }
                    }
                }
                vals[y as usize] = out;
            }
            Op::FullyConnected {
                x,
                y,
                weights,
                bias,
                requant,
            } => {
                let (cin, cout) = (shp(x).2, shp(y).2);
                let (wt, bs) = (b.get_i8(weights), b.get_i32(bias));
                let (m, s) = (b.get_i32(requant.multiplier), b.get_i32(requant.shift));
                let zp = b.tensors[y as usize].zero_point;
                let xv = &vals[x as usize];
                vals[y as usize] = (0..cout)
                    .map(|co| {
                        let acc: i64 = bs[co] as i64
                            + (0..cin)
                                .map(|c| wt[co * cin + c] as i64 * xv[c] as i64)
                                .sum::<i64>();
                        ref_out(
                            acc as i32,
                            m[co],
                            s[co],
                            zp,
                            requant.act_min,
                            requant.act_max,
                        )
                    })
                    .collect();
            }
            Op::Add {
                a,
                b: bb,
                y,
                left_shift,
                multipliers: r,
                act_min,
                act_max,
            } => {
                let (za, zb, zy) = (
                    b.tensors[a as usize].zero_point,
                    b.tensors[bb as usize].zero_point,
                    b.tensors[y as usize].zero_point,
                );
                vals[y as usize] = vals[a as usize]
                    .iter()
                    .zip(&vals[bb as usize])
                    .map(|(&qa, &qb)| {
                        let a1 = (qa - za as i32) * (1 << left_shift);
                        let b1 = (qb - zb as i32) * (1 << left_shift);
                        let sum = ref_mbqm(a1, r.a_multiplier, r.a_shift)
                            + ref_mbqm(b1, r.b_multiplier, r.b_shift);
                        ref_out(sum, r.out_multiplier, r.out_shift, zy, act_min, act_max)
                    })
                    .collect();
            }
            Op::AvgPool2 { x, y } => {
                let ((_, w, c), (oh, ow, _)) = (shp(x), shp(y));
                let xv = &vals[x as usize];
                let mut out = vec![0; oh * ow * c];
                for i in 0..oh {
                    for j in 0..ow {
                        for ch in 0..c {
                            let at =
                                |di: usize, dj: usize| xv[((2 * i + di) * w + 2 * j + dj) * c + ch];
                            out[(i * ow + j) * c + ch] =
                                ref_avg(at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1), 4);
                        }
                    }
                }
                vals[y as usize] = out;
            }
            Op::MaxPool3s2 { x, y } => {
                let ((h, w, c), (oh, ow, _)) = (shp(x), shp(y));
                let xv = &vals[x as usize];
                let mut out = vec![0; oh * ow * c];
                for i in 0..oh {
                    for j in 0..ow {
                        for ch in 0..c {
                            let mut m = i32::MIN;
                            for di in -1i64..=1 {
                                for dj in -1i64..=1 {
                                    let (si, sj) = (2 * i as i64 + di, 2 * j as i64 + dj);
                                    if si >= 0 && sj >= 0 && si < h as i64 && sj < w as i64 {
                                        m = m.max(xv[(si as usize * w + sj as usize) * c + ch]);
                                    }
                                }
                            }
                            out[(i * ow + j) * c + ch] = m;
                        }
                    }
                }
                vals[y as usize] = out;
            }
            Op::GlobalAvgPool { x, y } => {
                let (h, w, c) = shp(x);
                let xv = &vals[x as usize];
                vals[y as usize] = (0..c)
                    .map(|ch| ref_avg((0..h * w).map(|p| xv[p * c + ch]).sum(), (h * w) as i32))
                    .collect();
            }
        }
    }
    vals
}
