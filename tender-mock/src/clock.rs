//! The mock tender's poll set: a monotonic clock that only moves when the
//! guest waits, with scripted device readiness on it, and the in-memory
//! devices whose queued frames make them readable.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use tender_core::devices::frame::{FrameBackend, Readiness};
use tender_core::devices::poller::{check_handle, PollSet};
use tender_core::error::{Error, Result};

#[derive(Default)]
pub struct VirtualClock {
    now_ns: Cell<u64>,
    /// (time, handle): the device becomes readable at that time.
    events: RefCell<Vec<(u64, usize)>>,
    /// (handle, device): the device is readable while frames wait in it.
    devices: RefCell<Vec<(usize, Arc<dyn FrameBackend>)>>,
    /// The devices the last wait reported, with their receive counts then.
    reported: RefCell<Vec<(usize, u64)>>,
}

/// Frames waiting and receives so far of an in-memory device.
fn queue_of(device: &dyn FrameBackend) -> (usize, u64) {
    match device.readiness() {
        Readiness::Queue { waiting, receives } => (waiting, receives),
        // `watch` refuses descriptors: never here.
        Readiness::Fd(_) => (0, 0),
    }
}

impl VirtualClock {
    pub fn now_ns(&self) -> u64 {
        self.now_ns.get()
    }

    /// Makes device `handle` readable at virtual time `at_ns` (once).
    pub fn schedule_ready(&self, handle: usize, at_ns: u64) {
        assert!(handle < 64, "handle {handle} does not fit a ready set");
        self.events.borrow_mut().push((at_ns, handle));
    }

    /// The watched devices with frames waiting: (fresh, stale) ready sets.
    /// A device is stale when the last wait reported it and the guest has
    /// not asked it for a frame since.
    fn ready_devices(&self) -> (u64, u64) {
        let reported = self.reported.borrow();
        let (mut fresh, mut stale) = (0u64, 0u64);
        for (handle, device) in self.devices.borrow().iter() {
            let (waiting, receives) = queue_of(&**device);
            if waiting == 0 {
                continue;
            }
            let ignored = reported
                .iter()
                .any(|&(h, calls)| h == *handle && calls == receives);
            if ignored {
                stale |= 1 << handle;
            } else {
                fresh |= 1 << handle;
            }
        }
        (fresh, stale)
    }

    /// Remembers what this wait reported, to tell stale readiness later.
    fn report(&self, ready_set: u64) -> (u64, i32) {
        let mut reported = self.reported.borrow_mut();
        reported.clear();
        for (handle, device) in self.devices.borrow().iter() {
            if ready_set & (1 << handle) != 0 {
                reported.push((*handle, queue_of(&**device).1));
            }
        }
        (ready_set, ready_set.count_ones() as i32)
    }

    /// Takes the scripted events due at or before `at` into a ready set.
    fn fire_events(&self, at: u64) -> u64 {
        let mut ready_set = 0u64;
        self.events.borrow_mut().retain(|&(time, handle)| {
            let fire = time <= at;
            if fire {
                ready_set |= 1 << handle;
            }
            !fire
        });
        ready_set
    }
}

impl PollSet for VirtualClock {
    /// Returns at once, the clock unmoved, when frames the guest has not
    /// been told about wait in a device. Otherwise jumps to the earlier of
    /// the timeout and the next scripted readiness event.
    ///
    /// Devices the guest was told about and did not read stay in the ready
    /// set (epoll is level-triggered) but do not stop the clock: a real
    /// tender would have the guest spin until its deadline, so the mock
    /// jumps there. A wait that nothing can end (no deadline, no event, no
    /// frame the guest will read) is a deadlock, reported as an error
    /// instead of hanging the test.
    fn wait(&self, timeout_ns: u64) -> Result<(u64, i32)> {
        let now = self.now_ns.get();
        let (fresh, stale) = self.ready_devices();
        if fresh != 0 {
            return Ok(self.report(fresh | stale | self.fire_events(now)));
        }
        let deadline = now.saturating_add(timeout_ns);
        let first = self
            .events
            .borrow()
            .iter()
            .map(|&(at, _)| at)
            .min()
            .filter(|&at| at <= deadline);
        let Some(at) = first else {
            if deadline == u64::MAX {
                return Err(Error::Guest(
                    "mock tender: the guest waits forever: no deadline, no readiness \
                     event, no frame it will read"
                        .into(),
                ));
            }
            self.now_ns.set(deadline);
            return Ok(self.report(stale));
        };
        self.now_ns.set(now.max(at));
        Ok(self.report(self.fire_events(at) | stale))
    }

    fn watch(&self, handle: usize, device: Arc<dyn FrameBackend>) -> Result<()> {
        check_handle(handle)?;
        if let Readiness::Fd(_) = device.readiness() {
            return Err(Error::Device(format!(
                "mock tender: {} has a descriptor: use the real clock for it",
                device.name()
            )));
        }
        self.devices.borrow_mut().push((handle, device));
        Ok(())
    }
}
