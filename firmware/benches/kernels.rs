//! Host benches of the conv kernels (criterion), per conv shape of the default network
//! (mnist-flat-4c), side by side in one run:
//! - `portable`: the reference kernel (`kernels::conv::forward`);
//! - `fast/dsp-emulated`: the fast conv with the Cortex-M DSP unit's plain-Rust emulation of
//!   `sxtb16`/`smlad` (the code the host tests check; not a figure for the device, where
//!   `cargo xtask bench firmware` counts QEMU instructions);
//! - `fast/avx2` (x86-64 with AVX2), `fast/neon` and `fast/sdot` (aarch64, sdot where the CPU
//!   has the dot-product extension): the SIMD units with their real instructions.
//!
//! `cargo bench -p shiftkit-engine --bench kernels`. Throughput is in MACs (`Melem/s` = million MACs per
//! second).
use std::hint::black_box;
use std::marker::PhantomData;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shiftkit_engine::format::Shift;
use shiftkit_engine::kernels::conv::{self, ConvParams};
use shiftkit_engine::kernels::fast::{self, dsp::Dsp, selftest::Rng, Mac};
use shiftkit_engine::kernels::{Element, I32s, Rescale, Shape, Split};

/// One conv of the default network.
struct Case {
    name: &'static str,
    /// Input h, w, c.
    x: (usize, usize, usize),
    cout: usize,
    k: usize,
    pad: usize,
    shift: Shift,
    /// u8 model input (the stem) or i8 activations.
    u8_input: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "stem 3x3 1->16 28x28 (u8)",
        x: (28, 28, 1),
        cout: 16,
        k: 3,
        pad: 1,
        shift: Shift::None,
        u8_input: true,
    },
    Case {
        name: "shift-4c 1x1 16->32 28x28",
        x: (28, 28, 16),
        cout: 32,
        k: 1,
        pad: 0,
        shift: Shift::C4 { centre: true },
        u8_input: false,
    },
    Case {
        name: "shift-4c 1x1 32->32 14x14",
        x: (14, 14, 32),
        cout: 32,
        k: 1,
        pad: 0,
        shift: Shift::C4 { centre: true },
        u8_input: false,
    },
    Case {
        name: "shift-4c 1x1 64->64 7x7",
        x: (7, 7, 64),
        cout: 64,
        k: 1,
        pad: 0,
        shift: Shift::C4 { centre: true },
        u8_input: false,
    },
    Case {
        name: "plain 1x1 16->32 14x14",
        x: (14, 14, 16),
        cout: 32,
        k: 1,
        pad: 0,
        shift: Shift::None,
        u8_input: false,
    },
];

/// The constant bytes of one conv: weights, i32 arrays, pad values.
struct Consts {
    weights: Vec<u8>,
    bias: Vec<u8>,
    multiplier: Vec<u8>,
    shift: Vec<u8>,
    pad: Vec<u8>,
}

impl Consts {
    fn new(c: &Case, rng: &mut Rng) -> Self {
        let (cin, cout) = (c.x.2, c.cout);
        let i32s = |f: &mut dyn FnMut() -> i32| -> Vec<u8> {
            (0..cout).flat_map(|_| f().to_le_bytes()).collect()
        };
        Consts {
            // Symmetric int8 weights in [-127, 127], as quantize writes them.
            weights: (0..cout * c.k * c.k * cin)
                .map(|_| ((rng.next() >> 33) % 255) as i32 - 127)
                .map(|w| w as i8 as u8)
                .collect(),
            bias: i32s(&mut || ((rng.next() >> 48) as i32) - 32768),
            // The single-rounding form quantize writes: shift 0, a multiplier near 2^22.
            multiplier: i32s(&mut || rng.q31() >> 8),
            shift: i32s(&mut || 0),
            pad: vec![if c.u8_input { 0 } else { 0x80 }; cin],
        }
    }

