//! The memory plan on every zoo network (structure only, no weights): the plan keeps the
//! in-place rules (`plan::plan` checks itself, and `Model::from_bytes` accepts it), the op order
//! stays a valid execution order, our arena never exceeds the conventional engine's and reaches
//! the 40% goal on the flattened nets, and the weight-less fold behind `cargo xtask zoo` plans
//! exactly like the real quantizer's.
#![forbid(unsafe_code)]
use firmware::format::{Op, Requant, Shift, Span, Tensor};
use host_train::io::ModelJson;
use host_train::model::{Model, Normalization};
use host_train::zoo;
use quantize::{conventional, fold, plan};

/// Every zoo network, scheduled and planned as `quantize` does.
fn planned(name: &str) -> (Vec<Tensor>, Vec<Op>, usize, usize, usize) {
    let g = zoo::arch(name).expect("zoo name").graph();
    let mut f = fold::fold_graph(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    plan::schedule_folded(&mut f).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (mut tensors, ops) = plan::skeleton(&f).unwrap();
    let arena =
        plan::plan(&mut tensors, &ops, f.input, f.output).unwrap_or_else(|e| panic!("{name}: {e}"));
    (tensors, ops, f.input, f.output, arena)
}

#[test]
fn every_zoo_plan_is_sound_ordered_and_not_larger_than_the_conventional_one() {
    for name in zoo::NAMES {
        let (tensors, ops, input, output, arena) = planned(name);
        plan::check(&tensors, &ops, input, output, arena).unwrap_or_else(|e| panic!("{name}: {e}"));
        // Every op runs after the ops that write its inputs; the first reads the input, the last
        // writes the output.
        let mut written = vec![false; tensors.len()];
        written[input] = true;
        for (i, op) in ops.iter().enumerate() {
            for x in op.inputs().into_iter().flatten() {
                assert!(
                    written[x as usize],
                    "{name}: op {i} reads tensor {x} before it is written"
                );
            }
            written[op.output() as usize] = true;
        }
        assert!(ops[0].inputs().contains(&Some(input as u16)), "{name}");
        assert_eq!(ops[ops.len() - 1].output() as usize, output, "{name}");
        // No plan can beat the bytes live at the worst op (with in-place pairs counted once).
        let order: Vec<usize> = (0..ops.len()).collect();
        let (bound, _) = plan::live_peak(&tensors, &ops, &order, input, output);
        assert!(arena >= bound, "{name}: arena {arena} < bound {bound}");
        let g = zoo::arch(name).unwrap().graph();
        let conv = conventional::of_graph(&g).unwrap();
        assert!(
            arena <= conv.arena && conv.live_peak <= conv.arena,
            "{name}: ours {arena}, conventional {conv:?}"
        );
    }
}

#[test]
fn the_flattened_nets_need_at_least_40_percent_less_than_a_conventional_engine() {
    for name in ["mnist-flat-4c", "cifar-flat-4c"] {
        let g = zoo::arch(name).unwrap().graph();
        let a = conventional::arenas_of_graph(&g).unwrap();
        assert!(
            a.saving_percent() >= 40.0,
            "{name}: ours {} B, conventional {} B ({:.1}% less)",
            a.ours,
            a.conventional,
            a.saving_percent()
        );
    }
}

/// The planned file passes the firmware's validation, which re-checks the in-place rules.
#[test]
fn the_firmware_accepts_the_planned_default_network() {
    let (tensors, ops, input, _, arena) = planned("mnist-flat-4c");
    let mut overlapping = 0;
    for (i, op) in ops.iter().enumerate() {
        let y = &tensors[op.output() as usize];
        for x in op.inputs().into_iter().flatten() {
            if x as usize != input && firmware::plan_rules::overlaps(&tensors[x as usize], y) {
                overlapping += 1;
                assert!(
                    firmware::plan_rules::in_place(op, &tensors[x as usize], y).is_some(),
                    "op {i}"
                );
            }
        }
    }
    assert!(
        overlapping > 0,
        "the default network's plan has no in-place op"
    );
    // The real quantizer (random weights, calibrated on a few noise images) plans the same.
    let model = Model::new(zoo::arch("mnist-flat-4c").unwrap());
    let c = model.graph.input_shape().c;
    let norm = Normalization {
        mean: vec![0.5; c],
        std: vec![0.25; c],
    };
    let json = ModelJson::new(&model, norm, (0..10).map(|i| i.to_string()).collect());
    let n = 4 * model.graph.input_shape().numel();
    let images: Vec<u8> = (0..n).map(|i| (i * 7919 % 251) as u8).collect();
    let mut fm = quantize::FloatModel { model, json };
    let (_, qm) = quantize::quantize_model(&mut fm, &images, 4, quantize::DEFAULT_METHOD).unwrap();
    assert_eq!(
        qm.header.arena_bytes as usize, arena,
        "zoo figure != the quantizer's plan"
    );
    assert_eq!(qm.tensors.len(), tensors.len());
    for (a, b) in qm.tensors.iter().zip(&tensors) {
        assert_eq!((a.h, a.w, a.c, a.offset), (b.h, b.w, b.c, b.offset));
    }
    let bytes = quantize::skq::to_bytes(&qm).unwrap();
    firmware::Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
}

fn tensor(h: u16, w: u16, c: u16) -> Tensor {
    Tensor {
        h,
        w,
        c,
        scale: 1.0,
        zero_point: 0,
        offset: 0,
    }
}

fn conv(x: u16, y: u16, k: u8, pad: u8, shift: Shift) -> Op {
    let none = Span {
        offset: 0,
        count: 0,
    };
    Op::Conv {
        x,
        y,
        k,
        stride: 1,
        pad,
        shift,
        weights: none,
        bias: none,
        requant: Requant {
            multiplier: none,
            shift: none,
            act_min: -128,
            act_max: 127,
        },
        pad_value: none,
    }
}

/// A 4x4 image: 3x3 stem to 5 channels (t1, 80 B), a 4C-shifted 1x1 conv (t2, 80 B), global
/// pool (t3, 5 B), FC (t4, 2 B; its constants are irrelevant to the plans).
fn tiny() -> (Vec<Tensor>, Vec<Op>) {
    let tensors = vec![
        tensor(4, 4, 1),
        tensor(4, 4, 5),
        tensor(4, 4, 5),
        tensor(1, 1, 5),
        tensor(1, 1, 2),
    ];
    let mut ops = vec![
        conv(0, 1, 3, 1, Shift::None),
        conv(1, 2, 1, 0, Shift::C4 { centre: true }),
        Op::GlobalAvgPool { x: 2, y: 3 },
    ];
    if let Op::Conv {
        weights,
        bias,
        requant,
        ..
    } = ops[0]
    {
        ops.push(Op::FullyConnected {
            x: 3,
            y: 4,
            weights,
            bias,
            requant,
        });
    }
    (tensors, ops)
}

/// By hand: the conventional graph is stem t1 (op 0), Pad P = 6x6x5 = 180 B (op 1), five 1-channel
/// slices of 16 B (ops 2-6), Concat 80 B (op 7), conv t2 (op 8), pool (9), FC (10). Largest first:
/// P at 0; t1 (lives 0-1, meets P) at 180; Concat (7-8) at 0; t2 (8-9) at 80; the slices (live
/// from their op to 7, meeting P and the Concat) at 180, 196, .., 244; t3 at 0 and t4 at 5. The
/// arena is 260, as is the live peak (P + t1 at op 1, P + all slices at op 6).
#[test]
fn the_conventional_arena_of_a_tiny_net_is_the_hand_computed_one() {
    let (tensors, ops) = tiny();
    let c = conventional::conventional(&tensors, &ops, 0, 4);
    assert_eq!(
        c,
        conventional::Conventional {
            arena: 260,
            live_peak: 260
        }
    );
}

/// By hand: the shifted conv runs in place, its output `lag` below its input, with blocks of
/// B = 4 pixels: lag = max over p of (min(p + 4, 16) * 5 - max(p - 4, 0) * 5) = 40 (p = 4..12);
/// the pair takes 40 + 80 = 120 B; afterwards t2 and the pool output (85 B) and then t3 and t4
/// need less.
#[test]
fn our_plan_of_a_tiny_net_runs_the_shifted_conv_in_place() {
    let (mut tensors, ops) = tiny();
    let arena = plan::plan(&mut tensors, &ops, 0, 4).unwrap();
    assert_eq!(arena, 120);
    assert_eq!(tensors[1].offset - tensors[2].offset, 40);
}
