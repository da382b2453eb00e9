//! Every `ModelError` and engine `Error` variant, from a file or call built to trigger it, and
//! the one-line messages.
#![forbid(unsafe_code)]
#![allow(clippy::type_complexity)]
// tests/common is shared with crates that depend on this one as `firmware`.
extern crate shiftkit_engine as firmware;
mod common;

use common::{encode, fix_crc, tiny_net, Builder};
use shiftkit_engine::format::{Op, Shift, Span};
use shiftkit_engine::{run, Error, Model, ModelError, NoProfiler};

fn err(f: &[u8]) -> ModelError {
    Model::from_bytes(f)
        .map(|_| ())
        .expect_err("expected an error")
}

#[test]
fn preamble_errors() {
    let (_, f) = tiny_net(0);
    let mut bad = f.clone();
    bad[0] = b'X';
    assert_eq!(err(&bad), ModelError::BadMagic);
    assert_eq!(err(b"SK"), ModelError::Truncated { need: 24, have: 2 });
    assert_eq!(err(&f[..10]), ModelError::Truncated { need: 24, have: 10 });
    assert_eq!(
        err(&f[..f.len() - 1]),
        ModelError::Truncated {
            need: f.len(),
            have: f.len() - 1
        }
    );
    // A version-1 file (no in-place ops) is refused: its plan semantics differ.
    let mut v1 = f.clone();
    v1[4] = 1;
    assert_eq!(err(&v1), ModelError::UnsupportedVersion { found: 1 });
    // Versions 3 (before the single-rounding form) and 4 (before class names) are read; a
    // version from the future is not.
    for old in [3, 4] {
        let mut v = f.clone();
        v[4] = old;
        assert!(Model::from_bytes(&v).is_ok(), "version {old}");
    }
    let mut v6 = f.clone();
    v6[4] = 6;
    assert_eq!(err(&v6), ModelError::UnsupportedVersion { found: 6 });
    let mut flipped = f.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let stored = u32::from_le_bytes(f[12..16].try_into().unwrap());
    assert!(
        matches!(err(&flipped), ModelError::Checksum { stored: s, computed } if s == stored && computed != stored)
    );
    let mut flags = f.clone();
    flags[6] = 1;
    assert!(matches!(
        err(&flags),
        ModelError::Invalid {
            what: "header: flags are not 0",
            ..
        }
    ));
    let mut misaligned = f.clone();
    misaligned[20] += 1; // W no longer a multiple of 16
    fix_crc(&mut misaligned);
    assert!(matches!(err(&misaligned), ModelError::Invalid { .. }));
}

#[test]
fn arena_too_small_in_the_file() {
    let (mut b, _) = tiny_net(0);
    b.header.arena_bytes -= 1;
    assert_eq!(
        err(&b.encode()),
        ModelError::ArenaTooSmall {
            need: b.arena as usize,
            have: b.arena as usize - 1
        }
    );
}

