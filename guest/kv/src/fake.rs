//! An in-memory [`Disk`] with faults a test can inject: an I/O error, a
//! torn write (a prefix of it, or any subset of its blocks, reaches the
//! storage, then the power goes), a write that is stored but whose success
//! never reaches the caller, and a power cut between two writes. What
//! reached the storage stays: a test opens a new store on the same disk
//! (after [`FakeDisk::set_fault`] restored the power) to check recovery.
//!
//! Handles are cheap clones of one disk: keep one, give one to the store.

use alloc::rc::Rc;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::disk::{Disk, DiskError};
use crate::format::to_usize;

/// A fault, counted in write requests from when it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Write `at` fails with an I/O error and changes nothing; later ones
    /// work.
    IoError { at: u64 },
    /// The power goes before write `at`: it stores nothing, and it and
    /// every later write fail.
    CrashBefore { at: u64 },
    /// Write `at` stores its first `keep` bytes, then the power goes.
    Torn { at: u64, keep: u64 },
    /// Write `at` stores only its blocks `i` whose bit `i % 64` is set in
    /// `mask` (the order in which blocks reach the storage is not the
    /// order of the request), then the power goes.
    Scattered { at: u64, mask: u64 },
    /// Write `at` is stored whole, but the power goes before the caller
    /// hears of it: it fails, and so does every later write.
    Unacknowledged { at: u64 },
    /// Write `at` is stored whole but reports an error; later ones work.
    FailedButStored { at: u64 },
}

impl Fault {
    fn at(&self) -> u64 {
        match *self {
            Fault::IoError { at }
            | Fault::CrashBefore { at }
            | Fault::Torn { at, .. }
            | Fault::Scattered { at, .. }
            | Fault::Unacknowledged { at }
            | Fault::FailedButStored { at } => at,
        }
    }
}

struct State {
    data: Vec<u8>,
    block_size: u64,
    read_only: bool,
    fault: Option<Fault>,
    writes_since_fault: u64,
    dead: bool,
    writes: u64,
    reads: u64,
    /// Offset and length of every write request.
    log: Vec<(u64, usize)>,
}

/// A shared handle to an in-memory disk.
#[derive(Clone)]
pub struct FakeDisk(Rc<RefCell<State>>);

impl core::fmt::Debug for FakeDisk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = self.0.borrow();
        f.debug_struct("FakeDisk")
            .field("block_size", &state.block_size)
            .field("capacity", &state.data.len())
            .field("fault", &state.fault)
            .field("dead", &state.dead)
            .finish()
    }
}

fn power_cut() -> DiskError {
    DiskError::Io("the disk lost power".to_string())
}

impl FakeDisk {
    /// A zeroed disk of `blocks` blocks of `block_size` bytes.
    pub fn new(block_size: u64, blocks: u64) -> FakeDisk {
        FakeDisk::from_bytes(block_size, alloc::vec![0; to_usize(block_size * blocks)])
    }

    /// A disk holding `bytes` (a whole number of blocks).
    pub fn from_bytes(block_size: u64, bytes: Vec<u8>) -> FakeDisk {
        assert_eq!(bytes.len() % to_usize(block_size), 0, "whole blocks");
        FakeDisk(Rc::new(RefCell::new(State {
            data: bytes,
            block_size,
            read_only: false,
            fault: None,
            writes_since_fault: 0,
            dead: false,
            writes: 0,
            reads: 0,
            log: Vec::new(),
        })))
    }

    /// An independent disk with the same contents (no fault).
    pub fn copy(&self) -> FakeDisk {
        let state = self.0.borrow();
        FakeDisk::from_bytes(state.block_size, state.data.clone())
    }

    /// Injects `fault` (or none) and restores the power.
    pub fn set_fault(&self, fault: Option<Fault>) {
        let mut state = self.0.borrow_mut();
        state.fault = fault;
        state.writes_since_fault = 0;
        state.dead = false;
    }

    /// Refuses writes from now on (or not).
    pub fn set_read_only(&self, read_only: bool) {
        self.0.borrow_mut().read_only = read_only;
    }

    /// Whether the power is gone.
    pub fn is_dead(&self) -> bool {
        self.0.borrow().dead
    }

    /// What the storage holds.
    pub fn contents(&self) -> Vec<u8> {
        self.0.borrow().data.clone()
    }

    /// Changes the storage directly (corruption, foreign data).
    pub fn modify(&self, f: impl FnOnce(&mut [u8])) {
        f(&mut self.0.borrow_mut().data);
    }

    /// Write requests so far (failed ones too).
    pub fn writes(&self) -> u64 {
        self.0.borrow().writes
    }

    /// Offset and length of every write request so far.
    pub fn write_log(&self) -> Vec<(u64, usize)> {
        self.0.borrow().log.clone()
    }

    /// Read requests so far.
    pub fn reads(&self) -> u64 {
        self.0.borrow().reads
    }

    fn check(state: &State, offset: u64, len: usize) -> Result<core::ops::Range<usize>, DiskError> {
        let bs = state.block_size;
        let len = len as u64;
        let end = offset.checked_add(len);
        if len == 0
            || !offset.is_multiple_of(bs)
            || !len.is_multiple_of(bs)
            || end.is_none_or(|end| end > state.data.len() as u64)
        {
            return Err(DiskError::Request(alloc::format!(
                "{len} bytes at {offset} on a disk of {} bytes of {bs}-byte blocks",
                state.data.len()
            )));
        }
        Ok(to_usize(offset)..to_usize(offset + len))
    }
}

impl Disk for FakeDisk {
    fn block_size(&self) -> u64 {
        self.0.borrow().block_size
    }

    fn capacity(&self) -> u64 {
        self.0.borrow().data.len() as u64
    }

    fn read_only(&self) -> bool {
        self.0.borrow().read_only
    }

    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), DiskError> {
        let mut state = self.0.borrow_mut();
        let range = FakeDisk::check(&state, offset, buffer.len())?;
        state.reads += 1;
        buffer.copy_from_slice(&state.data[range]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let mut state = self.0.borrow_mut();
        if state.read_only {
            return Err(DiskError::ReadOnly);
        }
        let range = FakeDisk::check(&state, offset, data.len())?;
        state.writes += 1;
        state.log.push((offset, data.len()));
        if state.dead {
            return Err(power_cut());
        }
        let index = state.writes_since_fault;
        state.writes_since_fault += 1;
        let fault = state.fault.filter(|f| f.at() == index);
        let bs = to_usize(state.block_size);
        let target = &mut state.data[range];
        match fault {
            None => {
                target.copy_from_slice(data);
                return Ok(());
            }
            Some(Fault::IoError { .. }) => {
                return Err(DiskError::Io("input/output error".to_string()));
            }
            Some(Fault::FailedButStored { .. }) => {
                target.copy_from_slice(data);
                return Err(DiskError::Io("input/output error".to_string()));
            }
            Some(Fault::CrashBefore { .. }) => {}
            Some(Fault::Torn { keep, .. }) => {
                let keep = to_usize(keep.min(data.len() as u64));
                target[..keep].copy_from_slice(&data[..keep]);
            }
            Some(Fault::Scattered { mask, .. }) => {
                for (i, (to, from)) in target.chunks_mut(bs).zip(data.chunks(bs)).enumerate() {
                    if mask & (1 << (i % 64)) != 0 {
                        to.copy_from_slice(from);
                    }
                }
            }
            Some(Fault::Unacknowledged { .. }) => target.copy_from_slice(data),
        }
        state.dead = true;
        Err(power_cut())
    }
}
