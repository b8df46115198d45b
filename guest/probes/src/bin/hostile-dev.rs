//! The hostile probe's script (`hostile-lib/script.rs`) in a guest with a
//! network device, `service` (handle 1), and a block device, `storage`
//! (handle 2): for the device hypercalls, wrong device kinds and the
//! network ring.
#![no_std]
#![no_main]

#[path = "hostile-lib/script.rs"]
mod script;

hvt_bindings::manifest!(net "service", block "storage");
hvt_bindings::entry!(main);

fn main(start: &hvt_bindings::StartInfo) -> i32 {
    script::run(start.cmdline)
}