#[test]
fn invalid_records() {
    let (base, _) = tiny_net(0);
    let cases: Vec<(&str, Box<dyn Fn(&mut Builder)>)> = vec![
        ("header: no ops", Box::new(|b| b.header.ops = 0)),
        (
            "header: input or output tensor id out of range",
            Box::new(|b| b.header.output = 99),
        ),
        (
            "header: arena alignment is not a power of two",
            Box::new(|b| b.header.arena_align = 3),
        ),
        (
            "tensor: output is not 1 x 1 x classes",
            Box::new(|b| b.header.classes = 5),
        ),
        ("tensor: a dimension is 0", Box::new(|b| b.tensors[2].w = 0)),
        (
            "tensor: scale is not a positive finite number",
            Box::new(|b| b.tensors[2].scale = f32::NAN),
        ),
        (
            "op: tensor id out of range",
            Box::new(|b| set_x(&mut b.ops[1], 50)),
        ),
        (
            "op: the first op does not read the input tensor",
            Box::new(|b| b.ops.swap(0, 1)),
        ),
        (
            "op: output overlaps an input in the arena",
            Box::new(|b| b.tensors[2].offset = b.tensors[1].offset + 5),
        ),
        (
            "op: conv output size does not follow from input, k, stride and pad",
            Box::new(|b| conv_field(&mut b.ops[0], |k, _, _, _| *k = 5)),
        ),
        (
            "op: a shift needs a 1x1 conv with stride 1 and pad 0",
            Box::new(|b| conv_field(&mut b.ops[0], |_, _, _, s| *s = Shift::C4 { centre: true })),
        ),
        (
            "op: conv pad >= k",
            Box::new(|b| conv_field(&mut b.ops[1], |_, _, p, _| *p = 1)),
        ),
        (
            "op: conv weight count != cout*k*k*cin",
            Box::new(|b| span_of(&mut b.ops[0], |w| w.count -= 1)),
        ),
        (
            "op: a span reaches past the weight section",
            Box::new(|b| span_of(&mut b.ops[0], |w| w.offset = 1 << 20)),
        ),
        (
            "op: an i32 span is not 4-byte aligned",
            Box::new(|b| requant_of(&mut b.ops[0], |m, _| m.offset += 1)),
        ),
        (
            "op: a multiplier is outside [2^30, 2^31), not 0, and not positive with shift 0",
            Box::new(|b| {
                set_i32(b, 0, true, 12345);
                set_i32(b, 0, false, -1);
            }),
        ),
        (
            "op: a multiplier is outside [2^30, 2^31), not 0, and not positive with shift 0",
            Box::new(|b| {
                set_i32(b, 0, true, -12345);
                set_i32(b, 0, false, 0);
            }),
        ),
        (
            "op: a requantisation shift is outside -31..=30",
            Box::new(|b| set_i32(b, 0, false, 31)),
        ),
        (
            "op: add left_shift > 23",
            Box::new(|b| {
                if let Op::Add { left_shift, .. } = &mut b.ops[2] {
                    *left_shift = 24
                }
            }),
        ),
        (
            "op: act_min > act_max",
            Box::new(|b| {
                if let Op::Add {
                    act_min, act_max, ..
                } = &mut b.ops[2]
                {
                    *act_min = 1;
                    *act_max = 0;
                }
            }),
        ),
        (
            "op: add shapes differ",
            Box::new(|b| {
                if let Op::Add { b: bb, .. } = &mut b.ops[2] {
                    *bb = 4
                }
            }),
        ),
        (
            "op: avg pool changes scale or zero point",
            Box::new(|b| b.tensors[4].zero_point += 1),
        ),
        (
            "op: only a conv may read the u8 input tensor",
            Box::new(|b| b.ops[3] = Op::AvgPool2 { x: 0, y: 4 }),
        ),
        (
            "op: the last op does not write the output tensor",
            Box::new(|b| {
                b.ops.pop();
            }),
        ),
        (
            "op: writes the input tensor",
            Box::new(|b| b.ops[3] = Op::AvgPool2 { x: 3, y: 0 }),
        ),
        (
            "op: reads a tensor no earlier op wrote",
            Box::new(|b| b.ops.swap(2, 3)),
        ),
        // An op more than the header says: in format 5 the bytes after the last op must be
        // the class names.
        (
            "names: the bytes after the last op are not one class name (1 to 64 bytes of UTF-8) per class",
            Box::new(|b| b.header.ops -= 1),
        ),
    ];
    for (want, mutate) in cases {
        let mut b = base.clone();
        let n = b.ops.len();
        mutate(&mut b);
        if b.ops.len() != n {
            b.header.ops = b.ops.len() as u16;
        }
        match Model::from_bytes(&b.encode()) {
            Err(ModelError::Invalid { what, .. }) => assert_eq!(what, want),
            other => panic!("case {want:?}: got {:?}", other.err()),
        }
    }
}

