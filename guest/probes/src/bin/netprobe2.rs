//! Network probe with two devices, `service0` (handle 1) and `service1`
//! (handle 2): see `netprobe/probe.rs`.
#![no_std]
#![no_main]

#[path = "netprobe/probe.rs"]
mod probe;

hvt_bindings::manifest!(net "service0", net "service1");
hvt_bindings::entry!(main);

fn main(start: &hvt_bindings::StartInfo) -> i32 {
    probe::run(&["service0", "service1"], start.cmdline)
}
