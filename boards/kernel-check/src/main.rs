//! The firmware's random conv cases (`firmware::kernels::fast::selftest`) on an emulated
//! Cortex-M: the fast kernel with this build's MAC unit (the DSP instructions on M4/M7/M33)
//! against the portable reference kernel, bit-exactly. Prints one line and exits through
//! semihosting: 0 if every case matched and the expected unit was compiled in (the DSP unit, or
//! the scalar unit in a thumbv6m build: `KERNEL_CHECK_UNIT` from build.rs), 1 otherwise.
//!
//! With the DSP unit it then runs the same cases through its wide path alone (`fast::wide`) and
//! says how many of them it took; that number must be at least a fifth of the cases.
//!
//! Then convs whose patch is longer than `MAX_PATCH` (taken in segments) through the unit.
//!
//! Last, random 2x2 average pools (apart and in place) through the DSP unit's word loop, and
//! random residual adds (apart and in place, every length remainder) through its element loop,
//! against the formulas.
//!
//! ```text
//! kernel-check: unit dsp, 2000 cases, 2000 bit-exact
//! kernel-check: wide path, 2000 cases, 446 taken, all bit-exact
//! kernel-check: large patches, 100 cases, 100 bit-exact
//! kernel-check: average pool, 500 cases, 500 bit-exact
//! kernel-check: add, 500 cases, 500 bit-exact
//! ```
#![forbid(unsafe_code)]
#![no_std]
#![no_main]

use core::marker::PhantomData;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use firmware::kernels::fast::{selftest, Native, NATIVE_UNIT};
use panic_semihosting as _;

const CASES: u32 = 2000;
const SEED: u64 = 0x5eed_cafe;
const LARGE_CASES: u32 = 100;
const POOL_CASES: u32 = 500;
const ADD_CASES: u32 = 500;
/// The MAC unit this build must have: `dsp`, or `scalar` on thumbv6m (build.rs).
const UNIT: &str = env!("KERNEL_CHECK_UNIT");

#[entry]
fn main() -> ! {
    let ok = match selftest::run(&mut selftest::With::<Native>(PhantomData), SEED, CASES) {
        Ok(taken) => {
            hprintln!(
                "kernel-check: unit {}, {} cases, {} bit-exact",
                NATIVE_UNIT,
                CASES,
                taken
            );
            taken == CASES && NATIVE_UNIT == UNIT
        }
        Err(m) => {
            report("conv", m);
            false
        }
    };
    // The wide path is the DSP unit's; a thumbv6m build has none.
    let ok = ok
        && (UNIT != "dsp"
            || match selftest::run(&mut selftest::Wide, SEED, CASES) {
                Ok(taken) => {
                    hprintln!(
                        "kernel-check: wide path, {} cases, {} taken, all bit-exact",
                        CASES,
                        taken
                    );
                    taken >= CASES / 5
                }
                Err(m) => {
                    report("wide path", m);
                    false
                }
            });
    let ok = ok
        && all_exact(
            "large patches",
            LARGE_CASES,
            selftest::large(
                &mut selftest::With::<Native>(PhantomData),
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
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::bkpt();
    }
}

/// The line of a check whose `cases` must all be taken and bit-exact; whether they were.
fn all_exact(what: &str, cases: u32, result: Result<u32, selftest::Mismatch>) -> bool {
    match result {
        Ok(n) => {
            hprintln!("kernel-check: {}, {} cases, {} bit-exact", what, cases, n);
            n == cases
        }
        Err(m) => {
            report(what, m);
            false
        }
    }
}

fn report(what: &str, m: selftest::Mismatch) {
    hprintln!(
        "kernel-check: {} (unit {}): MISMATCH in case {} at output {}: fast {} reference {}",
        what,
        NATIVE_UNIT,
        m.case,
        m.index,
        m.fast,
        m.reference
    );
}
