//! A guest whose image (1.5 MiB of bss) leaves less than the bindings' 512 KiB
//! minimum heap in 2 MiB of memory: the bindings must refuse to start it.
#![no_std]
#![no_main]

use hvt_bindings::{println, StartInfo};

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

static mut BIG: [u8; 1536 * 1024] = [0; 1536 * 1024];

fn main(start: &StartInfo) -> i32 {
    // SAFETY: single-threaded guest; touches the array so it is kept.
    let first = unsafe { core::ptr::addr_of_mut!(BIG).cast::<u8>().read_volatile() };
    println!(
        "big-bss: heap of {} bytes, first byte {first}",
        start.heap_size
    );
    0
}
