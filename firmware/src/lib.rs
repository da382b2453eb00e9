//! shiftkit firmware: the `no_std`, allocation-free int8 engine (model reader, kernels, engine).
//! Built in the quantize+firmware issue; this crate stays `no_std` and depends on nothing std.
#![no_std]
#![forbid(unsafe_code)]