fn set_x(op: &mut Op, v: u16) {
    if let Op::Conv { x, .. } = op {
        *x = v;
    }
}
fn conv_field(op: &mut Op, f: impl Fn(&mut u8, &mut u8, &mut u8, &mut Shift)) {
    if let Op::Conv {
        k,
        stride,
        pad,
        shift,
        ..
    } = op
    {
        f(k, stride, pad, shift);
    }
}
fn span_of(op: &mut Op, f: impl Fn(&mut Span)) {
    if let Op::Conv { weights, .. } = op {
        f(weights);
    }
}
fn requant_of(op: &mut Op, f: impl Fn(&mut Span, &mut Span)) {
    if let Op::Conv { requant, .. } = op {
        f(&mut requant.multiplier, &mut requant.shift);
    }
}
/// Overwrites the first multiplier (or shift) of op `i` in the weight bytes.
fn set_i32(b: &mut Builder, i: usize, multiplier: bool, v: i32) {
    if let Op::Conv { requant, .. } = b.ops[i] {
        let s = if multiplier {
            requant.multiplier
        } else {
            requant.shift
        };
        b.weights[s.offset as usize..][..4].copy_from_slice(&v.to_le_bytes());
    }
}

#[test]
fn run_errors_say_what_was_needed() {
    let (_, f) = tiny_net(0);
    let m = Model::from_bytes(&f).unwrap();
    let mut arena = vec![0i8; m.arena_bytes()];
    assert_eq!(
        run(&m, &[0; 107], &mut arena, &mut NoProfiler),
        Err(Error::InputSize {
            need: 108,
            have: 107
        })
    );
    let mut small = vec![0i8; m.arena_bytes() - 1];
    let e = run(&m, &[0; 108], &mut small, &mut NoProfiler).unwrap_err();
    assert_eq!(
        e,
        Error::ArenaTooSmall {
            need: m.arena_bytes(),
            have: m.arena_bytes() - 1
        }
    );
    assert_eq!(
        e.to_string(),
        format!(
            "arena is {} bytes, the model needs {} (Model::arena_bytes)",
            m.arena_bytes() - 1,
            m.arena_bytes()
        )
    );

    // arena alignment from the header
    let (mut b, _) = tiny_net(0);
    b.header.arena_align = 8;
    let f8 = b.encode();
    let m8 = Model::from_bytes(&f8).unwrap();
    let mut big = vec![0i8; m8.arena_bytes() + 16];
    let skew = (8 - big.as_ptr() as usize % 8) % 8 + 1; // an address that is 1 mod 8
    assert_eq!(
        run(&m8, &[0; 108], &mut big[skew..], &mut NoProfiler),
        Err(Error::ArenaMisaligned { align: 8 })
    );
    assert!(run(&m8, &[0; 108], &mut big[skew - 1..], &mut NoProfiler).is_ok());
}

#[test]
fn messages_are_one_line_and_name_the_problem() {
    let msgs = [
        ModelError::BadMagic.to_string(),
        ModelError::Truncated { need: 24, have: 3 }.to_string(),
        ModelError::Checksum {
            stored: 1,
            computed: 2,
        }
        .to_string(),
        ModelError::UnsupportedVersion { found: 9 }.to_string(),
        ModelError::Invalid {
            what: "op: conv pad >= k",
            index: 3,
        }
        .to_string(),
        ModelError::ArenaTooSmall { need: 10, have: 9 }.to_string(),
        Error::InputSize { need: 1, have: 2 }.to_string(),
        Error::Model(ModelError::BadMagic).to_string(),
    ];
    for m in &msgs {
        assert!(!m.contains('\n') && m.len() > 20, "{m}");
    }
    assert_eq!(
        msgs[1],
        "truncated .skq model: need 24 bytes, have 3 (copy the whole file)"
    );
    assert_eq!(msgs[4], "invalid .skq model: op: conv pad >= k (index 3)");
    assert!(msgs[3].contains("version 9"));
    // and a raw encode with no ops/tensors at all
    let h = shiftkit_engine::format::Header {
        tensors: 0,
        ops: 0,
        input: 0,
        output: 0,
        arena_bytes: 0,
        arena_align: 1,
        classes: 0,
    };
    assert!(matches!(
        err(&encode(&h, &[], &[], &[])),
        ModelError::Invalid { .. }
    ));
}

