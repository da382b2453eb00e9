//! The engine against the naive reference of tests/common, bit-exactly, on two small nets
//! that use every op and every shift kind; and the profiler hooks.
#![forbid(unsafe_code)]
#![allow(clippy::single_range_in_vec_init, clippy::reversed_empty_ranges)]
// tests/common is shared with crates that depend on this one as `firmware`.
extern crate shiftkit_engine as firmware;
mod common;

use common::{reference, second_net, tiny_net, Builder, Rng};
use shiftkit_engine::{run, Model, NoProfiler, Profiler};

/// Records every op's output.
#[derive(Default)]
struct Recorder {
    begun: Vec<usize>,
    outputs: Vec<(usize, Vec<i8>)>,
}

impl Profiler for Recorder {
    fn begin(&mut self, op_index: usize) {
        self.begun.push(op_index);
    }
    fn end(&mut self, op_index: usize, output: &[i8]) {
        self.outputs.push((op_index, output.to_vec()));
    }
}

fn check_net(b: &Builder, file: &[u8], seed: u64) {
    let model = Model::from_bytes(file).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng(seed);
    let mut distinct = std::collections::HashSet::new();
    for _ in 0..20 {
        let input: Vec<u8> = (0..model.input_len())
            .map(|_| rng.range(0, 255) as u8)
            .collect();
        let want = reference(b, &input);
        let mut arena = vec![0i8; model.arena_bytes()];
        let mut rec = Recorder::default();
        let logits = run(&model, &input, &mut arena, &mut rec).unwrap().to_vec();
        // every op's output, bit-exact
        assert_eq!(rec.begun, (0..b.ops.len()).collect::<Vec<_>>());
        for (i, out) in &rec.outputs {
            let y = b.ops[*i].output();
            let got: Vec<i32> = out.iter().map(|&v| v as i32).collect();
            assert_eq!(got, want[y as usize], "op {i} ({:?})", b.ops[*i]);
            distinct.extend(out.iter().copied());
        }
        let want_logits: Vec<i8> = want[b.header.output as usize]
            .iter()
            .map(|&v| v as i8)
            .collect();
        assert_eq!(logits, want_logits);
        assert_eq!(logits.len(), model.classes());
        // the same with NoProfiler, in a dirty, larger arena
        let mut arena2 = vec![0x55i8; model.arena_bytes() + 7];
        assert_eq!(
            run(&model, &input, &mut arena2, &mut NoProfiler).unwrap(),
            &want_logits[..]
        );
    }
    // The constants are not degenerate: outputs are spread over the int8 range.
    assert!(
        distinct.len() > 100,
        "only {} distinct int8 values: constants saturate",
        distinct.len()
    );
}

#[test]
fn tiny_net_matches_the_reference() {
    for seed in 0..4 {
        let (b, f) = tiny_net(seed);
        check_net(&b, &f, 100 + seed);
    }
}

#[test]
fn second_net_matches_the_reference() {
    for seed in 0..4 {
        let (b, f) = second_net(seed);
        check_net(&b, &f, 200 + seed);
    }
}

#[test]
fn accessors_describe_the_model() {
    let (b, f) = tiny_net(1);
    let m = Model::from_bytes(&f).unwrap();
    assert_eq!((m.input().h, m.input().w, m.input().c), (6, 6, 3));
    assert_eq!(m.input_len(), 108);
    assert_eq!(m.classes(), 4);
    assert_eq!(m.arena_bytes(), b.arena as usize);
    assert_eq!(m.ops().count(), b.ops.len());
    assert_eq!(m.ops().map(Result::unwrap).collect::<Vec<_>>(), b.ops);
    for (i, t) in b.tensors.iter().enumerate() {
        assert_eq!(m.tensor(i as u16).unwrap(), *t);
    }
    assert!(m.tensor(b.tensors.len() as u16).is_err());
    // a longer slice (a flash region) is fine
    let mut longer = f.clone();
    longer.extend([0xFF; 100]);
    assert!(Model::from_bytes(&longer).is_ok());
}

/// Past the model's index of tensor records (`TENSOR_INDEX`), lookups decode on from the last
/// indexed record: every id still gives its own tensor, and the engine runs as the reference.
#[test]
fn tensor_lookups_past_the_index() {
    use shiftkit_engine::format::Shift;
    let mut rng = Rng(7);
    let mut b = Builder::new();
    let x = b.input(2, 2, 3);
    let mut t = b.tensor(2, 2, 4, 0.05, -3);
    b.conv(&mut rng, x, t, 1, 1, 0, Shift::None, -7, false);
    let pooled = b.tensor_like(t, 1, 1, 4);
    b.op(shiftkit_engine::format::Op::GlobalAvgPool { x: t, y: pooled });
    t = pooled;
    while b.tensors.len() < shiftkit_engine::model::TENSOR_INDEX + 10 {
        let y = b.tensor_like(t, 1, 1, 4);
        b.op(shiftkit_engine::format::Op::GlobalAvgPool { x: t, y });
        t = y;
    }
    let f = b.finish(t);
    let m = Model::from_bytes(&f).unwrap();
    for (i, want) in b.tensors.iter().enumerate() {
        assert_eq!(m.tensor(i as u16).unwrap(), *want, "tensor {i}");
    }
    assert!(m.tensor(b.tensors.len() as u16).is_err());
    for _ in 0..5 {
        let input: Vec<u8> = (0..12).map(|_| rng.range(0, 255) as u8).collect();
        let want: Vec<i8> = reference(&b, &input)[t as usize]
            .iter()
            .map(|&v| v as i8)
            .collect();
        let mut arena = vec![0i8; m.arena_bytes()];
        assert_eq!(
            run(&m, &input, &mut arena, &mut NoProfiler).unwrap(),
            &want[..]
        );
    }
}

#[test]
fn split_arena_hands_out_disjoint_slices() {
    use shiftkit_engine::engine::split_arena;
    let mut a: Vec<i8> = (0..20).collect();
    let (y, [x0, x1]) = split_arena(&mut a, 5..10, [0..5, 12..20]).unwrap();
    assert_eq!(
        (x0, x1),
        (&[0, 1, 2, 3, 4][..], &[12, 13, 14, 15, 16, 17, 18, 19][..])
    );
    y[0] = 99;
    assert_eq!(a[5], 99);
    assert!(split_arena(&mut a, 5..10, [4..6]).is_none()); // overlaps the output
    assert!(split_arena(&mut a, 5..10, [9..12]).is_none());
    assert!(split_arena(&mut a, 15..25, [0..5]).is_none()); // output out of bounds
    assert!(split_arena(&mut a, 5..10, [15..25]).is_none()); // input out of bounds
    assert!(split_arena(&mut a, 10..5, [0..1]).is_none());
    let (_, [p, q]) = split_arena(&mut a, 0..2, [2..4, 3..5]).unwrap(); // inputs may overlap
    assert_eq!((p.len(), q.len()), (2, 2));
}
