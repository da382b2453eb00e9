//! shiftkit on the Raspberry Pi Pico 2 (RP2350, dual Cortex-M33 with the DSP extension, run at
//! 150 MHz from the 12 MHz crystal): the app (`boards/app`) over defmt-rtt on core 0, timed in
//! core cycles with the DWT cycle counter. The engine builds its Cortex-M DSP kernels here
//! (`+dsp` in .cargo/config.toml), as on the QEMU Cortex-M33 board (`qemu-an505`).
//!
//! Inference pin: GP15 (header pin 20), high while an image runs.
//! The boot ROM finds the image through the `IMAGE_DEF` block (a secure Arm executable) that
//! memory.x places right after the vector table.
//!
//! `cargo xtask deploy --board rp-pico2 MODEL.skq` checks the memory budget, builds, flashes
//! over SWD and reads the report with `probe-rs run` (shapes in `firmware/src/report.rs`); the
//! board ends with a semihosting exit, which `probe-rs run` turns into its exit status.
#![no_std]
#![no_main]
// deny, not forbid: the boot block statics' `link_section` counts as unsafe code (allowed there).
#![deny(unsafe_code)]

use app::counter::Dwt;
use app::sink::Defmt;
use app::{Line, Sink};
use defmt_rtt as _;
use panic_probe as _;
use rp235x_hal::{self as hal, clocks::Clock, pac};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The image definition the RP2350 boot ROM needs to start the program.
// SAFETY: `.start_block` is the section memory.x keeps in the first 4 KiB of flash, where the
// boot ROM searches for an IMAGE_DEF; nothing else is put there.
#[allow(unsafe_code)]
#[link_section = ".start_block"]
#[used]
pub static IMAGE_DEF: hal::block::ImageDef = hal::block::ImageDef::secure_exe();

/// What `picotool info` shows of the program.
// SAFETY: `.bi_entries` is the table memory.x places after `.text` for picotool to read.
#[allow(unsafe_code)]
#[link_section = ".bi_entries"]
#[used]
pub static PICOTOOL_ENTRIES: [hal::binary_info::EntryAddr; 2] = [
    hal::binary_info::rp_cargo_bin_name!(),
    hal::binary_info::rp_program_description!(c"shiftkit int8 classifier: report over defmt-rtt"),
];

/// The Pico 2's crystal.
const XOSC_HZ: u32 = 12_000_000;

#[hal::entry]
fn main() -> ! {
    let mut sink = Defmt;
    let (Some(cp), Some(mut p)) = (cortex_m::Peripherals::take(), pac::Peripherals::take()) else {
        sink.emit(Line::Failed("peripherals already taken"));
        app::exit(false)
    };
    let mut watchdog = hal::Watchdog::new(p.WATCHDOG);
    let Ok(clocks) = hal::clocks::init_clocks_and_plls(
        XOSC_HZ,
        p.XOSC,
        p.CLOCKS,
        p.PLL_SYS,
        p.PLL_USB,
        &mut p.RESETS,
        &mut watchdog,
    ) else {
        sink.emit(Line::Failed(
            "the clocks did not start (12 MHz crystal, PLLs)",
        ));
        app::exit(false)
    };
    defmt::println!("sysclk {=u32} Hz", clocks.system_clock.freq().to_Hz());
    let Some(counter) = Dwt::start(cp.DCB, cp.DWT) else {
        sink.emit(Line::Failed("this core has no DWT cycle counter"));
        app::exit(false)
    };
    let sio = hal::Sio::new(p.SIO);
    let pins = hal::gpio::Pins::new(p.IO_BANK0, p.PADS_BANK0, sio.gpio_bank0, &mut p.RESETS);
    let mut pin = pins.gpio15.into_push_pull_output();
    let done = app::run::<{ embedded::OPS }, _, _, _>(
        "rp-pico2",
        &embedded::data(),
        embedded::ARENA.take(),
        &counter,
        &mut pin,
        &mut sink,
    );
    app::exit(done.is_some())
}