    fn params(&self, c: &Case) -> ConvParams<'_> {
        let i32s = |b: &'static str, v| I32s::new(v).unwrap_or_else(|| panic!("{b}: not i32s"));
        ConvParams {
            k: c.k,
            stride: 1,
            pad: c.pad,
            shift: c.shift,
            weights: &self.weights,
            bias: i32s("bias", &self.bias),
            pad_value: &self.pad,
            rescale: Rescale {
                multiplier: i32s("multiplier", &self.multiplier),
                shift: i32s("shift", &self.shift),
                zero_point: -128,
                act_min: -128,
                act_max: 127,
            },
        }
    }
}

/// Benches every kernel on case `c` with input `x`.
fn bench_case<X: Element>(cr: &mut Criterion, c: &Case, x: &[X], consts: &Consts) {
    let p = consts.params(c);
    let xs = Shape::new(c.x.0, c.x.1, c.x.2);
    let (oh, ow) = (
        conv::out_size(xs.h, c.k, 1, c.pad).expect("the window fits"),
        conv::out_size(xs.w, c.k, 1, c.pad).expect("the window fits"),
    );
    let ys = Shape::new(oh, ow, c.cout);
    let macs = (oh * ow * c.cout * c.k * c.k * xs.c) as u64;
    let mut y = vec![0i8; oh * ow * c.cout];
    let mut y_ref = vec![0i8; y.len()];
    conv::forward(&mut Split { x, y: &mut y_ref }, ys, xs, &p).expect("a valid conv");

    let mut g = cr.benchmark_group(c.name);
    g.throughput(Throughput::Elements(macs));
    g.bench_function("portable", |b| {
        b.iter(|| conv::forward(&mut Split { x, y: &mut y }, ys, xs, black_box(&p)))
    });
    let mut fast_unit = |name: &str, run: &dyn Fn(&mut Split<X>) -> bool| {
        // Each unit is checked once against the portable output before it is timed.
        y.fill(0);
        assert!(run(&mut Split { x, y: &mut y }), "{name}: not taken");
        assert_eq!(y, y_ref, "{name}: differs from the portable kernel");
        g.bench_function(name, |b| b.iter(|| run(&mut Split { x, y: &mut y })));
    };
    fn with<'a, M: Mac, X: Element>(
        _: PhantomData<M>,
        ys: Shape,
        xs: Shape,
        p: &'a ConvParams<'a>,
    ) -> impl Fn(&mut Split<X>) -> bool + 'a {
        move |io| fast::conv_with::<M, _>(io, ys, xs, black_box(p)) == Ok(true)
    }
    fast_unit(
        "fast/dsp-emulated",
        &with::<Dsp, X>(PhantomData, ys, xs, &p),
    );
    #[cfg(target_arch = "x86_64")]
    if fast::avx2::Avx2::active() {
        fast_unit(
            "fast/avx2",
            &with::<fast::avx2::Avx2, X>(PhantomData, ys, xs, &p),
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        use fast::aarch64::{Neon, Sdot};
        fast_unit("fast/neon", &with::<Neon, X>(PhantomData, ys, xs, &p));
        if Sdot::active() {
            fast_unit("fast/sdot", &with::<Sdot, X>(PhantomData, ys, xs, &p));
        }
    }
    g.finish();
}

fn kernels(cr: &mut Criterion) {
    enable_detected_units();
    let mut rng = Rng(0x5eed);
    for c in CASES {
        let consts = Consts::new(c, &mut rng);
        let n = c.x.0 * c.x.1 * c.x.2;
        let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
        if c.u8_input {
            bench_case(cr, c, &bytes, &consts);
        } else {
            let x: Vec<i8> = bytes.iter().map(|&b| b as i8).collect();
            bench_case(cr, c, &x, &consts);
        }
    }
}

/// Lets the SIMD units use the instructions this CPU has (and says which it lacks).
fn enable_detected_units() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { fast::avx2::Avx2::assume_supported() };
    } else {
        println!("fast/avx2 not run: this CPU has no AVX2");
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("dotprod") {
        // SAFETY: the CPU has FEAT_DotProd (checked just above).
        unsafe { fast::aarch64::Sdot::assume_supported() };
    } else {
        println!("fast/sdot not run: this CPU has no dot-product extension");
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
