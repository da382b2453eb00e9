//! shiftkit on the ESP32-C3-DevKitM-1 (ESP32-C3: one RV32IMC core at 160 MHz, 400 KiB SRAM,
//! 4 MiB flash): the app (`boards/app`) over defmt-rtt through the chip's built-in USB-JTAG,
//! timed in microseconds with esp-hal's `Instant` (the 16 MHz system timer).
//!
//! Inference pin: GPIO2 (header J1), high while an image runs.
//!
//! `cargo xtask deploy --board esp32c3-devkit MODEL.skq` checks the memory budget, builds,
//! flashes and reads the report with `probe-rs run` (shapes in `firmware/src/report.rs`); the
//! board ends with a semihosting exit, which `probe-rs run` turns into its exit status.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use app::sink::Defmt;
use app::{Counter, Line, Sink};
use defmt_rtt as _;
use esp_backtrace as _;
use esp_hal::clock::CpuClock;
use esp_hal::gpio::{Level, Output, OutputConfig};
use esp_hal::time::Instant;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

// The application descriptor the ESP-IDF bootloader reads.
esp_bootloader_esp_idf::esp_app_desc!();

/// Microseconds since boot, low 32 bits (wrapping every 71 minutes).
struct Micros;

impl Counter for Micros {
    fn unit(&self) -> &'static str {
        "us"
    }
    fn units_per_tick(&self) -> u32 {
        1
    }
    fn now(&self) -> u32 {
        Instant::now().duration_since_epoch().as_micros() as u32
    }
    fn since(&self, start: u32) -> u32 {
        self.now().wrapping_sub(start)
    }
}

#[esp_hal::main]
fn main() -> ! {
    let mut sink = Defmt;
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    defmt::println!("cpu clock: {}", defmt::Debug2Format(&CpuClock::max()));
    let mut pin = Output::new(p.GPIO2, Level::Low, OutputConfig::default());
    let done = app::run::<{ embedded::OPS }, _, _, _>(
        "esp32c3-devkit",
        &embedded::data(),
        embedded::ARENA.take(),
        &Micros,
        &mut pin,
        &mut sink,
    );
    if done.is_none() {
        sink.emit(Line::Failed("the run did not finish"));
    }
    app::exit(done.is_some())
}
