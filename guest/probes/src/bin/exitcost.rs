//! Measures what each kind of exit from the guest costs, in one run: a
//! WALLTIME hypercall (a port write served by the tender in user space),
//! POLL with a zero timeout (the same, plus an epoll wait), and, when the
//! tender offers the network ring, a doorbell write (a port write served by
//! an ioeventfd in the host kernel, no return to the tender).
//!
//! Command line: the number of rounds of each (default 5,000). Prints one
//! `exitcost: KIND NS` line per kind.
#![no_std]
#![no_main]

use hvt_bindings::abi::boot::HOST_FEATURE_RING_IO;
use hvt_bindings::abi::hypercall::RING_KICK_PIO_BASE;
use hvt_bindings::{clock, println, StartInfo};

hvt_bindings::manifest!(net "service");
hvt_bindings::entry!(main);

fn per_round(rounds: u64, mut step: impl FnMut()) -> u64 {
    let t0 = clock::monotonic_ns();
    for _ in 0..rounds {
        step();
    }
    (clock::monotonic_ns() - t0) / rounds.max(1)
}

fn main(start: &StartInfo) -> i32 {
    let rounds: u64 = start.cmdline.trim().parse().unwrap_or(5_000);
    let walltime = per_round(rounds, || {
        core::hint::black_box(clock::walltime_hypercall_ns());
    });
    println!("exitcost: walltime {walltime}");
    let poll = per_round(rounds, || {
        core::hint::black_box(hvt_bindings::poll::yield_until(0));
    });
    println!("exitcost: poll0 {poll}");
    let ring = hvt_bindings::boot::boot_info()
        .is_some_and(|info| info.host_features & HOST_FEATURE_RING_IO != 0);
    if ring {
        let doorbell = per_round(rounds, || {
            // SAFETY: the tender offered the ring, so it registered an
            // ioeventfd on the doorbell port: the write only signals it.
            unsafe {
                core::arch::asm!("out dx, eax", in("dx") RING_KICK_PIO_BASE,
                    in("eax") 0u32, options(nostack, preserves_flags));
            }
        });
        println!("exitcost: doorbell {doorbell}");
    }
    0
}
