//! The POLL back-end (§6.3): one epoll set with a timerfd and every network
//! device's fd, keyed by the device's manifest index.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// epoll user data that marks the timer (manifest indices are below 64).
const TIMER_KEY: u64 = u64::MAX;
const MAX_EVENTS: usize = 64;

/// What the POLL hypercall waits on: the epoll set here, a virtual clock in
/// the mock tender.
pub trait Waiter {
    /// Blocks until a device is readable or `timeout_ns` has passed; returns
    /// the ready set and the number of ready devices.
    fn wait(&self, timeout_ns: u64) -> Result<(u64, i32)>;
}

pub struct Poller {
    epoll: OwnedFd,
    timer: OwnedFd,
}

fn os_error(what: &str) -> Error {
    Error::new(format!("{what}: {}", std::io::Error::last_os_error()))
}

impl Poller {
    pub fn new() -> Result<Self> {
        // SAFETY: plain syscalls; each result is checked before use.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(os_error("epoll_create1"));
        }
        // SAFETY: `epoll` is a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: as above.
        let timer = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if timer < 0 {
            return Err(os_error("timerfd_create"));
        }
        // SAFETY: `timer` is a fresh descriptor we own.
        let timer = unsafe { OwnedFd::from_raw_fd(timer) };
        // Guest deadlines are exact: no timer slack (50 us by default) on
        // top of them. Best effort; only precision is lost if it fails.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        let poller = Poller { epoll, timer };
        poller.add_raw(poller.timer.as_raw_fd(), TIMER_KEY)?;
        Ok(poller)
    }

    fn add_raw(&self, fd: RawFd, key: u64) -> Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: both descriptors are open; `event` outlives the call.
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            return Err(os_error("epoll_ctl"));
        }
        Ok(())
    }

    /// Arms the timer to fire once, `timeout_ns` from now. Re-arming also
    /// discards an expiry nobody read.
    fn arm(&self, timeout_ns: u64) -> Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (timeout_ns / 1_000_000_000).min(i64::MAX as u64) as libc::time_t,
                tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: valid descriptor and a fully initialised itimerspec.
        let rc = unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        };
        if rc < 0 {
            return Err(os_error("timerfd_settime"));
        }
        Ok(())
    }

    /// Reports `fd` as device `handle` in the ready set when it is readable.
    pub fn add_device(&self, fd: RawFd, handle: usize) -> Result<()> {
        if handle >= 64 {
            return Err(Error::new(format!(
                "device handle {handle} does not fit a ready set"
            )));
        }
        self.add_raw(fd, handle as u64)
    }
}

impl Waiter for Poller {
    fn wait(&self, timeout_ns: u64) -> Result<(u64, i32)> {
        // A zero timeout only asks which devices are ready: epoll answers
        // that without blocking, so the timer is left alone (upstream arms
        // a 1 ns timer instead, which costs a sleep and a wake-up).
        let epoll_timeout = if timeout_ns == 0 {
            0
        } else {
            self.arm(timeout_ns)?;
            -1
        };
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
        let count = loop {
            // SAFETY: `events` has room for MAX_EVENTS entries.
            let n = unsafe {
                libc::epoll_pwait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    MAX_EVENTS as i32,
                    epoll_timeout,
                    std::ptr::null(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(os_error("epoll_pwait"));
            }
        };
        let mut ready_set = 0u64;
        let mut ready = 0;
        for event in &events[..count] {
            let key = event.u64;
            if key == TIMER_KEY {
                let mut expirations = [0u8; 8];
                // SAFETY: reads 8 bytes into a local buffer; a non-blocking
                // timerfd that has not fired returns EAGAIN, which is fine.
                unsafe { libc::read(self.timer.as_raw_fd(), expirations.as_mut_ptr().cast(), 8) };
            } else {
                ready_set |= 1 << key;
                ready += 1;
            }
        }
        Ok((ready_set, ready))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::{Duration, Instant};

    #[test]
    fn timeout_fires_with_an_empty_ready_set() {
        let poller = Poller::new().unwrap();
        assert_eq!(poller.wait(0).unwrap(), (0, 0));
        let start = Instant::now();
        assert_eq!(poller.wait(20_000_000).unwrap(), (0, 0));
        assert!(start.elapsed() >= Duration::from_millis(19));
    }

    #[test]
    fn readable_device_is_reported_by_handle() {
        let poller = Poller::new().unwrap();
        let mut fds = [0; 2];
        // SAFETY: creates a pipe into a local array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        poller.add_device(fds[0], 3).unwrap();
        // SAFETY: writes one byte from a local.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(poller.wait(10_000_000_000).unwrap(), (1 << 3, 1));
        assert!(poller.add_device(fds[0], 64).is_err());
        // SAFETY: closes the pipe we created.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }
}
