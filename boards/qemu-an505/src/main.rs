//! shiftkit on QEMU `mps2-an505` (Cortex-M33): the app (`boards/app`) over semihosting, timed in
//! *QEMU instructions* with SysTick (50 executed instructions per tick: 20 MHz core clock in QEMU 7.2, measured), the
//! inference pin on the FPGA I/O block's LED0. The program is `app::qemu::main`, shared by the
//! QEMU boards; this crate gives the machine's constants and the embedded model and images.
//!
//! Report lines: `firmware/src/report.rs` writes them. Exits through semihosting with 0 on success.
//!
//! Memory map and Secure state: see `memory.x`. Built with `+dsp` (`.cargo/config.toml`): the
//! AN505's Cortex-M33 has the DSP extension, so the firmware's fast kernels run.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use app::qemu::Machine;
use cortex_m_rt::entry;
use panic_semihosting as _;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

const MACHINE: Machine = Machine {
    board: "qemu-an505",
    instructions_per_tick: 50,
    // The FPGA I/O block (`mps2-fpgaio`, hw/arm/mps2-tz.c; the Secure alias of 0x40302000 behind the APB PPC); LED register at offset 0.
    led: Some(0x5030_2000),
};

#[entry]
fn main() -> ! {
    app::qemu::main::<{ embedded::OPS }>(MACHINE, &embedded::data(), embedded::ARENA.take())
}
