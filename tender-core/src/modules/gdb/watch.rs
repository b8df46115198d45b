//! Watchpoints (gdb's `Z2`-`Z4`), kept by the stub itself.
//!
//! This project's host (shadow-paging KVM) delivers no data breakpoint:
//! at CPL 0 its instruction emulator checks DR7's code breakpoints only,
//! and at CPL 3 it loads no debug registers at all. So a write watchpoint
//! is a copy of the watched bytes ([`WriteWatches`]), and while one is set
//! a continue is carried out by the stub as single steps (KVM's at CPL 0,
//! RFLAGS.TF through the trap path at CPL 3, as `stepi`), comparing the
//! bytes after each step without asking gdb; a change is reported as a
//! hardware watchpoint's hit, after the writing instruction, as x86 does.
//! A read cannot be seen by comparing: read and access watchpoints are
//! refused. A breakpoint, the guest's end, a fault and Ctrl-C stop the
//! stepping as they stop a continue.
//!
//! `TENDER_GDB_DR_WATCH=1` (CPL 0 only) puts watchpoints in the debug
//! registers instead (DR7's R/W and LEN bits: 1, 2, 4 or 8 aligned bytes,
//! writes or accesses), for hosts that deliver data breakpoints (hardware
//! KVM); they never fire on this host.

use gdbstub::common::Signal;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::SingleThreadStopReason;
use gdbstub::target::ext::base::singlethread::SingleThreadBase;
use gdbstub::target::ext::breakpoints::{HwWatchpoint, WatchKind};
use gdbstub::target::TargetResult;

use super::conn::Waiting;
use super::target::{Resume, Stub};
use super::Gdb;
use crate::error::Result;
use crate::vm::{Vcpu, Watchpoint};

/// At most this many watchpoints together: as many as DR0-DR3, so that
/// gdb's behaviour (and its "too many" refusal) stays that of hardware.
pub(super) const MAX_WRITE_WATCHES: usize = 4;
/// The longest range one watchpoint covers, in bytes; gdb asks for the
/// size of the watched expression (8 for a `u64`).
pub(super) const MAX_WATCH_LEN: usize = 64;

/// One write watchpoint: where, and the bytes there when it was set or
/// last reported changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WriteWatch {
    addr: u64,
    len: usize,
    bytes: [u8; MAX_WATCH_LEN],
}

/// The write watchpoints gdb set, compared after every step.
#[derive(Debug, Default)]
pub(super) struct WriteWatches {
    set: Vec<WriteWatch>,
}

impl WriteWatches {
    pub(super) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.set.clear();
    }

    /// Watches `now.len()` bytes at `addr`, whose current contents are
    /// `now`. False when the range is empty, too long or wraps, or all
    /// watchpoints are taken. Setting the same range again takes a fresh
    /// copy (gdb re-inserts its watchpoints at every resume).
    pub(super) fn add(&mut self, addr: u64, now: &[u8]) -> bool {
        let len = now.len();
        let fits = (1..=MAX_WATCH_LEN).contains(&len) && addr.checked_add(len as u64 - 1).is_some();
        if !fits {
            return false;
        }
        let mut bytes = [0u8; MAX_WATCH_LEN];
        bytes[..len].copy_from_slice(now);
        let watch = WriteWatch { addr, len, bytes };
        if let Some(same) = self.set.iter_mut().find(|w| w.addr == addr && w.len == len) {
            *same = watch;
            return true;
        }
        if self.set.len() >= MAX_WRITE_WATCHES {
            return false;
        }
        self.set.push(watch);
        true
    }

    /// Removes the watchpoint on `len` bytes at `addr`; false if none.
    pub(super) fn remove(&mut self, addr: u64, len: u64) -> bool {
        let Some(i) = self
            .set
            .iter()
            .position(|w| w.addr == addr && w.len as u64 == len)
        else {
            return false;
        };
        self.set.swap_remove(i);
        true
    }

    /// The address of the first watchpoint whose bytes differ from its
    /// copy, which then takes the new bytes. `read` fills its buffer with
    /// the guest's bytes at an address, or says it could not (then the
    /// watchpoint counts as unchanged: its range was readable when set,
    /// and guest memory does not shrink).
    pub(super) fn changed(&mut self, mut read: impl FnMut(u64, &mut [u8]) -> bool) -> Option<u64> {
        let mut now = [0u8; MAX_WATCH_LEN];
        for watch in &mut self.set {
            let now = &mut now[..watch.len];
            if read(watch.addr, now) && *now != watch.bytes[..watch.len] {
                watch.bytes[..watch.len].copy_from_slice(now);
                return Some(watch.addr);
            }
        }
        None
    }
}

