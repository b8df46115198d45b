//! The stack protector's canary and its failure (C code is compiled with
//! `-fstack-protector-strong -mstack-protector-guard=global`: the canary is
//! this global, not `%fs:0x28`, since the thread pointer starts at 0).

use hvt_bindings::clock::rdtsc;
use hvt_bindings::console::print_fmt;
use hvt_bindings::exit::halt;

/// The canary every protected C function checks. Until [`init`] it holds a
/// fixed value, so functions that run before keep a consistent one.
#[no_mangle]
#[used]
static mut __stack_chk_guard: u64 = 0x00ff_0a0d_5eed_0000;

/// Sets an unpredictable canary before the C program runs: two TSC reads,
/// with the second-lowest byte zeroed so that a string copy stops at it.
pub fn init() {
    let canary = (rdtsc().rotate_left(32) ^ rdtsc().wrapping_mul(0x9e37_79b9_7f4a_7c15)) & !0xff00;
    // SAFETY: single-threaded guest; no protected C function is running yet.
    unsafe { core::ptr::addr_of_mut!(__stack_chk_guard).write(canary) };
}

/// Called by a protected function whose canary was overwritten.
#[no_mangle]
pub extern "C" fn __stack_chk_fail() -> ! {
    print_fmt(format_args!("Solo5: ABORT: Stack corruption detected\n"));
    halt(hvt_bindings::abi::hypercall::exit::ABORT)
}
