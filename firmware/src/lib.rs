//! shiftkit firmware: the `no_std`, allocation-free int8 engine.
//!
//! - [`format`]: the `.skq` byte layout and records (shared with `quantize`, the writer);
//! - [`idx`]: the IDX (MNIST) image and label file reader every host tool and board shares;
//! - [`model`]: [`Model::from_bytes`], the zero-copy, validate-once reader;
//! - [`requant`]: TFLite-exact integer rescaling and rounding;
//! - [`kernels`]: one portable reference kernel per op;
//! - [`engine`]: [`run`], op by op in a caller-provided arena, with [`Profiler`] hooks;
//! - [`plan_rules`]: when an op may write its output over its input (the in-place memory plan).
//! - [`report`]: the report lines the boards print and `cargo xtask deploy` parses.
//!
//! ```text
//! let model = Model::from_bytes(MODEL_BYTES)?;
//! let mut arena = [0i8; ARENA]; // >= model.arena_bytes()
//! let logits = run(&model, &pixels, &mut arena, &mut NoProfiler)?;
//! ```
#![no_std]
// `unsafe` is allowed only in the fast kernels' one-instruction `asm!` wrappers
// (kernels/fast/dsp.rs `arch`, aarch64.rs `dot`), their vector loads from arrays and calls into
// `#[target_feature]` fns (aarch64.rs, avx2.rs), each with a SAFETY line.
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
