//! The whole program of a QEMU board: the MPS2 Cortex-M boards (`qemu-an386`, `qemu-an500`,
//! `qemu-an505`) and the RISC-V `virt` board (`qemu-riscv32`). An instruction counter, checked
//! at start against a loop of known length; the inference pin; the report over semihosting, the
//! exit code through semihosting.
//!
//! With `-icount shift=0` QEMU advances virtual time 1 ns per executed instruction. On the
//! Cortex-M boards SysTick counts the core clock, so one tick is a fixed number of executed
//! instructions (the board's `instructions_per_tick`: 40 on the 25 MHz AN386/AN500, 50 on the
//! 20 MHz AN505); on RISC-V QEMU reads `minstret` from that same instruction count, one
//! instruction per tick. These are not cycles. The `calibration` line shows the check; a board
//! run without `-icount shift=0` stops.
use crate::counter::calibrate;
use crate::sink::Semihosting;
use crate::{Embedded, Line, Sink};
use core::convert::Infallible;

#[cfg(all(target_arch = "riscv32", not(feature = "minstret")))]
compile_error!("app::qemu on RISC-V counts with minstret: enable the app's `minstret` feature");

/// Turns of the calibration loop (2 instructions each).
const CALIBRATION_TURNS: u32 = 100_000;

/// Ticks the calibration may read beyond the loop's own: entering and leaving the loop and
/// reading the counter (a few instructions), SysTick's rounding to whole ticks. A counter that
/// does not count instructions (QEMU without `-icount`: SysTick on host time, `minstret` on the
/// host's cycle counter) is off by far more.
const CALIBRATION_SLACK_TICKS: u32 = 16;

/// The report's name of the QEMU boards' cost unit.
const UNIT: &str = "qemu_instructions";

/// A QEMU machine: its name, counter scale and inference pin.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    pub board: &'static str,
    /// Executed instructions per counter tick under `-icount shift=0` (SysTick: the core clock
    /// period in ns; `minstret`: 1).
    pub instructions_per_tick: u32,
    /// The address of a 32-bit LED register, written 1 while an image runs and 0 after (MPS2:
    /// LED0 of the FPGA I/O block, `mps2-fpgaio` offset 0, which QEMU traces with
    /// `-trace mps2_fpgaio_write`), or `None` on a machine without LEDs (RISC-V `virt`): then the
    /// inference pin does nothing.
    pub led: Option<usize>,
}

/// The inference pin: the machine's LED register, if it has one.
struct Led(Option<usize>);

impl Led {
    fn write(&mut self, on: bool) {
        let Some(register) = self.0 else {
            return;
        };
        // SAFETY: `register` is the LED register of the machine's FPGA I/O block (QEMU
        // hw/arm/mps2.c, hw/arm/mps2-tz.c, as the board's `Machine` says); writing it only
        // switches LEDs.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::write_volatile(register as *mut u32, u32::from(on))
        }
    }
}

impl embedded_hal::digital::ErrorType for Led {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Led {
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.write(true);
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.write(false);
        Ok(())
    }
}

/// SysTick on the core clock (Cortex-M).
#[cfg(not(target_arch = "riscv32"))]
fn counter(machine: &Machine, sink: &mut Semihosting) -> Option<crate::counter::SysTick> {
    let Some(cp) = cortex_m::Peripherals::take() else {
        sink.emit(Line::Failed("core peripherals already taken"));
        return None;
    };
    Some(crate::counter::SysTick::start(
        cp.SYST,
        UNIT,
        machine.instructions_per_tick,
    ))
}

/// `minstret` (RISC-V): it runs from reset, there is nothing to start.
#[cfg(all(target_arch = "riscv32", feature = "minstret"))]
fn counter(_machine: &Machine, _sink: &mut Semihosting) -> Option<crate::counter::Minstret> {
    Some(crate::counter::Minstret::new(UNIT))
}

/// Runs the app on `machine` and exits QEMU (0 when every image ran). `OPS` is the model's op
/// count (`embedded::OPS`).
pub fn main<const OPS: usize>(
    machine: Machine,
    data: &Embedded<'_>,
    arena: Option<&mut [i8]>,
) -> ! {
    let mut sink = Semihosting;
    let Some(counter) = counter(&machine, &mut sink) else {
        crate::exit(false)
    };
    let c = calibrate(&counter, CALIBRATION_TURNS);
    sink.emit(Line::Calibration {
        loop_instructions: c.loop_instructions,
        ticks: c.ticks,
        instructions_per_tick: c.instructions_per_tick,
    });
    let loop_ticks = c.loop_instructions / machine.instructions_per_tick.max(1);
    if c.instructions_per_tick != machine.instructions_per_tick
        || c.ticks.abs_diff(loop_ticks) > CALIBRATION_SLACK_TICKS
    {
        sink.emit(Line::Failed(
            "the counter's ticks differ from the machine's instructions per tick (see the calibration line): run QEMU with -icount shift=0",
        ));
        crate::exit(false)
    }
    let done = crate::run::<OPS, _, _, _>(
        machine.board,
        data,
        arena,
        &counter,
        &mut Led(machine.led),
        &mut sink,
    );
    crate::exit(done.is_some())
}

/// The RISC-V board's panic handler (`#[panic_handler]` in the board calls it): the message as
/// an `error:` line, then a failing exit, so that a panic ends the run at once instead of at
/// deploy's timeout. (The Cortex-M boards link `panic-semihosting`.)
#[cfg(target_arch = "riscv32")]
pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    riscv_semihosting::hprintln!("error: {}", info);
    crate::exit(false)
}
