//! The firmware's random conv cases (`firmware::kernels::fast::selftest`) on an emulated
//! Cortex-M: the fast kernel with this build's MAC unit (the DSP instructions on M4/M7/M33)
//! against the portable reference kernel, bit-exactly. Prints one line and exits through
//! semihosting: 0 if every case matched and the DSP unit was compiled in, 1 otherwise.
//!
//! It then runs the same cases through the DSP unit's wide path alone (`fast::wide`) and says
//! how many of them it took; that number must be at least a quarter of the cases.
//!
//! ```text
//! kernel-check: unit dsp, 2000 cases, 2000 bit-exact
//! kernel-check: wide path, 2000 cases, 575 taken, all bit-exact
//! ```
#![no_std]
#![no_main]

use core::marker::PhantomData;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use firmware::kernels::fast::{selftest, Native, NATIVE_UNIT};
use panic_semihosting as _;

const CASES: u32 = 2000;
const SEED: u64 = 0x5eed_cafe;

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
            taken == CASES && NATIVE_UNIT == "dsp"
        }
        Err(m) => {
            report(m);
            false
        }
    };
    let ok = ok
        && match selftest::run(&mut selftest::Wide, SEED, CASES) {
            Ok(taken) => {
                hprintln!(
                    "kernel-check: wide path, {} cases, {} taken, all bit-exact",
                    CASES,
                    taken
                );
                taken >= CASES / 4
            }
            Err(m) => {
                report(m);
                false
            }
        };
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::bkpt();
    }
}

fn report(m: selftest::Mismatch) {
    hprintln!(
        "kernel-check: unit {}: MISMATCH in case {} at output {}: fast {} reference {}",
        NATIVE_UNIT,
        m.case,
        m.index,
        m.fast,
        m.reference
    );
}
