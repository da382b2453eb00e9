//! shiftkit on QEMU `virt` (RV32IMC): the app (`boards/app`) over RISC-V semihosting, timed in
//! *QEMU instructions* with `minstret` (one executed instruction per tick under `-icount
//! shift=0`). The machine has no LED, so the inference pin does nothing. The program is
//! `app::qemu::main`, shared by the QEMU boards; this crate gives the machine's constants, the
//! memory map (memory.x: the ESP32-C3's 4 MiB flash and 400 KiB RAM) and the panic handler.
//!
//! Report lines: `firmware/src/report.rs` writes them. Exits through semihosting with 0 on success.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use app::qemu::Machine;
use riscv_rt::entry;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

const MACHINE: Machine = Machine {
    board: "qemu-riscv32",
    instructions_per_tick: 1,
    led: None,
};

#[entry]
fn main() -> ! {
    app::qemu::main::<{ embedded::OPS }>(MACHINE, &embedded::data(), embedded::ARENA.take())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    app::qemu::panic(info)
}
