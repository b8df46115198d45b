//! Issues N WALLTIME hypercalls (default 20,000) and prints the average
//! round trip: the raw cost of an exit to the tender and back.
#![no_std]
#![no_main]

use hvt_bindings::{clock, println, StartInfo};

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

fn main(start: &StartInfo) -> i32 {
    let rounds: u64 = start.cmdline.trim().parse().unwrap_or(20_000);
    let t0 = clock::monotonic_ns();
    for _ in 0..rounds {
        core::hint::black_box(clock::walltime_hypercall_ns());
    }
    let ns = clock::monotonic_ns() - t0;
    println!(
        "hcloop: {rounds} WALLTIME hypercalls, {} ns each",
        ns / rounds.max(1)
    );
    0
}
