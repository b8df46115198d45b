//! Ending the guest (§6.6): HALT with a status.

use hvt_abi::hypercall::{exit as status, nr, Halt};

use crate::cmdline::LogLevel;
use crate::hypercall::hypercall;

/// Halts with `exit_status`; the tender exits with its low byte.
pub fn halt(exit_status: i32) -> ! {
    halt_with_cookie(exit_status, 0)
}

/// [`halt`] with a cookie (§6.6): the address of at least
/// `HALT_COOKIE_MAX` (512) readable bytes that start with a trap frame
/// (`cr2, error_code, rip, cs, rflags, rsp, ss`), for a core dump; or 0.
pub fn halt_with_cookie(exit_status: i32, cookie: u64) -> ! {
    // Buffered console output goes out before the guest ends (§6.1).
    crate::console::flush();
    let mut arg = Halt {
        cookie,
        exit_status,
        _pad: 0,
    };
    // SAFETY: a HALT argument on our stack.
    unsafe { hypercall(nr::HALT, &mut arg) };
    // A tender never resumes a halted guest; spin if one does.
    #[allow(clippy::empty_loop)]
    loop {}
}

/// `solo5_exit`: logs at INFO and halts.
pub fn exit(exit_status: i32) -> ! {
    crate::log!(LogLevel::Info, "solo5_exit({}) called", exit_status);
    halt(exit_status)
}

/// `solo5_abort`: logs at INFO, as upstream, and halts with 255.
pub fn abort() -> ! {
    crate::log!(LogLevel::Info, "solo5_abort() called");
    halt(status::ABORT)
}
