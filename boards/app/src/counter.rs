//! The counter the app times inferences and layers with, the two Cortex-M core counters,
//! [`SysTick`] (QEMU boards, counting executed instructions under `-icount shift=0`) and
//! [`Dwt`] (real Cortex-M3+ boards, counting core cycles), and the RISC-V one, [`Minstret`]
//! (the QEMU RISC-V board: instructions). A board without any of them (the M0+, the ESP32-C3)
//! implements [`Counter`] over one of its own timers.

use cortex_m::peripheral::{syst::SystClkSource, SYST};

/// A free-running hardware counter.
pub trait Counter {
    /// The unit of `ticks x units_per_tick`, as a field name in the report:
    /// `qemu_instructions`, `cycles`, `us`.
    fn unit(&self) -> &'static str;
    /// Units per tick (40 for SysTick under QEMU `-icount shift=0` at 25 MHz; 1 for a cycle
    /// or microsecond counter).
    fn units_per_tick(&self) -> u32;
    /// The current reading, in ticks.
    fn now(&self) -> u32;
    /// Ticks from `start` (an earlier [`Counter::now`]) to now; exact for windows shorter than
    /// the counter's wrap period.
    fn since(&self, start: u32) -> u32;
}

/// SysTick as a 24-bit free-running down counter on the core clock. Under QEMU with
/// `-icount shift=0` each executed instruction advances virtual time by 1 ns, so one tick is
/// (1 ns x core clock period) instructions, exactly and repeatably: the board states how many
/// (and [`calibrate`] checks it). These are QEMU instructions, not cycles.
pub struct SysTick {
    _syst: SYST,
    unit: &'static str,
    units_per_tick: u32,
}

/// SysTick counts down from this (24 bits) and wraps.
const SYST_MASK: u32 = 0x00FF_FFFF;

impl SysTick {
    /// Starts SysTick on the core clock, no interrupt, full 24-bit range.
    pub fn start(mut syst: SYST, unit: &'static str, units_per_tick: u32) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYST_MASK);
        syst.clear_current();
        syst.disable_interrupt();
        syst.enable_counter();
        SysTick {
            _syst: syst,
            unit,
            units_per_tick,
        }
    }
}

impl Counter for SysTick {
    fn unit(&self) -> &'static str {
        self.unit
    }
    fn units_per_tick(&self) -> u32 {
        self.units_per_tick
    }
    fn now(&self) -> u32 {
        SYST::get_current()
    }
    fn since(&self, start: u32) -> u32 {
        start.wrapping_sub(SYST::get_current()) & SYST_MASK
    }
}

/// The DWT cycle counter (CYCCNT, 32 bits): core clock cycles.
#[cfg(feature = "dwt")]
pub struct Dwt {
    _dwt: cortex_m::peripheral::DWT,
}

#[cfg(feature = "dwt")]
impl Dwt {
    /// Enables trace and the cycle counter (unlocking the DWT first, which the STM32F7 needs
    /// after a power cycle). `None` if the core has no cycle counter.
    pub fn start(
        mut dcb: cortex_m::peripheral::DCB,
        mut dwt: cortex_m::peripheral::DWT,
    ) -> Option<Self> {
        use cortex_m::peripheral::DWT;
        dcb.enable_trace();
        DWT::unlock();
        if !DWT::has_cycle_counter() {
            return None;
        }
        dwt.set_cycle_count(0);
        dwt.enable_cycle_counter();
        Some(Dwt { _dwt: dwt })
    }
}

#[cfg(feature = "dwt")]
impl Counter for Dwt {
    fn unit(&self) -> &'static str {
        "cycles"
    }
    fn units_per_tick(&self) -> u32 {
        1
    }
    fn now(&self) -> u32 {
        cortex_m::peripheral::DWT::cycle_count()
    }
    fn since(&self, start: u32) -> u32 {
        cortex_m::peripheral::DWT::cycle_count().wrapping_sub(start)
    }
}

/// `minstret`, the RISC-V machine instructions-retired counter (its low 32 bits), one
/// instruction per tick. Under QEMU with `-icount shift=0` QEMU derives it (and `mcycle`) from
/// its instruction count, so it counts executed instructions exactly and repeatably; without
/// `-icount` it reads the host's cycle counter instead (and [`calibrate`] shows it). These are
/// QEMU instructions, not cycles.
#[cfg(all(target_arch = "riscv32", feature = "minstret"))]
pub struct Minstret {
    unit: &'static str,
}

#[cfg(all(target_arch = "riscv32", feature = "minstret"))]
impl Minstret {
    /// The counter, reported in `unit` (`qemu_instructions` under QEMU). It runs from reset.
    pub fn new(unit: &'static str) -> Self {
        Minstret { unit }
    }
}

#[cfg(all(target_arch = "riscv32", feature = "minstret"))]
impl Counter for Minstret {
    fn unit(&self) -> &'static str {
        self.unit
    }
    fn units_per_tick(&self) -> u32 {
        1
    }
    fn now(&self) -> u32 {
        // The low 32 bits: `since` is exact for windows under 2^32 instructions.
        riscv::register::minstret::read() as u32
    }
    fn since(&self, start: u32) -> u32 {
        self.now().wrapping_sub(start)
    }
}

/// Instructions executed by one turn of [`spin`]'s loop (`subs` + `bne` on Arm, `addi` +
/// `bnez` on RISC-V).
pub const SPIN_INSTRUCTIONS_PER_TURN: u32 = 2;

/// Executes exactly `turns` x [`SPIN_INSTRUCTIONS_PER_TURN`] instructions (plus a few to
/// enter and leave), in a loop the compiler cannot change.
#[inline(never)]
pub fn spin(turns: u32) {
    if turns == 0 {
        return;
    }
    #[cfg(target_arch = "arm")]
    // SAFETY: the loop only decrements a scratch register and branches; no memory, no stack.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, #1",
            "bne 2b",
            n = inout(reg) turns => _,
            options(nomem, nostack),
        );
    }
    #[cfg(target_arch = "riscv32")]
    // SAFETY: the loop only decrements a scratch register and branches; no memory, no stack.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!(
            "2:",
            "addi {n}, {n}, -1",
            "bnez {n}, 2b",
            n = inout(reg) turns => _,
            options(nomem, nostack),
        );
    }
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32")))]
    for i in 0..turns {
        core::hint::black_box(i);
    }
}

/// What [`calibrate`] measured.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// Instructions the loop executed.
    pub loop_instructions: u32,
    /// Counter ticks it took.
    pub ticks: u32,
    /// `loop_instructions / ticks`, rounded.
    pub instructions_per_tick: u32,
}

/// Times a loop of known length (`turns` x 2 instructions) with `counter`: under QEMU
/// `-icount shift=0` this measures the instructions per SysTick tick (per `minstret` tick: 1).
pub fn calibrate<C: Counter>(counter: &C, turns: u32) -> Calibration {
    let start = counter.now();
    spin(turns);
    let ticks = counter.since(start);
    let loop_instructions = turns * SPIN_INSTRUCTIONS_PER_TURN;
    Calibration {
        loop_instructions,
        ticks,
        instructions_per_tick: (loop_instructions + ticks / 2) / ticks.max(1),
    }
}
