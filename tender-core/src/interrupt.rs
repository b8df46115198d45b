//! A request, made from a signal handler, that the vCPU thread stop the
//! guest and look: what a debugger's Ctrl-C becomes (`--gdb`: SIGIO when
//! gdb sends while the guest runs).
//!
//! A flag alone could be missed: a signal that arrives while the thread is
//! between two `KVM_RUN`s (serving an exit) interrupts nothing, and a guest
//! that then spins without exits would never be looked at. So the request
//! also sets `kvm_run.immediate_exit` of the vCPU, which `KVM_RUN` checks on
//! entry: the next `KVM_RUN` returns EINTR at once, whenever the signal
//! came. [`take`] clears both.

use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// A request not yet taken.
static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The vCPU's `kvm_run.immediate_exit`, or null while there is no vCPU.
static IMMEDIATE_EXIT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

/// Registers the `immediate_exit` byte of the vCPU's `kvm_run` mapping; null
/// unregisters it (before the mapping goes away).
///
/// # Safety
/// `byte` must stay valid for writes until it is unregistered.
pub unsafe fn register_immediate_exit(byte: *mut u8) {
    IMMEDIATE_EXIT.store(byte, Ordering::SeqCst);
}

fn set_immediate_exit(value: u8) {
    let byte = IMMEDIATE_EXIT.load(Ordering::SeqCst);
    if !byte.is_null() {
        // SAFETY: registered as valid until unregistered
        // (`register_immediate_exit`); a byte store, which KVM reads on
        // entry to `KVM_RUN`.
        unsafe { byte.write_volatile(value) };
    }
}

/// Requests a stop. Async-signal-safe: two stores.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
    set_immediate_exit(1);
}

/// Whether a stop was requested since the last call; clears the request.
pub fn take() -> bool {
    set_immediate_exit(0);
    REQUESTED.swap(false, Ordering::SeqCst)
}

/// Whether a request is outstanding (not yet taken).
pub fn pending() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Keeps a request taken at a moment the guest could not be stopped (at
/// CPL 3, inside the tender's trap trampoline) for the next exit to act
/// on, without making `KVM_RUN` return at once again.
pub fn defer() {
    REQUESTED.store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_sets_immediate_exit_until_taken() {
        let byte = Box::into_raw(Box::new(0u8));
        let read = || {
            // SAFETY: `byte` is a live allocation until the end of the test.
            unsafe { byte.read_volatile() }
        };
        // SAFETY: `byte` outlives the registration, undone below.
        unsafe { register_immediate_exit(byte) };
        request();
        assert!(pending());
        assert_eq!(read(), 1);
        assert!(take());
        assert_eq!(read(), 0);
        assert!(!take());
        defer();
        assert!(pending());
        assert_eq!(read(), 0);
        assert!(take());
        // SAFETY: unregisters, then frees what nothing points to any more.
        unsafe {
            register_immediate_exit(std::ptr::null_mut());
            drop(Box::from_raw(byte));
        }
    }
}
