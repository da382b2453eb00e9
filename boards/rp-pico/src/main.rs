//! shiftkit on the Raspberry Pi Pico (RP2040, Cortex-M0+ at 125 MHz from the 12 MHz crystal):
//! the app (`boards/app`) over defmt-rtt. The M0+ has no DWT cycle counter, so inferences and
//! layers are timed with the RP2040's 1 MHz hardware timer, in microseconds.
//!
//! Inference pin: GP15 (header pin 20), high while an image runs.
//! Code runs from the QSPI flash (XIP, 16 KiB cache), the second-stage bootloader is
//! `rp2040-boot2`'s W25Q080 one, as on the rp-pico BSP.
//!
//! `cargo xtask deploy --board rp-pico MODEL.skq` builds, flashes over SWD and reads the report
//! with `probe-rs run` (shapes in `firmware/src/report.rs`); the board ends with a semihosting
//! exit, which `probe-rs run` turns into its exit status.
#![no_std]
#![no_main]
// deny, not forbid: the boot2 static's `link_section` counts as unsafe code (allowed there).
#![deny(unsafe_code)]

use app::sink::Defmt;
use app::{Counter, Line, Sink};
use defmt_rtt as _;
use panic_probe as _;
use rp2040_hal::{self as hal, clocks::Clock, pac};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The second-stage bootloader, placed at the start of flash by `memory.x`.
// SAFETY: `.boot2` is the 256-byte section memory.x places at the start of flash, where the
// RP2040's boot ROM looks for the second-stage bootloader; nothing else is put there.
#[allow(unsafe_code)]
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;

/// The RP2040 timer's low 32 bits: microseconds, wrapping every 71 minutes.
struct Micros(hal::Timer);

impl Counter for Micros {
    fn unit(&self) -> &'static str {
        "us"
    }
    fn units_per_tick(&self) -> u32 {
        1
    }
    fn now(&self) -> u32 {
        self.0.get_counter_low()
    }
    fn since(&self, start: u32) -> u32 {
        self.0.get_counter_low().wrapping_sub(start)
    }
}

#[hal::entry]
fn main() -> ! {
    let mut sink = Defmt;
    let Some(mut p) = pac::Peripherals::take() else {
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
    let counter = Micros(hal::Timer::new(p.TIMER, &mut p.RESETS, &clocks));
    let sio = hal::Sio::new(p.SIO);
    let pins = hal::gpio::Pins::new(p.IO_BANK0, p.PADS_BANK0, sio.gpio_bank0, &mut p.RESETS);
    let mut pin = pins.gpio15.into_push_pull_output();
    let done = app::run::<{ embedded::OPS }, _, _, _>(
        "rp-pico",
        &embedded::data(),
        embedded::ARENA.take(),
        &counter,
        &mut pin,
        &mut sink,
    );
    app::exit(done.is_some())
}
