//! Cross-crate end-to-end tests (train tiny -> quantize -> run -> compare). See tests/tests/.
#![forbid(unsafe_code)]
