//! The C ABI over the shiftkit engine (the `shiftkit-engine` crate, here named `firmware`): load a `.skq` model from bytes (zero-copy,
//! validated once), ask it for its arena, input and classes, run it in a caller's arena into a
//! caller's output buffer, optionally with a per-op callback for the caller's timer. The header
//! `capi/include/shiftkit.h` is generated from this file by cbindgen (capi/tests/header.rs
//! checks that the committed one is current); docs/c-api.md is the user's page.
//!
//! - **No heap, no global state.** A model handle ([`SkModel`], `sk_model`) is caller-allocated
//!   storage of [`SK_HANDLE_BYTES`] bytes; two handles are two independent models. The arena and
//!   the output are the caller's too.
//! - **No panic crosses the boundary.** Every pointer is checked for NULL, every length against
//!   the model, buffers for overlap; anything wrong is an [`SkStatus`] code, and
//!   [`sk_status_message`] names it. The engine itself does not panic (`firmware::run`); the
//!   `panic-handler` feature (the staticlib's build) only satisfies the linker.
//! - **The `unsafe` is the pointer-to-slice boundary.** Each `unsafe` block turns a checked C
//!   pointer into a Rust reference or slice, or calls the caller's callback, with its `SAFETY:`
//!   argument; the engine behind it is safe Rust.
//!
//! From Rust, the calls are as C makes them. Bytes that are not a model, and a NULL handle, are
//! refused with their codes, and the handle stays "not loaded":
//!
//! ```
//! use shiftkit_c::*;
//! let mut handle: SkModel = unsafe { core::mem::zeroed() };
//! let junk = [0u8; 64];
//! let status = unsafe { sk_model_load(&mut handle, junk.as_ptr(), junk.len()) };
//! assert_eq!(status, SK_ERR_MODEL_BAD_MAGIC);
//! let mut classes = 0usize;
//! assert_eq!(unsafe { sk_model_classes(&handle, &mut classes) }, SK_ERR_NOT_LOADED);
//! let status = unsafe { sk_model_load(core::ptr::null_mut(), junk.as_ptr(), junk.len()) };
//! assert_eq!(status, SK_ERR_NULL);
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

use core::ffi::{c_char, c_void, CStr};
use core::mem::{align_of, size_of};
use core::ptr;

use firmware::model::Ops;
use firmware::{Error, Model, ModelError, Profiler};

/// Bytes of a model handle (`sk_model`): enough for the validated model's small header and its
/// views of the file, with room to grow without changing the ABI.
pub const SK_HANDLE_BYTES: usize = 320;
/// The alignment of a model handle (that of `uint64_t`, its storage word).
pub const SK_HANDLE_ALIGN: usize = 8;
/// `SK_HANDLE_BYTES / 8`: the handle's storage words.
pub const SK_HANDLE_WORDS: usize = 40;

/// A model handle: opaque storage the caller allocates (on the stack, static, anywhere) and
/// `sk_model_load` fills. It borrows the model bytes it was loaded from, which must stay in
/// place and unchanged while it is used. Copying a loaded handle copies the model view.
#[repr(C)]
pub struct SkModel {
    _opaque: [u64; SK_HANDLE_WORDS],
}

/// What a handle holds once loaded. `repr(C)`: `tag` is the first word, read alone to tell a
/// loaded handle from one that is not.
#[repr(C)]
#[derive(Clone, Copy)]
struct Loaded {
    tag: u64,
    /// The bytes the model borrows (for the overlap checks of a run).
    bytes: &'static [u8],
    model: Model<'static>,
}

/// The first word of a loaded handle ("SKMODEL" and a layout version).
const TAG: u64 = 0x534b_4d4f_4445_4c01;

const _: () = assert!(SK_HANDLE_WORDS * 8 == SK_HANDLE_BYTES);
const _: () = assert!(size_of::<SkModel>() == SK_HANDLE_BYTES);
const _: () = assert!(align_of::<SkModel>() <= SK_HANDLE_ALIGN);
// The loaded model fits the handle, at the handle's alignment.
const _: () = assert!(size_of::<Loaded>() <= size_of::<SkModel>());
const _: () = assert!(align_of::<Loaded>() <= align_of::<SkModel>());

