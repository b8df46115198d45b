//! Prints numbered lines through the buffered console (§6.1) and the
//! unbuffered `console::write`, then ends as ARG says: `exit`, `abort`,
//! `panic`, `fault` (a store to address 0), `return` (from main), or `count` (how many PUTS the
//! lines took, then exits).
#![no_std]
#![no_main]

use hvt_bindings::{console, exit, hypercall, print, println, StartInfo};

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

fn main(start: &StartInfo) -> i32 {
    let how = start.cmdline.trim();
    let issued = hypercall::issued();
    for i in 0..300 {
        println!("line {i}");
        if i % 100 == 50 {
            console::write(b"direct\n");
        }
    }
    print!("no newline at the end");
    let puts = hypercall::issued() - issued;
    match how {
        "abort" => exit::abort(),
        "panic" => panic!("on purpose"),
        "exit" => exit::exit(3),
        "fault" => store_to_null(),
        "count" => {
            println!();
            println!("console.puts_for_300_lines={puts}");
            0
        }
        _ => 0,
    }
}

/// Faults on purpose (a #PF, §12.4), in a function of its own for the
/// backtrace of a core (tests/dumpcore.rs).
#[inline(never)]
fn store_to_null() -> i32 {
    // SAFETY: not sound, on purpose: address 0 is unmapped, the store
    // faults and the tender ends the guest.
    unsafe { core::ptr::write_volatile(core::hint::black_box(core::ptr::null_mut::<u64>()), 1) };
    0
}
