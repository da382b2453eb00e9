//! Every fast kernel against the portable reference, bit-exactly, on random shapes and data
//! (`kernels::fast::selftest`). On the host the MAC units run their plain-Rust emulation of the
//! instructions, so the kernels' own code is what is checked here; the same cases run with the
//! real instructions under QEMU (`boards/kernel-check`, the aarch64 tests).
use core::marker::PhantomData;
use shiftkit_engine::kernels::fast::{dsp::Dsp, selftest};

#[test]
fn dsp_kernel_matches_the_reference_on_random_convs() {
    let cases = 3000;
    for seed in [1u64, 0xdead_beef, 42] {
        let taken = selftest::run(&mut selftest::With::<Dsp>(PhantomData), seed, cases)
            .unwrap_or_else(|m| panic!("seed {seed}: {m:?}"));
        // The fast kernels take every conv.
        assert_eq!(taken, cases, "seed {seed}");
    }
}

/// The checker itself catches a wrong kernel: a MAC unit that drops the last block's products.
#[test]
fn the_selftest_catches_a_broken_kernel() {
    struct Broken;
    impl shiftkit_engine::kernels::fast::Mac for Broken {
        type Packed = <Dsp as shiftkit_engine::kernels::fast::Mac>::Packed;
        fn pack(b: [u8; 4], signed: bool) -> Self::Packed {
            Dsp::pack(b, signed)
        }
        fn dot2x2(x: &[[Self::Packed; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
            let n = w0.len().saturating_sub(1);
            Dsp::dot2x2(x, &w0[..n], &w1[..n], acc);
        }
    }
    let r = selftest::run(&mut selftest::With::<Broken>(PhantomData), 7, 200);
    assert!(r.is_err(), "a kernel that skips work must be caught");
}

/// This build's native unit takes the convs the engine hands it (`fast::conv`, what
/// `shiftkit_engine::run` calls first): on aarch64 the engine tests (`tests/engine.rs`) then run the
/// NEON or sdot kernel against the reference, on an x86-64 host built with AVX2 the AVX2 one,
/// on riscv32 and thumbv6m the scalar one, elsewhere the portable one.
#[test]
fn the_native_unit_is_the_one_this_build_selects() {
    use shiftkit_engine::kernels::{conv::ConvParams, fast, I32s, Rescale, Shape, Split};
    let want = if cfg!(feature = "portable") {
        "none"
    } else if cfg!(all(target_arch = "aarch64", target_feature = "dotprod")) {
        "sdot"
    } else if cfg!(target_arch = "aarch64") {
        "neon"
    } else if cfg!(target_arch = "riscv32") {
        "scalar"
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx2")) {
        "avx2"
    } else {
        "none"
    };
    assert_eq!(fast::NATIVE_UNIT, want);
    // A 1x1 conv 8 -> 2 channels on 2x2 pixels.
    let (xs, ys) = (Shape::new(2, 2, 8), Shape::new(2, 2, 2));
    let x: Vec<i8> = (0..32).map(|i| i as i8 - 16).collect();
    let weights: Vec<u8> = (0..16).map(|i| (i as i8 - 8) as u8).collect();
    // Biases 0, multipliers 2^30 (x 0.5), shifts 0, as little-endian i32 bytes.
    let (bias, mult, shift) = ([0u8; 8], [0, 0, 0, 0x40, 0, 0, 0, 0x40], [0u8; 8]);
    let i32s = |b| I32s::new(b).expect("multiple of 4 bytes");
    let p = ConvParams {
        k: 1,
        stride: 1,
        pad: 0,
        shift: shiftkit_engine::format::Shift::None,
        weights: &weights,
        bias: i32s(&bias),
        pad_value: &[0; 8],
        rescale: Rescale {
            multiplier: i32s(&mult),
            shift: i32s(&shift),
            zero_point: 0,
            act_min: -128,
            act_max: 127,
        },
    };
    let (mut y_fast, mut y_ref) = ([0i8; 8], [0i8; 8]);
    let took = fast::conv(
        &mut Split {
            x: &x,
            y: &mut y_fast,
        },
        ys,
        xs,
        &p,
    );
    assert_eq!(took, Ok(want != "none"), "unit {want}");
    shiftkit_engine::kernels::conv::forward(
        &mut Split {
            x: &x,
            y: &mut y_ref,
        },
        ys,
        xs,
        &p,
    )
    .expect("valid conv");
    if want != "none" {
        assert_eq!(y_fast, y_ref);
    }
}

/// 3 x 3000 random convs with unit `M`, and 200 with patches longer than `MAX_PATCH` (taken in
/// segments), every one taken and bit-exact.
#[allow(dead_code)] // not every target has a unit that uses it
fn check<M: shiftkit_engine::kernels::fast::Mac>(name: &str) {
    let cases = 3000;
    for seed in [1u64, 0xdead_beef, 42] {
        let taken = selftest::run(&mut selftest::With::<M>(PhantomData), seed, cases)
            .unwrap_or_else(|m| panic!("{name}, seed {seed}: {m:?}"));
        assert_eq!(taken, cases, "{name}, seed {seed}");
    }
    let taken = selftest::large(&mut selftest::With::<M>(PhantomData), 3, 200)
        .unwrap_or_else(|m| panic!("{name}, large patches: {m:?}"));
    assert_eq!(taken, 200, "{name}, large patches");
}

/// The SIMD units' packing (i8 blocks, u8 input as `x - 128` plus `128 * sum(w)`) with the
/// plain-Rust product (what `Avx2` runs without AVX2).
struct Scalar;
impl shiftkit_engine::kernels::fast::Mac for Scalar {
    type Packed = u32;
    fn pack(b: [u8; 4], signed: bool) -> u32 {
        shiftkit_engine::kernels::fast::simd::pack(b, signed)
    }
    fn acc_offset(w: &[u8], signed: bool) -> i32 {
        shiftkit_engine::kernels::fast::simd::acc_offset(w, signed)
    }
    fn dot2x2(x: &[[u32; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
        shiftkit_engine::kernels::fast::simd::dot2x2_scalar(x, w0, w1, acc)
    }
}

/// [`Scalar`] on random convs, on every target.
/// The scalar unit of RV32IMC and Cortex-M0/M0+ (plain Rust, the same code the riscv32 and
/// thumbv6m builds run; on QEMU through `boards/qemu-riscv32`'s `kernel-check` binary and
/// `boards/kernel-check` built for thumbv6m).
#[test]
fn scalar_kernel_matches_the_reference_on_random_convs() {
    check::<shiftkit_engine::kernels::fast::scalar::Scalar>("scalar");
}

#[test]
fn simd_packing_matches_the_reference_on_random_convs() {
    check::<Scalar>("simd scalar");
}

/// Says why a test did not run its cases, on one line that the test run shows: written to the
/// standard error itself, past the harness's capture (which drops a passing test's `println!`).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn skipped(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{why}");
}

/// The AVX2 unit with the real instructions, where the host has them.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_kernel_matches_the_reference_on_random_convs() {
    use shiftkit_engine::kernels::fast::avx2::Avx2;
    if !std::arch::is_x86_feature_detected!("avx2") {
        skipped("avx2_kernel_matches_the_reference_on_random_convs: skipped, this CPU has no AVX2");
        return;
    }
    // SAFETY: the CPU has AVX2 (checked just above).
    unsafe { Avx2::assume_supported() };
    assert!(Avx2::active());
    check::<Avx2>("avx2");
}

/// The aarch64 units with the real instructions (CI: under `qemu-aarch64 -cpu max`).
#[cfg(target_arch = "aarch64")]
mod aarch64 {
    use super::check;
    use shiftkit_engine::kernels::fast::aarch64::{Neon, Sdot};

    #[test]
    fn neon_kernel_matches_the_reference_on_random_convs() {
        check::<Neon>("neon");
    }

    #[test]
    fn sdot_kernel_matches_the_reference_on_random_convs() {
        if !std::arch::is_aarch64_feature_detected!("dotprod") {
            super::skipped(
                "sdot_kernel_matches_the_reference_on_random_convs: skipped, this CPU has no \
                 dot-product extension (FEAT_DotProd; qemu-aarch64 -cpu max has it)",
            );
            return;
        }
        // SAFETY: the CPU has FEAT_DotProd (checked just above).
        unsafe { Sdot::assume_supported() };
        assert!(Sdot::active());
        check::<Sdot>("sdot");
    }
}

/// The DSP unit's wide path (four pixels by one channel, `fast::wide`) takes the default
/// network's shifted 1x1 convs (16, 32 and 64 input channels, 4C with centre, 7x7 images: a
/// last group of one pixel) and equals the reference on them; a conv outside its shapes, or
/// with TFLite's requantisation constants instead of the single-rounding form, is left to the
/// 2x2 path.
#[test]
fn the_wide_path_takes_the_networks_shifted_convs() {
    use shiftkit_engine::format::Shift;
    use shiftkit_engine::kernels::{conv::ConvParams, fast::wide, I32s, Rescale, Shape, Split};
    let mut seed = 0x1234_5678u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (cin, cout, zp) in [(16, 32, -128), (32, 32, -15), (32, 64, 3), (64, 64, -128)] {
        let (xs, ys) = (Shape::new(7, 7, cin), Shape::new(7, 7, cout));
        let x: Vec<i8> = (0..49 * cin).map(|_| next() as i8).collect();
        let w: Vec<u8> = (0..cin * cout)
            .map(|_| ((next() % 255) as i32 - 127) as i8 as u8)
            .collect();
        let le = |v: Vec<i32>| -> Vec<u8> { v.iter().flat_map(|b| b.to_le_bytes()).collect() };
        let bias = le((0..cout).map(|_| (next() as i32) >> 14).collect());
        // The single-rounding form, as quantize writes it: shift 0, multipliers 2^20..2^25.
        let mult = le((0..cout)
            .map(|_| ((1 << 30) | (next() as i32 & ((1 << 30) - 1))) >> (6 + next() % 5))
            .collect());
        let shift = le(vec![0; cout]);
        let pad = vec![zp as u8; cin];
        let p = ConvParams {
            k: 1,
            stride: 1,
            pad: 0,
            shift: Shift::C4 { centre: true },
            weights: &w,
            bias: I32s::new(&bias).unwrap(),
            pad_value: &pad,
            rescale: Rescale {
                multiplier: I32s::new(&mult).unwrap(),
                shift: I32s::new(&shift).unwrap(),
                zero_point: zp,
                act_min: -128,
                act_max: 127,
            },
        };
        let (got, want) = wide_and_reference(&x, ys, xs, &p);
        assert_eq!(got, Some(want), "cin {cin} cout {cout}: taken and equal");
        // 12 input channels (3 blocks) take the gathered form, padded to 4 blocks.
        let xs12 = Shape::new(7, 7, 12);
        let p12 = ConvParams {
            weights: &w[..12 * cout],
            pad_value: &pad[..12],
            ..p
        };
        let (got, want) = wide_and_reference(&x[..49 * 12], ys, xs12, &p12);
        assert_eq!(got, Some(want), "cin 12 cout {cout}");
        // TFLite's constants (normalised multipliers, right shifts): the 2x2 path's.
        let tflite_mult = le((0..cout)
            .map(|_| (1 << 30) | (next() as i32 & ((1 << 30) - 1)))
            .collect());
        let tflite_shift = le((0..cout).map(|_| -6 - (next() % 5) as i32).collect());
        let tflite = ConvParams {
            rescale: Rescale {
                multiplier: I32s::new(&tflite_mult).unwrap(),
                shift: I32s::new(&tflite_shift).unwrap(),
                ..p.rescale
            },
            ..p
        };
        let (got, _) = wide_and_reference(&x, ys, xs, &tflite);
        assert_eq!(got, None, "cin {cin} cout {cout}: TFLite's constants");
    }
    // The stem's shape: 3x3, padding 1, one u8 input channel (patch of 9 bytes).
    let (xs, ys) = (Shape::new(6, 5, 1), Shape::new(6, 5, 16));
    let x: Vec<u8> = (0..30).map(|_| next() as u8).collect();
    let w: Vec<u8> = (0..9 * 16)
        .map(|_| ((next() % 255) as i32 - 127) as i8 as u8)
        .collect();
    let le = |v: Vec<i32>| -> Vec<u8> { v.iter().flat_map(|b| b.to_le_bytes()).collect() };
    let bias = le((0..16).map(|_| (next() as i32) >> 12).collect());
    let mult = le((0..16)
        .map(|_| ((1 << 30) | (next() as i32 & ((1 << 30) - 1))) >> (8 + next() % 3))
        .collect());
    let shift = le(vec![0; 16]);
    let p = ConvParams {
        k: 3,
        stride: 1,
        pad: 1,
        shift: Shift::None,
        weights: &w,
        bias: I32s::new(&bias).unwrap(),
        pad_value: &[0],
        rescale: Rescale {
            multiplier: I32s::new(&mult).unwrap(),
            shift: I32s::new(&shift).unwrap(),
            zero_point: -128,
            act_min: -128,
            act_max: 127,
        },
    };
    let (got, want) = wide_and_reference(&x, ys, xs, &p);
    assert_eq!(got, Some(want), "stem");
    // More than 64 output channels: not a wide shape.
    let ys72 = Shape::new(6, 5, 72);
    let w72 = vec![1u8; 9 * 72];
    let b72 = vec![0u8; 4 * 72];
    let p72 = ConvParams {
        weights: &w72,
        bias: I32s::new(&b72).unwrap(),
        ..p
    };
    let mut y = vec![0i8; 30 * 72];
    assert!(!wide::conv(
        &mut Split {
            x: &x[..],
            y: &mut y
        },
        false,
        ys72,
        xs,
        &p72
    ));
}

/// The selftest's cases through the wide path alone (what `boards/kernel-check` runs on QEMU
/// with the real instructions): a good share of them fit it, and all match the reference.
#[test]
fn the_wide_path_matches_the_reference_on_random_convs() {
    for seed in [1u64, 0x5eed_cafe] {
        let taken = selftest::run(&mut selftest::Wide, seed, 2000)
            .unwrap_or_else(|m| panic!("seed {seed}: {m:?}"));
        assert!(
            taken >= 400,
            "seed {seed}: only {taken} of 2000 cases took the wide path"
        );
    }
}

/// The wide path's output (`None` if it did not take the conv) and the reference's, for input
/// `x` in separate slices.
fn wide_and_reference<X: shiftkit_engine::kernels::Element>(
    x: &[X],
    ys: shiftkit_engine::kernels::Shape,
    xs: shiftkit_engine::kernels::Shape,
    p: &shiftkit_engine::kernels::conv::ConvParams,
) -> (Option<Vec<i8>>, Vec<i8>) {
    use shiftkit_engine::kernels::{conv, fast::wide, Split};
    let n = ys.h * ys.w * ys.c;
    let mut want = vec![0i8; n];
    conv::forward(&mut Split { x, y: &mut want }, ys, xs, p).unwrap();
    let mut got = vec![0x55i8; n];
    let took = wide::conv(&mut Split { x, y: &mut got }, X::SIGNED, ys, xs, p);
    (took.then_some(got), want)
}

/// The average pool's random cases (on the host: the portable loop; on QEMU Cortex-M the DSP
/// unit's word loop, `boards/kernel-check`).
#[test]
fn average_pools_match_the_formula() {
    assert_eq!(selftest::avg_pool(0xa7e, 400), Ok(400));
}

/// The residual add's random cases (on the host: the Rust element loop; on QEMU Cortex-M the
/// DSP unit's four-element loop and its remainder, `boards/kernel-check`).
#[test]
fn adds_match_the_formula() {
    assert_eq!(selftest::add(0xadd, 400), Ok(400));
}

/// Patches longer than `MAX_PATCH` (large 1x1s, FC-like, and 3x3s over many channels, some in
/// place, more than 64 output channels too) are taken in segments, bit-exactly, by the DSP
/// unit's 2x2 path (the SIMD units: [`check`]): there is no portable fallback in a build with a
/// fast unit.
#[test]
fn large_patches_are_taken_in_segments() {
    let cases = 300;
    for seed in [3u64, 0xbeef] {
        let taken = selftest::large(&mut selftest::With::<Dsp>(PhantomData), seed, cases)
            .unwrap_or_else(|m| panic!("seed {seed}: {m:?}"));
        assert_eq!(taken, cases, "seed {seed}");
    }
}
