//! Every fast kernel against the portable reference, bit-exactly, on random shapes and data
//! (`kernels::fast::selftest`). On the host the MAC units run their plain-Rust emulation of the
//! instructions, so the kernels' own code is what is checked here; the same cases run with the
//! real instructions under QEMU (`boards/kernel-check`, the aarch64 tests).
use core::marker::PhantomData;
use firmware::kernels::fast::{dsp::Dsp, selftest, MAX_PATCH};

#[test]
fn dsp_kernel_matches_the_reference_on_random_convs() {
    let cases = 3000;
    for seed in [1u64, 0xdead_beef, 42] {
        let taken = selftest::run(&mut selftest::With::<Dsp>(PhantomData), seed, cases)
            .unwrap_or_else(|m| panic!("seed {seed}: {m:?}"));
        // Every generated case fits the fast path (patches are at most 9 * 16 < MAX_PATCH).
        assert_eq!(taken, cases, "seed {seed}");
    }
    assert!(
        MAX_PATCH >= 9 * 64,
        "3x3 convs over 64 channels take the fast path"
    );
}

/// The checker itself catches a wrong kernel: a MAC unit that drops the last block's products.
#[test]
fn the_selftest_catches_a_broken_kernel() {
    struct Broken;
    impl firmware::kernels::fast::Mac for Broken {
        type Packed = <Dsp as firmware::kernels::fast::Mac>::Packed;
        fn pack(b: [u8; 4], signed: bool) -> Self::Packed {
            Dsp::pack(b, signed)
        }
        fn dot2x2(x: &[[Self::Packed; 2]], w0: &[[u8; 4]], w1: &[[u8; 4]], acc: &mut [i32; 4]) {
            let n = w0.len().saturating_sub(1);
            Dsp::dot2x2(x, &w0[..n], &w1[..n], acc);
        }
    }
    use firmware::kernels::fast::Mac;
    let r = selftest::run(&mut selftest::With::<Broken>(PhantomData), 7, 200);
    assert!(r.is_err(), "a kernel that skips work must be caught");
}
