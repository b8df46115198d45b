//! Declares one block device, "storage", and reports what the tender
//! attached (capacity, block size, read-only flag), then sleeps for the
//! milliseconds given (default 0) and exits 0: a guest for the tests of
//! image attachment, locking and read-only images.
#![no_std]
#![no_main]

use hvt_bindings::abi::manifest::{MFT_BLOCK_READ_ONLY, MFT_DEV_BLOCK_BASIC};
use hvt_bindings::{boot, clock, poll, println, StartInfo};

hvt_bindings::manifest!(block "storage");
hvt_bindings::entry!(main);

fn main(start: &StartInfo) -> i32 {
    let Some(entry) = boot::manifest_entries()
        .iter()
        .find(|e| e.kind == MFT_DEV_BLOCK_BASIC && e.name_bytes() == b"storage")
    else {
        println!("blockhold: no storage device");
        return 1;
    };
    let block = entry.block();
    println!(
        "blockhold: capacity {} block size {} read-only {}",
        block.capacity,
        block.block_size,
        block.flags & MFT_BLOCK_READ_ONLY != 0
    );
    let ms: u64 = start.cmdline.trim().parse().unwrap_or(0);
    let deadline = clock::monotonic_ns() + ms * 1_000_000;
    while clock::monotonic_ns() < deadline {
        poll::yield_until(deadline);
    }
    0
}
