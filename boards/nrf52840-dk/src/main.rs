//! shiftkit on the nRF52840-DK (nRF52840, Cortex-M4F at 64 MHz on the external crystal,
//! instruction cache on): the app (`boards/app`) over defmt-rtt, timed in core cycles with the
//! DWT cycle counter.
//!
//! Inference pin: P1.01 (Arduino header D0 on the DK), high while an image runs.
//!
//! `cargo xtask deploy --board nrf52840-dk MODEL.skq` builds, flashes and reads the report with
//! `probe-rs run` (shapes in `firmware/src/report.rs`); the board ends with a semihosting exit,
//! which `probe-rs run` turns into its exit status.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use app::counter::Dwt;
use app::sink::Defmt;
use app::{Line, Sink};
use cortex_m_rt::entry;
use defmt_rtt as _;
use nrf52840_hal::gpio::{p1, Level};
use nrf52840_hal::{pac, Clocks};
use panic_probe as _;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

#[entry]
fn main() -> ! {
    let mut sink = Defmt;
    let (Some(cp), Some(p)) = (cortex_m::Peripherals::take(), pac::Peripherals::take()) else {
        sink.emit(Line::Failed("peripherals already taken"));
        app::exit(false)
    };
    // 64 MHz from the 32 MHz crystal instead of the internal RC oscillator.
    let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
    p.NVMC.icachecnf.write(|w| w.cacheen().enabled());

    let Some(counter) = Dwt::start(cp.DCB, cp.DWT) else {
        sink.emit(Line::Failed("this core has no DWT cycle counter"));
        app::exit(false)
    };
    let mut pin = p1::Parts::new(p.P1).p1_01.into_push_pull_output(Level::Low);
    let done = app::run::<{ embedded::OPS }, _, _, _>(
        "nrf52840-dk",
        &embedded::data(),
        embedded::ARENA.take(),
        &counter,
        &mut pin,
        &mut sink,
    );
    app::exit(done.is_some())
}
