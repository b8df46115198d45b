//! The host side of the bindings, for running guest code in tests: there is
//! no `outl` and no TSC scale from a tender, so a test harness installs a
//! transport that serves hypercalls in-process (the runtime's mock tender)
//! and the clock that goes with it, and the boot information (manifest
//! included) that a tender would have written into guest memory.

use core::sync::atomic::{AtomicPtr, Ordering};

use hvt_abi::boot::BootInfo;

/// Receives the hypercall number and the argument struct's address.
pub type Transport = fn(nr: u16, arg: *mut u8);
/// Returns monotonic nanoseconds.
pub type Clock = fn() -> u64;

/// Returns the boot information of the calling guest, if it has one. Its
/// pointers (`mft`, `cmdline`, `net_ring`) are host addresses.
pub type BootInfoSource = fn() -> Option<&'static BootInfo>;

static TRANSPORT: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static CLOCK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static BOOT_INFO_SOURCE: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Routes every hypercall of this process to `transport`.
pub fn set_transport(transport: Transport) {
    TRANSPORT.store(transport as *mut (), Ordering::SeqCst);
}

/// Makes `clock` the monotonic clock of this process.
pub fn set_clock(clock: Clock) {
    CLOCK.store(clock as *mut (), Ordering::SeqCst);
}

/// Makes `source` the provider of [`crate::boot::boot_info`] on the host.
pub fn set_boot_info_source(source: BootInfoSource) {
    BOOT_INFO_SOURCE.store(source as *mut (), Ordering::SeqCst);
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

/// The boot information from the installed source; `None` without one.
pub(crate) fn boot_info() -> Option<&'static BootInfo> {
    let raw = BOOT_INFO_SOURCE.load(Ordering::SeqCst);
    if raw.is_null() {
        return None;
    }
    // SAFETY: only `set_boot_info_source` stores here, always a
    // `BootInfoSource`.
    let source = unsafe { core::mem::transmute::<*mut (), BootInfoSource>(raw) };
    source()
}
