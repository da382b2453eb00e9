//! Stack high-water mark by painting: fill the free stack (from the end of the statics up to
//! just below the current stack pointer) with a pattern, run, then scan up from the bottom for
//! the first word that changed. Everything above it was used at some point.
//!
//! Uses the symbols of cortex-m-rt's `link.x`: the stack grows down from `_stack_start` to
//! `_stack_end` (the end of `.bss`/`.uninit`; no heap here). esp-hal's linker scripts define
//! both; riscv-rt's define `_stack_start` and name the stack's bottom `__estack`, so a riscv-rt
//! board's memory.x defines `_stack_end` from it (`boards/qemu-riscv32`).

use core::ptr;

/// The paint word.
const PAINT: u32 = 0xC5A5_5A5C;
/// Bytes left unpainted just below the stack pointer (the caller's frame may spill there).
#[cfg(target_os = "none")]
const MARGIN: usize = 64;

#[cfg(target_os = "none")]
extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// A painted stack, to scan after the run.
pub struct Stack {
    bottom: usize,
    top: usize,
}

impl Stack {
    /// Paints the free stack below the current stack pointer. On a host (the app's tests) there
    /// is no linker-script stack: nothing is painted and [`Stack::high_water`] is 0.
    #[cfg(not(target_os = "none"))]
    pub fn paint() -> Self {
        Stack { bottom: 0, top: 0 }
    }

    /// Paints the free stack below the current stack pointer.
    #[cfg(target_os = "none")]
    #[inline(never)]
    pub fn paint() -> Self {
        // Only the addresses of the linker symbols are taken; they are never read.
        let (bottom, top) = (
            ptr::addr_of!(_stack_end) as usize,
            ptr::addr_of!(_stack_start) as usize,
        );
        let sp = stack_pointer();
        let end = sp.saturating_sub(MARGIN) & !3;
        let mut p = (bottom + 3) & !3;
        while p < end {
            // SAFETY: [bottom, sp - MARGIN) is the part of the stack region below the current
            // stack pointer: no Rust object lives there (statics end at `_stack_end`, no heap,
            // and the live frames are above `sp`), so overwriting it changes nothing observable.
            // Word aligned (`p` rounded up, `end` down).
            #[allow(unsafe_code)]
            unsafe {
                ptr::write_volatile(p as *mut u32, PAINT)
            };
            p += 4;
        }
        Stack {
            bottom: (bottom + 3) & !3,
            top,
        }
    }

    /// Bytes of stack ever used: from the top down to the lowest changed word.
    pub fn high_water(&self) -> usize {
        let mut p = self.bottom;
        // SAFETY: [bottom, top) is RAM (the stack region of the linker script), word aligned;
        // reading it has no side effects.
        #[allow(unsafe_code)]
        while p < self.top && unsafe { ptr::read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        self.top - p
    }
}

/// The current (main) stack pointer.
#[cfg(all(target_os = "none", target_arch = "arm"))]
#[inline(always)]
fn stack_pointer() -> usize {
    cortex_m::register::msp::read() as usize
}

/// The current stack pointer (RISC-V: `sp`, x2).
#[cfg(all(target_os = "none", target_arch = "riscv32"))]
#[inline(always)]
fn stack_pointer() -> usize {
    let sp: usize;
    // SAFETY: copies the stack pointer register into another; no memory is touched.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!("mv {0}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}
