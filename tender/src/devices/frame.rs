//! What a network device is to the NET_WRITE/NET_READ handlers (§6.4): a
//! back-end that moves one Ethernet frame at a time between guest memory
//! and the outside. A [`Tap`](super::tap::Tap) is one; the in-memory
//! [`WirePort`](super::wire::WirePort) of the mock tender is another, so the
//! mock serves the network hypercalls with the real handlers.

use std::io;

use vm_memory::VolatileSlice;

/// One network device's frame transport.
pub trait FrameBackend {
    /// The name used in the tender's messages (the interface name).
    fn name(&self) -> &str;

    /// The MTU, without the 14-byte Ethernet header.
    fn mtu(&self) -> u16;

    /// Sends `frame` as one frame; returns the bytes sent. A short count or
    /// an error is fatal to the tender, as on a tap.
    fn send(&self, frame: &VolatileSlice<'_>) -> io::Result<usize>;

    /// Receives one frame into `buffer` and returns its length, truncated to
    /// the buffer. No frame waiting is an error of kind `WouldBlock` (or
    /// `Ok(0)`, as a tap may say).
    fn receive(&self, buffer: &mut VolatileSlice<'_>) -> io::Result<usize>;
}
