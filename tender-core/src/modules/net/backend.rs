//! What the value of `--net:NAME=VALUE` names on the tender (§4.5): a tap
//! interface by name, or an open descriptor `@FD` the parent handed over,
//! which is a tap or a socket that carries one frame per message
//! ([`FrameSocket`]: one end of a socketpair whose other end a user-space
//! network holds). Whatever cannot keep frames apart (a `SOCK_STREAM`
//! socket, a file, a pipe) is refused.

use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use crate::devices::frame::FrameBackend;
use crate::devices::socket::FrameSocket;
use crate::devices::tap::Tap;

/// Opens the back-end named by the value of `--net:NAME=VALUE`: `IFACE` is
/// an existing tap, `@FD` an open tap or frame socket.
pub fn open_host(value: &str) -> io::Result<Arc<dyn FrameBackend>> {
    match value.strip_prefix('@') {
        Some(digits) => open_descriptor(parse_fd(digits)?),
        None => Ok(Arc::new(Tap::open(value)?)),
    }
}

/// The descriptor number of `--net:NAME=@FD`.
pub fn parse_fd(digits: &str) -> io::Result<RawFd> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    digits
        .parse()
        .map_err(|_| io::Error::from_raw_os_error(libc::ERANGE))
}

/// The file type bits of descriptor `fd` (EBADF if it is not open).
fn file_type(fd: RawFd) -> io::Result<libc::mode_t> {
    // SAFETY: stat is plain old data; all-zero is a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one struct stat into `stat`.
    if unsafe { libc::fstat(fd, &mut stat) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.st_mode & libc::S_IFMT)
}

/// What a descriptor of file type `kind` is, in a message.
fn kind_name(kind: libc::mode_t) -> &'static str {
    match kind {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a pipe",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "a descriptor",
    }
}

/// Takes over descriptor `fd`: a socket becomes a [`FrameSocket`], anything
/// else must be a tap. Refused descriptors stay open (they are not ours).
fn open_descriptor(fd: RawFd) -> io::Result<Arc<dyn FrameBackend>> {
    let kind = file_type(fd)?;
    if kind == libc::S_IFSOCK {
        return Ok(Arc::new(FrameSocket::from_fd(fd, format!("@{fd}"))?));
    }
    match Tap::from_fd(fd) {
        Ok(tap) => Ok(Arc::new(tap)),
        // TUNGETIFF is not an ioctl of this file: not a tap at all.
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}, not a tap or a SOCK_SEQPACKET or SOCK_DGRAM socket",
                kind_name(kind)
            ),
        )),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::os_error_text;
    use std::os::fd::AsRawFd;

    #[test]
    fn fd_syntax() {
        assert_eq!(parse_fd("3").unwrap(), 3);
        for (bad, code) in [
            ("", libc::EINVAL),
            ("-1", libc::EINVAL),
            ("3x", libc::EINVAL),
            ("+3", libc::EINVAL),
            ("99999999999", libc::ERANGE),
        ] {
            assert_eq!(
                parse_fd(bad).unwrap_err().raw_os_error(),
                Some(code),
                "{bad}"
            );
        }
    }

    fn refused(value: &str) -> String {
        match open_host(value) {
            Ok(backend) => panic!("{value} accepted as {}", backend.name()),
            Err(e) => os_error_text(&e),
        }
    }

    #[test]
    fn descriptors_that_do_not_carry_frames_are_refused_and_left_open() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let fd = file.as_raw_fd();
        assert_eq!(
            refused(&format!("@{fd}")),
            "a regular file, not a tap or a SOCK_SEQPACKET or SOCK_DGRAM socket"
        );
        let mut pipe = [0; 2];
        // SAFETY: creates a pipe into a local array.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        assert_eq!(
            refused(&format!("@{}", pipe[0])),
            "a pipe, not a tap or a SOCK_SEQPACKET or SOCK_DGRAM socket"
        );
        for fd in [fd, pipe[0], pipe[1]] {
            // SAFETY: queries a descriptor the test opened.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert!(flags >= 0, "{fd} closed");
        }
        // SAFETY: closes the pipe the test created.
        unsafe {
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
        assert_eq!(refused("@1073741824"), "Bad file descriptor");
        assert_eq!(refused("@x"), "Invalid argument");
    }

    #[test]
    fn a_socketpair_end_is_a_device_with_the_ethernet_mtu() {
        let mut fds = [0; 2];
        // SAFETY: creates a socketpair into a local array.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0);
        let backend = open_host(&format!("@{}", fds[0])).unwrap();
        assert_eq!(backend.name(), format!("@{}", fds[0]));
        assert_eq!(backend.mtu(), 1500);
        // The device owns (and closes) its end.
        drop(backend);
        // SAFETY: closes the other end, which the test created.
        unsafe { libc::close(fds[1]) };
    }
}