/// A call's result: `SK_OK` or one of the `SK_ERR_*` codes; `sk_status_message` gives its
/// message.
pub type SkStatus = i32;

/// Success.
pub const SK_OK: SkStatus = 0;
/// A required pointer argument is NULL.
pub const SK_ERR_NULL: SkStatus = 1;
/// The handle holds no model: `sk_model_load` has not succeeded on it.
pub const SK_ERR_NOT_LOADED: SkStatus = 2;
/// The handle is not aligned to `SK_HANDLE_ALIGN` bytes.
pub const SK_ERR_HANDLE_MISALIGNED: SkStatus = 3;
/// A length is larger than the address space allows.
pub const SK_ERR_BAD_LENGTH: SkStatus = 4;
/// Two of the buffers of a call (model bytes, handle, input, arena, output) overlap.
pub const SK_ERR_BUFFERS_OVERLAP: SkStatus = 5;
/// Not a `.skq` model: the bytes do not start with "SKQ\x01".
pub const SK_ERR_MODEL_BAD_MAGIC: SkStatus = 10;
/// Truncated `.skq` model: fewer bytes than its preamble or length field needs.
pub const SK_ERR_MODEL_TRUNCATED: SkStatus = 11;
/// Corrupt `.skq` model: its CRC-32 does not match.
pub const SK_ERR_MODEL_CHECKSUM: SkStatus = 12;
/// The `.skq` format version is not one this library reads.
pub const SK_ERR_MODEL_VERSION: SkStatus = 13;
/// Invalid `.skq` model: a record, shape, constant or the memory plan breaks a rule.
pub const SK_ERR_MODEL_INVALID: SkStatus = 14;
/// `input_len` is not the model's input length (h * w * c bytes).
pub const SK_ERR_INPUT_SIZE: SkStatus = 20;
/// The arena is shorter than the model's arena size.
pub const SK_ERR_ARENA_TOO_SMALL: SkStatus = 21;
/// The arena's address is not a multiple of the model's arena alignment.
pub const SK_ERR_ARENA_MISALIGNED: SkStatus = 22;
/// `output_len` is less than the model's class count.
pub const SK_ERR_OUTPUT_TOO_SMALL: SkStatus = 23;
/// The model has no class names (`.skq` format 4 stores none).
pub const SK_ERR_NO_CLASS_NAMES: SkStatus = 30;
/// The class index is not below the model's class count.
pub const SK_ERR_CLASS_INDEX: SkStatus = 31;

/// When a per-op callback is called: `SK_OP_BEGIN` or `SK_OP_END`.
pub type SkOpEvent = u32;
/// The op is about to run.
pub const SK_OP_BEGIN: SkOpEvent = 0;
/// The op has run.
pub const SK_OP_END: SkOpEvent = 1;

/// A per-op callback of `sk_run_profiled`: called with the caller's `user` pointer, the op's
/// index (0 to ops - 1, in execution order), its kind (a static NUL-terminated name:
/// `conv1x1`, `shift-conv1x1`, `conv3x3`, `conv`, `add`, `avgpool2`, `maxpool3s2`,
/// `global-avgpool`, `fc`) and the event, before and after each op. It must not touch the
/// arena, the output or the handle, and must return (no `longjmp`, no C++ exception).
pub type SkOpCallback = Option<
    unsafe extern "C" fn(user: *mut c_void, op_index: usize, kind: *const c_char, event: SkOpEvent),
>;

/// The message of a status code: a static NUL-terminated string, never NULL (an unknown code
/// has a message saying so).
#[no_mangle]
pub extern "C" fn sk_status_message(status: SkStatus) -> *const c_char {
    message(status).as_ptr()
}

