//! shiftkit in a plain `cortex-m-rt` application: the engine is an ordinary dependency, the
//! model is an `include_bytes!` in flash, the arena a `static` handed out once by
//! `cortex_m::singleton!`. It classifies the four test digits shipped with the engine crate and
//! prints each over semihosting; it exits 0 when all four are right (`cargo run --release` runs
//! it on QEMU's Cortex-M4 board, mps2-an386).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use panic_semihosting as _;
use shiftkit_engine::{run, Model, NoProfiler};

/// The model and the digits: the ones the engine crate's README example uses.
static MODEL: &[u8] = include_bytes!("../../../firmware/examples/mnist-flat-4c.skq");
static DIGITS: &[u8] = include_bytes!("../../../firmware/examples/digits.u8");
const LABELS: [usize; 4] = [5, 6, 0, 2];

/// Arena bytes: at least `Model::arena_bytes()` (the model's figure; the check below says so).
const ARENA_BYTES: usize = 32 * 1024;

/// The arena, aligned for every kernel (`Model::arena_align()` is at most 16).
#[repr(C, align(16))]
struct Arena([i8; ARENA_BYTES]);

#[entry]
fn main() -> ! {
    let ok = classify();
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Semihosting's exit ends QEMU; a real board without a debugger stays here.
    loop {
        cortex_m::asm::wfi();
    }
}

fn classify() -> bool {
    let model = match Model::from_bytes(MODEL) {
        Ok(m) => m,
        Err(e) => {
            hprintln!("the model does not load: {}", e);
            return false;
        }
    };
    if model.arena_bytes() > ARENA_BYTES {
        hprintln!(
            "the model needs {} arena bytes, ARENA_BYTES is {}",
            model.arena_bytes(),
            ARENA_BYTES
        );
        return false;
    }
    let Some(arena) = cortex_m::singleton!(: Arena = Arena([0; ARENA_BYTES])) else {
        return false;
    };
    let mut correct = 0;
    for (i, pixels) in DIGITS.chunks(model.input_len()).enumerate() {
        match run(&model, pixels, &mut arena.0, &mut NoProfiler) {
            Ok(logits) => {
                // The first of the highest logits (max_by_key keeps the last one, so count down).
                let best = (0..logits.len())
                    .rev()
                    .max_by_key(|&c| logits[c])
                    .unwrap_or(0);
                let name = model.class_name(best).unwrap_or("?");
                hprintln!(
                    "digit {}: class {} ({}), label {}",
                    i,
                    best,
                    name,
                    LABELS[i]
                );
                correct += usize::from(best == LABELS[i]);
            }
            Err(e) => hprintln!("digit {}: {}", i, e),
        }
    }
    hprintln!("{}/{} correct", correct, LABELS.len());
    correct == LABELS.len()
}
