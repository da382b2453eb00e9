//! Picks the fast kernels at compile time (docs/design.md, Engine and kernels):
//! - `shiftkit_dsp`: Cortex-M with the DSP extension (`smlad`, `sxtb16`): every thumbv7em target
//!   (M4, M7), and thumbv8m.main (M33) when built with `-C target-feature=+dsp` (the DSP extension
//!   is optional on v8-M Mainline). rustc does not expose `dsp` to `cfg(target_feature)` on stable,
//!   hence this script.
//! - `shiftkit_scalar`: every riscv32 target (RV32IMC and up: `mul` from the M extension, no
//!   SIMD) and thumbv6m (Cortex-M0/M0+: `muls`, no DSP); the scalar unit
//!   (`kernels/fast/scalar.rs`) is plain Rust, the cfg exists so that `SHIFTKIT_KERNELS=portable`
//!   turns it off like the DSP unit.
//! - the `portable` feature, or `SHIFTKIT_KERNELS=portable` in the build's environment (how
//!   `cargo xtask bench firmware` builds the boards a second time), turns the fast kernels
//!   (Cortex-M, RV32) off (benchmarks compare both).
#![forbid(unsafe_code)]
use std::env;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(shiftkit_dsp)");
    println!("cargo:rustc-check-cfg=cfg(shiftkit_scalar)");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    println!("cargo:rerun-if-env-changed=SHIFTKIT_KERNELS");
    let portable = env::var_os("CARGO_FEATURE_PORTABLE").is_some()
        || env::var("SHIFTKIT_KERNELS").as_deref() == Ok("portable");
    let dsp = target.starts_with("thumbv7em")
        || (target.starts_with("thumbv8m.main") && flags.contains("+dsp"));
    if dsp && !portable {
        println!("cargo:rustc-cfg=shiftkit_dsp");
    }
    if (target.starts_with("riscv32") || target.starts_with("thumbv6m")) && !portable {
        println!("cargo:rustc-cfg=shiftkit_scalar");
    }
}
