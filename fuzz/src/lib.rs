//! What each fuzz target checks, and the structure-aware `.skq` mutator, as plain functions: the
//! targets in `fuzz_targets/` are one line each over these. A check panics only on a real
//! defect (a disagreement, or an engine result that breaks its contract); every error a bad
//! input earns is the expected outcome.
use firmware::engine::{self, NoProfiler};
use firmware::format::{Header, Op, Tensor, MAGIC, PREAMBLE};
use firmware::model::Model;
use firmware::wire::{take, Record};
use serde::{de::DeserializeOwned, Serialize};

/// Models whose arena is larger than this load but are not run (the fuzzer's memory limit).
pub const MAX_ARENA: usize = 1 << 20;
/// Models whose work estimate ([`work`]) is above this load but are not run (the fuzzer's
/// time limit: a 1x1 conv over a huge image is valid and slow, not a defect).
pub const MAX_WORK: u64 = 2_000_000;

/// A rough count of the multiply-accumulates and element visits one inference makes: each
/// conv's or FC's weight count times its output pixels, plus every tensor an op reads or writes.
pub fn work(model: &Model) -> u64 {
    let elements = |id: u16| {
        model
            .tensor(id)
            .map(|t| t.h as u64 * t.w as u64 * t.c as u64)
            .unwrap_or(0)
    };
    let pixels = |id: u16| {
        model
            .tensor(id)
            .map(|t| t.h as u64 * t.w as u64)
            .unwrap_or(0)
    };
    let mut total = 0u64;
    for op in model.ops().flatten() {
        let y = op.output();
        total = total.saturating_add(elements(y));
        for x in op.inputs().into_iter().flatten() {
            total = total.saturating_add(elements(x));
        }
        if let Op::Conv { weights, .. } | Op::FullyConnected { weights, .. } = op {
            total = total.saturating_add(weights.count as u64 * pixels(y));
        }
    }
    total
}

/// The input the engine runs on: the same deterministic pixels for every model of a size.
pub fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i.wrapping_mul(97) >> 2) as u8).collect()
}

/// What [`load_and_run`] did with a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `Model::from_bytes` refused it.
    Refused,
    /// It loaded; too large to run here ([`MAX_ARENA`], [`MAX_WORK`]).
    TooLarge,
    /// It loaded and the engine refused an op at run time.
    RunError,
    /// It loaded and ran to logits.
    Ran,
}

/// `Model::from_bytes`, then `engine::run` on [`pixels`] in an arena of exactly the size and
/// alignment the model asks for. Panics if a loaded model's logits break the contract (not
/// `classes` values).
pub fn load_and_run(bytes: &[u8]) -> Outcome {
    let Ok(model) = Model::from_bytes(bytes) else {
        return Outcome::Refused;
    };
    let arena_bytes = model.arena_bytes();
    if arena_bytes > MAX_ARENA || model.input_len() > MAX_ARENA || work(&model) > MAX_WORK {
        return Outcome::TooLarge;
    }
    let align = model.arena_align().max(1);
    let mut buffer = vec![0i8; arena_bytes + align];
    let start = buffer.as_ptr().align_offset(align);
    let arena = &mut buffer[start..start + arena_bytes];
    let input = pixels(model.input_len());
    let first = match engine::run(&model, &input, arena, &mut NoProfiler) {
        Ok(logits) => logits,
        Err(_) => return Outcome::RunError,
    };
    assert_eq!(
        first.len(),
        model.classes(),
        "logits are not `classes` values"
    );
    Outcome::Ran
}

fn same<T: Serialize>(a: &T, b: &T) -> bool {
    postcard::to_allocvec(a).ok() == postcard::to_allocvec(b).ok()
}

/// The firmware's reader and postcard's deserializer on `bytes` as a `T`: both give the same
/// record (bit for bit, through the encoding) and the same rest, or both refuse.
pub fn readers_agree<T: Record + DeserializeOwned + Serialize + std::fmt::Debug>(bytes: &[u8]) {
    let ours = take::<T>(bytes);
    let theirs = postcard::take_from_bytes::<T>(bytes).ok();
    let agree = match (&ours, &theirs) {
        (Some((a, ra)), Some((b, rb))) => same(a, b) && ra == rb,
        (None, None) => true,
        _ => false,
    };
    assert!(
        agree,
        "bytes {bytes:02x?}: firmware::wire {ours:?}, postcard {theirs:?}"
    );
}

/// [`readers_agree`] for each record type the graph section holds, and for a run of them read
/// one after another as `Model::from_bytes` does.
pub fn wire_records(bytes: &[u8]) {
    let Some((&kind, rest)) = bytes.split_first() else {
        return;
    };
    match kind % 4 {
        0 => readers_agree::<Header>(rest),
        1 => readers_agree::<Tensor>(rest),
        2 => readers_agree::<Op>(rest),
        _ => {
            let mut rest = rest;
            while let Some((_, next)) = take::<Op>(rest) {
                readers_agree::<Op>(rest);
                rest = next;
            }
        }
    }
}

