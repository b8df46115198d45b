//! What a network device is to the modules (§6.4): a back-end that moves
//! one Ethernet frame at a time between guest memory and the outside. A
//! [`Tap`](super::tap::Tap) is one, a
//! [`FrameSocket`](super::socket::FrameSocket) (a datagram socket handed
//! over as `@FD`) another; the in-memory
//! [`WirePort`](super::wire::WirePort) of the mock tender is a third, so the
//! mock serves the network hypercalls and the ring with the real code.
//!
//! Back-ends are shared between the vCPU thread (hypercalls) and the ring's
//! I/O thread, as `Arc`s: they are `Send + Sync`.

use std::io;
use std::os::fd::RawFd;

use vm_memory::VolatileSlice;

use crate::sandbox::Allowlist;

/// How a poll set learns that a device has a frame to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Readable when this descriptor is (a tap). The device keeps it open.
    Fd(RawFd),
    /// An in-memory queue: frames waiting, and how many times the device
    /// was asked for a frame so far.
    Queue { waiting: usize, receives: u64 },
}

/// One network device's frame transport.
pub trait FrameBackend: Send + Sync {
    /// The name used in the tender's messages (the interface name).
    fn name(&self) -> &str;

    /// The MTU, without the 14-byte Ethernet header.
    fn mtu(&self) -> u16;

    /// Sends `frame` as one frame; returns the bytes sent. A short count or
    /// an error is fatal to the tender, as on a tap. A back-end that drops a
    /// frame it has no room for (a full socket) says it sent it, as a
    /// network may lose a frame.
    fn send(&self, frame: &VolatileSlice<'_>) -> io::Result<usize>;

    /// Receives one frame into `buffer` and returns its length, truncated to
    /// the buffer. No frame waiting is an error of kind `WouldBlock` (or
    /// `Ok(0)`, as a tap may say). An error of kind
    /// [`io::ErrorKind::ConnectionAborted`] ([`peer_gone`]) says no frame
    /// will ever come: every path of the tender ends on it.
    fn receive(&self, buffer: &mut VolatileSlice<'_>) -> io::Result<usize>;

    /// How a poll set can tell that a frame is waiting.
    fn readiness(&self) -> Readiness;

    /// Adds to `list` the system calls [`FrameBackend::send`] and
    /// [`FrameBackend::receive`] make, on this back-end's descriptors: the
    /// seccomp filter of each thread that moves its frames. In-memory
    /// back-ends make none.
    fn allow_calls(&self, _list: &mut Allowlist) {}
}

/// The error of a back-end whose other end is gone for good (a socket whose
/// peer closed it), with `what` happened.
pub fn peer_gone(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, what.to_owned())
}

/// Whether `err` says that the back-end's other end is gone
/// ([`peer_gone`]).
pub fn is_peer_gone(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::ConnectionAborted
}
