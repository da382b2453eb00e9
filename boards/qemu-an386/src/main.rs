//! shiftkit on QEMU `mps2-an386` (Cortex-M4): the app (`boards/app`) over semihosting, timed
//! in *QEMU instructions* with SysTick, the inference pin on the FPGA I/O block's LED0.
//!
//! With `-icount shift=0` QEMU advances virtual time 1 ns per executed instruction; SysTick
//! runs on the 25 MHz core clock of this machine, so one tick = 40 executed instructions,
//! exactly and repeatably (checked at start with a loop of known length: the `calibration`
//! line). These are not cycles. Resolution: 40 instructions per measured window.
//!
//! Report lines: see `boards/app/src/lib.rs`. Exits through semihosting with 0 on success.
#![no_std]
#![no_main]

use app::counter::{calibrate, SysTick};
use app::sink::Semihosting;
use app::{Line, Sink};
use core::convert::Infallible;
use cortex_m_rt::entry;
use panic_semihosting as _;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Executed instructions per SysTick tick under `-icount shift=0` (25 MHz core clock).
const INSTRUCTIONS_PER_TICK: u32 = 40;
/// Turns of the calibration loop (2 instructions each).
const CALIBRATION_TURNS: u32 = 100_000;
/// The FPGA I/O block (`mps2-fpgaio`); its LED register is at offset 0.
const FPGAIO_LED: usize = 0x4002_8000;

/// LED0 of the FPGA I/O block: high while an image runs. QEMU traces the writes
/// (`-trace mps2_fpgaio_write`).
struct Led0;

impl Led0 {
    fn write(&mut self, on: bool) {
        // SAFETY: FPGAIO_LED is the LED register of this machine's FPGA I/O block (QEMU
        // hw/arm/mps2.c); writing it only switches LEDs.
        unsafe { core::ptr::write_volatile(FPGAIO_LED as *mut u32, u32::from(on)) }
    }
}

impl embedded_hal::digital::ErrorType for Led0 {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Led0 {
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.write(true);
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.write(false);
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    let mut sink = Semihosting;
    let Some(cp) = cortex_m::Peripherals::take() else {
        sink.emit(Line::Failed("core peripherals already taken"));
        app::exit(false)
    };
    let counter = SysTick::start(cp.SYST, "qemu_instructions", INSTRUCTIONS_PER_TICK);
    let c = calibrate(&counter, CALIBRATION_TURNS);
    sink.emit(Line::Calibration {
        loop_instructions: c.loop_instructions,
        ticks: c.ticks,
        instructions_per_tick: c.instructions_per_tick,
    });
    if c.instructions_per_tick != INSTRUCTIONS_PER_TICK {
        sink.emit(Line::Failed(
            "SysTick ticks differ from INSTRUCTIONS_PER_TICK (see the calibration line): run QEMU with -icount shift=0",
        ));
        app::exit(false)
    }
    let done = app::run::<{ embedded::OPS }, _, _, _>(
        "qemu-an386",
        &embedded::data(),
        embedded::ARENA.take(),
        &counter,
        &mut Led0,
        &mut sink,
    );
    app::exit(done.is_some())
}
