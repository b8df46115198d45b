//! The connection to gdb: reading what it sent without blocking, and a
//! signal on the vCPU thread when it sends while the guest runs (Ctrl-C).

use std::net::TcpStream;
use std::os::fd::AsRawFd;

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

/// SIGIO's handler: nothing; its arrival makes `KVM_RUN` return (EINTR).
extern "C" fn on_sigio(_: libc::c_int) {}

/// Makes the kernel signal this thread (SIGIO) when gdb sends a byte while
/// the guest runs: `KVM_RUN` then returns, and the stub reads the Ctrl-C.
pub(super) fn signal_on_input(conn: &TcpStream) -> Result<()> {
    let fd = conn.as_raw_fd();
    // SAFETY: a handler that does nothing (async-signal-safe), installed
    // with SA_RESTART so that only calls that always fail with EINTR
    // (KVM_RUN, epoll_wait) see the signal; fcntl on our own socket.
    let ok = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigio as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // The system call, not glibc's `gettid`: in the static release
        // build (LTO) that symbol is only weakly referenced, the linker
        // leaves it out of the image and the call jumps to address 0.
        let tid = libc::syscall(libc::SYS_gettid);
        let owner = FOwnerEx {
            type_: F_OWNER_TID,
            pid: libc::pid_t::try_from(tid).unwrap_or(0),
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

/// What waits on the connection, looked at without taking it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
    Nothing,
    Bytes,
    /// gdb closed the connection (or it failed).
    Closed,
}

/// Whether gdb sent something or went away (never blocks; one `recv`).
pub(super) fn waiting(conn: &TcpStream) -> Waiting {
    let mut byte = 0u8;
    // SAFETY: a one-byte peek into a local, on a socket we own.
    let n = unsafe {
        libc::recv(
            conn.as_raw_fd(),
            std::ptr::addr_of_mut!(byte).cast(),
            1,
            libc::MSG_DONTWAIT | libc::MSG_PEEK,
        )
    };
    match n {
        1 => Waiting::Bytes,
        0 => Waiting::Closed,
        _ => match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Waiting::Nothing,
            _ => Waiting::Closed,
        },
    }
}
