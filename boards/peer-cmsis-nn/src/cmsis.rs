//! The few CMSIS-NN types and functions the peer run calls (`Include/arm_nn_types.h`,
//! `Include/arm_nnfunctions.h`), declared by hand: `#[repr(C)]` mirrors of the structs, the
//! kernels TFLite Micro's CMSIS-NN ops call for our op kinds (in [`ffi`], the crate's only
//! `unsafe`), and one safe wrapper per kernel. A wrapper checks every slice against the lengths
//! the kernel will read or write (from the dims it is given) and returns the kernel call as a
//! closure, so the caller times the call alone, without the checks.
#![allow(non_camel_case_types)]

use peer_common::{AddArgs, Pool, Quant};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cmsis_nn_tile {
    pub w: i32,
    pub h: i32,
}

impl cmsis_nn_tile {
    pub const fn square(v: i32) -> Self {
        cmsis_nn_tile { w: v, h: v }
    }
}

/// The kernels' scratch buffer; made only by the wrappers, from a `&mut [i8]`.
#[repr(C)]
pub struct cmsis_nn_context {
    buf: *mut core::ffi::c_void,
    size: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cmsis_nn_dims {
    pub n: i32,
    pub h: i32,
    pub w: i32,
    pub c: i32,
}

impl cmsis_nn_dims {
    pub const fn new(n: i32, h: i32, w: i32, c: i32) -> Self {
        cmsis_nn_dims { n, h, w, c }
    }
}

/// Per-output-channel multipliers and shifts; made only by [`quant_params`].
#[repr(C)]
pub struct cmsis_nn_per_channel_quant_params {
    multiplier: *const i32,
    shift: *const i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cmsis_nn_activation {
    pub min: i32,
    pub max: i32,
}

#[repr(C)]
pub struct cmsis_nn_conv_params {
    /// The negative of the input's zero point.
    pub input_offset: i32,
    /// The output's zero point.
    pub output_offset: i32,
    pub stride: cmsis_nn_tile,
    pub padding: cmsis_nn_tile,
    pub dilation: cmsis_nn_tile,
    pub activation: cmsis_nn_activation,
}

#[repr(C)]
pub struct cmsis_nn_pool_params {
    pub stride: cmsis_nn_tile,
    pub padding: cmsis_nn_tile,
    pub activation: cmsis_nn_activation,
}

#[repr(C)]
pub struct cmsis_nn_fc_params {
    pub input_offset: i32,
    pub filter_offset: i32,
    pub output_offset: i32,
    pub activation: cmsis_nn_activation,
}

/// `arm_cmsis_nn_status`: 0 is success.
pub type Status = i32;

/// The raw declarations; only the wrappers below call them.
#[allow(unsafe_code)]
mod ffi {
    use super::{
        cmsis_nn_context, cmsis_nn_conv_params, cmsis_nn_dims, cmsis_nn_fc_params,
        cmsis_nn_per_channel_quant_params, cmsis_nn_pool_params, Status,
    };

