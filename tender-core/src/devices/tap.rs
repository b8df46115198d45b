//! The tap back-end of network devices (§4.5, §6.4): attach to an existing
//! Linux tap interface (or take a pre-opened tap descriptor), and move one
//! Ethernet frame per `read()`/`write()` directly between the tap and guest
//! memory. Nothing here knows about hypercalls, so the shared-memory ring
//! can drive the same device; the hypercall handlers see it as a
//! [`FrameBackend`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use vm_memory::{ReadVolatile, VolatileMemoryError, VolatileSlice, WriteVolatile};

use super::frame::{FrameBackend, Readiness};

/// `ETHTOOL_SGSO` and `ETHTOOL_SGRO` from `<linux/ethtool.h>`.
const ETHTOOL_SGSO: u32 = 0x24;
const ETHTOOL_SGRO: u32 = 0x2c;

/// `struct ethtool_value`.
#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// An attached tap interface.
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
    mtu: u16,
}

/// `strerror` text of an I/O error, without Rust's " (os error N)" suffix,
/// as upstream prints it.
pub fn error_text(err: &io::Error) -> String {
    let text = err.to_string();
    match text.rsplit_once(" (os error ") {
        Some((message, _)) if err.raw_os_error().is_some() => message.to_owned(),
        _ => text,
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An `ifreq` naming `name`; names must be shorter than IFNAMSIZ.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ {
        return Err(errno(libc::ENAMETOOLONG));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// The interface name in `req`, up to its NUL.
fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A datagram socket for the interface ioctls (SIOCGIFFLAGS, SIOCGIFMTU,
/// SIOCETHTOOL), in the tender's network namespace.
fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked before use.
    let fd =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Interface flags of `name` (ENODEV if there is no such interface).
fn interface_flags(socket: BorrowedFd<'_>, name: &str) -> io::Result<libc::c_int> {
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFFLAGS fills the flags of the ifreq we pass.
    check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    // SAFETY: SIOCGIFFLAGS wrote the flags member of the union.
    Ok(libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags }) & 0xffff)
}

/// An interface counts as usable when it is up or running (§4.5).
fn is_up(flags: libc::c_int) -> bool {
    flags & (libc::IFF_UP | libc::IFF_RUNNING) != 0
}

fn interface_mtu(socket: BorrowedFd<'_>, name: &str) -> io::Result<u16> {
    let mut req = ifreq(name)?;
    // SAFETY: SIOCGIFMTU fills the MTU of the ifreq we pass.
    check(unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU, &mut req) })?;
    // SAFETY: SIOCGIFMTU wrote the mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u16::try_from(mtu).map_err(|_| errno(libc::EINVAL))
}

/// Switches off GRO and GSO so that the kernel never hands over frames
/// larger than the MTU. Best effort: failures are ignored, as upstream does.
fn disable_offloads(socket: BorrowedFd<'_>, name: &str) {
    for cmd in [ETHTOOL_SGRO, ETHTOOL_SGSO] {
        let Ok(mut req) = ifreq(name) else { return };
        let mut value = EthtoolValue { cmd, data: 0 };
        req.ifr_ifru.ifru_data = (&mut value as *mut EthtoolValue).cast();
        // SAFETY: SIOCETHTOOL reads the ethtool_value that ifru_data points
        // at; `value` outlives the call.
        unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut req) };
    }
}

fn volatile_error(err: VolatileMemoryError) -> io::Error {
    match err {
        VolatileMemoryError::IOError(err) => err,
        other => io::Error::other(other.to_string()),
    }
}

