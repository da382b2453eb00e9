//! The data loaders on file bytes: the first byte picks IDX, an MNIST image/label pair, or a
//! CIFAR-10 or CIFAR-100 batch.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| shiftkit_fuzz::data_loaders(bytes));
