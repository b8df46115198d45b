//! A guest for `--gdb` (tests/gdb.rs): `accumulate` adds twice its
//! argument to the global `TOTAL` five times (steps 1 to 5); the guest
//! exits with `TOTAL`, 30. With the argument `spin` it then counts in
//! `SPINS` for ever (for gdb's Ctrl-C); with `idle` it yields for ever,
//! an hour at a time, counting in `IDLES` (a Ctrl-C while the tender
//! waits in the guest's POLL); with `sse` it first puts a mark in XMM15
//! (for gdb's SSE registers).
#![no_std]
#![no_main]

use hvt_bindings::StartInfo;

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

/// Counted by `spin`.
static mut SPINS: u64 = 0;

/// Counted by `idle`, once per return from a yield.
static mut IDLES: u64 = 0;

/// What gdb reads as a global and watches.
static mut TOTAL: u64 = 0;

#[inline(never)]
fn accumulate(step: u64) -> u64 {
    let doubled = core::hint::black_box(step * 2);
    // SAFETY: one thread; volatile so that every store happens.
    unsafe {
        let total = core::ptr::addr_of_mut!(TOTAL);
        total.write_volatile(total.read_volatile() + doubled);
    }
    doubled
}

/// What `sse` leaves in XMM15 for gdb to read.
const SSE_MARK: u64 = 0x5eed_f00d_cafe_0042;

fn main(start: &StartInfo) -> i32 {
    if start.cmdline.trim() == "sse" {
        // The guest target generates no SSE code, so XMM15 keeps the mark
        // while gdb looks (CPL 3 only: SSE at CPL 0 ends the VM here).
        // SAFETY: writes only XMM15, which nothing else in the guest uses.
        unsafe { core::arch::asm!("movq xmm15, rax", in("rax") SSE_MARK) };
    }
    for step in 1..=5 {
        core::hint::black_box(accumulate(core::hint::black_box(step)));
    }
    if start.cmdline.trim() == "spin" {
        loop {
            // SAFETY: one thread.
            unsafe {
                let spins = core::ptr::addr_of_mut!(SPINS);
                spins.write_volatile(spins.read_volatile() + 1);
            }
        }
    }
    if start.cmdline.trim() == "idle" {
        loop {
            let hour = 3_600_000_000_000;
            hvt_bindings::poll::yield_until(hvt_bindings::clock::monotonic_ns() + hour);
            // SAFETY: one thread.
            unsafe {
                let idles = core::ptr::addr_of_mut!(IDLES);
                idles.write_volatile(idles.read_volatile() + 1);
            }
        }
    }
    // SAFETY: one thread.
    let total = unsafe { core::ptr::addr_of!(TOTAL).read_volatile() };
    i32::try_from(total).unwrap_or(1)
}