impl Tap {
    /// Attaches to the existing tap interface `iface`, which must be up or
    /// running. The existence check comes first: TUNSETIFF alone would
    /// create a new interface when none of that name exists.
    pub fn open(iface: &str) -> io::Result<Tap> {
        let socket = control_socket()?;
        if !is_up(interface_flags(socket.as_fd(), iface)?) {
            return Err(errno(libc::ENETDOWN));
        }
        // SAFETY: the path is a NUL-terminated literal; the result is checked.
        let fd = check(unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut req = ifreq(iface)?;
        req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and updates the ifreq we pass.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) })?;
        // A different name (e.g. "tap%d" expanded by the kernel) is not the
        // interface that was asked for.
        if ifreq_name(&req) != iface {
            return Err(errno(libc::EINVAL));
        }
        // Had the interface vanished between the check and TUNSETIFF, the
        // kernel made a new one, which is down; closing `fd` removes it.
        if !is_up(interface_flags(socket.as_fd(), iface)?) {
            return Err(errno(libc::ENETDOWN));
        }
        let mtu = interface_mtu(socket.as_fd(), iface)?;
        disable_offloads(socket.as_fd(), iface);
        Ok(Tap {
            fd,
            name: iface.to_owned(),
            mtu,
        })
    }

    /// Takes over the already-open tap descriptor `raw` (`--net:NAME=@FD`):
    /// it must be attached to a tap interface without packet information.
    /// The descriptor is made non-blocking and close-on-exec; it is owned
    /// (and closed) by the `Tap` only if this succeeds.
    pub fn from_fd(raw: RawFd) -> io::Result<Tap> {
        // SAFETY: F_GETFL only queries the descriptor; EBADF if not open.
        let status = check(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        // SAFETY: TUNGETIFF fills the ifreq we pass (ENOTTY if `raw` is not
        // a tun/tap descriptor, EBADFD if it is attached to nothing).
        check(unsafe { libc::ioctl(raw, libc::TUNGETIFF, &mut req) })?;
        // SAFETY: TUNGETIFF wrote the flags member of the union.
        let flags = libc::c_int::from(unsafe { req.ifr_ifru.ifru_flags }) & 0xffff;
        let tap_flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if flags & tap_flags != tap_flags {
            return Err(errno(libc::EINVAL));
        }
        let name = ifreq_name(&req);
        let socket = control_socket()?;
        let mtu = interface_mtu(socket.as_fd(), &name)?;
        // SAFETY: fcntl on a descriptor checked above.
        check(unsafe { libc::fcntl(raw, libc::F_SETFL, status | libc::O_NONBLOCK) })?;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) })?;
        disable_offloads(socket.as_fd(), &name);
        Ok(Tap {
            // SAFETY: the caller hands the descriptor over; from here on it
            // is ours and closed when the tap is dropped.
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
            name,
            mtu,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface MTU, without the 14-byte Ethernet header.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// Receives one frame with a single `read()` into `buffer`. A frame
    /// longer than the buffer is truncated. No frame waiting is an error of
    /// kind `WouldBlock`; `Ok(0)` is possible for an empty buffer.
    pub fn read(&self, buffer: &mut VolatileSlice<'_>) -> io::Result<usize> {
        let n = (&self.fd).read_volatile(buffer).map_err(volatile_error)?;
        // The tap returns a truncated frame's truncated length; the guest
        // is never told of more bytes than its buffer holds, whatever the
        // kernel says.
        Ok(n.min(buffer.len()))
    }

    /// Sends one frame with a single `write()`; returns the bytes written.
    pub fn write(&self, frame: &VolatileSlice<'_>) -> io::Result<usize> {
        (&self.fd).write_volatile(frame).map_err(volatile_error)
    }
}

impl FrameBackend for Tap {
    fn name(&self) -> &str {
        Tap::name(self)
    }

    fn mtu(&self) -> u16 {
        Tap::mtu(self)
    }

    fn send(&self, frame: &VolatileSlice<'_>) -> io::Result<usize> {
        self.write(frame)
    }

    fn receive(&self, buffer: &mut VolatileSlice<'_>) -> io::Result<usize> {
        self.read(buffer)
    }

    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd.as_raw_fd())
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_is_the_strerror_text() {
        assert_eq!(error_text(&errno(libc::ENODEV)), "No such device");
        assert_eq!(error_text(&errno(libc::ENETDOWN)), "Network is down");
        assert_eq!(error_text(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn names_must_fit_ifnamsiz() {
        assert!(ifreq("fifteen-chars-x").is_ok());
        let err = ifreq("sixteen-chars-xx").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
    }

    #[test]
    fn a_descriptor_that_is_not_a_tap_is_refused_and_left_open() {
        let mut fds = [0; 2];
        // SAFETY: creates a pipe into a local array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let err = Tap::from_fd(fds[0]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTTY));
        // Still open: F_GETFD succeeds.
        // SAFETY: queries a descriptor we created.
        assert!(unsafe { libc::fcntl(fds[0], libc::F_GETFD) } >= 0);
        // SAFETY: closes the pipe we created.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    #[test]
    fn a_descriptor_that_is_not_open_is_a_bad_descriptor() {
        let err = Tap::from_fd(1 << 30).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }
}