#[test]
fn a_shift_needs_a_channel_per_group() {
    let build = |c: u16| {
        let mut rng = common::Rng(5);
        let mut b = Builder::new();
        let x = b.input(4, 4, 3);
        let t1 = b.tensor(4, 4, c, 0.1, 0);
        let t2 = b.tensor(4, 4, c, 0.1, 0);
        let t3 = b.tensor_like(t2, 1, 1, c);
        let t4 = b.tensor(1, 1, 2, 0.1, 0);
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
        b.op(Op::GlobalAvgPool { x: t2, y: t3 });
        b.fc(&mut rng, t3, t4, -7);
        b.finish(t4)
    };
    assert!(Model::from_bytes(&build(5)).is_ok());
    assert_eq!(
        err(&build(4)),
        ModelError::Invalid {
            what: "op: too few input channels for the shift's groups",
            index: 1
        }
    );
}

#[test]
fn a_single_rounding_multiplier_is_valid() {
    // Shift 0 with any positive multiplier (format version 4), here 2^17 and 1.
    for m in [1 << 17, 1] {
        let (mut b, _) = tiny_net(0);
        set_i32(&mut b, 0, true, m);
        set_i32(&mut b, 0, false, 0);
        assert!(Model::from_bytes(&b.encode()).is_ok(), "multiplier {m}");
    }
}

/// Format 5's class names: read back by index; a record that is not one UTF-8 name of 1 to 64
/// bytes per class is refused; a version-4 file may not carry one.
#[test]
fn class_names_after_the_last_op() {
    use common::{encode_raw, fix_crc};
    let (_, f) = common::tiny_net(1);
    let g = u32::from_le_bytes(f[16..20].try_into().unwrap()) as usize;
    let w = u32::from_le_bytes(f[20..24].try_into().unwrap()) as usize;
    let (graph, weights) = (&f[24..24 + g], &f[w..]);
    let with = |names: &[u8]| {
        let mut gr = graph.to_vec();
        gr.extend_from_slice(names);
        encode_raw(&gr, weights)
    };
    let four = postcard::to_allocvec(&vec!["cat", "dog", "bird", "tabby cat"]).unwrap();
    let file = with(&four);
    let m = Model::from_bytes(&file).unwrap();
    assert_eq!(m.class_name(0), Some("cat"));
    assert_eq!(m.class_name(3), Some("tabby cat"));
    assert_eq!(m.class_name(4), None);
    // Without the record: no names.
    assert_eq!(Model::from_bytes(&f).unwrap().class_name(0), None);
    let bad = |names: &[u8]| {
        matches!(
            Model::from_bytes(&with(names)),
            Err(ModelError::Invalid { what, .. }) if what.starts_with("names:")
        )
    };
    // Three names for four classes, an empty name, a 65-byte name, bad UTF-8, a byte after.
    assert!(bad(&postcard::to_allocvec(&vec!["a", "b", "c"]).unwrap()));
    assert!(bad(
        &postcard::to_allocvec(&vec!["a", "", "c", "d"]).unwrap()
    ));
    let long = "x".repeat(65);
    assert!(bad(&postcard::to_allocvec(&vec![
        "a",
        "b",
        "c",
        long.as_str()
    ])
    .unwrap()));
    assert!(bad(&[4, 1, b'a', 1, b'b', 1, b'c', 1, 0xFF]));
    let mut trailing = four.clone();
    trailing.push(0);
    assert!(bad(&trailing));
    // A version-4 file with bytes after the last op is refused as before.
    let mut v4 = file.clone();
    v4[4] = 4;
    fix_crc(&mut v4);
    assert!(matches!(
        Model::from_bytes(&v4),
        Err(ModelError::Invalid { what, .. }) if what.contains("bytes left in the graph section")
    ));
}