    extern "C" {
        pub fn arm_convolve_wrapper_s8_get_buffer_size(
            conv_params: *const cmsis_nn_conv_params,
            input_dims: *const cmsis_nn_dims,
            filter_dims: *const cmsis_nn_dims,
            output_dims: *const cmsis_nn_dims,
        ) -> i32;

        pub fn arm_convolve_wrapper_s8(
            ctx: *const cmsis_nn_context,
            conv_params: *const cmsis_nn_conv_params,
            quant_params: *const cmsis_nn_per_channel_quant_params,
            input_dims: *const cmsis_nn_dims,
            input_data: *const i8,
            filter_dims: *const cmsis_nn_dims,
            filter_data: *const i8,
            bias_dims: *const cmsis_nn_dims,
            bias_data: *const i32,
            output_dims: *const cmsis_nn_dims,
            output_data: *mut i8,
        ) -> Status;

        pub fn arm_fully_connected_per_channel_s8(
            ctx: *const cmsis_nn_context,
            fc_params: *const cmsis_nn_fc_params,
            quant_params: *const cmsis_nn_per_channel_quant_params,
            input_dims: *const cmsis_nn_dims,
            input_data: *const i8,
            filter_dims: *const cmsis_nn_dims,
            filter_data: *const i8,
            bias_dims: *const cmsis_nn_dims,
            bias_data: *const i32,
            output_dims: *const cmsis_nn_dims,
            output_data: *mut i8,
        ) -> Status;

        pub fn arm_fully_connected_s8_get_buffer_size(filter_dims: *const cmsis_nn_dims) -> i32;

        #[allow(clippy::too_many_arguments)]
        pub fn arm_elementwise_add_s8(
            input_1_vect: *const i8,
            input_2_vect: *const i8,
            input_1_offset: i32,
            input_1_mult: i32,
            input_1_shift: i32,
            input_2_offset: i32,
            input_2_mult: i32,
            input_2_shift: i32,
            left_shift: i32,
            output: *mut i8,
            out_offset: i32,
            out_mult: i32,
            out_shift: i32,
            out_activation_min: i32,
            out_activation_max: i32,
            block_size: i32,
        ) -> Status;

        pub fn arm_avgpool_s8_get_buffer_size(dim_dst_width: i32, ch_src: i32) -> i32;

        pub fn arm_avgpool_s8(
            ctx: *const cmsis_nn_context,
            pool_params: *const cmsis_nn_pool_params,
            input_dims: *const cmsis_nn_dims,
            input_data: *const i8,
            filter_dims: *const cmsis_nn_dims,
            output_dims: *const cmsis_nn_dims,
            output_data: *mut i8,
        ) -> Status;

        pub fn arm_max_pool_s8(
            ctx: *const cmsis_nn_context,
            pool_params: *const cmsis_nn_pool_params,
            input_dims: *const cmsis_nn_dims,
            input_data: *const i8,
            filter_dims: *const cmsis_nn_dims,
            output_dims: *const cmsis_nn_dims,
            output_data: *mut i8,
        ) -> Status;
    }
}

/// Why a wrapper refused a call: which slice is shorter than the kernel would use.
pub use peer_common::LengthError;

/// Elements of a `n x h x w x c` tensor; `None` if a dimension is negative or it overflows.
fn elements(d: &cmsis_nn_dims) -> Option<usize> {
    [d.n, d.h, d.w, d.c]
        .into_iter()
        .try_fold(1usize, |acc, v| acc.checked_mul(usize::try_from(v).ok()?))
}

/// `Ok` if `have` holds the `d` tensor's elements (of `size` bytes each).
fn holds(
    have: usize,
    d: &cmsis_nn_dims,
    size: usize,
    what: LengthError,
) -> Result<(), LengthError> {
    match elements(d).and_then(|n| n.checked_mul(size)) {
        Some(need) if need <= have => Ok(()),
        _ => Err(what),
    }
}

/// The scratch context over all of `scratch`, if it is at least `need` bytes (`need` from a
/// kernel's `..._get_buffer_size`; CMSIS-NN uses at most that many).
fn context(scratch: &mut [i8], need: i32) -> Result<cmsis_nn_context, LengthError> {
    let size = i32::try_from(scratch.len()).map_err(|_| "the scratch is over 2 GB")?;
    if need > size {
        return Err("CMSIS-NN's scratch does not fit");
    }
    Ok(cmsis_nn_context {
        buf: scratch.as_mut_ptr().cast(),
        size,
    })
}

/// The requantisation arrays as CMSIS-NN takes them.
fn quant_params(q: &Quant<'_>) -> cmsis_nn_per_channel_quant_params {
    cmsis_nn_per_channel_quant_params {
        multiplier: q.multiplier(),
        shift: q.shift(),
    }
}

/// The scratch bytes `arm_convolve_wrapper_s8` needs for this conv.
#[allow(unsafe_code)]
pub fn convolve_buffer_size(
    params: &cmsis_nn_conv_params,
    dx: &cmsis_nn_dims,
    dw: &cmsis_nn_dims,
    dy: &cmsis_nn_dims,
) -> i32 {
    // SAFETY: the function reads the four structs it is given (valid references) and nothing
    // else.
    unsafe { ffi::arm_convolve_wrapper_s8_get_buffer_size(params, dx, dw, dy) }
}

/// `arm_convolve_wrapper_s8` over `x` (`dx`), filter `w` (`dw`, OHWI), bias `bias` (`cout`
/// little-endian i32s, 4-byte aligned) and `quant` into `y` (`dy`), with `scratch` as its
/// buffer: checks every length, then returns the call.
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
pub fn convolve<'a>(
    scratch: &'a mut [i8],
    params: &'a cmsis_nn_conv_params,
    quant: Quant<'a>,
    dx: &'a cmsis_nn_dims,
    x: &'a [i8],
    dw: &'a cmsis_nn_dims,
    w: &'a [u8],
    dy: &'a cmsis_nn_dims,
    bias: &'a [i8],
    y: &'a mut [i8],
) -> Result<impl FnOnce() -> Status + 'a, LengthError> {
    holds(x.len(), dx, 1, "conv input shorter than its dims")?;
    holds(w.len(), dw, 1, "conv weights shorter than their dims")?;
    holds(y.len(), dy, 1, "conv output shorter than its dims")?;
    let db = cmsis_nn_dims::new(1, 1, 1, dy.c);
    holds(bias.len(), &db, 4, "conv bias shorter than its channels")?;
    holds(
        quant.channels(),
        &db,
        1,
        "conv requantisation shorter than its channels",
    )?;
    if dw.n != dy.c || dw.c != dx.c {
        return Err("conv filter dims do not match its input and output channels");
    }
    if !(bias.as_ptr() as usize).is_multiple_of(4) {
        return Err("conv bias not 4-byte aligned");
    }
    let ctx = context(scratch, convolve_buffer_size(params, dx, dw, dy))?;
    let q = quant_params(&quant);
    Ok(move || {
        // SAFETY: the kernel reads `dx`'s elements from `x`, `dw`'s from `w`, `dy.c` i32s from
        // `bias` (aligned) and from both requantisation arrays, and writes `dy`'s elements to
        // `y` and at most the buffer size it asked for to the scratch: all checked above, all
        // borrowed for the call (`y` and the scratch mutably, so nothing else aliases them).
        unsafe {
            ffi::arm_convolve_wrapper_s8(
                &ctx,
                params,
                &q,
                dx,
                x.as_ptr(),
                dw,
                w.as_ptr().cast(),
                &db,
                bias.as_ptr().cast(),
                dy,
                y.as_mut_ptr(),
            )
        }
    })
}

