//! The C ABI called from Rust as C would call it, on small nets built by firmware's test
//! builder: every good call gives the engine's own logits, every bad call (NULL pointers, a
//! short arena, a short input, a corrupt or truncated model, overlapping buffers, an unloaded
//! handle) returns its code and its message, and a second run in the same arena gives the same
//! logits. Two models loaded side by side run independently.
use core::ffi::{c_char, c_void, CStr};
use core::ptr;
use shiftkit_c::*;

#[path = "../../firmware/tests/common/mod.rs"]
mod common;

/// 16 bytes at a 16-byte boundary: the arena's unit.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Block([u8; 16]);

/// A zeroed arena of `bytes`, 16-aligned, with 16 spare bytes past them.
struct Arena {
    buf: Vec<Block>,
    bytes: usize,
}

impl Arena {
    fn new(bytes: usize) -> Self {
        Arena {
            buf: vec![Block([0; 16]); bytes.div_ceil(16) + 1],
            bytes,
        }
    }
    fn ptr(&mut self) -> *mut c_void {
        self.buf.as_mut_ptr().cast()
    }
}

fn message_of(s: SkStatus) -> String {
    // SAFETY: sk_status_message returns a static NUL-terminated string for every code.
    let m = unsafe { CStr::from_ptr(sk_status_message(s)) };
    m.to_str().expect("messages are ASCII").to_string()
}

/// Asserts `got` is `want`, and that its message is the expected, specific one.
fn expect(got: SkStatus, want: SkStatus, message_has: &str) {
    assert_eq!(
        got,
        want,
        "got status {got} ({}), want {want} ({})",
        message_of(got),
        message_of(want)
    );
    let m = message_of(got);
    if got != SK_OK {
        // Shown with `cargo test -p shiftkit-c --test api -- --nocapture --test-threads 1`.
        println!("  status {got}: {m}");
    }
    assert!(m.contains(message_has), "message of {got}: {m:?}");
    assert_ne!(m, "unknown shiftkit status code");
}

fn empty_handle() -> SkModel {
    // SAFETY: a handle is plain `u64` words; all-zero is the "not loaded" state.
    unsafe { core::mem::zeroed() }
}

fn load(bytes: &[u8]) -> SkModel {
    let mut h = empty_handle();
    // SAFETY: `h` is a handle; `bytes` outlives it in every test.
    let s = unsafe { sk_model_load(&mut h, bytes.as_ptr(), bytes.len()) };
    expect(s, SK_OK, "ok");
    h
}

struct Info {
    arena: usize,
    align: usize,
    input_len: usize,
    classes: usize,
    ops: usize,
}

fn info(h: &SkModel) -> Info {
    let (mut arena, mut align, mut input_len, mut classes, mut ops) = (0, 0, 0, 0, 0);
    // SAFETY: `h` is loaded; every out-pointer is a local.
    unsafe {
        expect(sk_model_arena(h, &mut arena, &mut align), SK_OK, "ok");
        expect(sk_model_input_len(h, &mut input_len), SK_OK, "ok");
        expect(sk_model_classes(h, &mut classes), SK_OK, "ok");
        expect(sk_model_ops(h, &mut ops), SK_OK, "ok");
    }
    Info {
        arena,
        align,
        input_len,
        classes,
        ops,
    }
}

fn pixels(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = common::Rng(seed);
    (0..n).map(|_| rng.below(256) as u8).collect()
}

/// The engine's logits for `input`, through the Rust API (what every C run must equal).
fn engine(bytes: &[u8], input: &[u8]) -> Vec<i8> {
    let m = firmware::Model::from_bytes(bytes).unwrap();
    let mut arena = Arena::new(m.arena_bytes());
    // SAFETY: the arena's buffer holds at least `bytes` bytes; i8 has no invalid values.
    let a = unsafe { core::slice::from_raw_parts_mut(arena.ptr().cast::<i8>(), arena.bytes) };
    firmware::run(&m, input, a, &mut firmware::NoProfiler)
        .unwrap()
        .to_vec()
}

