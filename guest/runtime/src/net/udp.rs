//! Async UDP.

use alloc::vec;
use core::future::poll_fn;
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::time::Duration;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use super::error::Error;
use super::stack::{self, Stack};

/// Datagrams each direction can hold, and their total bytes.
const UDP_PACKETS: usize = 64;
const UDP_BUFFER: usize = 64 << 10;

pub struct UdpSocket {
    stack: Stack,
    handle: SocketHandle,
}

impl UdpSocket {
    /// A socket bound to `port` on every address of the interface.
    pub fn bind(stack: &Stack, port: u16) -> Result<UdpSocket, Error> {
        let buffer = || {
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                vec![0; UDP_BUFFER],
            )
        };
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket
            .bind(IpListenEndpoint { addr: None, port })
            .map_err(|_| Error::Unaddressable)?;
        let handle = stack.inner.borrow_mut().sockets.add(socket);
        Ok(UdpSocket {
            stack: stack.clone(),
            handle,
        })
    }

    /// Sends one datagram to `remote`, waiting for buffer space.
    pub async fn send_to(&self, buf: &[u8], remote: IpEndpoint) -> Result<(), Error> {
        poll_fn(|cx| {
            let mut inner = self.stack.inner.borrow_mut();
            let socket = inner.sockets.get_mut::<udp::Socket>(self.handle);
            match socket.send_slice(buf, remote) {
                Ok(()) => {
                    inner.kick();
                    Poll::Ready(Ok(()))
                }
                Err(udp::SendError::BufferFull) => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Err(udp::SendError::Unaddressable) => Poll::Ready(Err(Error::Unaddressable)),
            }
        })
        .await
    }

    /// Receives one datagram: its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, IpEndpoint), Error> {
        poll_fn(|cx| {
            let mut inner = self.stack.inner.borrow_mut();
            let socket = inner.sockets.get_mut::<udp::Socket>(self.handle);
            match socket.recv_slice(buf) {
                Ok((n, meta)) => Poll::Ready(Ok((n, meta.endpoint))),
                Err(udp::RecvError::Exhausted) => {
                    socket.register_recv_waker(cx.waker());
                    Poll::Pending
                }
                Err(udp::RecvError::Truncated) => Poll::Ready(Err(Error::Truncated)),
            }
        })
        .await
    }
}

/// How long a dropped socket may take to send what it still holds.
const LINGER: Duration = Duration::from_secs(3);

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let mut inner = self.stack.inner.borrow_mut();
        if inner.sockets.get::<udp::Socket>(self.handle).send_queue() == 0 {
            inner.sockets.remove(self.handle);
            return;
        }
        // Datagrams sent just before the drop still go out, as from a
        // closed socket of a kernel: the driving task removes the socket
        // once its queue is empty.
        let deadline = stack::now() + LINGER;
        inner.closing_udp.push((self.handle, deadline));
        inner.kick();
    }
}
