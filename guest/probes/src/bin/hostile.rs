//! A guest that misbehaves in the way its first argument names, so the tests
//! can check that the tender stops it with the documented message and code.
//! A command line that names none of the actions below is a script of
//! steps (`hostile-lib/script.rs`).
#![no_std]
#![no_main]

#[path = "hostile-lib/script.rs"]
mod script;

use core::arch::asm;

use hvt_bindings::abi::hypercall::{nr, Halt, Puts, PIO_BASE, RING_KICK_PIO_BASE};
use hvt_bindings::hypercall::hypercall;
use hvt_bindings::{boot, exit, println, StartInfo};

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

fn outl(port: u16, value: u32) {
    // SAFETY: the point of this guest: an arbitrary port write.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value) };
}

fn mem_size() -> u64 {
    boot::boot_info().expect("boot info").mem_size
}

/// `addr` as the 32-bit hypercall argument (EAX).
fn gpa(addr: u64) -> u32 {
    u32::try_from(addr).expect("guest address below 4 GiB")
}

fn main(start: &StartInfo) -> i32 {
    let mut args = start.cmdline.split(' ');
    let action = args.next().unwrap_or("");
    let number = args.next().and_then(|n| n.parse::<i32>().ok()).unwrap_or(0);
    println!("hostile: {action}");
    let scratch = 0x20_0000u32;
    match action {
        "port-low" => outl(PIO_BASE - 1, scratch),
        "port-high" | "hc9" => outl(PIO_BASE + nr::MAX, scratch),
        "port-ring" => outl(RING_KICK_PIO_BASE, 0),
        // The trap path's port (§12.4), reserved to the tender's trampoline.
        "port-trap" => outl(hvt_bindings::abi::layout::TRAP_PORT, 0),
        "hc0" => outl(PIO_BASE, scratch),
        "in" => {
            let value: u32;
            // SAFETY: an IN from a hypercall port: refused by the tender.
            unsafe { asm!("in eax, dx", in("dx") PIO_BASE + nr::WALLTIME, out("eax") value) };
            println!("in returned {value}");
        }
        "out8" => {
            // SAFETY: an 8-bit OUT to a hypercall port: refused by the tender.
            unsafe { asm!("out dx, al", in("dx") PIO_BASE + nr::WALLTIME, in("al") 0u8) };
        }
        "out16" => {
            // SAFETY: a 16-bit OUT: refused by the tender.
            unsafe { asm!("out dx, ax", in("dx") PIO_BASE + nr::WALLTIME, in("ax") 0u16) };
        }
        // WALLTIME whose argument lies past the end of memory.
        "gpa-oob" => outl(PIO_BASE + nr::WALLTIME, gpa(mem_size() + 0x1000)),
        // WALLTIME whose result would land in the guest's own code, which
        // the tender maps read-only.
        "gpa-text" => outl(PIO_BASE + nr::WALLTIME, gpa(main as *const () as u64)),
        // WALLTIME whose 8-byte argument ends exactly at the top of memory.
        "gpa-top" => outl(PIO_BASE + nr::WALLTIME, gpa(mem_size() - 8)),
        "puts-huge" => {
            let mut arg = Puts {
                data: 0x10_0000,
                len: u64::MAX - 0x1000,
            };
            // SAFETY: a well-formed PUTS struct naming a bad range.
            unsafe { hypercall(nr::PUTS, &mut arg) };
        }
        "puts-past-top" => {
            let mut arg = Puts {
                data: mem_size() - 16,
                len: 32,
            };
            // SAFETY: as above.
            unsafe { hypercall(nr::PUTS, &mut arg) };
        }
        "halt-cookie" => {
            let mut arg = Halt {
                cookie: mem_size() - 100,
                exit_status: 0,
                _pad: 0,
            };
            // SAFETY: a HALT whose cookie leaves fewer than 512 bytes.
            unsafe { hypercall(nr::HALT, &mut arg) };
        }
        "hlt" => {
            // SAFETY: privileged on purpose: the tender must stop a CPL 3
            // guest that runs it.
            unsafe { asm!("hlt") }
        }
        "triple" => {
            // SAFETY: faults on purpose: the tender must end the guest.
            unsafe { asm!("ud2") }
        }
        "write-text" => {
            let text = main as *const u8 as *mut u8;
            // SAFETY: deliberately writes to our own code (host read-only).
            unsafe { text.write_volatile(0x90) };
        }
        "exit" => exit::exit(number),
        "abort" => exit::abort(),
        "panic" => panic!("hostile guest panics on request"),
        _ => return script::run(start.cmdline),
    }
    println!("hostile: survived {action}");
    3
}
