//! Fuzz target `ring`: see `tender_fuzz::ring`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tender_fuzz::ring(data));
