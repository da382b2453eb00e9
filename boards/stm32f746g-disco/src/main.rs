//! shiftkit on the STM32F746G-DISCO (STM32F746NG, Cortex-M7 at 216 MHz, caches on): the app
//! (`boards/app`) over defmt-rtt, timed in core cycles with the DWT cycle counter.
//!
//! Inference pin: PI1 (user LED LD1, also Arduino header D13), high while an image runs.
//! Clock: HSI (16 MHz) through the PLL to 216 MHz, so it does not depend on the board's
//! oscillator; the HAL sets the flash wait states and over-drive.
//!
//! `cargo xtask deploy --board stm32f746g-disco MODEL.skq` builds, flashes and reads the
//! report with `probe-rs run` (shapes in `firmware/src/report.rs`); the board ends with a
//! semihosting exit, which `probe-rs run` turns into its exit status.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use app::counter::Dwt;
use app::sink::Defmt;
use app::{Line, Sink};
use core::convert::Infallible;
use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;
use stm32f7xx_hal::gpio::{Output, Pin, PushPull};
use stm32f7xx_hal::{pac, prelude::*};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Core clock.
const SYSCLK_HZ: u32 = 216_000_000;

/// PI1 as an embedded-hal 1.0 output pin (the HAL implements embedded-hal 0.2 only).
struct Probe(Pin<'I', 1, Output<PushPull>>);

impl embedded_hal::digital::ErrorType for Probe {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Probe {
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.0.set_high();
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.set_low();
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    let mut sink = Defmt;
    let (Some(mut cp), Some(dp)) = (cortex_m::Peripherals::take(), pac::Peripherals::take()) else {
        sink.emit(Line::Failed("peripherals already taken"));
        app::exit(false)
    };
    cp.SCB.enable_icache();
    cp.SCB.enable_dcache(&mut cp.CPUID);
    let clocks = dp.RCC.constrain().cfgr.sysclk(SYSCLK_HZ.Hz()).freeze();
    defmt::println!("sysclk {=u32} Hz", clocks.sysclk().raw());

    let Some(counter) = Dwt::start(cp.DCB, cp.DWT) else {
        sink.emit(Line::Failed("this core has no DWT cycle counter"));
        app::exit(false)
    };
    let mut pin = Probe(dp.GPIOI.split().pi1.into_push_pull_output());
    let done = app::run::<{ embedded::OPS }, _, _, _>(
        "stm32f746g-disco",
        &embedded::data(),
        embedded::ARENA.take(),
        &counter,
        &mut pin,
        &mut sink,
    );
    app::exit(done.is_some())
}
