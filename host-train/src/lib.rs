//! shiftkit host trainer.
//!
//! The paper's shift-ResNet zoo ([`zoo`]) is described as a flat graph of ops ([`graph`]); the
//! CPU engine runs each op as a forward/backward pair over NHWC slices ([`layers`]) with the
//! shift folded into the 1x1 convolution as a per-group pointer offset. [`model`] holds a network's
//! parameters and per-batch workspace, [`train`] the SGD loop, checkpoints and run outputs.
//! [`backend`] is the device boundary the trainer steps through: the CPU layers, or `cuda` (the
//! same ops on the GPU through cudarc, feature `cuda`).
// `unsafe` is allowed only where the trainer calls GEMM kernels on raw pointers (layers::sgemm and
// its callers in layers/conv.rs and layers/linear.rs) and in the CUDA backend (driver calls,
// copies, kernel launches), each block with a SAFETY line.
#![deny(unsafe_code)]

pub mod backend;
pub mod cli;
pub mod config;
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
pub mod cuda;
pub mod data;
pub mod graph;
pub mod io;
pub mod layers;
pub mod model;
pub mod plot;
pub mod train;
pub mod zoo;
