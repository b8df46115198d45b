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
/// Receives a 32-bit port write that is not a hypercall (a doorbell).
pub type PortWriter = fn(port: u16, value: u32);

/// Returns the boot information of the calling guest, if it has one. Its
/// pointers (`mft`, `cmdline`, `net_ring`) are host addresses.
pub type BootInfoSource = fn() -> Option<&'static BootInfo>;

static TRANSPORT: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static CLOCK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static BOOT_INFO_SOURCE: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
static PORT_WRITER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

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

/// Routes the process's doorbell writes (`out` to a port that is not a
/// hypercall's) to `writer`.
pub fn set_port_writer(writer: PortWriter) {
    PORT_WRITER.store(writer as *mut (), Ordering::SeqCst);
}

/// The host's `out dx, eax` for a doorbell: goes to the installed port
/// writer; without one the write is dropped, as a port nobody listens on.
pub fn port_write(port: u16, value: u32) {
    let raw = PORT_WRITER.load(Ordering::SeqCst);
    if raw.is_null() {
        return;
    }
    // SAFETY: only `set_port_writer` stores here, always a `PortWriter`.
    let writer = unsafe { core::mem::transmute::<*mut (), PortWriter>(raw) };
    writer(port, value)
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
