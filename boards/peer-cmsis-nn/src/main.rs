//! shiftkit next to its peer, in one run on QEMU `mps2-an386` (Cortex-M4): every embedded image
//! goes through shiftkit's engine (`firmware::run`, this build's fast kernels) and through Arm's
//! CMSIS-NN kernels called the way TFLite Micro's CMSIS-NN ops call them. Both are timed per
//! layer with SysTick under `-icount shift=0` (QEMU instructions, see `boards/app`), and the two
//! engines' int8 logits are compared bit for bit: both follow TFLite's integer arithmetic.
//!
//! The harness (the loop, the timing, the comparison, the report lines, the peer's memory
//! layout, the bias unfolding, the shift as a tensor in the `copies` column) is
//! `boards/peer-common`'s; this board gives it CMSIS-NN's calls ([`Cmsis`], through the safe
//! wrappers in `cmsis`), SysTick and semihosting. Each kernel's scratch buffer is the rest of
//! the peer's memory, its size asked of CMSIS-NN outside the timed window.
//!
//! Report lines (`cargo xtask bench peer` parses these):
//! ```text
//! calibration ...
//! peer-cmsis-nn: N images, O ops
//! image I label L ours P cmsis P bit-exact yes|no
//! layer I KIND ours U cmsis U copies U        (QEMU instructions per inference)
//! total ours U cmsis U copies U
//! result B/N images bit-exact
//! ```
#![no_std]
#![no_main]
// `unsafe` only in `cmsis`: the CMSIS-NN calls, behind safe wrappers.
#![deny(unsafe_code)]

mod cmsis;

use app::counter::{Counter, SysTick};
use core::fmt::Arguments;
use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;

use firmware::format::Tensor;
use panic_semihosting as _;
use peer_common::{AddArgs, Call, ConvArgs, Fail, LengthError, Peer, PoolArgs, Ticks};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// SysTick ticks are 40 executed instructions on the 25 MHz AN386 under `-icount shift=0`.
const INSTRUCTIONS_PER_TICK: u32 = 40;
/// The peer's memory: one buffer per tensor, the shifted copy, the unfolded bias, the
/// kernels' scratch.
const PEER_BYTES: usize = 2 << 20;
static PEER: app::Arena<PEER_BYTES> = app::Arena::new();

#[entry]
fn main() -> ! {
    peer_common::exit(&Cmsis, run())
}

fn run() -> Result<bool, Fail> {
    let cp = cortex_m::Peripherals::take().ok_or(Fail(None, "core peripherals taken"))?;
    let counter = SysTick::start(cp.SYST, "qemu_instructions", INSTRUCTIONS_PER_TICK);
    peer_common::run::<{ embedded::OPS }, _, _>(
        &Cmsis,
        &counter,
        embedded::data(),
        embedded::ARENA.take(),
        PEER.take(),
    )
}

/// CMSIS-NN's kernels, as TFLite Micro's CMSIS-NN ops call them.
struct Cmsis;

/// `Err` if a CMSIS-NN kernel returned an error status.
fn status(s: cmsis::Status) -> Result<(), LengthError> {
    match s {
        0 => Ok(()),
        _ => Err("a CMSIS-NN kernel returned an error (argument check)"),
    }
}

impl Peer for Cmsis {
    const NAME: &'static str = "peer-cmsis-nn";
    const TAIL: &'static str = "";
    const SCRATCH: bool = true;
    const NOT_COUNTING: &'static str =
        "SysTick is not counting instructions: run QEMU with -icount shift=0";

    fn print(&self, line: Arguments<'_>) {
        hprintln!("{}", line);
    }

    fn conv<C: Counter>(&self, call: Call<'_, C, ConvArgs<'_>, 2>) -> Ticks {
        let (a, b, clock) = (call.args, call.buffers, call.clock);
        let params = cmsis::cmsis_nn_conv_params {
            input_offset: a.input_offset,
            output_offset: a.output_offset,
            stride: cmsis::cmsis_nn_tile::square(i32::from(a.stride)),
            padding: cmsis::cmsis_nn_tile::square(i32::from(a.pad)),
            dilation: cmsis::cmsis_nn_tile::square(1),
            activation: act(a.act_min, a.act_max),
        };
        let (k, cin, cout) = (i32::from(a.k), i32::from(a.x.c), i32::from(a.y.c));
        let dx = dims(&a.x);
        let dw = cmsis::cmsis_nn_dims::new(cout, k, k, cin);
        let dy = dims(&a.y);
        let [x, bias] = b.x;
        let call = cmsis::convolve(
            b.scratch, &params, a.quant, &dx, x, &dw, a.weights, &dy, bias, b.y,
        )?;
        let (s, t) = clock.time(call);
        status(s).map(|()| t)
    }

    fn add<C: Counter>(&self, call: Call<'_, C, AddArgs, 2>) -> Ticks {
        let (a, b, clock) = (call.args, call.buffers, call.clock);
        let [x0, x1] = b.x;
        let call = cmsis::elementwise_add(x0, x1, b.y, *a)?;
        let (s, t) = clock.time(call);
        status(s).map(|()| t)
    }

    fn pool<C: Counter>(&self, call: Call<'_, C, PoolArgs, 1>) -> Ticks {
        let (a, b, clock) = (call.args, call.buffers, call.clock);
        let params = cmsis::cmsis_nn_pool_params {
            stride: cmsis::cmsis_nn_tile::square(i32::from(a.stride)),
            padding: cmsis::cmsis_nn_tile::square(i32::from(a.pad)),
            activation: act(-128, 127),
        };
        let (dx, dy) = (dims(&a.x), dims(&a.y));
        let df = cmsis::cmsis_nn_dims::new(1, i32::from(a.filter.0), i32::from(a.filter.1), 1);
        let [x] = b.x;
        let call = cmsis::pool(a.kind, b.scratch, &params, &dx, x, &df, &dy, b.y)?;
        let (s, t) = clock.time(call);
        status(s).map(|()| t)
    }

    fn fully_connected<C: Counter>(&self, call: Call<'_, C, ConvArgs<'_>, 2>) -> Ticks {
        let (a, b, clock) = (call.args, call.buffers, call.clock);
        let params = cmsis::cmsis_nn_fc_params {
            input_offset: a.input_offset,
            filter_offset: 0,
            output_offset: a.output_offset,
            activation: act(a.act_min, a.act_max),
        };
        let (cin, cout) = (a.x.bytes() as i32, i32::from(a.y.c));
        let dx = cmsis::cmsis_nn_dims::new(1, 1, 1, cin);
        let dw = cmsis::cmsis_nn_dims::new(cin, 1, 1, cout);
        let dy = cmsis::cmsis_nn_dims::new(1, 1, 1, cout);
        let [x, bias] = b.x;
        let call = cmsis::fully_connected(
            b.scratch, &params, a.quant, &dx, x, &dw, a.weights, &dy, bias, b.y,
        )?;
        let (s, t) = clock.time(call);
        status(s).map(|()| t)
    }
}

fn act(min: i8, max: i8) -> cmsis::cmsis_nn_activation {
    cmsis::cmsis_nn_activation {
        min: i32::from(min),
        max: i32::from(max),
    }
}

fn dims(t: &Tensor) -> cmsis::cmsis_nn_dims {
    cmsis::cmsis_nn_dims::new(1, i32::from(t.h), i32::from(t.w), i32::from(t.c))
}
