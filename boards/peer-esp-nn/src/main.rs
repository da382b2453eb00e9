//! shiftkit next to its peer, in one run on QEMU `virt` (RV32IMC): every embedded image goes
//! through shiftkit's engine (`firmware::run`, this build's fast kernels, the RV32 unit) and
//! through Espressif's ESP-NN portable C kernels (the `_ansi` ones; with `ESP_NN_KERNELS=opt`
//! the conv is `esp_nn_conv_s8_opt`, what `esp_nn.h` picks on a chip without ESP-NN assembly).
//! Both are timed per layer with `minstret` under `-icount shift=0` (QEMU instructions), and
//! every layer's int8 output of the two engines is compared bit for bit: both follow TFLite's
//! integer arithmetic.
//!
//! The harness is `boards/peer-common`'s, shared with `boards/peer-cmsis-nn` (the loop, the
//! timing, the comparison, the report lines, the layout, bias unfolding, shift copy, hashing);
//! this board gives it ESP-NN's calls ([`EspNn`], through the safe wrappers in `espnn`),
//! `minstret` and semihosting. ESP-NN's kernels take no scratch.
//!
//! Report lines (`cargo xtask bench peer --engine esp-nn` parses these; the peer's column keeps
//! the name `cmsis` so that the CMSIS-NN parser reads both):
//! ```text
//! calibration ...
//! peer-esp-nn: N images, O ops, conv ansi|opt
//! image I label L ours P cmsis P bit-exact yes|no
//! layer I KIND ours U cmsis U copies U        (QEMU instructions per inference)
//! total ours U cmsis U copies U
//! result B/N images bit-exact
//! ```
#![no_std]
#![no_main]
// `unsafe` only in `espnn`: the ESP-NN calls, behind safe wrappers.
#![deny(unsafe_code)]

mod espnn;

use app::counter::{Calibration, Counter, Minstret};
use core::fmt::Arguments;
use riscv_rt::entry;
use riscv_semihosting::hprintln;

use firmware::format::Tensor;
use peer_common::{AddArgs, Call, ConvArgs, Peer, PoolArgs, Ticks};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The peer's memory: one buffer per tensor, the shifted copy, the unfolded bias.
const PEER_BYTES: usize = 2 << 20;
static PEER: app::Arena<PEER_BYTES> = app::Arena::new();

/// The conv kernel this build calls (`ESP_NN_KERNELS`, see build.rs).
#[cfg(not(esp_nn_opt))]
const CONV: espnn::Conv = espnn::Conv::Ansi;
#[cfg(esp_nn_opt)]
const CONV: espnn::Conv = espnn::Conv::Opt;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    app::qemu::panic(info)
}

#[entry]
fn main() -> ! {
    let counter = Minstret::new("qemu_instructions");
    let result = peer_common::run::<{ embedded::OPS }, _, _>(
        &EspNn,
        &counter,
        embedded::data(),
        embedded::ARENA.take(),
        PEER.take(),
    );
    peer_common::exit(&EspNn, result)
}

/// ESP-NN's portable C kernels.
struct EspNn;

impl Peer for EspNn {
    const NAME: &'static str = "peer-esp-nn";
    const TAIL: &'static str = match CONV {
        espnn::Conv::Ansi => ", conv ansi",
        espnn::Conv::Opt => ", conv opt",
    };
    const SCRATCH: bool = false;
    const NOT_COUNTING: &'static str =
        "minstret is not counting instructions: run QEMU with -icount shift=0";

    fn print(&self, line: Arguments<'_>) {
        hprintln!("{}", line);
    }

    fn counts_exactly(&self, c: &Calibration) -> bool {
        c.ticks.abs_diff(c.loop_instructions) <= 64
    }

    fn conv<C: Counter>(&self, call: Call<'_, C, ConvArgs<'_>, 2>) -> Ticks {
        let (a, b, clock) = (call.args, call.buffers, call.clock);
        let params = espnn::conv_params_t {
            in_offset: a.input_offset,
            out_offset: a.output_offset,
            stride: espnn::data_2d_t::square(i32::from(a.stride)),
            padding: espnn::data_2d_t::square(i32::from(a.pad)),
            dilation: espnn::data_2d_t::square(1),
            activation: act(a.act_min, a.act_max),
        };
        let (k, cin) = (i32::from(a.k), i32::from(a.x.c));
        let dx = dims(&a.x);
        let dw = espnn::data_dims_t::new(k, k, cin);
        let dy = dims(&a.y);
        let [x, bias] = b.x;
        let call = espnn::convolve(
            CONV, &params, a.quant, &dx, x, &dw, a.weights, &dy, bias, b.y,
        )?;
        Ok(clock.time(call).1)
    }

    fn add<C: Counter>(&self, call: Call<'_, C, AddArgs, 2>) -> Ticks {
        let (a, b, clock) = (call.args, call.buffers, call.clock);
        let [x0, x1] = b.x;
        let call = espnn::elementwise_add(x0, x1, b.y, *a)?;
        Ok(clock.time(call).1)
    }

    fn pool<C: Counter>(&self, call: Call<'_, C, PoolArgs, 1>) -> Ticks {
        let (a, b, clock) = (call.args, call.buffers, call.clock);
        let win = espnn::Window {
            filter: a.filter,
            stride: a.stride,
            pad: a.pad,
        };
        let (dx, dy) = (dims(&a.x), dims(&a.y));
        let [x] = b.x;
        let call = espnn::pool(a.kind, win, &dx, x, &dy, b.y)?;
        Ok(clock.time(call).1)
    }

    fn fully_connected<C: Counter>(&self, call: Call<'_, C, ConvArgs<'_>, 2>) -> Ticks {
        let (a, b, clock) = (call.args, call.buffers, call.clock);
        let [x, bias] = b.x;
        let call = espnn::fully_connected(
            a.input_offset,
            a.output_offset,
            act(a.act_min, a.act_max),
            a.quant,
            x,
            a.weights,
            bias,
            b.y,
        )?;
        Ok(clock.time(call).1)
    }
}

fn act(min: i8, max: i8) -> espnn::act_params_t {
    espnn::act_params_t {
        min: i32::from(min),
        max: i32::from(max),
    }
}

fn dims(t: &Tensor) -> espnn::data_dims_t {
    espnn::data_dims_t::new(i32::from(t.h), i32::from(t.w), i32::from(t.c))
}
