//! shiftkit on QEMU `mps2-an500` (Cortex-M7): the app (`boards/app`) over semihosting, timed in
//! *QEMU instructions* with SysTick (40 executed instructions per tick: 25 MHz core clock), the
//! inference pin on the FPGA I/O block's LED0. The program is `app::qemu::main`, shared by the
//! QEMU boards; this crate gives the machine's constants and the embedded model and images.
//!
//! Report lines: `firmware/src/report.rs` writes them. Exits through semihosting with 0 on success.
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
    board: "qemu-an500",
    instructions_per_tick: 40,
    // The FPGA I/O block (`mps2-fpgaio`, hw/arm/mps2.c); LED register at offset 0.
    led: Some(0x4002_8000),
};

#[entry]
fn main() -> ! {
    app::qemu::main::<{ embedded::OPS }>(MACHINE, &embedded::data(), embedded::ARENA.take())
}
