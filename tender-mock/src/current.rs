//! The mock tender of this thread, and the hooks the guest's bindings call
//! on the host (transport, clock, boot information) that reach it.

use std::cell::RefCell;

use hvt_abi::boot::BootInfo;
use tender_core::hypercall::Action;

use crate::{GuestExit, MockTender};

thread_local! {
    static CURRENT: RefCell<Option<MockTender>> = const { RefCell::new(None) };
}

/// Makes `mock` the tender of this thread's guest code.
pub fn install(mock: MockTender) {
    CURRENT.with(|current| *current.borrow_mut() = Some(mock));
}

/// Takes this thread's mock tender back.
pub fn uninstall() -> Option<MockTender> {
    CURRENT.with(|current| current.borrow_mut().take())
}

/// Runs `f` on this thread's mock tender.
pub fn with<R>(f: impl FnOnce(&mut MockTender) -> R) -> R {
    CURRENT.with(|current| {
        f(current
            .borrow_mut()
            .as_mut()
            .expect("no mock tender installed on this thread"))
    })
}

/// The bindings' host transport: serves the hypercall on this thread's mock
/// tender. A HALT, or a call the tender refuses, ends the guest by
/// unwinding with a [`GuestExit`] payload.
///
/// A safe `fn` because it is the bindings' transport, whose type is a safe
/// function pointer: its caller is guest code of this process passing its
/// own argument struct, as on a real tender.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn hypercall(number: u16, arg: *mut u8) {
    // SAFETY: the bindings pass the argument struct of `number`, built by
    // guest code in this process from its own buffers.
    let result = with(|mock| unsafe { mock.serve(number, arg) });
    end_on_stop(result);
}

/// Unwinds with a [`GuestExit`] when the tender stopped the guest.
fn end_on_stop(result: std::result::Result<Action, String>) {
    match result {
        Ok(Action::Continue) => {}
        Ok(Action::Exit(code)) => std::panic::panic_any(GuestExit { code, error: None }),
        Err(message) => std::panic::panic_any(GuestExit {
            code: 1,
            error: Some(message),
        }),
    }
}

/// The bindings' host clock: this thread's mock tender's monotonic time.
pub fn monotonic_ns() -> u64 {
    with(|mock| mock.monotonic_ns())
}

/// The bindings' host boot information: that of this thread's mock tender,
/// `None` when none is installed.
pub fn boot_info() -> Option<&'static BootInfo> {
    CURRENT
        .try_with(|current| {
            current
                .try_borrow()
                .ok()
                .and_then(|mock| mock.as_ref().map(|m| m.boot_info))
        })
        .ok()
        .flatten()
}

/// The bindings' host port writer: the guest's `out` to a port that is not
/// a hypercall's, on this thread's mock tender (a doorbell, or an exit the
/// modules serve). A port the tender refuses ends the guest, as
/// [`hypercall`] does.
pub fn port_write(port: u16, value: u32) {
    end_on_stop(with(|mock| mock.port_write(port, value)));
}