/// The data loaders on `bytes`: the IDX reader alone and at ranks 1 and 3, the MNIST pair
/// (split at the first two bytes' offset) and one CIFAR-10/100 batch. They must refuse or
/// accept without panicking, and what they accept must be self-consistent.
pub fn data_loaders(bytes: &[u8]) {
    use firmware::idx::Idx;
    use host_train::data::{cifar::parse_cifar, mnist::parse_mnist, Dataset};
    use std::path::Path;
    let Some((&kind, rest)) = bytes.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(idx) = Idx::parse(rest) {
                let product: usize = idx.dims().iter().product();
                assert_eq!(product, idx.data().len(), "IDX dims and data disagree");
                assert_eq!(idx.count() * idx.record_len(), idx.data().len());
            }
            for rank in [1, 3] {
                if let Ok(idx) = Idx::parse_rank(rest, rank) {
                    assert_eq!(idx.dims().len(), rank);
                }
            }
        }
        1 => {
            if rest.len() < 2 {
                return;
            }
            let at = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            let (images, labels) = rest[2..].split_at(at);
            let (ip, lp) = (Path::new("images.idx3"), Path::new("labels.idx1"));
            if let Ok(d) = parse_mnist(ip, images.to_vec(), lp, labels) {
                assert_eq!(d.images.len(), d.len() * d.h * d.w * d.c);
                assert!(d.labels.iter().all(|&l| (l as usize) < d.classes));
            }
        }
        _ => {
            let (label_bytes, classes) = if kind % 4 == 2 { (1, 10) } else { (2, 100) };
            let mut out = Dataset {
                images: Vec::new(),
                labels: Vec::new(),
                h: 32,
                w: 32,
                c: 3,
                classes,
            };
            if parse_cifar(Path::new("batch.bin"), rest, label_bytes, classes, &mut out).is_ok() {
                assert_eq!(out.images.len(), out.len() * 32 * 32 * 3);
                assert!(out.labels.iter().all(|&l| (l as usize) < classes));
            }
        }
    }
}

/// A small deterministic generator for the mutator's choices (SplitMix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Sets the CRC field (bytes 12..16) to the CRC of `[16, length)`, with `length` the length
/// field clamped to the file, so that a mutated file gets past the checksum (the firmware
/// tests' helper, which they build corrupt files with).
pub use common::fix_crc;

/// The sections of a `.skq` file whose preamble is sound: (graph bytes, weight bytes).
fn sections(f: &[u8]) -> Option<(&[u8], &[u8])> {
    if f.len() < PREAMBLE || f[..4] != MAGIC {
        return None;
    }
    let (graph_len, weights_at) = (le32(f, 16), le32(f, 20));
    let graph_end = PREAMBLE.checked_add(graph_len)?;
    if graph_end > weights_at || weights_at > f.len() {
        return None;
    }
    Some((&f[PREAMBLE..graph_end], &f[weights_at..]))
}

/// The whole file from its preamble's first 8 bytes (magic, version, flags) and two sections,
/// laid out as quantize lays it out (the firmware tests' writer): length, CRC, graph length and
/// aligned weight offset right.
fn assemble(lead: &[u8], graph: &[u8], weights: &[u8]) -> Vec<u8> {
    let mut f = common::encode_raw(graph, weights);
    f[..8].copy_from_slice(&lead[..8]);
    fix_crc(&mut f);
    f
}

/// The graph section's records, if it parses as a whole.
fn records(graph: &[u8]) -> Option<(Header, Vec<Tensor>, Vec<Op>)> {
    let (header, mut rest) = take::<Header>(graph)?;
    let mut tensors = Vec::new();
    for _ in 0..header.tensors.min(1024) {
        let (t, next) = take::<Tensor>(rest)?;
        tensors.push(t);
        rest = next;
    }
    let mut ops = Vec::new();
    for _ in 0..header.ops.min(1024) {
        let (op, next) = take::<Op>(rest)?;
        ops.push(op);
        rest = next;
    }
    Some((header, tensors, ops))
}

/// Re-encodes records as quantize does (postcard, one after another).
fn encode(header: &Header, tensors: &[Tensor], ops: &[Op]) -> Vec<u8> {
    let mut g = postcard::to_allocvec(header).unwrap_or_default();
    for t in tensors {
        g.extend(postcard::to_allocvec(t).unwrap_or_default());
    }
    for op in ops {
        g.extend(postcard::to_allocvec(op).unwrap_or_default());
    }
    g
}