impl HwWatchpoint for Stub {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        if self.debug_register_watch {
            return Ok(self.add_debug_register_watch(addr, len, kind));
        }
        // Only a write shows in the bytes.
        if kind != WatchKind::Write {
            return Ok(false);
        }
        let Some(len) = usize::try_from(len).ok().filter(|&l| l <= MAX_WATCH_LEN) else {
            return Ok(false);
        };
        let mut now = [0u8; MAX_WATCH_LEN];
        let now = &mut now[..len];
        // The guest's bytes, not the stub's int3s: those come and go as
        // breakpoints are stepped over.
        if !matches!(self.read_addrs(addr, now), Ok(n) if n == len) {
            return Ok(false);
        }
        Ok(self.write_watches.add(addr, now))
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        if self.debug_register_watch {
            return Ok(self.remove_debug_register_watch(addr, len, kind));
        }
        Ok(kind == WatchKind::Write && self.write_watches.remove(addr, len))
    }
}

impl Stub {
    /// A watchpoint in a free debug register (`TENDER_GDB_DR_WATCH=1`).
    fn add_debug_register_watch(&mut self, addr: u64, len: u64, kind: WatchKind) -> bool {
        // DR7 watches 1, 2, 4 or 8 aligned bytes; reads alone cannot be watched.
        if !matches!(len, 1 | 2 | 4 | 8) || !addr.is_multiple_of(len) || kind == WatchKind::Read {
            return false;
        }
        let Some(slot) = self.free_slot() else {
            return false;
        };
        let watch = Watchpoint {
            address: addr,
            len: u8::try_from(len).unwrap_or(8),
            reads: kind == WatchKind::ReadWrite,
        };
        self.watch[slot] = Some((watch, kind));
        true
    }

    fn remove_debug_register_watch(&mut self, addr: u64, len: u64, kind: WatchKind) -> bool {
        let Some(slot) = self.watch.iter().position(|w| {
            w.is_some_and(|(w, k)| w.address == addr && u64::from(w.len) == len && k == kind)
        }) else {
            return false;
        };
        self.watch[slot] = None;
        true
    }

    /// The first write watchpoint whose bytes changed (see
    /// [`WriteWatches::changed`]).
    fn watched_write(&mut self) -> Option<u64> {
        let mut watches = std::mem::take(&mut self.write_watches);
        let hit = watches
            .changed(|addr, buf| matches!(self.read_addrs(addr, buf), Ok(n) if n == buf.len()));
        self.write_watches = watches;
        hit
    }
}

impl Gdb {
    /// Whether the stub is carrying out gdb's continue as single steps,
    /// for its write watchpoints.
    pub(super) fn stepping_for_watches(&self) -> bool {
        self.machine.is_some()
            && self
                .target
                .as_ref()
                .is_some_and(|t| t.resume == Some(Resume::Continue) && !t.write_watches.is_empty())
    }

