//! Async TCP: a listener with an accept backlog, and streams with
//! back-pressure, half-close and errors as values.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::Poll;

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp::{self, RecvError, State};
use smoltcp::wire::IpEndpoint;

use super::backlog::{is_acceptable, Pool};
use super::error::Error;
use super::stack::Stack;

/// Receive and send buffer of each TCP socket.
pub const TCP_BUFFER: usize = 64 << 10;

/// Heap a TCP socket takes: its two buffers and smoltcp's socket (the
/// socket set's slot holds it).
pub const TCP_SOCKET_MEMORY: usize =
    2 * TCP_BUFFER + core::mem::size_of::<smoltcp::iface::SocketStorage<'static>>();

/// The stack's default limit of TCP sockets: half of the guest's heap in
/// sockets (the other half is the application's), so that connections
/// beyond it wait instead of running the guest out of memory. On the host
/// (tests, host processes) a heap of 512 MiB is assumed.
pub fn default_max_tcp_sockets() -> usize {
    let heap = crate::memory::heap_size().unwrap_or(512 << 20);
    (heap / 2 / TCP_SOCKET_MEMORY).max(1)
}

pub(crate) fn new_socket() -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    )
}

/// Accepts connections on a port, as a kernel's listening socket does.
///
/// `backlog` connections at most may be handshaking or waiting for
/// `accept` at once (listen(2)'s backlog). Listening sockets are made on
/// demand, one per SYN, and only while the stack holds fewer TCP sockets
/// than [`Stack::max_tcp_sockets`]; a SYN that finds no room waits in the
/// stack's SYN queue and is admitted when `accept` or a closed connection
/// makes room, or is dropped silently when that queue is full (the client
/// retransmits). A listened port never answers a SYN with a reset. See
/// `net::backlog`.
pub struct TcpListener {
    stack: Stack,
    port: u16,
}

