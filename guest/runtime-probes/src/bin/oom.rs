//! Allocates until the heap is exhausted: the guest must end with a clear
//! message and exit 255, never run on with a corrupt heap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use hvt_runtime::{println, Args};

hvt_runtime::manifest!();
hvt_runtime::main!(main);

async fn main(_args: Args) -> Result<(), &'static str> {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = Vec::with_capacity(1 << 20);
        // reason: truncation intended: the low byte is only a fill pattern.
        #[allow(clippy::cast_possible_truncation)]
        let fill = blocks.len() as u8;
        block.resize(1 << 20, fill);
        blocks.push(block);
        if blocks.len().is_multiple_of(16) {
            println!("oom: {} MiB allocated", blocks.len());
        }
    }
}
