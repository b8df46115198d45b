//! Network probe with one device, `service0`: see `probe.rs`.
#![no_std]
#![no_main]

mod probe;

hvt_bindings::manifest!(net "service0");
hvt_bindings::entry!(main);

fn main(start: &hvt_bindings::StartInfo) -> i32 {
    probe::run(&["service0"], start.cmdline)
}
