//! The socket back-end of network devices: a connected `SOCK_SEQPACKET` or
//! `SOCK_DGRAM` socket handed to the tender as `--net:NAME=@FD`, such as
//! one end of a socketpair whose other end a user-space network (gvproxy's
//! datagram link, a test) holds. Only Unix-domain sockets: over a network
//! (UDP) an ICMP error would surface as ECONNREFUSED on a later call and end
//! the tender, though no peer went away. Such a socket keeps messages apart, so one message is one Ethernet frame, as one
//! `read()` or `write()` of a tap is; a `SOCK_STREAM` socket does not and is
//! refused.
//!
//! Unlike a tap, a socket has no MTU: the device gets [`SOCKET_MTU`]. Its
//! peer can go away: a frame sent to a closed peer, or the end of a
//! `SOCK_SEQPACKET` connection, is the [`peer_gone`]
//! error that ends the tender with one line. Never a SIGPIPE: frames are
//! sent with `MSG_NOSIGNAL`, so the signal's disposition, which a closed
//! stdout relies on, is left alone (Linux raises none for Unix datagram
//! sockets, but other families, and stream sockets, do).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use vm_memory::{ReadVolatile, VolatileSlice};

use super::frame::{peer_gone, FrameBackend, Readiness};
use super::tap::{check, volatile_error};
use crate::error::os_error_text;
use crate::sandbox::Allowlist;

/// The MTU of a socket device, without the 14-byte Ethernet header: the
/// Ethernet default, which user-space networks expect.
pub const SOCKET_MTU: u16 = 1500;

/// A socket that carries one Ethernet frame per message.
#[derive(Debug)]
pub struct FrameSocket {
    fd: OwnedFd,
    name: String,
    /// `SOCK_SEQPACKET` (else `SOCK_DGRAM`): a connection, whose end a
    /// read of 0 bytes may be.
    seqpacket: bool,
}

/// The name of a socket type, for the message that refuses it.
fn type_name(kind: libc::c_int) -> String {
    match kind {
        libc::SOCK_STREAM => "SOCK_STREAM".into(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".into(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".into(),
        libc::SOCK_RAW => "SOCK_RAW".into(),
        libc::SOCK_RDM => "SOCK_RDM".into(),
        other => format!("type {other}"),
    }
}

/// The type of socket `fd` (`SO_TYPE`).
fn socket_type(fd: RawFd) -> io::Result<libc::c_int> {
    socket_option(fd, libc::SO_TYPE)
}

/// `SO_DOMAIN` of socket `fd` (ENOTSOCK for another descriptor).
fn socket_domain(fd: RawFd) -> io::Result<libc::c_int> {
    socket_option(fd, libc::SO_DOMAIN)
}

/// An integer socket option of the SOL_SOCKET level.
fn socket_option(fd: RawFd, option: libc::c_int) -> io::Result<libc::c_int> {
    let mut kind: libc::c_int = 0;
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the integer options write one c_int into `kind`, whose size
    // `len` gives.
    check(unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            option,
            (&mut kind as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(kind)
}

/// Whether socket `fd` has a peer (ENOTCONN if it has none).
fn check_connected(fd: RawFd) -> io::Result<()> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut address: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_storage>())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: getpeername writes at most `len` bytes into `address`.
    check(unsafe {
        libc::getpeername(
            fd,
            (&mut address as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    })?;
    Ok(())
}

/// Whether the peer of `fd` closed its end (a poll that does not wait).
fn peer_closed(fd: RawFd) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // The system call itself, not libc's wrapper, which may use ppoll: the
    // filters allow poll with a zero timeout only.
    // SAFETY: one valid pollfd, a zero timeout: nothing is kept.
    let ready = unsafe { libc::syscall(libc::SYS_poll, &mut pollfd, 1, 0) };
    ready > 0 && pollfd.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

impl FrameSocket {
    /// Takes over the socket `raw`, named `name` in messages (`@FD`): it
    /// must be a connected `SOCK_SEQPACKET` or `SOCK_DGRAM` socket. It is
    /// made non-blocking and close-on-exec; it is owned (and closed) by the
    /// `FrameSocket` only if this succeeds.
    pub fn from_fd(raw: RawFd, name: String) -> io::Result<FrameSocket> {
        let seqpacket = match socket_type(raw)? {
            libc::SOCK_SEQPACKET => true,
            libc::SOCK_DGRAM => false,
            libc::SOCK_STREAM => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a SOCK_STREAM socket, which does not keep frames apart \
                     (use SOCK_SEQPACKET or SOCK_DGRAM)",
                ))
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a {} socket, not a SOCK_SEQPACKET or SOCK_DGRAM one",
                        type_name(other)
                    ),
                ))
            }
        };
        if socket_domain(raw)? != libc::AF_UNIX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a Unix-domain socket (a socketpair's end)",
            ));
        }
        // Frames go to the peer: a socket without one could not send any.
        check_connected(raw)?;
        // SAFETY: F_GETFL only queries the descriptor, a socket.
        let status = check(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
        // SAFETY: fcntl on the socket checked above.
        check(unsafe { libc::fcntl(raw, libc::F_SETFL, status | libc::O_NONBLOCK) })?;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        Ok(FrameSocket {
            // SAFETY: the caller hands the descriptor over; from here on it
            // is ours and closed when the socket is dropped.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            name,
            seqpacket,
        })
    }
}

