#![doc = include_str!("../README.md")]
#![no_std]
#![warn(missing_docs)]
// `unsafe` is allowed only where an item says `#[allow(unsafe_code)]`, each block with a SAFETY
// line:
// - the Cortex-M DSP unit's `asm!` (built only with `shiftkit_dsp`): the instruction wrappers and
//   the 2x2 block product (kernels/fast/dsp_arch.rs), the wide path's word copy, packing loops
//   and channel loop (kernels/fast/wide/mod.rs, pack.rs, channel.rs), the add's and the 2x2
//   average pool's loops (kernels/add.rs, kernels/avg_pool2.rs), `smmlar` and the double
//   rounding form (requant.rs);
// - aarch64.rs and avx2.rs: the `dot` instruction, vector loads from arrays, calls into
//   `#[target_feature]` fns, and `assume_supported` (an `unsafe fn`: the caller vouches for the
//   CPU).
#![deny(unsafe_code)]

pub mod engine;
pub mod format;
pub mod idx;
pub mod kernels;
pub mod model;
pub mod plan_rules;
pub mod report;
pub mod requant;
pub mod wire;

pub use engine::{run, Error, NoProfiler, Profiler};
pub use model::{Model, ModelError};
