//! The tap back-end of network devices (§4.5, §6.4): attach to an existing
//! Linux tap interface (or take a pre-opened tap descriptor), and move one
//! Ethernet frame per `read()`/`write()` directly between the tap and guest
//! memory. Nothing here knows about hypercalls, so the shared-memory ring
//! can drive the same device; the hypercall handlers see it as a
//! [`FrameBackend`].

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use vm_memory::{ReadVolatile, VolatileMemoryError, VolatileSlice, WriteVolatile};

use super::frame::{FrameBackend, Readiness};
use crate::sandbox::Allowlist;

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

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// `rc`, or the error of the call that returned a negative `rc`.
pub(super) fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// One `struct ifreq`: the argument of every interface ioctl the tap makes
/// (TUNSETIFF, TUNGETIFF, SIOCGIFFLAGS, SIOCGIFMTU, SIOCETHTOOL). What its
/// data pointer names is borrowed for `'a`, so it outlives the request.
struct IfReq<'a> {
    raw: libc::ifreq,
    data: PhantomData<&'a mut ()>,
}

impl<'a> IfReq<'a> {
    /// A request with every field zero, for an ioctl that fills it in.
    fn empty() -> IfReq<'a> {
        IfReq {
            // SAFETY: ifreq is plain old data; all-zero is a valid value.
            raw: unsafe { std::mem::zeroed() },
            data: PhantomData,
        }
    }

    /// A request naming `name`; names must be shorter than IFNAMSIZ.
    fn named(name: &str) -> io::Result<IfReq<'a>> {
        if name.len() >= libc::IFNAMSIZ {
            return Err(errno(libc::ENAMETOOLONG));
        }
        let mut req = IfReq::empty();
        for (dst, &src) in req.raw.ifr_name.iter_mut().zip(name.as_bytes()) {
            *dst = libc::c_char::from_ne_bytes([src]);
        }
        Ok(req)
    }

    /// The interface name, up to its NUL.
    fn name(&self) -> String {
        let bytes: Vec<u8> = self
            .raw
            .ifr_name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c.to_ne_bytes()[0])
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Sets the interface flags, the 16 bits of `ifr_flags` (EINVAL for
    /// flags beyond them).
    fn set_flags(&mut self, flags: libc::c_int) -> io::Result<()> {
        let bits = u16::try_from(flags).map_err(|_| errno(libc::EINVAL))?;
        self.raw.ifr_ifru.ifru_flags = libc::c_short::from_ne_bytes(bits.to_ne_bytes());
        Ok(())
    }

    /// The interface flags (TUNGETIFF, SIOCGIFFLAGS), the 16 bits of
    /// `ifr_flags`.
    fn flags(&self) -> libc::c_int {
        // SAFETY: the union was zeroed when the request was made and its
        // members are plain integers: any bits are a valid `c_short`.
        let flags = unsafe { self.raw.ifr_ifru.ifru_flags };
        libc::c_int::from(u16::from_ne_bytes(flags.to_ne_bytes()))
    }

    /// The MTU (SIOCGIFMTU).
    fn mtu(&self) -> libc::c_int {
        // SAFETY: as for `flags`: any bits are a valid `c_int`.
        unsafe { self.raw.ifr_ifru.ifru_mtu }
    }

    /// Points `ifr_data` at `data` (SIOCETHTOOL's command).
    fn set_data<T>(&mut self, data: &'a mut T) {
        self.raw.ifr_ifru.ifru_data = (data as *mut T).cast();
    }

    /// Issues `request` on `fd` with this ifreq, which the kernel reads and
    /// may fill in.
    fn ioctl(&mut self, fd: RawFd, request: libc::Ioctl) -> io::Result<()> {
        // SAFETY: every request made here takes a `struct ifreq`, which
        // `self.raw` is, valid and writable for the call; the one pointer
        // it may hold, `ifr_data`, is borrowed for `'a`, which outlives
        // `self`. A bad `fd` is an error, nothing worse.
        check(unsafe { libc::ioctl(fd, request, &mut self.raw) })?;
        Ok(())
    }
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
    let mut req = IfReq::named(name)?;
    req.ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS)?;
    Ok(req.flags())
}

/// An interface counts as usable when it is up or running (§4.5).
fn is_up(flags: libc::c_int) -> bool {
    flags & (libc::IFF_UP | libc::IFF_RUNNING) != 0
}

fn interface_mtu(socket: BorrowedFd<'_>, name: &str) -> io::Result<u16> {
    let mut req = IfReq::named(name)?;
    req.ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU)?;
    u16::try_from(req.mtu()).map_err(|_| errno(libc::EINVAL))
}

/// Switches off GRO and GSO so that the kernel never hands over frames
/// larger than the MTU. Best effort: failures are ignored, as upstream does.
fn disable_offloads(socket: BorrowedFd<'_>, name: &str) {
    for cmd in [ETHTOOL_SGRO, ETHTOOL_SGSO] {
        let mut value = EthtoolValue { cmd, data: 0 };
        let Ok(mut req) = IfReq::named(name) else {
            return;
        };
        req.set_data(&mut value);
        let _ = req.ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL);
    }
}

/// The I/O error inside a guest-memory transfer's error.
pub(super) fn volatile_error(err: VolatileMemoryError) -> io::Error {
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
        // No such interface is ENODEV to the ioctl; upstream, which looks
        // for the name among the interfaces, says ENOENT.
        let flags = interface_flags(socket.as_fd(), iface).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENODEV) {
                errno(libc::ENOENT)
            } else {
                e
            }
        })?;
        if !is_up(flags) {
            return Err(errno(libc::ENETDOWN));
        }
        // Close-on-exec, as std opens every file.
        let fd: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/net/tun")?
            .into();
        let mut req = IfReq::named(iface)?;
        req.set_flags(libc::IFF_TAP | libc::IFF_NO_PI)?;
        req.ioctl(fd.as_raw_fd(), libc::TUNSETIFF)?;
        // A different name (e.g. "tap%d" expanded by the kernel) is not the
        // interface that was asked for.
        if req.name() != iface {
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
        // ENOTTY if `raw` is not a tun/tap descriptor, EBADFD if it is
        // attached to nothing.
        let mut req = IfReq::empty();
        req.ioctl(raw, libc::TUNGETIFF)?;
        let tap_flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if req.flags() & tap_flags != tap_flags {
            return Err(errno(libc::EINVAL));
        }
        let name = req.name();
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

    fn allow_calls(&self, list: &mut Allowlist) {
        let fd = [self.fd.as_raw_fd()];
        list.allow_fds(libc::SYS_read, &fd)
            .allow_fds(libc::SYS_write, &fd);
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
    fn names_must_fit_ifnamsiz() {
        assert!(IfReq::named("fifteen-chars-x").is_ok());
        let Err(err) = IfReq::named("sixteen-chars-xx") else {
            panic!("a 16-character name was accepted");
        };
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