/// The message of a status code (the text of `sk_status_message`).
///
/// ```
/// use shiftkit_c::{message, SK_ERR_ARENA_TOO_SMALL};
/// assert_eq!(
///     message(SK_ERR_ARENA_TOO_SMALL).to_str(),
///     Ok("the arena is shorter than sk_model_arena's size")
/// );
/// assert_eq!(message(999).to_str(), Ok("unknown shiftkit status code"));
/// ```
pub fn message(status: SkStatus) -> &'static CStr {
    match status {
        SK_OK => c"ok",
        SK_ERR_NULL => c"a required pointer argument is NULL",
        SK_ERR_NOT_LOADED => c"the handle holds no model: sk_model_load has not succeeded on it",
        SK_ERR_HANDLE_MISALIGNED => c"the handle is not aligned to SK_HANDLE_ALIGN bytes",
        SK_ERR_BAD_LENGTH => c"a length is larger than the address space allows",
        SK_ERR_BUFFERS_OVERLAP => {
            c"two buffers of the call overlap (model bytes, handle, input, arena, output)"
        }
        SK_ERR_MODEL_BAD_MAGIC => c"not a .skq model: the bytes do not start with \"SKQ\\x01\"",
        SK_ERR_MODEL_TRUNCATED => {
            c"truncated .skq model: fewer bytes than its length field says (copy the whole file)"
        }
        SK_ERR_MODEL_CHECKSUM => {
            c"corrupt .skq model: its CRC-32 does not match (re-export or re-copy the model)"
        }
        SK_ERR_MODEL_VERSION => c"unsupported .skq format version (re-quantize the model)",
        SK_ERR_MODEL_INVALID => {
            c"invalid .skq model: a record, shape, constant or its memory plan breaks a rule"
        }
        SK_ERR_INPUT_SIZE => c"input_len is not the model's input length (h * w * c bytes, HWC)",
        SK_ERR_ARENA_TOO_SMALL => c"the arena is shorter than sk_model_arena's size",
        SK_ERR_ARENA_MISALIGNED => c"the arena is not aligned to sk_model_arena's alignment",
        SK_ERR_OUTPUT_TOO_SMALL => c"output_len is less than the model's class count",
        SK_ERR_NO_CLASS_NAMES => c"the model has no class names (.skq formats 3 and 4 store none)",
        SK_ERR_CLASS_INDEX => c"the class index is not below the model's class count",
        _ => c"unknown shiftkit status code",
    }
}

/// The library's version, e.g. "0.1.0": a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn sk_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The status of a model the reader refused.
pub fn model_status(e: ModelError) -> SkStatus {
    match e {
        ModelError::BadMagic => SK_ERR_MODEL_BAD_MAGIC,
        ModelError::Truncated { .. } => SK_ERR_MODEL_TRUNCATED,
        ModelError::Checksum { .. } => SK_ERR_MODEL_CHECKSUM,
        ModelError::UnsupportedVersion { .. } => SK_ERR_MODEL_VERSION,
        ModelError::Invalid { .. }
        | ModelError::ArenaTooSmall { .. }
        | ModelError::Clobbered { .. } => SK_ERR_MODEL_INVALID,
    }
}

/// The status of a run the engine refused.
pub fn run_status(e: Error) -> SkStatus {
    match e {
        Error::InputSize { .. } => SK_ERR_INPUT_SIZE,
        Error::ArenaTooSmall { .. } => SK_ERR_ARENA_TOO_SMALL,
        Error::ArenaMisaligned { .. } => SK_ERR_ARENA_MISALIGNED,
        Error::Model(e) => model_status(e),
    }
}

/// Loads and validates a `.skq` model from `bytes[0..len)` into the caller's handle `out`,
/// zero-copy: the handle borrows the bytes, which must stay in place and unchanged for as long
/// as the handle is used (a `const` array in flash, as `cargo xtask export c` writes it). `len`
/// may exceed the file (e.g. a flash region). On any error the handle is left "not loaded".
///
/// # Safety
/// `out` is NULL or points to writable `sk_model` storage; `bytes` is NULL or points to `len`
/// readable bytes that outlive every use of the handle.
#[no_mangle]
pub unsafe extern "C" fn sk_model_load(
    out: *mut SkModel,
    bytes: *const u8,
    len: usize,
) -> SkStatus {
    if out.is_null() {
        return SK_ERR_NULL;
    }
    if !out.is_aligned() {
        return SK_ERR_HANDLE_MISALIGNED;
    }
    // SAFETY: `out` is non-null, aligned, and points to writable handle storage (the caller's
    // contract); its first word is a `u64` (`SkModel` is `u64` words, `Loaded` is `repr(C)`
    // with `tag` first). Clearing it first leaves a failed load "not loaded".
    unsafe { ptr::write(out.cast::<u64>(), 0) };
    if bytes.is_null() {
        return SK_ERR_NULL;
    }
    if len > isize::MAX as usize {
        return SK_ERR_BAD_LENGTH;
    }
    // SAFETY: `bytes` is non-null and points to `len <= isize::MAX` readable bytes that outlive
    // the handle and are not written while it is used (the caller's contract), so a shared
    // slice of them may be held by the handle for its whole life.
    let bytes: &'static [u8] = unsafe { core::slice::from_raw_parts(bytes, len) };
    if overlaps(range_of(out.cast_const()), (bytes.as_ptr() as usize, len)) {
        return SK_ERR_BUFFERS_OVERLAP;
    }
    match Model::from_bytes(bytes) {
        Ok(model) => {
            let loaded = Loaded {
                tag: TAG,
                bytes,
                model,
            };
            // SAFETY: `out` is non-null, aligned for `SkModel` (so for `Loaded`, asserted above)
            // and writable for `size_of::<SkModel>() >= size_of::<Loaded>()` bytes; the handle
            // storage does not overlap the bytes (checked just above).
            unsafe { ptr::write(out.cast::<Loaded>(), loaded) };
            SK_OK
        }
        Err(e) => model_status(e),
    }
}

