//! Sleeps through the yield hypercall for the number of milliseconds given
//! (default 1000), then exits 0: an idle guest, for measuring what idling
//! costs the host.
#![no_std]
#![no_main]

use hvt_bindings::{clock, poll, println, StartInfo};

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

fn main(start: &StartInfo) -> i32 {
    let ms: u64 = start.cmdline.trim().parse().unwrap_or(1000);
    let deadline = clock::monotonic_ns() + ms * 1_000_000;
    let mut yields = 0u64;
    while clock::monotonic_ns() < deadline {
        poll::yield_until(deadline);
        yields += 1;
    }
    println!("idle: slept {ms} ms in {yields} yields");
    0
}
