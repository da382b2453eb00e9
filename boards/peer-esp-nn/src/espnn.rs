//! The few ESP-NN types and functions the peer run calls (`include/esp_nn_defs.h`,
//! `include/esp_nn_ansi_headers.h`, `src/convolution/esp_nn_conv_opt.c`), declared by hand:
//! `#[repr(C)]` mirrors of the structs, the kernels for our op kinds (in [`ffi`], the crate's
//! only `unsafe`), and one safe wrapper per kernel. A wrapper checks every slice against the
//! lengths the kernel will read or write and returns the call as a closure, so that the caller
//! times the kernel alone. ESP-NN's kernels need no scratch (the `_ansi` and `_opt` convs'
//! scratch sizes are 0).
#![allow(non_camel_case_types)]

use peer_common::{AddArgs, Pool, Quant};

/// `data_dims_t`: width, height, channels, extra (batch).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct data_dims_t {
    pub width: i32,
    pub height: i32,
    pub channels: i32,
    pub extra: i32,
}

impl data_dims_t {
    pub const fn new(height: i32, width: i32, channels: i32) -> Self {
        data_dims_t {
            width,
            height,
            channels,
            extra: 1,
        }
    }
    fn elements(&self) -> Option<usize> {
        [self.width, self.height, self.channels]
            .into_iter()
            .try_fold(1usize, |acc, v| acc.checked_mul(usize::try_from(v).ok()?))
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct data_2d_t {
    pub width: i32,
    pub height: i32,
}

impl data_2d_t {
    pub const fn square(v: i32) -> Self {
        data_2d_t {
            width: v,
            height: v,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct act_params_t {
    pub min: i32,
    pub max: i32,
}

/// `quant_data_t`: per-channel shifts, then multipliers; made only by [`quant_params`].
#[repr(C)]
pub struct quant_data_t {
    shift: *const i32,
    mult: *const i32,
}

#[repr(C)]
pub struct conv_params_t {
    /// The negative of the input's zero point (added to in-image inputs only).
    pub in_offset: i32,
    /// The output's zero point.
    pub out_offset: i32,
    pub stride: data_2d_t,
    pub padding: data_2d_t,
    pub dilation: data_2d_t,
    pub activation: act_params_t,
}

/// The raw declarations; only the wrappers below call them.
#[allow(unsafe_code)]
mod ffi {
    use super::{conv_params_t, data_dims_t, quant_data_t};

    extern "C" {
        pub fn esp_nn_conv_s8_ansi(
            input_dims: *const data_dims_t,
            input_data: *const i8,
            filter_dims: *const data_dims_t,
            filter_data: *const i8,
            bias: *const i32,
            output_dims: *const data_dims_t,
            out_data: *mut i8,
            conv_params: *const conv_params_t,
            quant_data: *const quant_data_t,
        );

        pub fn esp_nn_conv_s8_opt(
            input_dims: *const data_dims_t,
            input_data: *const i8,
            filter_dims: *const data_dims_t,
            filter_data: *const i8,
            bias: *const i32,
            output_dims: *const data_dims_t,
            out_data: *mut i8,
            conv_params: *const conv_params_t,
            quant_data: *const quant_data_t,
        );

        pub fn esp_nn_add_elementwise_s8_ansi(
            input1_data: *const i8,
            input2_data: *const i8,
            input1_offset: i32,
            input2_offset: i32,
            input1_mult: i32,
            input2_mult: i32,
            input1_shift: i32,
            input2_shift: i32,
            left_shift: i32,
            output: *mut i8,
            out_offset: i32,
            out_mult: i32,
            out_shift: i32,
            activation_min: i32,
            activation_max: i32,
            size: i32,
        );

        pub fn esp_nn_avg_pool_s8_ansi(
            input: *const i8,
            input_wd: u16,
            input_ht: u16,
            output: *mut i8,
            output_wd: u16,
            output_ht: u16,
            stride_wd: u16,
            stride_ht: u16,
            filter_wd: u16,
            filter_ht: u16,
            pad_wd: u16,
            pad_ht: u16,
            activation_min: i32,
            activation_max: i32,
            channels: u16,
        );

        pub fn esp_nn_max_pool_s8_ansi(
            input: *const i8,
            input_wd: u16,
            input_ht: u16,
            output: *mut i8,
            output_wd: u16,
            output_ht: u16,
            stride_wd: u16,
            stride_ht: u16,
            filter_wd: u16,
            filter_ht: u16,
            pad_wd: u16,
            pad_ht: u16,
            activation_min: i32,
            activation_max: i32,
            channels: u16,
        );

        pub fn esp_nn_fully_connected_per_ch_s8_ansi(
            input_data: *const i8,
            input_offset: i32,
            row_len: u16,
            filter_data: *const i8,
            filter_offset: i32,
            bias: *const i32,
            out_data: *mut i8,
            out_channels: u16,
            out_offset: i32,
            out_shift: *const i32,
            out_mult: *const i32,
            activation_min: i32,
            activation_max: i32,
        );
    }
}

/// Why a wrapper refused a call.
pub use peer_common::LengthError;

/// The requantisation arrays as ESP-NN takes them.
fn quant_params(q: &Quant<'_>) -> quant_data_t {
    quant_data_t {
        shift: q.shift(),
        mult: q.multiplier(),
    }
}

/// Which conv ESP-NN runs: the reference or its portable-C "opt" one (1x1 fast path). A build
/// constructs one of the two (`ESP_NN_KERNELS`).
#[allow(dead_code)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    Ansi,
    Opt,
}

fn fits(have: usize, need: Option<usize>, what: LengthError) -> Result<(), LengthError> {
    match need {
        Some(n) if n <= have => Ok(()),
        _ => Err(what),
    }
}

/// `esp_nn_conv_s8_ansi` / `_opt` over `x` (`dx`), filter `w` (`cout x k x k x cin`), bias
/// (`cout` i32s, 4-byte aligned), `quant` into `y` (`dy`): checks every length, then returns
/// the call.
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
pub fn convolve<'a>(
    which: Conv,
    params: &'a conv_params_t,
    quant: Quant<'a>,
    dx: &'a data_dims_t,
    x: &'a [i8],
    dw: &'a data_dims_t,
    w: &'a [u8],
    dy: &'a data_dims_t,
    bias: &'a [i8],
    y: &'a mut [i8],
) -> Result<impl FnOnce() + 'a, LengthError> {
    let cout = usize::try_from(dy.channels).map_err(|_| "conv channels")?;
    fits(x.len(), dx.elements(), "conv input shorter than its dims")?;
    fits(
        w.len(),
        dw.elements().and_then(|n| n.checked_mul(cout)),
        "conv weights shorter than their dims",
    )?;
    fits(y.len(), dy.elements(), "conv output shorter than its dims")?;
    fits(
        bias.len(),
        cout.checked_mul(4),
        "conv bias shorter than its channels",
    )?;
    fits(
        quant.channels(),
        Some(cout),
        "conv requantisation shorter than its channels",
    )?;
    if dw.channels != dx.channels {
        return Err("conv filter dims do not match its input channels");
    }
    // The `_opt` 1x1 path reads input pixel (stride * out) unclipped.
    let (s, p) = (params.stride.height, params.padding.height);
    if dy.height < 1
        || dy.width < 1
        || (dy.height - 1) * s - p >= dx.height
        || (dy.width - 1) * s - p >= dx.width
    {
        return Err("conv output larger than its input, stride and padding give");
    }
    if !(bias.as_ptr() as usize).is_multiple_of(4) {
        return Err("conv bias not 4-byte aligned");
    }
    let q = quant_params(&quant);
    Ok(move || {
        // SAFETY: the kernel reads `dx`'s elements from `x` (taps outside the image are
        // skipped), `dw` x `cout` weights from `w`, `cout` i32s from `bias` (aligned) and both
        // requantisation arrays, and writes `dy`'s elements to `y`: all checked above and
        // borrowed for the call (`y` mutably, so nothing else aliases it).
        unsafe {
            let f = match which {
                Conv::Ansi => ffi::esp_nn_conv_s8_ansi,
                Conv::Opt => ffi::esp_nn_conv_s8_opt,
            };
            f(
                dx,
                x.as_ptr(),
                dw,
                w.as_ptr().cast(),
                bias.as_ptr().cast(),
                dy,
                y.as_mut_ptr(),
                params,
                &q,
            )
        }
    })
}

/// `esp_nn_fully_connected_per_ch_s8_ansi`: `x.len()` inputs, filter `w` (`cout x cin`), bias
/// (`cout` i32s, aligned), `quant`, into all of `y`.
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
pub fn fully_connected<'a>(
    input_offset: i32,
    output_offset: i32,
    act: act_params_t,
    quant: Quant<'a>,
    x: &'a [i8],
    w: &'a [u8],
    bias: &'a [i8],
    y: &'a mut [i8],
) -> Result<impl FnOnce() + 'a, LengthError> {
    let (cin, cout) = (x.len(), y.len());
    let row = u16::try_from(cin).map_err(|_| "fc input over 65535")?;
    let n = u16::try_from(cout).map_err(|_| "fc output over 65535")?;
    fits(
        w.len(),
        cin.checked_mul(cout),
        "fc weights shorter than cin x cout",
    )?;
    fits(
        bias.len(),
        cout.checked_mul(4),
        "fc bias shorter than its channels",
    )?;
    fits(
        quant.channels(),
        Some(cout),
        "fc requantisation shorter than its channels",
    )?;
    if !(bias.as_ptr() as usize).is_multiple_of(4) {
        return Err("fc bias not 4-byte aligned");
    }
    let q = quant_params(&quant);
    Ok(move || {
        // SAFETY: the kernel reads `cin` inputs, `cin x cout` weights, `cout` i32s of bias and
        // of both requantisation arrays, and writes `cout` outputs: checked above.
        unsafe {
            ffi::esp_nn_fully_connected_per_ch_s8_ansi(
                x.as_ptr(),
                input_offset,
                row,
                w.as_ptr().cast(),
                0,
                bias.as_ptr().cast(),
                y.as_mut_ptr(),
                n,
                output_offset,
                q.shift,
                q.mult,
                act.min,
                act.max,
            )
        }
    })
}