/// `arm_fully_connected_per_channel_s8`: `cin = elements(dx)` inputs, filter `w` (`dw` =
/// `(cin, 1, 1, cout)`), bias (`cout` little-endian i32s, 4-byte aligned), `quant`, into `y`
/// (`dy`): checks every length, then returns the call.
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
pub fn fully_connected<'a>(
    scratch: &'a mut [i8],
    params: &'a cmsis_nn_fc_params,
    quant: Quant<'a>,
    dx: &'a cmsis_nn_dims,
    x: &'a [i8],
    dw: &'a cmsis_nn_dims,
    w: &'a [u8],
    dy: &'a cmsis_nn_dims,
    bias: &'a [i8],
    y: &'a mut [i8],
) -> Result<impl FnOnce() -> Status + 'a, LengthError> {
    holds(x.len(), dx, 1, "fc input shorter than its dims")?;
    holds(w.len(), dw, 1, "fc weights shorter than their dims")?;
    holds(y.len(), dy, 1, "fc output shorter than its dims")?;
    let db = cmsis_nn_dims::new(1, 1, 1, dy.c);
    holds(bias.len(), &db, 4, "fc bias shorter than its channels")?;
    holds(
        quant.channels(),
        &db,
        1,
        "fc requantisation shorter than its channels",
    )?;
    if dw.c != dy.c || elements(dx) != usize::try_from(dw.n).ok() {
        return Err("fc filter dims do not match its input and output");
    }
    if !(bias.as_ptr() as usize).is_multiple_of(4) {
        return Err("fc bias not 4-byte aligned");
    }
    // SAFETY: the function reads the struct it is given and nothing else.
    let need = unsafe { ffi::arm_fully_connected_s8_get_buffer_size(dw) };
    let ctx = context(scratch, need)?;
    let q = quant_params(&quant);
    Ok(move || {
        // SAFETY: the kernel reads `dw.n` = `elements(dx)` inputs from `x`, `dw`'s elements from
        // `w`, `dy.c` i32s from `bias` (aligned) and both requantisation arrays, and writes
        // `dy`'s elements to `y` and at most its buffer size to the scratch: all checked above,
        // all borrowed for the call (`y` and the scratch mutably).
        unsafe {
            ffi::arm_fully_connected_per_channel_s8(
                &ctx,
                params,
                &q,
                dx,
                x.as_ptr(),
                dw,
                w.as_ptr().cast(),
                &db,
                bias.as_ptr().cast(),
                dy,
                y.as_mut_ptr(),
            )
        }
    })
}

