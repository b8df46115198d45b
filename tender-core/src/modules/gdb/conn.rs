//! The connection to gdb: reading what it sent without blocking, and a
//! signal on the vCPU thread when it sends while the guest runs (Ctrl-C).

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use super::gdb_error;
use crate::error::Result;

/// A byte gdb sent, if one is waiting (never blocks).
pub(super) fn pending_byte(conn: &TcpStream) -> Option<u8> {
    let mut byte = 0u8;
    // SAFETY: a one-byte receive into a local, on a socket we own.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            std::ptr::addr_of_mut!(byte).cast(),
            1,
            libc::MSG_DONTWAIT,
        )
    };
    (n == 1).then_some(byte)
}

/// `fcntl(F_SETOWN_EX)` and its `struct f_owner_ex` (linux/fcntl.h; not
/// in the libc crate): signals go to one thread, not the process.
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;
#[repr(C)]
struct FOwnerEx {
    type_: libc::c_int,
    pid: libc::pid_t,
}

/// gdb sent something since [`take_input_signal`] last looked.
static INPUT_SIGNALLED: AtomicBool = AtomicBool::new(false);

/// SIGIO's handler: notes the input. Its arrival also makes `KVM_RUN`
/// return (EINTR), and cuts a guest's POLL short.
extern "C" fn on_sigio(_: libc::c_int) {
    INPUT_SIGNALLED.store(true, Ordering::Relaxed);
}

/// Whether gdb sent something (a Ctrl-C) since the last call: the
/// tender looks after a hypercall, whose wait (POLL) hid the signal from
/// `KVM_RUN`.
pub(super) fn take_input_signal() -> bool {
    INPUT_SIGNALLED.swap(false, Ordering::Relaxed)
}

/// Makes the kernel signal this thread (SIGIO) when gdb sends a byte while
/// the guest runs: `KVM_RUN` then returns, and the stub reads the Ctrl-C.
pub(super) fn signal_on_input(conn: &TcpStream) -> Result<()> {
    let fd = conn.as_raw_fd();
    // SAFETY: a handler that only stores to an atomic (async-signal-safe), installed
    // with SA_RESTART so that only calls that always fail with EINTR
    // (KVM_RUN, epoll_wait) see the signal; fcntl on our own socket.
    let ok = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigio as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        let owner = FOwnerEx {
            type_: F_OWNER_TID,
            pid: libc::gettid(),
        };
        libc::sigaction(libc::SIGIO, &action, std::ptr::null_mut()) == 0
            && libc::fcntl(fd, F_SETOWN_EX, &owner) == 0
            && libc::fcntl(
                fd,
                libc::F_SETFL,
                libc::fcntl(fd, libc::F_GETFL) | libc::O_ASYNC,
            ) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(gdb_error(std::io::Error::last_os_error()))
    }
}
