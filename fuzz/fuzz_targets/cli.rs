//! Fuzz target `cli`: see `tender_fuzz::cli`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tender_fuzz::cli(data));
