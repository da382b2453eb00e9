//! `Model::from_bytes` then `engine::run` on a fixed input, on `.skq` files from the
//! structure-aware mutator (length and CRC kept right, so mutations reach the parser and the
//! memory-plan check).
#![no_main]
use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|bytes: &[u8]| {
    shiftkit_fuzz::load_and_run(bytes);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    shiftkit_fuzz::mutate_skq(data, size, max_size, seed, fuzzer_mutate)
});