/// One run through `sk_run`: status and the output buffer.
fn run(h: &SkModel, input: &[u8], arena: &mut Arena, out_len: usize) -> (SkStatus, Vec<i8>) {
    let mut out = vec![0x55u8 as i8; out_len];
    // SAFETY: every pointer is a live local buffer of the length passed.
    let s = unsafe {
        sk_run(
            h,
            input.as_ptr(),
            input.len(),
            arena.ptr(),
            arena.bytes,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    (s, out)
}

#[test]
fn queries_give_the_model_s_figures_and_a_run_gives_the_engine_s_logits() {
    let (b, bytes) = common::tiny_net(0);
    let h = load(&bytes);
    let i = info(&h);
    let m = firmware::Model::from_bytes(&bytes).unwrap();
    assert_eq!(i.arena, m.arena_bytes());
    assert_eq!(i.align, m.arena_align().max(1));
    assert_eq!(i.input_len, 6 * 6 * 3);
    assert_eq!(i.classes, 4);
    assert_eq!(i.ops, b.ops.len());
    let (mut hh, mut ww, mut cc) = (0, 0, 0);
    // SAFETY: `h` is loaded; the out-pointers are locals.
    expect(
        unsafe { sk_model_input_shape(&h, &mut hh, &mut ww, &mut cc) },
        SK_OK,
        "ok",
    );
    assert_eq!((hh, ww, cc), (6, 6, 3));

    let input = pixels(i.input_len, 7);
    let mut arena = Arena::new(i.arena);
    // A longer output buffer: only the first `classes` bytes are written.
    let (s, out) = run(&h, &input, &mut arena, i.classes + 3);
    expect(s, SK_OK, "ok");
    assert_eq!(out[..i.classes], engine(&bytes, &input)[..]);
    assert_eq!(out[i.classes..], [0x55u8 as i8; 3]);

    // SAFETY: sk_version returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(sk_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn a_second_run_in_the_same_arena_gives_the_same_logits() {
    let (_, bytes) = common::second_net(3);
    let h = load(&bytes);
    let i = info(&h);
    let mut arena = Arena::new(i.arena);
    let a = pixels(i.input_len, 1);
    let b = pixels(i.input_len, 2);
    let (s1, first) = run(&h, &a, &mut arena, i.classes);
    let (s2, other) = run(&h, &b, &mut arena, i.classes);
    let (s3, again) = run(&h, &a, &mut arena, i.classes);
    for s in [s1, s2, s3] {
        expect(s, SK_OK, "ok");
    }
    assert_eq!(first, engine(&bytes, &a));
    assert_eq!(other, engine(&bytes, &b));
    assert_eq!(again, first, "the arena left by other runs changes nothing");
}

#[test]
fn two_models_side_by_side_run_independently() {
    let (_, one) = common::tiny_net(1);
    let (_, two) = common::second_net(2);
    let (h1, h2) = (load(&one), load(&two));
    let (i1, i2) = (info(&h1), info(&h2));
    assert_ne!(i1.input_len, i2.input_len);
    let (mut a1, mut a2) = (Arena::new(i1.arena), Arena::new(i2.arena));
    let (x1, x2) = (pixels(i1.input_len, 5), pixels(i2.input_len, 6));
    for _ in 0..2 {
        let (s1, y1) = run(&h1, &x1, &mut a1, i1.classes);
        let (s2, y2) = run(&h2, &x2, &mut a2, i2.classes);
        expect(s1, SK_OK, "ok");
        expect(s2, SK_OK, "ok");
        assert_eq!(y1, engine(&one, &x1));
        assert_eq!(y2, engine(&two, &x2));
    }
    // A handle copied elsewhere is the same model.
    let moved = Box::new(h1);
    let (s, y) = run(&moved, &x1, &mut a1, i1.classes);
    expect(s, SK_OK, "ok");
    assert_eq!(y, engine(&one, &x1));
}

/// What the per-op callback saw.
#[derive(Default)]
struct Seen {
    events: Vec<(usize, String, SkOpEvent)>,
}

unsafe extern "C" fn record(user: *mut c_void, op: usize, kind: *const c_char, event: SkOpEvent) {
    // SAFETY: `user` is the `Seen` the test passed; `kind` a static C string.
    let seen = unsafe { &mut *user.cast::<Seen>() };
    let kind = unsafe { CStr::from_ptr(kind) }
        .to_str()
        .unwrap()
        .to_string();
    seen.events.push((op, kind, event));
}

#[test]
fn the_callback_sees_every_op_before_and_after_with_its_kind() {
    let (b, bytes) = common::second_net(4);
    let h = load(&bytes);
    let i = info(&h);
    let input = pixels(i.input_len, 9);
    let mut arena = Arena::new(i.arena);
    let mut out = vec![0i8; i.classes];
    let mut seen = Seen::default();
    // SAFETY: live local buffers of the lengths passed; `record` takes a `Seen`.
    let s = unsafe {
        sk_run_profiled(
            &h,
            input.as_ptr(),
            input.len(),
            arena.ptr(),
            arena.bytes,
            out.as_mut_ptr(),
            out.len(),
            Some(record),
            (&mut seen as *mut Seen).cast(),
        )
    };
    expect(s, SK_OK, "ok");
    assert_eq!(out, engine(&bytes, &input));
    let want: Vec<(usize, String, SkOpEvent)> = b
        .ops
        .iter()
        .enumerate()
        .flat_map(|(i, op)| [SK_OP_BEGIN, SK_OP_END].map(|e| (i, op.kind().to_string(), e)))
        .collect();
    assert_eq!(seen.events, want);
    assert!(want.iter().any(|w| w.1 == "shift-conv1x1"));

    // A NULL callback is refused.
    // SAFETY: as above, with no callback.
    let s = unsafe {
        sk_run_profiled(
            &h,
            input.as_ptr(),
            input.len(),
            arena.ptr(),
            arena.bytes,
            out.as_mut_ptr(),
            out.len(),
            None,
            ptr::null_mut(),
        )
    };
    expect(s, SK_ERR_NULL, "NULL");
}

#[test]
fn every_op_kind_has_its_c_name() {
    for k in [
        "conv1x1",
        "shift-conv1x1",
        "conv3x3",
        "conv",
        "add",
        "avgpool2",
        "maxpool3s2",
        "global-avgpool",
        "fc",
    ] {
        assert_eq!(kind_name(k).to_str().unwrap(), k);
    }
    assert_eq!(kind_name("new-kind").to_str().unwrap(), "op");
}

#[test]
fn null_pointers_are_refused_with_their_code() {
    let (_, bytes) = common::tiny_net(0);
    let h = load(&bytes);
    let i = info(&h);
    let input = pixels(i.input_len, 1);
    let mut arena = Arena::new(i.arena);
    let mut out = vec![0i8; i.classes];
    let mut n = 0usize;
    let null_model: *const SkModel = ptr::null();
    // SAFETY: every non-null pointer is a live local of the length passed.
    unsafe {
        let mut fresh = empty_handle();
        expect(
            sk_model_load(ptr::null_mut(), bytes.as_ptr(), bytes.len()),
            SK_ERR_NULL,
            "NULL",
        );
        expect(
            sk_model_load(&mut fresh, ptr::null(), 0),
            SK_ERR_NULL,
            "NULL",
        );
        expect(
            sk_model_arena(null_model, &mut n, &mut n),
            SK_ERR_NULL,
            "NULL",
        );
        expect(
            sk_model_arena(&h, ptr::null_mut(), &mut n),
            SK_ERR_NULL,
            "NULL",
        );
        expect(
            sk_model_input_shape(&h, &mut n, ptr::null_mut(), &mut n),
            SK_ERR_NULL,
            "NULL",
        );
        expect(sk_model_input_len(&h, ptr::null_mut()), SK_ERR_NULL, "NULL");
        expect(sk_model_classes(null_model, &mut n), SK_ERR_NULL, "NULL");
        expect(sk_model_ops(&h, ptr::null_mut()), SK_ERR_NULL, "NULL");
        expect(
            sk_model_class_name(&h, 0, ptr::null_mut(), &mut n),
            SK_ERR_NULL,
            "NULL",
        );
        let a = arena.ptr();
        let cases: [(*const SkModel, *const u8, *mut c_void, *mut i8); 4] = [
            (null_model, input.as_ptr(), a, out.as_mut_ptr()),
            (&h, ptr::null(), a, out.as_mut_ptr()),
            (&h, input.as_ptr(), ptr::null_mut(), out.as_mut_ptr()),
            (&h, input.as_ptr(), a, ptr::null_mut()),
        ];
        for (m, x, a, y) in cases {
            expect(
                sk_run(m, x, input.len(), a, arena.bytes, y, out.len()),
                SK_ERR_NULL,
                "NULL",
            );
        }
    }
}

#[test]
fn short_and_misaligned_buffers_are_refused_with_their_code() {
    let (_, bytes) = common::second_net(0);
    let h = load(&bytes);
    let i = info(&h);
    let input = pixels(i.input_len, 1);
    let mut arena = Arena::new(i.arena + 64);

    // A short input, and one too long: the input is exactly h * w * c bytes.
    let (s, _) = run(&h, &input[..i.input_len - 1], &mut arena, i.classes);
    expect(s, SK_ERR_INPUT_SIZE, "input_len");
    let long = pixels(i.input_len + 1, 1);
    let (s, _) = run(&h, &long, &mut arena, i.classes);
    expect(s, SK_ERR_INPUT_SIZE, "input_len");

    // A short arena.
    let mut short = Arena::new(i.arena - 1);
    let (s, _) = run(&h, &input, &mut short, i.classes);
    expect(s, SK_ERR_ARENA_TOO_SMALL, "arena is shorter");

    // A short output.
    let (s, out) = run(&h, &input, &mut arena, i.classes - 1);
    expect(s, SK_ERR_OUTPUT_TOO_SMALL, "output_len");
    assert!(out.iter().all(|&v| v == 0x55u8 as i8), "nothing written");

    // A misaligned arena: the same net stating a 16-byte arena alignment, run one byte off.
    let (mut b16, _) = common::second_net(0);
    b16.header.arena_align = 16;
    let bytes16 = b16.encode();
    let h16 = load(&bytes16);
    let i16 = info(&h16);
    assert_eq!(i16.align, 16);
    let mut out = vec![0i8; i16.classes];
    // SAFETY: one byte into the arena, `i16.arena` bytes still within it (64 spare bytes).
    let s = unsafe {
        sk_run(
            &h16,
            input.as_ptr(),
            input.len(),
            arena.ptr().cast::<u8>().add(1).cast(),
            i16.arena,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    expect(s, SK_ERR_ARENA_MISALIGNED, "aligned");
    // Aligned, the same call runs.
    let (s, y) = run(&h16, &input, &mut arena, i16.classes);
    expect(s, SK_OK, "ok");
    assert_eq!(y, engine(&bytes16, &input));

    // The output inside the arena: overlapping buffers.
    // SAFETY: both ranges lie in the arena's allocation.
    let s = unsafe {
        let a = arena.ptr();
        sk_run(
            &h,
            input.as_ptr(),
            input.len(),
            a,
            i.arena,
            a.cast::<i8>().add(8),
            i.classes,
        )
    };
    expect(s, SK_ERR_BUFFERS_OVERLAP, "overlap");
    // The arena over the model bytes.
    let mut copy = bytes.clone();
    copy.resize(bytes.len() + i.arena + 64, 0);
    let h2 = load(&copy);
    let mut out = vec![0i8; i.classes];
    // SAFETY: the arena is the tail of `copy`, which holds `i.arena` bytes past the model's
    // start; the run must refuse before writing it.
    let s = unsafe {
        sk_run(
            &h2,
            input.as_ptr(),
            input.len(),
            copy.as_mut_ptr().cast(),
            i.arena,
            out.as_mut_ptr(),
            out.len(),
        )
    };
    expect(s, SK_ERR_BUFFERS_OVERLAP, "overlap");
}

#[test]
fn a_corrupt_or_truncated_model_is_refused_and_leaves_the_handle_unloaded() {
    let (_, bytes) = common::tiny_net(0);
    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40; // a weight byte: the CRC no longer matches
    let mut magic = bytes.clone();
    magic[0] = b'X';
    let mut version = bytes.clone();
    version[4] = 99;
    common::fix_crc(&mut version);
    let cases: [(&[u8], SkStatus, &str); 5] = [
        (&corrupt, SK_ERR_MODEL_CHECKSUM, "corrupt .skq model"),
        (
            &bytes[..bytes.len() - 5],
            SK_ERR_MODEL_TRUNCATED,
            "truncated",
        ),
        (&bytes[..10], SK_ERR_MODEL_TRUNCATED, "truncated"),
        (&magic, SK_ERR_MODEL_BAD_MAGIC, "not a .skq model"),
        (&version, SK_ERR_MODEL_VERSION, "version"),
    ];
    for (file, code, message) in cases {
        // A handle that held a model before: a failed load leaves it unloaded.
        let mut h = load(&bytes);
        // SAFETY: `h` is a handle; `file` outlives it.
        let s = unsafe { sk_model_load(&mut h, file.as_ptr(), file.len()) };
        expect(s, code, message);
        let mut n = 0;
        // SAFETY: `h` is a handle the failed load wrote; `n` a local.
        let s = unsafe { sk_model_classes(&h, &mut n) };
        expect(s, SK_ERR_NOT_LOADED, "holds no model");
        let mut arena = Arena::new(4096);
        let (s, _) = run(&h, &[0; 108], &mut arena, 4);
        expect(s, SK_ERR_NOT_LOADED, "holds no model");
    }
    // A broken record with a correct CRC: an invalid model.
    let (mut b, _) = common::tiny_net(0);
    b.header.classes = 5;
    let invalid = b.encode();
    let mut h = empty_handle();
    // SAFETY: as above.
    let s = unsafe { sk_model_load(&mut h, invalid.as_ptr(), invalid.len()) };
    expect(s, SK_ERR_MODEL_INVALID, "invalid .skq model");
}

#[test]
fn a_handle_never_loaded_or_misaligned_is_refused() {
    let h = empty_handle();
    let mut n = 0;
    // SAFETY: a zeroed handle; `n` a local.
    expect(
        unsafe { sk_model_input_len(&h, &mut n) },
        SK_ERR_NOT_LOADED,
        "holds no model",
    );
    let (_, bytes) = common::tiny_net(0);
    let mut storage = vec![0u64; SK_HANDLE_WORDS + 1];
    // SAFETY: 4 bytes into storage that holds a handle's bytes past that point.
    let odd = unsafe { storage.as_mut_ptr().cast::<u8>().add(4).cast::<SkModel>() };
    // SAFETY: as above; the call must refuse before writing.
    let s = unsafe { sk_model_load(odd, bytes.as_ptr(), bytes.len()) };
    expect(s, SK_ERR_HANDLE_MISALIGNED, "aligned");
    let s = unsafe { sk_model_classes(odd, &mut n) };
    expect(s, SK_ERR_HANDLE_MISALIGNED, "aligned");
}

#[test]
fn class_names_are_absent_from_a_model_without_them_with_their_own_code() {
    let (_, bytes) = common::tiny_net(0);
    let h = load(&bytes);
    let mut name: *const c_char = c"stale".as_ptr();
    let mut len = 99;
    // SAFETY: `h` is loaded; out-pointers are locals.
    let s = unsafe { sk_model_class_name(&h, 0, &mut name, &mut len) };
    expect(s, SK_ERR_NO_CLASS_NAMES, "no class names");
    assert!(name.is_null());
    assert_eq!(len, 0);
    // SAFETY: as above.
    let s = unsafe { sk_model_class_name(&h, 4, &mut name, &mut len) };
    expect(s, SK_ERR_CLASS_INDEX, "class index");
}

#[test]
fn class_names_of_a_format_5_model_point_into_its_bytes() {
    let (_, f) = common::tiny_net(0);
    let g = u32::from_le_bytes(f[16..20].try_into().unwrap()) as usize;
    let w = u32::from_le_bytes(f[20..24].try_into().unwrap()) as usize;
    let mut graph = f[24..24 + g].to_vec();
    graph.extend(postcard::to_allocvec(&vec!["cat", "dog", "bird", "tabby cat"]).unwrap());
    let bytes = common::encode_raw(&graph, &f[w..]);
    let h = load(&bytes);
    for (i, want) in ["cat", "dog", "bird", "tabby cat"].iter().enumerate() {
        let (mut name, mut len): (*const c_char, usize) = (ptr::null(), 0);
        // SAFETY: `h` is loaded; out-pointers are locals.
        let s = unsafe { sk_model_class_name(&h, i, &mut name, &mut len) };
        expect(s, SK_OK, "ok");
        // SAFETY: the call returned a pointer to `len` bytes inside `bytes`, which is alive.
        let got = unsafe { std::slice::from_raw_parts(name.cast::<u8>(), len) };
        assert_eq!(got, want.as_bytes());
        assert!(bytes.as_ptr_range().contains(&name.cast::<u8>()));
    }
}

#[test]
fn every_code_has_its_own_message_and_unknown_codes_say_so() {
    let codes = [
        SK_OK,
        SK_ERR_NULL,
        SK_ERR_NOT_LOADED,
        SK_ERR_HANDLE_MISALIGNED,
        SK_ERR_BAD_LENGTH,
        SK_ERR_BUFFERS_OVERLAP,
        SK_ERR_MODEL_BAD_MAGIC,
        SK_ERR_MODEL_TRUNCATED,
        SK_ERR_MODEL_CHECKSUM,
        SK_ERR_MODEL_VERSION,
        SK_ERR_MODEL_INVALID,
        SK_ERR_INPUT_SIZE,
        SK_ERR_ARENA_TOO_SMALL,
        SK_ERR_ARENA_MISALIGNED,
        SK_ERR_OUTPUT_TOO_SMALL,
        SK_ERR_NO_CLASS_NAMES,
        SK_ERR_CLASS_INDEX,
    ];
    let mut messages: Vec<String> = codes.iter().map(|&c| message_of(c)).collect();
    assert!(!messages.iter().any(|m| m == "unknown shiftkit status code"));
    messages.sort();
    messages.dedup();
    assert_eq!(messages.len(), codes.len(), "one message per code");
    for c in [-1, 6, 999, i32::MIN] {
        assert_eq!(message_of(c), "unknown shiftkit status code");
    }
}

#[test]
fn a_length_past_the_address_space_is_refused() {
    let mut h = empty_handle();
    let byte = 0u8;
    // SAFETY: the call must refuse the length before forming a slice.
    let s = unsafe { sk_model_load(&mut h, &byte, usize::MAX) };
    expect(s, SK_ERR_BAD_LENGTH, "address space");
}