/// The loaded model behind a handle, or why there is none.
///
/// # Safety
/// `m` is NULL or points to readable `sk_model` storage that `sk_model_load` has written at
/// least once (its first word is then initialised), not written during the returned borrow.
unsafe fn loaded<'h>(m: *const SkModel) -> Result<&'h Loaded, SkStatus> {
    if m.is_null() {
        return Err(SK_ERR_NULL);
    }
    if !m.is_aligned() {
        return Err(SK_ERR_HANDLE_MISALIGNED);
    }
    // SAFETY: `m` is non-null, aligned and readable (the caller's contract); the first word of
    // the handle is a `u64` and is read alone, before anything else is trusted.
    let tag = unsafe { ptr::read(m.cast::<u64>()) };
    if tag != TAG {
        return Err(SK_ERR_NOT_LOADED);
    }
    // SAFETY: the tag says `sk_model_load` wrote a whole `Loaded` here (a failed load clears
    // the tag first), aligned (asserted above); the caller does not write the handle while it
    // is borrowed.
    Ok(unsafe { &*m.cast::<Loaded>() })
}

/// Writes `value` to a caller's out-pointer (any alignment).
///
/// # Safety
/// `p` is non-null and points to writable storage for a `T`.
unsafe fn put<T>(p: *mut T, value: T) {
    // SAFETY: the caller's contract; `write_unaligned` has no alignment requirement.
    unsafe { ptr::write_unaligned(p, value) }
}

/// `(address, bytes)` of the storage a pointer to `T` points to.
fn range_of<T>(p: *const T) -> (usize, usize) {
    (p as usize, size_of::<T>())
}

/// Whether two address ranges `(start, len)` share a byte.
fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.1 != 0 && b.1 != 0 && a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
}

/// The arena the model needs: `*bytes` long, its address a multiple of `*align`.
///
/// # Safety
/// `model` as for every call (NULL, or a handle `sk_model_load` has written); `bytes` and
/// `align` are NULL or writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn sk_model_arena(
    model: *const SkModel,
    bytes: *mut usize,
    align: *mut usize,
) -> SkStatus {
    // SAFETY: the caller's contract for `model`.
    let l = match unsafe { loaded(model) } {
        Ok(l) => l,
        Err(s) => return s,
    };
    if bytes.is_null() || align.is_null() {
        return SK_ERR_NULL;
    }
    // SAFETY: both non-null and writable (the caller's contract).
    unsafe {
        put(bytes, l.model.arena_bytes());
        put(align, l.model.arena_align().max(1));
    }
    SK_OK
}

/// The input shape: `*h` x `*w` x `*c` u8 pixels, HWC order.
///
/// # Safety
/// `model` as for every call; `h`, `w`, `c` are NULL or writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn sk_model_input_shape(
    model: *const SkModel,
    h: *mut usize,
    w: *mut usize,
    c: *mut usize,
) -> SkStatus {
    // SAFETY: the caller's contract for `model`.
    let l = match unsafe { loaded(model) } {
        Ok(l) => l,
        Err(s) => return s,
    };
    if h.is_null() || w.is_null() || c.is_null() {
        return SK_ERR_NULL;
    }
    let t = l.model.input();
    // SAFETY: all three non-null and writable (the caller's contract).
    unsafe {
        put(h, usize::from(t.h));
        put(w, usize::from(t.w));
        put(c, usize::from(t.c));
    }
    SK_OK
}

