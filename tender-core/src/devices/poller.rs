//! What POLL (§6.3) waits on. [`Poller`] is the tender's: one epoll set
//! with a timerfd and every network device's descriptor, keyed by the
//! device's manifest index. The mock tender has a virtual clock instead.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::timerfd::TimerFd;

use super::frame::{FrameBackend, Readiness};
use crate::error::{Error, Result};
use crate::sandbox::Allowlist;

/// epoll user data that marks the timer (manifest indices are below 64).
const TIMER_KEY: u64 = u64::MAX;
const MAX_EVENTS: usize = 64;

/// What the POLL hypercall waits on.
pub trait PollSet {
    /// Blocks until a watched device is readable or `timeout_ns` has passed;
    /// returns the ready set and the number of ready devices.
    fn wait(&self, timeout_ns: u64) -> Result<(u64, i32)>;

    /// Reports `device` as `handle` in the ready set whenever it has a frame
    /// to read.
    fn watch(&self, handle: usize, device: Arc<dyn FrameBackend>) -> Result<()>;

    /// Adds what [`PollSet::wait`] calls to the vCPU thread's allow-list.
    fn vcpu_rules(&self, _vcpu: &mut Allowlist) {}
}

/// The tender's poll set.
pub struct Poller {
    epoll: Epoll,
    /// Re-armed by every wait; only the vCPU thread polls.
    timer: RefCell<TimerFd>,
}

fn os_error(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Device(format!("{what}: {err}"))
}

/// A device handle must fit the 64-bit ready set.
pub fn check_handle(handle: usize) -> Result<()> {
    if handle >= 64 {
        return Err(Error::Device(format!(
            "device handle {handle} does not fit a ready set"
        )));
    }
    Ok(())
}

impl Poller {
    pub fn new() -> Result<Self> {
        let epoll = Epoll::new().map_err(|e| os_error("epoll_create1", e))?;
        let timer = TimerFd::new().map_err(|e| os_error("timerfd_create", e))?;
        // Guest deadlines are exact: no timer slack (50 us by default) on
        // top of them. Best effort; only precision is lost if it fails.
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        epoll
            .ctl(
                ControlOperation::Add,
                timer.as_raw_fd(),
                EpollEvent::new(EventSet::IN, TIMER_KEY),
            )
            .map_err(|e| os_error("epoll_ctl", e))?;
        Ok(Poller {
            epoll,
            timer: RefCell::new(timer),
        })
    }
}

impl PollSet for Poller {
    fn wait(&self, timeout_ns: u64) -> Result<(u64, i32)> {
        // A zero timeout only asks which devices are ready: epoll answers
        // that without blocking, so the timer is left alone (upstream arms
        // a 1 ns timer instead, which costs a sleep and a wake-up). Re-arming
        // also discards an expiry nobody read.
        let epoll_timeout = if timeout_ns == 0 {
            0
        } else {
            self.timer
                .borrow_mut()
                .reset(Duration::from_nanos(timeout_ns), None)
                .map_err(|e| os_error("timerfd_settime", e))?;
            -1
        };
        let mut events = [EpollEvent::default(); MAX_EVENTS];
        let count = match self.epoll.wait(epoll_timeout, &mut events) {
            Ok(n) => n,
            // A signal (gdb's Ctrl-C, `--gdb`) ends the wait early with
            // nothing ready, as upstream's POLL does: the guest sees an
            // early wake-up and yields again, and the tender gets to act
            // on the signal between the two.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(os_error("epoll_pwait", e)),
        };
        let mut ready_set = 0u64;
        let mut ready = 0;
        for event in &events[..count] {
            match event.data() {
                // Epoll said readable: the read does not block.
                TIMER_KEY => drop(self.timer.borrow_mut().wait()),
                key => {
                    ready_set |= 1 << key;
                    ready += 1;
                }
            }
        }
        Ok((ready_set, ready))
    }

    fn watch(&self, handle: usize, device: Arc<dyn FrameBackend>) -> Result<()> {
        check_handle(handle)?;
        let Readiness::Fd(fd) = device.readiness() else {
            return Err(Error::Device(format!(
                "{}: an in-memory device cannot be polled by the tender",
                device.name()
            )));
        };
        self.epoll
            .ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(EventSet::IN, handle as u64),
            )
            .map_err(|e| os_error("epoll_ctl", e))
    }

    fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        let epoll = self.epoll.as_raw_fd();
        let timer = self.timer.borrow().as_raw_fd();
        vcpu.allow_fds(libc::SYS_epoll_wait, &[epoll])
            .allow_fds(libc::SYS_timerfd_settime, &[timer])
            .allow_fds(libc::SYS_read, &[timer]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io;
    use std::os::fd::{OwnedFd, RawFd};
    use std::time::Instant;

    use vm_memory::VolatileSlice;

    #[test]
    fn timeout_fires_with_an_empty_ready_set() {
        let poller = Poller::new().unwrap();
        assert_eq!(poller.wait(0).unwrap(), (0, 0));
        let start = Instant::now();
        assert_eq!(poller.wait(20_000_000).unwrap(), (0, 0));
        assert!(start.elapsed() >= Duration::from_millis(19));
    }

    /// A device whose readiness is one end of a pipe.
    struct PipeDevice(OwnedFd);

    impl FrameBackend for PipeDevice {
        fn name(&self) -> &str {
            "pipe"
        }
        fn mtu(&self) -> u16 {
            1500
        }
        fn send(&self, _: &VolatileSlice<'_>) -> io::Result<usize> {
            Ok(0)
        }
        fn receive(&self, _: &mut VolatileSlice<'_>) -> io::Result<usize> {
            Ok(0)
        }
        fn readiness(&self) -> Readiness {
            Readiness::Fd(self.0.as_raw_fd())
        }
    }

    fn pipe() -> (OwnedFd, OwnedFd) {
        let mut fds: [RawFd; 2] = [0; 2];
        // SAFETY: creates a pipe into a local array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: both descriptors are fresh and ours.
        unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        }
    }

    #[test]
    fn readable_device_is_reported_by_handle() {
        let poller = Poller::new().unwrap();
        let (read_end, write_end) = pipe();
        poller
            .watch(3, Arc::new(PipeDevice(read_end.try_clone().unwrap())))
            .unwrap();
        std::io::Write::write_all(&mut std::fs::File::from(write_end), b"x").unwrap();
        assert_eq!(poller.wait(10_000_000_000).unwrap(), (1 << 3, 1));
        let err = poller
            .watch(64, Arc::new(PipeDevice(read_end)))
            .unwrap_err();
        assert_eq!(err.to_string(), "device handle 64 does not fit a ready set");
    }
}
