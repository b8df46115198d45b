//! Recurses past the 512 KiB stack into the guard gap, then yields: the
//! scheduler's guard check must end the guest with exit 255.
#![no_std]
#![no_main]

use hvt_runtime::memory::STACK_SIZE;
use hvt_runtime::{println, yield_now, Args};

hvt_runtime::manifest!();
hvt_runtime::main!(main);

#[inline(never)]
fn recurse(depth: usize, budget: usize) -> usize {
    // reason: truncation intended: the low byte is only a fill pattern.
    #[allow(clippy::cast_possible_truncation)]
    let frame = [depth as u8; 1024];
    let used = core::hint::black_box(&frame).len();
    if used >= budget {
        return depth;
    }
    recurse(depth + 1, budget - used) + core::hint::black_box(frame[depth % 1024]) as usize
}

async fn main(_args: Args) -> Result<(), &'static str> {
    // The whole stack and 16 KiB more: into the guard, not past it.
    let depth = recurse(0, STACK_SIZE + (16 << 10));
    println!("stack-overflow: recursion returned ({depth})");
    yield_now().await;
    Err("the overflow went unnoticed")
}