/// Writes `figure(model)` to `*out`: the shared body of the calls that return one number of a
/// loaded model.
///
/// # Safety
/// `model` as for every call; `out` is NULL or a writable `size_t`.
unsafe fn size_of_model(
    model: *const SkModel,
    out: *mut usize,
    figure: impl FnOnce(&firmware::Model<'_>) -> usize,
) -> SkStatus {
    // SAFETY: the caller's contract for `model`.
    let l = match unsafe { loaded(model) } {
        Ok(l) => l,
        Err(s) => return s,
    };
    if out.is_null() {
        return SK_ERR_NULL;
    }
    // SAFETY: non-null and writable (the caller's contract).
    unsafe { put(out, figure(&l.model)) };
    SK_OK
}

/// The input length in bytes (h * w * c): the `input_len` that `sk_run` takes.
///
/// # Safety
/// `model` as for every call; `len` is NULL or a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sk_model_input_len(model: *const SkModel, len: *mut usize) -> SkStatus {
    // SAFETY: the caller's contract for `model` and `len`.
    unsafe { size_of_model(model, len, |m| m.input_len()) }
}

/// The number of classes: the int8 logits a run writes.
///
/// # Safety
/// `model` as for every call; `classes` is NULL or a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sk_model_classes(model: *const SkModel, classes: *mut usize) -> SkStatus {
    // SAFETY: the caller's contract for `model` and `classes`.
    unsafe { size_of_model(model, classes, |m| m.classes()) }
}

/// The number of ops a run executes (the op indices a per-op callback sees: 0 to ops - 1).
///
/// # Safety
/// `model` as for every call; `ops` is NULL or a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sk_model_ops(model: *const SkModel, ops: *mut usize) -> SkStatus {
    // SAFETY: the caller's contract for `model` and `ops`.
    unsafe { size_of_model(model, ops, |m| usize::from(m.header().ops)) }
}

/// The name of class `index`: `*name` points to `*len` UTF-8 bytes inside the model bytes (not
/// NUL-terminated). Models without names (`.skq` formats 3 and 4, or a quantizer that wrote
/// none) return `SK_ERR_NO_CLASS_NAMES` (after checking `index`), with `*name = NULL` and
/// `*len = 0`.
///
/// # Safety
/// `model` as for every call; `name` is NULL or a writable `const char *`, `len` NULL or a
/// writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sk_model_class_name(
    model: *const SkModel,
    index: usize,
    name: *mut *const c_char,
    len: *mut usize,
) -> SkStatus {
    // SAFETY: the caller's contract for `model`.
    let l = match unsafe { loaded(model) } {
        Ok(l) => l,
        Err(s) => return s,
    };
    if name.is_null() || len.is_null() {
        return SK_ERR_NULL;
    }
    // SAFETY: both non-null and writable (the caller's contract).
    unsafe {
        put(name, ptr::null());
        put(len, 0);
    }
    if index >= l.model.classes() {
        return SK_ERR_CLASS_INDEX;
    }
    match l.model.class_name(index) {
        Some(n) => {
            // SAFETY: both non-null and writable (the caller's contract); `n` lives in the
            // model bytes, which outlive the handle.
            unsafe {
                put(name, n.as_ptr().cast::<c_char>());
                put(len, n.len());
            }
            SK_OK
        }
        None => SK_ERR_NO_CLASS_NAMES,
    }
}

