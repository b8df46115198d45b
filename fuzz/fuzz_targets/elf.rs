//! Fuzz target `elf`: see `tender_fuzz::elf`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tender_fuzz::elf(data));