/// One change to a parsed graph of the kinds a broken quantizer or a flipped bit makes: a
/// tensor moved onto another's arena bytes (the memory-plan defects of issue 15), a shape or
/// arena size off, an op reading or writing another tensor.
fn mutate_records(rng: &mut Rng, header: &mut Header, tensors: &mut [Tensor], ops: &mut [Op]) {
    let nt = tensors.len();
    match rng.below(6) {
        0 | 1 if nt >= 2 => {
            let (a, b) = (rng.below(nt), rng.below(nt));
            let delta = [0i64, 1, -1, 16, -16, 64][rng.below(6)];
            tensors[a].offset = (tensors[b].offset as i64 + delta).max(0) as u32;
        }
        2 if nt >= 1 => {
            let t = &mut tensors[rng.below(nt)];
            match rng.below(3) {
                0 => t.h = t.h.wrapping_add(1),
                1 => t.w = t.w.wrapping_sub(1),
                _ => t.c = t.c.wrapping_add(rng.below(8) as u16),
            }
        }
        3 => {
            header.arena_bytes = match rng.below(3) {
                0 => header.arena_bytes.saturating_sub(1 + rng.below(64) as u32),
                1 => header.arena_bytes / 2,
                _ => header.arena_bytes.saturating_add(rng.below(4096) as u32),
            }
        }
        _ if !ops.is_empty() && nt >= 1 => {
            let op = rng.below(ops.len());
            let id = rng.below(nt) as u16;
            match (&mut ops[op], rng.below(2)) {
                (Op::Add { a, .. }, 0) => *a = id,
                (Op::Add { y, .. }, _) => *y = id,
                (
                    Op::Conv { x, .. }
                    | Op::FullyConnected { x, .. }
                    | Op::AvgPool2 { x, .. }
                    | Op::MaxPool3s2 { x, .. }
                    | Op::GlobalAvgPool { x, .. },
                    0,
                ) => *x = id,
                (
                    Op::Conv { y, .. }
                    | Op::FullyConnected { y, .. }
                    | Op::AvgPool2 { y, .. }
                    | Op::MaxPool3s2 { y, .. }
                    | Op::GlobalAvgPool { y, .. },
                    _,
                ) => *y = id,
            }
        }
        _ => header.output = rng.below(nt.max(1)) as u16,
    }
}

/// The `.skq` mutator: most random bytes die at the checksum, so every mutation leaves a file
/// whose length field and CRC are right. One in eight mutates the whole file as bytes (the
/// preamble included); the rest mutate the graph's records (parsed, changed, re-encoded), the
/// graph's bytes, or the weights, and re-assemble the file around them. `mutate` is libFuzzer's
/// own byte mutator (`fuzzer_mutate`) on a buffer, its length and its capacity.
pub fn mutate_skq(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    mutate: impl Fn(&mut [u8], usize, usize) -> usize,
) -> usize {
    let mut rng = Rng(seed as u64);
    let whole = |data: &mut [u8]| {
        let n = mutate(data, size, max_size);
        fix_crc(&mut data[..n]);
        n
    };
    let choice = rng.below(8);
    let Some((graph, weights)) = sections(&data[..size]).filter(|_| choice != 0) else {
        return whole(data);
    };
    let (mut graph, mut weights) = (graph.to_vec(), weights.to_vec());
    match choice {
        1..=3 => match records(&graph) {
            Some((mut header, mut tensors, mut ops)) => {
                mutate_records(&mut rng, &mut header, &mut tensors, &mut ops);
                graph = encode(&header, &tensors, &ops);
            }
            None => return whole(data),
        },
        4..=6 => {
            let n = graph.len();
            graph.resize(n + 64, 0);
            let m = mutate(&mut graph, n, n + 64);
            graph.truncate(m);
        }
        _ => {
            let n = weights.len();
            if n == 0 {
                return whole(data);
            }
            let m = mutate(&mut weights, n, n);
            weights.truncate(m);
        }
    }
    let f = assemble(&data[..8], &graph, &weights);
    if f.len() > max_size {
        return whole(data);
    }
    data[..f.len()].copy_from_slice(&f);
    f.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common as seeds;

    /// A stand-in for libFuzzer's mutator: flips one byte.
    fn flip(data: &mut [u8], size: usize, _max: usize) -> usize {
        if size > 0 {
            data[size / 2] ^= 0x5A;
        }
        size
    }

    #[test]
    fn every_mutation_keeps_length_and_crc_right() {
        let (_, file) = seeds::tiny_net(3);
        let mut kept = 0;
        for seed in 0..400u32 {
            let mut buf = file.clone();
            buf.resize(file.len() + 4096, 0);
            let n = mutate_skq(&mut buf, file.len(), file.len() + 4096, seed, flip);
            let f = &buf[..n];
            assert_eq!(le32(f, 8), n, "seed {seed}: length field");
            assert_eq!(
                le32(f, 12) as u32,
                firmware::format::crc32(&f[16..n]),
                "seed {seed}: CRC"
            );
            kept += usize::from(f != file.as_slice());
        }
        assert!(kept > 300, "only {kept} of 400 mutations changed the file");
    }
}

/// The firmware tests' `.skq` writer and small-net builder: the mutator lays files out with
/// it, and its test builds seeds with it.
#[path = "../../firmware/tests/common/mod.rs"]
mod common;
