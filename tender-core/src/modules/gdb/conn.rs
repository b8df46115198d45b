//! The connection to gdb: read and written in blocks, though `gdbstub`
//! takes and gives one byte at a time, and a signal on the vCPU thread
//! when gdb sends while the guest runs (Ctrl-C).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::mem::ManuallyDrop;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};

use gdbstub::conn::Connection;

use super::gdb_error;
use crate::error::Result;

/// The most read from the socket at once.
const READ_BLOCK: usize = 4096;

/// gdb's TCP connection. Without the buffers every byte of a reply would
/// be a `sendto` and every byte of a packet a `recvfrom` (a register dump
/// is over a thousand bytes).
pub(super) struct GdbConnection {
    /// Never closed, also when `gdbstub` drops its state machine (on a
    /// protocol error): the confined vCPU thread may not `close`, and the
    /// process's end closes it.
    stream: ManuallyDrop<TcpStream>,
    /// Received, not yet handed to `gdbstub`.
    received: VecDeque<u8>,
    /// Written by `gdbstub`, sent at its flush (the end of a packet) or
    /// before the guest runs again.
    unsent: Vec<u8>,
}

impl GdbConnection {
    pub(super) fn new(stream: TcpStream) -> GdbConnection {
        GdbConnection {
            stream: ManuallyDrop::new(stream),
            received: VecDeque::new(),
            unsent: Vec::new(),
        }
    }

    pub(super) fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// gdb's next byte, waiting for it; `Ok(None)` once gdb has closed the
    /// connection. A signal (SIGIO) gives `ErrorKind::Interrupted`.
    pub(super) fn next_byte(&mut self) -> std::io::Result<Option<u8>> {
        if let Some(byte) = self.received.pop_front() {
            return Ok(Some(byte));
        }
        let mut block = [0u8; READ_BLOCK];
        let n = self.stream.read(&mut block)?;
        self.received.extend(&block[..n]);
        Ok(self.received.pop_front())
    }

    /// A byte gdb sent, if one is here or waiting (never blocks).
    pub(super) fn pending_byte(&mut self) -> Option<u8> {
        if let Some(byte) = self.received.pop_front() {
            return Some(byte);
        }
        let mut block = [0u8; READ_BLOCK];
        // SAFETY: a receive into a local buffer of the length given, on a
        // socket we own.
        let n = unsafe {
            libc::recv(
                self.fd(),
                block.as_mut_ptr().cast(),
                block.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let n = usize::try_from(n).ok()?;
        self.received.extend(&block[..n]);
        self.received.pop_front()
    }

    /// Whether gdb sent something or went away, without taking it (never
    /// blocks; one `recv` when nothing is buffered).
    pub(super) fn waiting(&self) -> Waiting {
        if !self.received.is_empty() {
            return Waiting::Bytes;
        }
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local, on a socket we own.
        let n = unsafe {
            libc::recv(
                self.fd(),
                std::ptr::addr_of_mut!(byte).cast(),
                1,
                libc::MSG_DONTWAIT | libc::MSG_PEEK,
            )
        };
        match n {
            1 => Waiting::Bytes,
            0 => Waiting::Closed,
            _ => match std::io::Error::last_os_error().kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => {
                    Waiting::Nothing
                }
                _ => Waiting::Closed,
            },
        }
    }
}

impl Connection for GdbConnection {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> std::io::Result<()> {
        self.unsent.push(byte);
        Ok(())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.unsent.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let sent = Write::write_all(&mut *self.stream, &self.unsent);
        self.unsent.clear();
        sent
    }

    fn on_session_start(&mut self) -> std::io::Result<()> {
        // Packets are small and answered at once: no Nagle delay.
        self.stream.set_nodelay(true)
    }
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

/// SIGIO's handler: a stop request ([`crate::interrupt`]), which makes
/// `KVM_RUN` return (EINTR) now or at its next entry; the signal also cuts
/// a guest's POLL short.
extern "C" fn on_sigio(_: libc::c_int) {
    crate::interrupt::request();
}

/// Makes the kernel signal this thread (SIGIO) when gdb sends a byte while
/// the guest runs: `KVM_RUN` then returns, and the stub reads the Ctrl-C.
pub(super) fn signal_on_input(conn: &GdbConnection) -> Result<()> {
    let fd = conn.fd();
    // SAFETY: a handler that only stores to atomics and one byte
    // (async-signal-safe), installed with SA_RESTART so that only calls
    // that always fail with EINTR (KVM_RUN, epoll_wait) see the signal;
    // fcntl on our own socket.
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