/// `arm_elementwise_add_s8` over all of `y` (`a` and `b` at least as long): checks the lengths,
/// then returns the call.
#[allow(unsafe_code)]
pub fn elementwise_add<'a>(
    a: &'a [i8],
    b: &'a [i8],
    y: &'a mut [i8],
    p: AddArgs,
) -> Result<impl FnOnce() -> Status + 'a, LengthError> {
    if a.len() < y.len() || b.len() < y.len() {
        return Err("add input shorter than its output");
    }
    let n = i32::try_from(y.len()).map_err(|_| "add over more than 2^31 elements")?;
    Ok(move || {
        // SAFETY: the kernel reads `n = y.len()` elements from each of `a` and `b` (checked at
        // least that long) and writes `n` to `y`, borrowed mutably for the call.
        unsafe {
            ffi::arm_elementwise_add_s8(
                a.as_ptr(),
                b.as_ptr(),
                p.a_offset,
                p.a_multiplier,
                p.a_shift,
                p.b_offset,
                p.b_multiplier,
                p.b_shift,
                p.left_shift,
                y.as_mut_ptr(),
                p.out_offset,
                p.out_multiplier,
                p.out_shift,
                p.act_min,
                p.act_max,
                n,
            )
        }
    })
}

/// `arm_avgpool_s8` or `arm_max_pool_s8` from `x` (`dx`) into `y` (`dy`), window `df`, with
/// `scratch` as the average pool's buffer: checks the lengths, then returns the call.
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
pub fn pool<'a>(
    kind: Pool,
    scratch: &'a mut [i8],
    params: &'a cmsis_nn_pool_params,
    dx: &'a cmsis_nn_dims,
    x: &'a [i8],
    df: &'a cmsis_nn_dims,
    dy: &'a cmsis_nn_dims,
    y: &'a mut [i8],
) -> Result<impl FnOnce() -> Status + 'a, LengthError> {
    holds(x.len(), dx, 1, "pool input shorter than its dims")?;
    holds(y.len(), dy, 1, "pool output shorter than its dims")?;
    if dx.c != dy.c {
        return Err("pool input and output channels differ");
    }
    // SAFETY: the function computes a size from its two integers and touches no memory.
    let need = unsafe { ffi::arm_avgpool_s8_get_buffer_size(dy.w, dx.c) };
    let ctx = context(scratch, need)?;
    Ok(move || {
        // SAFETY: the kernel reads `dx`'s elements from `x` (its window and padding stay inside
        // the input dims), writes `dy`'s elements to `y` and at most its buffer size to the
        // scratch: checked above, all borrowed for the call (`y` and the scratch mutably).
        unsafe {
            match kind {
                Pool::Max => {
                    ffi::arm_max_pool_s8(&ctx, params, dx, x.as_ptr(), df, dy, y.as_mut_ptr())
                }
                Pool::Average => {
                    ffi::arm_avgpool_s8(&ctx, params, dx, x.as_ptr(), df, dy, y.as_mut_ptr())
                }
            }
        }
    })
}
