//! Checks the wall clock of the clock page (§12.7) against the WALLTIME
//! hypercall from inside the guest, for ARG milliseconds (default 1500, so
//! that at least one refresh of the page falls inside), and prints
//! `clock.NAME=VALUE` lines for the tests.
#![no_std]
#![no_main]

use hvt_bindings::abi::clock::ClockPage;
use hvt_bindings::abi::layout::CLOCK_PAGE_BASE;
use hvt_bindings::{boot, clock, hypercall, println, StartInfo};

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

fn main(start: &StartInfo) -> i32 {
    let ms: u64 = start.cmdline.trim().parse().unwrap_or(1500);
    let info = boot::boot_info().expect("boot info");
    println!("clock.host_features=0x{:x}", info.host_features);
    println!("clock.from_page={}", u8::from(clock::wall_from_page()));
    if clock::wall_from_page() {
        // SAFETY: offered, so the page is mapped read-only at this address.
        let page = unsafe { core::ptr::read_volatile(CLOCK_PAGE_BASE as *const ClockPage) };
        println!("clock.page.seq={}", page.seq);
        println!("clock.page.version={}", page.version);
        println!("clock.page.steps={}", page.steps);
        println!("clock.page.shift={}", page.shift);
        println!("clock.page.mult={}", page.mult);
    }

    // Bracket page readings between two WALLTIME hypercalls.
    let (mut behind, mut ahead, mut samples) = (0u64, 0u64, 0u64);
    let end = clock::monotonic_ns() + ms * 1_000_000;
    while clock::monotonic_ns() < end {
        let before = clock::walltime_hypercall_ns();
        let read = clock::wall_ns();
        let after = clock::walltime_hypercall_ns();
        behind = behind.max(before.saturating_sub(read));
        ahead = ahead.max(read.saturating_sub(after));
        samples += 1;
        // Keep the exits rare: the page must stay right between them too.
        let pause = clock::monotonic_ns() + 200_000;
        while clock::monotonic_ns() < pause {
            core::hint::spin_loop();
        }
    }
    println!("clock.samples={samples}");
    println!("clock.max_behind_ns={behind}");
    println!("clock.max_ahead_ns={ahead}");

    // Consecutive readings without exits in between: never back, no exit.
    let issued = hypercall::issued();
    let (mut back, mut last, mut reads) = (0u64, 0u64, 0u64);
    let mono_start = clock::monotonic_ns();
    let mut mono_last = mono_start;
    let mut mono_back = 0u64;
    while clock::monotonic_ns() < mono_start + 300_000_000 {
        let now = clock::wall_ns();
        if now < last {
            back += 1;
        }
        last = now;
        let mono = clock::monotonic_ns();
        if mono < mono_last {
            mono_back += 1;
        }
        mono_last = mono;
        reads += 1;
    }
    let exits = hypercall::issued() - issued;
    println!("clock.reads={reads}");
    println!("clock.exits_during_reads={exits}");
    println!("clock.wall_backwards={back}");
    println!("clock.monotonic_backwards={mono_back}");
    0
}