impl TcpListener {
    /// Listens on `port`; `InvalidState` if a listener of this stack has it.
    pub fn bind(stack: &Stack, port: u16, backlog: usize) -> Result<TcpListener, Error> {
        if port == 0 {
            return Err(Error::Unaddressable);
        }
        let mut inner = stack.inner.borrow_mut();
        let listeners = &mut inner.backlog.listeners;
        if listeners.contains_key(&port) {
            return Err(Error::InvalidState);
        }
        listeners.insert(
            port,
            Pool {
                backlog: backlog.max(1),
                sockets: Vec::new(),
                waker: None,
            },
        );
        Ok(TcpListener {
            stack: stack.clone(),
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next connection.
    pub async fn accept(&mut self) -> Result<TcpStream, Error> {
        let handle = poll_fn(|cx| {
            let mut guard = self.stack.inner.borrow_mut();
            let inner = &mut *guard;
            let Some(pool) = inner.backlog.listeners.get_mut(&self.port) else {
                return Poll::Ready(Err(Error::InvalidState));
            };
            // Still handshaking: a stream read or written now would fail
            // (smoltcp cannot receive before Established), and a reset sends
            // the socket back to Listen.
            let ready = pool.sockets.iter().position(|&(handle, _)| {
                is_acceptable(inner.sockets.get::<tcp::Socket>(handle).state())
            });
            match ready {
                Some(index) => Poll::Ready(Ok(pool.sockets.remove(index).0)),
                None => {
                    pool.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await?;
        // Room in the backlog: held SYNs may be admitted now.
        self.stack.inner.borrow_mut().kick();
        Ok(TcpStream {
            stack: self.stack.clone(),
            handle,
        })
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        let mut guard = self.stack.inner.borrow_mut();
        let inner = &mut *guard;
        if let Some(pool) = inner.backlog.listeners.remove(&self.port) {
            for (handle, _) in pool.sockets {
                inner.sockets.remove(handle);
            }
        }
    }
}

/// One TCP connection.
pub struct TcpStream {
    stack: Stack,
    handle: SocketHandle,
}

impl TcpStream {
    /// Connects to `remote`.
    pub async fn connect(stack: &Stack, remote: IpEndpoint) -> Result<TcpStream, Error> {
        let handle = {
            let mut inner = stack.inner.borrow_mut();
            let port = inner.ephemeral_port();
            let mut socket = new_socket();
            let state = &mut *inner;
            socket
                .connect(state.iface.context(), remote, port)
                .map_err(|e| match e {
                    tcp::ConnectError::Unaddressable => Error::Unaddressable,
                    tcp::ConnectError::InvalidState => Error::InvalidState,
                })?;
            let handle = state.sockets.add(socket);
            state.kick();
            handle
        };
        let stream = TcpStream {
            stack: stack.clone(),
            handle,
        };
        poll_fn(|cx| {
            let mut inner = stream.stack.inner.borrow_mut();
            let socket = inner.sockets.get_mut::<tcp::Socket>(stream.handle);
            match socket.state() {
                State::Established => Poll::Ready(Ok(())),
                State::SynSent | State::SynReceived => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                _ => Poll::Ready(Err(Error::ConnectionReset)),
            }
        })
        .await?;
        Ok(stream)
    }

    fn with<R>(&self, f: impl FnOnce(&mut tcp::Socket<'static>) -> R) -> R {
        let mut inner = self.stack.inner.borrow_mut();
        let result = f(inner.sockets.get_mut::<tcp::Socket>(self.handle));
        inner.kick();
        result
    }

    /// The peer's address.
    pub fn remote_endpoint(&self) -> Option<IpEndpoint> {
        self.stack
            .inner
            .borrow()
            .sockets
            .get::<tcp::Socket>(self.handle)
            .remote_endpoint()
    }

    /// Reads what has arrived (at least one byte); `Ok(0)` once the peer
    /// closed its side.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.read_shared(buf).await
    }

    /// Queues some of `buf` for sending; waits while the send buffer is
    /// full (the peer's window closed).
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        self.write_shared(buf).await
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        self.write_all_shared(buf).await
    }

    /// Waits until everything written has been acknowledged.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.flush_shared().await
    }

    /// Sends small writes at once (`true`) instead of holding them until
    /// what was sent is acknowledged (Nagle's algorithm, on by default). A
    /// request/response server wants it: a response of a full segment and a
    /// short one otherwise waits for the client's delayed ACK (40 ms).
    pub fn set_nodelay(&mut self, nodelay: bool) {
        self.with(|socket| socket.set_nagle_enabled(!nodelay));
    }

    /// Closes this side (sends FIN); reading goes on until the peer closes.
    pub fn shutdown(&mut self) {
        self.with(|socket| socket.close());
    }

    /// Resets the connection at once.
    pub fn abort(&mut self) {
        self.with(|socket| socket.abort());
    }

    /// Splits the stream into a half that reads and a half that writes, for
    /// two tasks: one may wait for data while the other waits for room. The
    /// connection is closed, as when a stream is dropped, once both halves
    /// are dropped.
    pub fn into_split(self) -> (TcpReader, TcpWriter) {
        let stream = Rc::new(self);
        (
            TcpReader {
                stream: stream.clone(),
            },
            TcpWriter { stream },
        )
    }

    async fn read_shared(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut inner = self.stack.inner.borrow_mut();
            if let Some(kept) = inner.time_wait_data.get_mut(&self.handle) {
                // The peer closed and smoltcp may have forgotten the socket:
                // the rest of the data, then the end.
                let n = kept.len().min(buf.len());
                for (to, from) in buf.iter_mut().zip(kept.drain(..n)) {
                    *to = from;
                }
                return Poll::Ready(Ok(n));
            }
            let socket = inner.sockets.get_mut::<tcp::Socket>(self.handle);
            match socket.recv_slice(buf) {
                Ok(0) => {
                    if matches!(socket.state(), State::Closed | State::TimeWait)
                        && !socket.may_recv()
                    {
                        // Never reached Established's peer FIN: a reset.
                        return Poll::Ready(Err(Error::ConnectionReset));
                    }
                    socket.register_recv_waker(cx.waker());
                    Poll::Pending
                }
                Ok(n) => {
                    // Reading opened the window: let smoltcp tell the peer.
                    inner.kick();
                    Poll::Ready(Ok(n))
                }
                Err(RecvError::Finished) => Poll::Ready(Ok(0)),
                Err(RecvError::InvalidState) => Poll::Ready(Err(Error::ConnectionReset)),
            }
        })
        .await
    }

    async fn write_shared(&self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            let mut inner = self.stack.inner.borrow_mut();
            let socket = inner.sockets.get_mut::<tcp::Socket>(self.handle);
            if !socket.may_send() {
                // After TIME-WAIT, smoltcp's socket is closed as if reset.
                let time_wait = inner.time_wait_data.contains_key(&self.handle);
                let socket = inner.sockets.get_mut::<tcp::Socket>(self.handle);
                let error = match socket.state() {
                    _ if time_wait => Error::BrokenPipe,
                    State::FinWait1
                    | State::FinWait2
                    | State::Closing
                    | State::LastAck
                    | State::TimeWait => Error::BrokenPipe,
                    _ => Error::ConnectionReset,
                };
                return Poll::Ready(Err(error));
            }
            match socket.send_slice(buf) {
                Ok(0) => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                Ok(n) => {
                    inner.kick();
                    Poll::Ready(Ok(n))
                }
                Err(_) => Poll::Ready(Err(Error::ConnectionReset)),
            }
        })
        .await
    }

    async fn write_all_shared(&self, mut buf: &[u8]) -> Result<(), Error> {
        while !buf.is_empty() {
            let n = self.write_shared(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    async fn flush_shared(&self) -> Result<(), Error> {
        poll_fn(|cx| {
            let mut inner = self.stack.inner.borrow_mut();
            let socket = inner.sockets.get_mut::<tcp::Socket>(self.handle);
            if socket.send_queue() == 0 {
                return Poll::Ready(Ok(()));
            }
            if !socket.is_active() {
                return Poll::Ready(Err(Error::ConnectionReset));
            }
            socket.register_send_waker(cx.waker());
            Poll::Pending
        })
        .await
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let mut inner = self.stack.inner.borrow_mut();
        inner.sockets.get_mut::<tcp::Socket>(self.handle).close();
        inner.time_wait_data.remove(&self.handle);
        inner.closing.push(self.handle);
        inner.kick();
    }
}

/// The reading half of a [`TcpStream`] ([`TcpStream::into_split`]).
pub struct TcpReader {
    stream: Rc<TcpStream>,
}

impl TcpReader {
    /// As [`TcpStream::read`].
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.stream.read_shared(buf).await
    }

    /// The peer's address.
    pub fn remote_endpoint(&self) -> Option<IpEndpoint> {
        self.stream.remote_endpoint()
    }
}

/// The writing half of a [`TcpStream`] ([`TcpStream::into_split`]).
pub struct TcpWriter {
    stream: Rc<TcpStream>,
}

impl TcpWriter {
    /// As [`TcpStream::write`].
    pub async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        self.stream.write_shared(buf).await
    }

    /// As [`TcpStream::write_all`].
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), Error> {
        self.stream.write_all_shared(buf).await
    }

    /// As [`TcpStream::flush`].
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream.flush_shared().await
    }

    /// As [`TcpStream::shutdown`]: the reading half goes on reading.
    pub fn shutdown(&mut self) {
        self.stream.with(|socket| socket.close());
    }

    /// As [`TcpStream::abort`].
    pub fn abort(&mut self) {
        self.stream.with(|socket| socket.abort());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_socket_limit_is_half_the_heap_in_sockets() {
        // On the host a 512 MiB heap is assumed.
        assert_eq!(default_max_tcp_sockets(), (256 << 20) / TCP_SOCKET_MEMORY);
        // The buffers and smoltcp's socket, which is small beside them.
        const { assert!(TCP_SOCKET_MEMORY > 2 * TCP_BUFFER) };
        const { assert!(TCP_SOCKET_MEMORY < 2 * TCP_BUFFER + 4096) };
    }
}
