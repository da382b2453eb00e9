//! The whole program of a QEMU MPS2 board (`qemu-an386`, `qemu-an500`, `qemu-an505`): SysTick
//! as an instruction counter, checked at start against a loop of known length, the FPGA I/O
//! block's LED0 as the inference pin, the report over semihosting, the exit code through
//! semihosting.
//!
//! With `-icount shift=0` QEMU advances virtual time 1 ns per executed instruction, and SysTick
//! counts the core clock, so one tick is a fixed number of executed instructions (the board's
//! `instructions_per_tick`: 40 on the 25 MHz AN386/AN500, 50 on the 20 MHz AN505). These are not
//! cycles. The `calibration` line shows the check; a board run without `-icount shift=0` stops.
use crate::counter::{calibrate, SysTick};
use crate::sink::Semihosting;
use crate::{Embedded, Line, Sink};
use core::convert::Infallible;

/// Turns of the calibration loop (2 instructions each).
const CALIBRATION_TURNS: u32 = 100_000;

/// A QEMU MPS2 machine: its name, SysTick scale and the address of its FPGA I/O LED register.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    pub board: &'static str,
    /// Executed instructions per SysTick tick under `-icount shift=0`.
    pub instructions_per_tick: u32,
    /// The FPGA I/O block's LED register (`mps2-fpgaio`, offset 0).
    pub fpgaio_led: usize,
}

/// LED0 of the FPGA I/O block: high while an image runs. QEMU traces the writes
/// (`-trace mps2_fpgaio_write`).
struct Led0(usize);

impl Led0 {
    fn write(&mut self, on: bool) {
        // SAFETY: `self.0` is the LED register of the machine's FPGA I/O block (QEMU
        // hw/arm/mps2.c, hw/arm/mps2-tz.c, as the board's `Machine` says); writing it only
        // switches LEDs.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_volatile(self.0 as *mut u32, u32::from(on))
        }
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

/// Runs the app on `machine` and exits QEMU (0 when every image ran). `OPS` is the model's op
/// count (`embedded::OPS`).
pub fn main<const OPS: usize>(
    machine: Machine,
    data: &Embedded<'_>,
    arena: Option<&mut [i8]>,
) -> ! {
    let mut sink = Semihosting;
    let Some(cp) = cortex_m::Peripherals::take() else {
        sink.emit(Line::Failed("core peripherals already taken"));
        crate::exit(false)
    };
    let counter = SysTick::start(cp.SYST, "qemu_instructions", machine.instructions_per_tick);
    let c = calibrate(&counter, CALIBRATION_TURNS);
    sink.emit(Line::Calibration {
        loop_instructions: c.loop_instructions,
        ticks: c.ticks,
        instructions_per_tick: c.instructions_per_tick,
    });
    if c.instructions_per_tick != machine.instructions_per_tick {
        sink.emit(Line::Failed(
            "SysTick ticks differ from INSTRUCTIONS_PER_TICK (see the calibration line): run QEMU with -icount shift=0",
        ));
        crate::exit(false)
    }
    let done = crate::run::<OPS, _, _, _>(
        machine.board,
        data,
        arena,
        &counter,
        &mut Led0(machine.fpgaio_led),
        &mut sink,
    );
    crate::exit(done.is_some())
}