impl FrameBackend for FrameSocket {
    fn name(&self) -> &str {
        &self.name
    }

    fn mtu(&self) -> u16 {
        SOCKET_MTU
    }

    fn send(&self, frame: &VolatileSlice<'_>) -> io::Result<usize> {
        let guard = frame.ptr_guard();
        // SAFETY: the slice is valid memory for its length while `guard`
        // lives; sendto only reads it. No address: the socket's peer.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                guard.as_ptr().cast(),
                frame.len(),
                libc::MSG_NOSIGNAL,
                std::ptr::null(),
                0,
            )
        };
        if n >= 0 {
            return Ok(n.unsigned_abs());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // The peer's queue is full: the frame is lost, as a busy
            // network loses frames, and the guest's protocols resend it.
            Some(libc::EAGAIN | libc::ENOBUFS) => Ok(frame.len()),
            Some(libc::EPIPE | libc::ECONNREFUSED | libc::ECONNRESET | libc::ENOTCONN) => {
                Err(peer_gone(&format!(
                    "{} (the socket's other end is closed)",
                    os_error_text(&err)
                )))
            }
            _ => Err(err),
        }
    }

    fn receive(&self, buffer: &mut VolatileSlice<'_>) -> io::Result<usize> {
        let n = (&self.fd).read_volatile(buffer).map_err(volatile_error)?;
        // A connection reads 0 bytes at its end, and for an empty message:
        // only the first leaves the peer hung up.
        if n == 0 && self.seqpacket && !buffer.is_empty() && peer_closed(self.fd.as_raw_fd()) {
            return Err(peer_gone("the socket's other end is closed"));
        }
        Ok(n.min(buffer.len()))
    }

    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd.as_raw_fd())
    }

    fn allow_calls(&self, list: &mut Allowlist) {
        let fd = [self.fd.as_raw_fd()];
        list.allow_fds(libc::SYS_read, &fd)
            .allow_fds(libc::SYS_sendto, &fd);
        if self.seqpacket {
            list.allow_third_arg(libc::SYS_poll, &[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(kind: libc::c_int) -> [RawFd; 2] {
        let mut fds = [0; 2];
        // SAFETY: creates a socketpair into a local array.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0, "socketpair: {}", io::Error::last_os_error());
        fds
    }

    fn close(fd: RawFd) {
        // SAFETY: closes a descriptor the test created and still owns.
        unsafe { libc::close(fd) };
    }

    fn send(fd: RawFd, bytes: &[u8]) {
        // SAFETY: sends from a live slice.
        let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), 0) };
        assert_eq!(n, isize::try_from(bytes.len()).unwrap());
    }

    fn receive(socket: &FrameSocket, buffer: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the slice covers `buffer`, which outlives it.
        let mut slice = unsafe { VolatileSlice::new(buffer.as_mut_ptr(), buffer.len()) };
        socket.receive(&mut slice)
    }

    fn send_frame(socket: &FrameSocket, frame: &mut [u8]) -> io::Result<usize> {
        // SAFETY: as above.
        let slice = unsafe { VolatileSlice::new(frame.as_mut_ptr(), frame.len()) };
        socket.send(&slice)
    }

    #[test]
    fn messages_are_frames_both_ways() {
        for kind in [libc::SOCK_SEQPACKET, libc::SOCK_DGRAM] {
            let [ours, theirs] = pair(kind);
            let socket = FrameSocket::from_fd(ours, format!("@{ours}")).unwrap();
            assert_eq!(socket.mtu(), 1500);
            let mut buffer = [0u8; 64];
            let again = receive(&socket, &mut buffer).unwrap_err();
            assert_eq!(again.kind(), io::ErrorKind::WouldBlock, "non-blocking");
            send(theirs, b"first frame");
            send(theirs, b"second");
            assert_eq!(receive(&socket, &mut buffer).unwrap(), 11);
            assert_eq!(&buffer[..11], b"first frame");
            // A short buffer gets the start of the frame, as from a tap.
            assert_eq!(receive(&socket, &mut buffer[..3]).unwrap(), 3);
            assert_eq!(&buffer[..3], b"sec");
            let mut frame = *b"to the peer";
            assert_eq!(send_frame(&socket, &mut frame).unwrap(), 11);
            let mut got = [0u8; 64];
            // SAFETY: reads into a live buffer.
            let n = unsafe { libc::recv(theirs, got.as_mut_ptr().cast(), got.len(), 0) };
            assert_eq!(&got[..usize::try_from(n).unwrap()], b"to the peer");
            // An empty message is no frame, and no end.
            send(theirs, b"");
            assert_eq!(receive(&socket, &mut buffer).unwrap(), 0);
            close(theirs);
        }
    }

    #[test]
    fn a_closed_peer_is_the_end_of_the_device() {
        for kind in [libc::SOCK_SEQPACKET, libc::SOCK_DGRAM] {
            let [ours, theirs] = pair(kind);
            let socket = FrameSocket::from_fd(ours, format!("@{ours}")).unwrap();
            close(theirs);
            let err = send_frame(&socket, &mut [0u8; 60]).unwrap_err();
            assert!(crate::devices::frame::is_peer_gone(&err), "{err}");
            let errno = if kind == libc::SOCK_SEQPACKET {
                "Broken pipe"
            } else {
                "Connection refused"
            };
            assert_eq!(
                err.to_string(),
                format!("{errno} (the socket's other end is closed)")
            );
            let read = receive(&socket, &mut [0u8; 64]);
            if kind == libc::SOCK_SEQPACKET {
                let err = read.unwrap_err();
                assert!(crate::devices::frame::is_peer_gone(&err), "{err}");
                assert_eq!(err.to_string(), "the socket's other end is closed");
            } else {
                // A datagram socket never hears of its peer again.
                assert_eq!(read.unwrap_err().kind(), io::ErrorKind::WouldBlock);
            }
        }
    }

    /// The SIGPIPEs pending for this thread or the process.
    fn sigpipe_pending() -> bool {
        // SAFETY: sigset_t is plain old data, filled in by sigpending.
        let mut pending: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sigpending(&mut pending) }, 0);
        // SAFETY: queries the set just filled in.
        unsafe { libc::sigismember(&pending, libc::SIGPIPE) == 1 }
    }

    #[test]
    fn a_send_to_a_closed_peer_raises_no_sigpipe() {
        // SIGPIPE blocked on this thread: one raised by a send would stay
        // pending here instead of being ignored (Rust ignores it) or killing
        // the process (the tender restores its default).
        // SAFETY: sigset_t is plain old data; the calls fill it in.
        let mut block: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: changes this test thread's mask only.
        unsafe {
            libc::sigemptyset(&mut block);
            libc::sigaddset(&mut block, libc::SIGPIPE);
            assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old), 0);
        }
        let was_pending = sigpipe_pending();
        // Linux raises no SIGPIPE for AF_UNIX datagram sockets; it does for
        // stream sockets, which stand here for the families that do.
        let [ours, theirs] = pair(libc::SOCK_STREAM);
        let socket = FrameSocket {
            // SAFETY: the test's own descriptor, owned from here on.
            fd: unsafe { OwnedFd::from_raw_fd(ours) },
            name: "@stream".into(),
            seqpacket: true,
        };
        close(theirs);
        let err = send_frame(&socket, &mut [0u8; 60]).unwrap_err();
        assert!(crate::devices::frame::is_peer_gone(&err), "{err}");
        let raised = !was_pending && sigpipe_pending();
        // The control: a plain write raises it.
        let [a, b] = pair(libc::SOCK_STREAM);
        close(b);
        // SAFETY: writes one byte from a live buffer.
        assert!(unsafe { libc::write(a, [0u8].as_ptr().cast(), 1) } < 0);
        assert!(sigpipe_pending(), "the control raised no SIGPIPE");
        close(a);
        // SAFETY: takes the pending SIGPIPE, then restores the mask.
        unsafe {
            let mut signal = 0;
            libc::sigwait(&block, &mut signal);
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        assert!(!raised, "a send to a closed peer raised SIGPIPE");
    }

    #[test]
    fn sockets_that_do_not_carry_frames_are_refused_and_left_open() {
        let [stream, other] = pair(libc::SOCK_STREAM);
        let err = FrameSocket::from_fd(stream, "@x".into()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a SOCK_STREAM socket, which does not keep frames apart \
             (use SOCK_SEQPACKET or SOCK_DGRAM)"
        );
        // SAFETY: queries a descriptor we created.
        assert!(unsafe { libc::fcntl(stream, libc::F_GETFD) } >= 0);
        close(stream);
        close(other);
        // SAFETY: a fresh datagram socket, bound and connected to nothing.
        let lone = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
        let err = FrameSocket::from_fd(lone, "@x".into()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN));
        close(lone);
    }
}
