//! The graph section's record reader (`firmware::wire`) against postcard's deserializer: the
//! first byte picks Header, Tensor, Op or a run of Ops.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| shiftkit_fuzz::wire_records(bytes));