/// Runs the model on one image: `input` is `input_len` u8 pixels (HWC, exactly
/// `sk_model_input_len` bytes), `arena` at least `sk_model_arena` bytes at its alignment, and
/// the first `classes` bytes of `output` (`output_len >= classes`) receive the int8 logits.
/// Nothing else is written. The arena needs no clearing; one arena serves any number of runs
/// of one model at a time. No buffer may overlap another or the handle or the model bytes.
///
/// # Safety
/// `model` as for every call; `input` NULL or `input_len` readable bytes; `arena` NULL or
/// `arena_len` writable bytes; `output` NULL or `output_len` writable bytes; none of them
/// accessed by anyone else during the call.
#[no_mangle]
pub unsafe extern "C" fn sk_run(
    model: *const SkModel,
    input: *const u8,
    input_len: usize,
    arena: *mut c_void,
    arena_len: usize,
    output: *mut i8,
    output_len: usize,
) -> SkStatus {
    let mut none = Hooks::NONE;
    // SAFETY: the caller's contract, passed on.
    unsafe {
        run_with(
            model,
            Buffers {
                input,
                input_len,
                arena,
                arena_len,
                output,
                output_len,
            },
            &mut none,
        )
    }
}

/// `sk_run` with a per-op callback: `callback(user, op_index, kind, SK_OP_BEGIN)` before op
/// `op_index` runs and `callback(user, op_index, kind, SK_OP_END)` after, for every op in
/// order (time each op between the two). A NULL `callback` is `SK_ERR_NULL`; `user` is passed
/// on as it is (it may be NULL).
///
/// # Safety
/// As `sk_run`; `callback` is NULL or a function that is safe to call with these arguments and
/// does not touch the arena, the output or the handle.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn sk_run_profiled(
    model: *const SkModel,
    input: *const u8,
    input_len: usize,
    arena: *mut c_void,
    arena_len: usize,
    output: *mut i8,
    output_len: usize,
    callback: SkOpCallback,
    user: *mut c_void,
) -> SkStatus {
    // SAFETY: the caller's contract for `model`.
    let l = match unsafe { loaded(model) } {
        Ok(l) => l,
        Err(s) => return s,
    };
    if callback.is_none() {
        return SK_ERR_NULL;
    }
    let mut hooks = Hooks {
        f: callback,
        user,
        ops: Some(l.model.ops()),
        kind: c"op",
    };
    // SAFETY: the caller's contract, passed on.
    unsafe {
        run_with(
            model,
            Buffers {
                input,
                input_len,
                arena,
                arena_len,
                output,
                output_len,
            },
            &mut hooks,
        )
    }
}

/// The caller's buffers of a run, unchecked.
struct Buffers {
    input: *const u8,
    input_len: usize,
    arena: *mut c_void,
    arena_len: usize,
    output: *mut i8,
    output_len: usize,
}

/// The run behind `sk_run` and `sk_run_profiled`: every check, then `firmware::run`.
///
/// # Safety
/// As `sk_run`.
unsafe fn run_with(model: *const SkModel, b: Buffers, profiler: &mut impl Profiler) -> SkStatus {
    // SAFETY: the caller's contract for `model`.
    let l = match unsafe { loaded(model) } {
        Ok(l) => l,
        Err(s) => return s,
    };
    let m = &l.model;
    if b.input.is_null() || b.arena.is_null() || b.output.is_null() {
        return SK_ERR_NULL;
    }
    let max = isize::MAX as usize;
    if b.input_len > max || b.arena_len > max || b.output_len > max {
        return SK_ERR_BAD_LENGTH;
    }
    if b.input_len != m.input_len() {
        return SK_ERR_INPUT_SIZE;
    }
    if b.arena_len < m.arena_bytes() {
        return SK_ERR_ARENA_TOO_SMALL;
    }
    if !(b.arena as usize).is_multiple_of(m.arena_align().max(1)) {
        return SK_ERR_ARENA_MISALIGNED;
    }
    if b.output_len < m.classes() {
        return SK_ERR_OUTPUT_TOO_SMALL;
    }
    let input = (b.input as usize, b.input_len);
    let arena = (b.arena as usize, b.arena_len);
    let output = (b.output as usize, b.output_len);
    let bytes = (l.bytes.as_ptr() as usize, l.bytes.len());
    let handle = range_of(model);
    let written = [arena, output];
    let all = [input, arena, output, bytes, handle];
    let overlapping = written.iter().enumerate().any(|(i, w)| {
        all.iter()
            .enumerate()
            .any(|(j, o)| j != i + 1 && overlaps(*w, *o))
    });
    if overlapping {
        return SK_ERR_BUFFERS_OVERLAP;
    }
    // SAFETY: non-null, `input_len <= isize::MAX` readable bytes (the caller's contract), not
    // written during the call: the arena and the output, the only buffers written, do not
    // overlap it (checked above).
    let input = unsafe { core::slice::from_raw_parts(b.input, b.input_len) };
    // SAFETY: non-null, `arena_len <= isize::MAX` writable bytes (the caller's contract); no
    // other buffer of the call, nor the handle or the model bytes, overlaps it (checked above).
    // `i8` has alignment 1 and every bit pattern is valid.
    let arena = unsafe { core::slice::from_raw_parts_mut(b.arena.cast::<i8>(), b.arena_len) };
    let logits = match firmware::run(m, input, arena, profiler) {
        Ok(logits) => logits,
        Err(e) => return run_status(e),
    };
    // SAFETY: non-null, `output_len <= isize::MAX` writable bytes (the caller's contract),
    // disjoint from every other buffer (checked above).
    let output = unsafe { core::slice::from_raw_parts_mut(b.output, b.output_len) };
    match output.get_mut(..logits.len()) {
        Some(o) => o.copy_from_slice(logits),
        None => return SK_ERR_OUTPUT_TOO_SMALL, // never: logits.len() == classes
    }
    SK_OK
}

