//! The host side of the bindings, for running guest code in tests: there is
//! no `outl` and no TSC scale from a tender, so a test harness installs a
//! transport that serves hypercalls in-process (the runtime's mock tender)
//! and the clock that goes with it.

use core::sync::atomic::{AtomicPtr, Ordering};

/// Receives the hypercall number and the argument struct's address.
pub type Transport = fn(nr: u16, arg: *mut u8);
/// Returns monotonic nanoseconds.
pub type Clock = fn() -> u64;

static TRANSPORT: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static CLOCK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Routes every hypercall of this process to `transport`.
pub fn set_transport(transport: Transport) {
    TRANSPORT.store(transport as *mut (), Ordering::SeqCst);
}

/// Makes `clock` the monotonic clock of this process.
pub fn set_clock(clock: Clock) {
    CLOCK.store(clock as *mut (), Ordering::SeqCst);
}

pub(crate) fn call(nr: u16, arg: *mut u8) {
    let raw = TRANSPORT.load(Ordering::SeqCst);
    assert!(
        !raw.is_null(),
        "hypercall {nr} on the host with no transport installed"
    );
    // SAFETY: only `set_transport` stores here, always a `Transport`.
    let transport = unsafe { core::mem::transmute::<*mut (), Transport>(raw) };
    transport(nr, arg)
}

pub(crate) fn monotonic_ns() -> u64 {
    let raw = CLOCK.load(Ordering::SeqCst);
    assert!(
        !raw.is_null(),
        "monotonic clock read on the host with no clock installed"
    );
    // SAFETY: only `set_clock` stores here, always a `Clock`.
    let clock = unsafe { core::mem::transmute::<*mut (), Clock>(raw) };
    clock()
}
