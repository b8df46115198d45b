//! The unikernel: its devices and its entry point. `cargo build` makes the
//! image for `tender`; with `--target x86_64-unknown-linux-gnu` this is a
//! host process running the same application on the mock tender.
#![no_std]
#![no_main]

// Devices, e.g. manifest!(net "service"): under tender attach it with
// --net:service=TAP, as a host process with HVT_NET_service=TAP.
hvt_runtime::manifest!();
hvt_runtime::main!(myapp::app);