/// The per-op callback as an engine `Profiler`: the ops iterator runs alongside the engine
/// (it calls `begin` for op 0, 1, .. in order) to name each op's kind. `sk_run` uses it too,
/// without a callback ([`Hooks::NONE`]), so that the image holds one instance of the engine.
struct Hooks<'a> {
    f: SkOpCallback,
    user: *mut c_void,
    ops: Option<Ops<'a>>,
    kind: &'static CStr,
}

impl Hooks<'_> {
    /// No callback: every hook returns at once.
    const NONE: Hooks<'static> = Hooks {
        f: None,
        user: ptr::null_mut(),
        ops: None,
        kind: c"op",
    };

    fn call(&mut self, op_index: usize, event: SkOpEvent) {
        if let Some(f) = self.f {
            // SAFETY: `f` is a function safe to call with these arguments (the contract of
            // `sk_run_profiled`); `kind` is a static NUL-terminated string.
            unsafe { f(self.user, op_index, self.kind.as_ptr(), event) }
        }
    }
}

impl Profiler for Hooks<'_> {
    fn begin(&mut self, op_index: usize) {
        if self.f.is_none() {
            return;
        }
        self.kind = match self.ops.as_mut().and_then(Iterator::next) {
            Some(Ok(op)) => kind_name(op.kind()),
            _ => c"op",
        };
        self.call(op_index, SK_OP_BEGIN);
    }
    fn end(&mut self, op_index: usize, _output: &[i8]) {
        self.call(op_index, SK_OP_END);
    }
}

/// The NUL-terminated form of a `firmware::format::Op::kind` name (`op` for a name this
/// library does not know).
pub fn kind_name(kind: &str) -> &'static CStr {
    match kind {
        "conv1x1" => c"conv1x1",
        "shift-conv1x1" => c"shift-conv1x1",
        "conv3x3" => c"conv3x3",
        "conv" => c"conv",
        "add" => c"add",
        "avgpool2" => c"avgpool2",
        "maxpool3s2" => c"maxpool3s2",
        "global-avgpool" => c"global-avgpool",
        "fc" => c"fc",
        _ => c"op",
    }
}

/// The staticlib's panic handler (feature `panic-handler`): the engine does not panic, so this
/// is only the backstop every `no_std` staticlib must link. It stops the program: `abort()` on
/// Linux, a permanently undefined instruction (a fault) on Arm, else a spin loop.
#[cfg(feature = "panic-handler")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn abort() -> !;
        }
        // SAFETY: the C library's `abort` takes no arguments and never returns; every Linux
        // program this library links into has a C library.
        unsafe { abort() }
    }
    #[cfg(all(not(target_os = "linux"), target_arch = "arm"))]
    {
        // SAFETY: `udf` raises an undefined-instruction fault; it touches no memory.
        unsafe { core::arch::asm!("udf #0", options(noreturn, nomem, nostack)) }
    }
    #[cfg(not(any(target_os = "linux", target_arch = "arm")))]
    loop {
        core::hint::spin_loop();
    }
}
