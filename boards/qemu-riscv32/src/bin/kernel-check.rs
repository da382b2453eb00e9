//! The firmware's random conv cases (`firmware::kernels::fast::selftest`) on QEMU `virt`
//! (RV32IMC): the fast kernel with the scalar MAC unit (`fast::scalar`, which must also be this
//! build's `fast::Native`) against the portable reference kernel, bit-exactly, as
//! `boards/kernel-check` does on the Cortex-M machines; then patches longer than `MAX_PATCH`
//! (taken in segments), the 2x2 average pool and the residual add (whose element loop is `asm!`
//! on RV32). Prints a line per check and exits through semihosting: 0 if every case matched and
//! the scalar unit was compiled in, 1 otherwise (a panic also exits 1).
//!
//! ```text
//! cargo run --release --features kernel-check --bin kernel-check   (in boards/qemu-riscv32)
//! kernel-check: conv (unit scalar), 2000 cases, 2000 bit-exact
//! kernel-check: large patches (unit scalar), 100 cases, 100 bit-exact
//! kernel-check: average pool (unit scalar), 500 cases, 500 bit-exact
//! kernel-check: add (unit scalar), 500 cases, 500 bit-exact
//! ```
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::marker::PhantomData;
use firmware::kernels::fast::{scalar::Scalar, selftest, NATIVE_UNIT};
use riscv_rt::entry;
use riscv_semihosting::hprintln;

const CASES: u32 = 2000;
const SEED: u64 = 0x5eed_cafe;
const LARGE_CASES: u32 = 100;
const POOL_CASES: u32 = 500;
const ADD_CASES: u32 = 500;

#[entry]
fn main() -> ! {
    let ok = NATIVE_UNIT == "scalar";
    if !ok {
        hprintln!("kernel-check: unit {}, not scalar", NATIVE_UNIT);
    }
    let ok = ok
        && all_exact(
            "conv",
            CASES,
            selftest::run(&mut selftest::With::<Scalar>(PhantomData), SEED, CASES),
        );
    let ok = ok
        && all_exact(
            "large patches",
            LARGE_CASES,
            selftest::large(
                &mut selftest::With::<Scalar>(PhantomData),
                SEED,
                LARGE_CASES,
            ),
        );
    let ok = ok
        && all_exact(
            "average pool",
            POOL_CASES,
            selftest::avg_pool(SEED, POOL_CASES),
        );
    let ok = ok && all_exact("add", ADD_CASES, selftest::add(SEED, ADD_CASES));
    app::exit(ok)
}

/// The line of a check whose `cases` must all be taken and bit-exact; whether they were.
fn all_exact(what: &str, cases: u32, result: Result<u32, selftest::Mismatch>) -> bool {
    match result {
        Ok(n) => {
            hprintln!(
                "kernel-check: {} (unit {}), {} cases, {} bit-exact",
                what,
                NATIVE_UNIT,
                cases,
                n
            );
            n == cases
        }
        Err(m) => {
            hprintln!(
                "kernel-check: {} (unit {}): MISMATCH in case {} at output {}: fast {} reference {}",
                what,
                NATIVE_UNIT,
                m.case,
                m.index,
                m.fast,
                m.reference
            );
            false
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    app::qemu::panic(info)
}