    /// One step of a watched continue ended with `reason` (a step, a
    /// breakpoint, ...). `Ok(None)`: step on without telling gdb;
    /// otherwise the stop to report: a breakpoint as it is (KVM and the
    /// trap path report one hit during stepping as they do during a
    /// continue), a watched write, gdb's Ctrl-C. If gdb went away, the
    /// stub detaches and the guest runs on free ([`Gdb::detached`]).
    pub(super) fn after_watched_step(
        &mut self,
        reason: SingleThreadStopReason<u64>,
        vcpu: &mut dyn Vcpu,
    ) -> Result<Option<SingleThreadStopReason<u64>>> {
        let plain_step = matches!(
            reason,
            SingleThreadStopReason::DoneStep | SingleThreadStopReason::Signal(Signal::SIGTRAP)
        );
        if !plain_step || !self.stepping_for_watches() {
            return Ok(Some(reason));
        }
        self.watch_steps.add(1);
        let Some(target) = self.target.as_mut() else {
            return Ok(Some(reason));
        };
        if let Some(addr) = target.watched_write() {
            return Ok(Some(SingleThreadStopReason::Watch {
                tid: (),
                kind: WatchKind::Write,
                addr,
            }));
        }
        // Between the short runs of the steps gdb's SIGIO rarely cuts
        // `KVM_RUN` short: the connection is looked at here (one `recv` a
        // step).
        let conn = match &mut self.machine {
            Some(GdbStubStateMachine::Running(running)) => running.borrow_conn().waiting(),
            _ => Waiting::Nothing,
        };
        match conn {
            Waiting::Nothing => Ok(None),
            Waiting::Bytes if self.take_ctrl_c(None, vcpu)? => {
                Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
            }
            Waiting::Bytes => Ok(None),
            Waiting::Closed => {
                // Else the guest would be stepped for ever, a thousand
                // times slower, with nobody to report to.
                self.detached(vcpu)?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest memory of 256 bytes for `changed`'s reader.
    fn reader(memory: &[u8]) -> impl FnMut(u64, &mut [u8]) -> bool + '_ {
        move |addr, buf| {
            let Some(at) = usize::try_from(addr).ok() else {
                return false;
            };
            match memory.get(at..at + buf.len()) {
                Some(bytes) => {
                    buf.copy_from_slice(bytes);
                    true
                }
                None => false,
            }
        }
    }

    #[test]
    fn a_write_is_reported_once_with_the_watchpoints_address() {
        let mut memory = [0u8; 256];
        let mut watches = WriteWatches::default();
        assert!(watches.add(16, &memory[16..24]));
        assert!(watches.add(64, &memory[64..128]));
        assert_eq!(watches.changed(reader(&memory)), None);
        memory[20] = 2;
        assert_eq!(watches.changed(reader(&memory)), Some(16));
        // The copy took the new bytes: no second report for the same write.
        assert_eq!(watches.changed(reader(&memory)), None);
        memory[127] = 1;
        assert_eq!(watches.changed(reader(&memory)), Some(64));
        // A byte just outside a watched range is not watched.
        memory[24] = 9;
        memory[128] = 9;
        assert_eq!(watches.changed(reader(&memory)), None);
    }

    #[test]
    fn bad_ranges_and_a_fifth_watchpoint_are_refused() {
        let bytes = [0u8; MAX_WATCH_LEN + 1];
        let mut watches = WriteWatches::default();
        assert!(!watches.add(0, &[]));
        assert!(!watches.add(0, &bytes));
        assert!(!watches.add(u64::MAX - 2, &bytes[..4]));
        assert!(watches.add(u64::MAX - 3, &bytes[..4]));
        for addr in 1..MAX_WRITE_WATCHES as u64 {
            assert!(watches.add(addr * 8, &bytes[..8]));
        }
        assert!(!watches.add(100, &bytes[..8]));
        // The same range again is a fresh copy, not a fifth watchpoint.
        assert!(watches.add(8, &[1; 8]));
        assert!(watches.remove(8, 8));
        assert!(!watches.remove(8, 8));
        assert!(!watches.remove(16, 4));
        assert!(watches.add(100, &bytes[..8]));
        watches.clear();
        assert!(watches.is_empty());
    }

    #[test]
    fn an_unreadable_range_counts_as_unchanged() {
        let memory = [7u8; 8];
        let mut watches = WriteWatches::default();
        assert!(watches.add(4, &[0; 8]));
        assert_eq!(watches.changed(reader(&memory)), None);
    }
}
