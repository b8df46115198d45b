//! Declares 63 block devices, d1 to d63 (the most a manifest holds besides
//! its reserved entry), writes one block with its own number to each, then
//! reads every one back: "blk63: 63 devices ok" and exit 0 when all hold
//! what was written.
#![no_std]
#![no_main]

use hvt_bindings::abi::hypercall::{nr, result, BlockIo};
use hvt_bindings::abi::manifest::MFT_DEV_BLOCK_BASIC;
use hvt_bindings::hypercall::hypercall;
use hvt_bindings::{boot, println, StartInfo};

hvt_bindings::manifest!(
    block "d1",
    block "d2",
    block "d3",
    block "d4",
    block "d5",
    block "d6",
    block "d7",
    block "d8",
    block "d9",
    block "d10",
    block "d11",
    block "d12",
    block "d13",
    block "d14",
    block "d15",
    block "d16",
    block "d17",
    block "d18",
    block "d19",
    block "d20",
    block "d21",
    block "d22",
    block "d23",
    block "d24",
    block "d25",
    block "d26",
    block "d27",
    block "d28",
    block "d29",
    block "d30",
    block "d31",
    block "d32",
    block "d33",
    block "d34",
    block "d35",
    block "d36",
    block "d37",
    block "d38",
    block "d39",
    block "d40",
    block "d41",
    block "d42",
    block "d43",
    block "d44",
    block "d45",
    block "d46",
    block "d47",
    block "d48",
    block "d49",
    block "d50",
    block "d51",
    block "d52",
    block "d53",
    block "d54",
    block "d55",
    block "d56",
    block "d57",
    block "d58",
    block "d59",
    block "d60",
    block "d61",
    block "d62",
    block "d63"
);
hvt_bindings::entry!(main);

/// One BLOCK_READ or BLOCK_WRITE of `buffer` at offset 0 of `handle`.
fn transfer(number: u16, handle: u64, buffer: &mut [u8; 512]) -> i32 {
    let mut arg = BlockIo {
        handle,
        offset: 0,
        data: buffer.as_mut_ptr() as u64,
        len: buffer.len() as u64,
        ret: -1,
        _pad: 0,
    };
    // SAFETY: a well-formed block request over a live buffer.
    unsafe { hypercall(number, &mut arg) };
    arg.ret
}

fn main(_: &StartInfo) -> i32 {
    let handles: [u64; 63] = core::array::from_fn(|i| (i + 1) as u64);
    for (handle, entry) in handles.iter().zip(&boot::manifest_entries()[1..]) {
        if entry.kind != MFT_DEV_BLOCK_BASIC || entry.attached == 0 {
            println!("blk63: device {handle} is not an attached block device");
            return 1;
        }
        let mut block = [handle.to_le_bytes()[0]; 512];
        if transfer(nr::BLOCK_WRITE, *handle, &mut block) != result::OK {
            println!("blk63: write to device {handle} failed");
            return 1;
        }
    }
    for handle in handles {
        let mut block = [0u8; 512];
        if transfer(nr::BLOCK_READ, handle, &mut block) != result::OK
            || block != [handle.to_le_bytes()[0]; 512]
        {
            println!("blk63: device {handle} does not hold what was written");
            return 1;
        }
    }
    println!("blk63: 63 devices ok");
    0
}
