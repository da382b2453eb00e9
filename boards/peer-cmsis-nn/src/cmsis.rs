//! The few CMSIS-NN types and functions the peer run calls (`Include/arm_nn_types.h`,
//! `Include/arm_nnfunctions.h`), declared by hand: `#[repr(C)]` mirrors of the structs, and
//! the kernels TFLite Micro's CMSIS-NN ops call for our op kinds.
#![allow(non_camel_case_types)]

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

#[repr(C)]
pub struct cmsis_nn_context {
    pub buf: *mut core::ffi::c_void,
    pub size: i32,
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

#[repr(C)]
pub struct cmsis_nn_per_channel_quant_params {
    pub multiplier: *const i32,
    pub shift: *const i32,
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