/// `esp_nn_add_elementwise_s8_ansi` over all of `y` (`a` and `b` at least as long).
#[allow(unsafe_code)]
pub fn elementwise_add<'a>(
    a: &'a [i8],
    b: &'a [i8],
    y: &'a mut [i8],
    p: AddArgs,
) -> Result<impl FnOnce() + 'a, LengthError> {
    if a.len() < y.len() || b.len() < y.len() {
        return Err("add input shorter than its output");
    }
    let n = i32::try_from(y.len()).map_err(|_| "add over more than 2^31 elements")?;
    Ok(move || {
        // SAFETY: the kernel reads `n = y.len()` elements of `a` and `b` (checked at least that
        // long) and writes `n` to `y`, borrowed mutably for the call.
        unsafe {
            ffi::esp_nn_add_elementwise_s8_ansi(
                a.as_ptr(),
                b.as_ptr(),
                p.a_offset,
                p.b_offset,
                p.a_multiplier,
                p.b_multiplier,
                p.a_shift,
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

/// A pool's window: filter, stride, padding (square).
#[derive(Clone, Copy)]
pub struct Window {
    pub filter: (u16, u16),
    pub stride: u16,
    pub pad: u16,
}

/// `esp_nn_avg_pool_s8_ansi` or `esp_nn_max_pool_s8_ansi` from `x` (`dx`) into `y` (`dy`,
/// same channels), no activation clamp beyond int8.
#[allow(unsafe_code)]
pub fn pool<'a>(
    kind: Pool,
    win: Window,
    dx: &'a data_dims_t,
    x: &'a [i8],
    dy: &'a data_dims_t,
    y: &'a mut [i8],
) -> Result<impl FnOnce() + 'a, LengthError> {
    fits(x.len(), dx.elements(), "pool input shorter than its dims")?;
    fits(y.len(), dy.elements(), "pool output shorter than its dims")?;
    if dx.channels != dy.channels {
        return Err("pool input and output channels differ");
    }
    let d = |v: i32| u16::try_from(v).map_err(|_| "pool dims over 65535");
    let (iw, ih, ow, oh, c) = (
        d(dx.width)?,
        d(dx.height)?,
        d(dy.width)?,
        d(dy.height)?,
        d(dx.channels)?,
    );
    Ok(move || {
        // SAFETY: the kernels read inside `dx` (windows clipped to the input box), and write
        // `dy`'s elements to `y`: checked above, `y` borrowed mutably for the call.
        unsafe {
            let f = match kind {
                Pool::Average => ffi::esp_nn_avg_pool_s8_ansi,
                Pool::Max => ffi::esp_nn_max_pool_s8_ansi,
            };
            f(
                x.as_ptr(),
                iw,
                ih,
                y.as_mut_ptr(),
                ow,
                oh,
                win.stride,
                win.stride,
                win.filter.1,
                win.filter.0,
                win.pad,
                win.pad,
                -128,
                127,
                c,
            )
        }
    })
}
