//! Fuzz target `hypercall`: see `tender_fuzz::hypercall`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tender_fuzz::hypercall(data));
