//! An in-memory block device for the mock tender, with faults a test can
//! inject: an I/O error, a torn write (part of a multi-block request
//! reaches the storage, then the power goes), and a crash after a number of
//! writes. What reached the storage stays there: a test restarts a guest
//! on the same disk to check its recovery.

use std::io;
use std::sync::{Mutex, MutexGuard};

use vm_memory::VolatileSlice;

use super::disk::BlockBackend;

/// A fault to inject, counted in write requests from when it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    /// Write request `at` fails with an I/O error and changes nothing;
    /// later ones work.
    IoError { at: u64 },
    /// Write request `at` stores only its first `keep` bytes, then the
    /// disk loses power: that request and every later one fails.
    Torn { at: u64, keep: u64 },
    /// The first `writes` requests succeed; the next one fails with nothing
    /// stored (a power cut between two writes), and so does every later one.
    CrashAfter { writes: u64 },
}

struct State {
    data: Vec<u8>,
    read_only: bool,
    fault: Option<DiskFault>,
    /// Write requests since the fault was set.
    writes_since_fault: u64,
    /// Once the power is gone, it stays gone.
    dead: bool,
    writes: u64,
    reads: u64,
    syncs: u64,
}

/// An in-memory disk; share it with `Arc` to keep it across guest runs.
pub struct MemDisk {
    name: String,
    capacity: u64,
    state: Mutex<State>,
}

fn power_cut() -> io::Error {
    io::Error::other("the disk lost power")
}

impl MemDisk {
    /// A zeroed disk of `capacity` bytes.
    pub fn new(name: &str, capacity: u64) -> MemDisk {
        let bytes = vec![0u8; usize::try_from(capacity).expect("a mock disk fits in memory")];
        MemDisk::from_bytes(name, bytes)
    }

    /// A disk holding `bytes`.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> MemDisk {
        MemDisk {
            name: name.to_owned(),
            capacity: bytes.len() as u64,
            state: Mutex::new(State {
                data: bytes,
                read_only: false,
                fault: None,
                writes_since_fault: 0,
                dead: false,
                writes: 0,
                reads: 0,
                syncs: 0,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses writes from now on, as `--block-ro:` does.
    pub fn set_read_only(&self, read_only: bool) {
        self.state().read_only = read_only;
    }

    /// Injects `fault` (or none); restores the power.
    pub fn set_fault(&self, fault: Option<DiskFault>) {
        let mut state = self.state();
        state.fault = fault;
        state.writes_since_fault = 0;
        state.dead = false;
    }

    /// What the storage holds now.
    pub fn contents(&self) -> Vec<u8> {
        self.state().data.clone()
    }

    /// Write requests served (or failed) so far.
    pub fn writes(&self) -> u64 {
        self.state().writes
    }

    /// Read requests served so far.
    pub fn reads(&self) -> u64 {
        self.state().reads
    }

    /// Syncs requested so far.
    pub fn syncs(&self) -> u64 {
        self.state().syncs
    }
}

/// The range `[offset, offset + len)` of a disk of `capacity` bytes, cut
/// at its end.
fn range(offset: u64, len: usize, capacity: u64) -> std::ops::Range<usize> {
    let start = offset.min(capacity);
    let end = offset.saturating_add(len as u64).min(capacity);
    // Both are at most the capacity, which fits memory (see `new`).
    usize::try_from(start).unwrap_or(usize::MAX)..usize::try_from(end).unwrap_or(usize::MAX)
}

impl BlockBackend for MemDisk {
    fn name(&self) -> &str {
        &self.name
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_only(&self) -> bool {
        self.state().read_only
    }

    fn read_at(&self, buffer: &mut VolatileSlice<'_>, offset: u64) -> io::Result<usize> {
        let mut state = self.state();
        state.reads += 1;
        let range = range(offset, buffer.len(), self.capacity);
        let n = range.len();
        buffer.copy_from(&state.data[range]);
        Ok(n)
    }

    fn write_at(&self, data: &VolatileSlice<'_>, offset: u64) -> io::Result<usize> {
        let mut state = self.state();
        state.writes += 1;
        if state.dead {
            return Err(power_cut());
        }
        let index = state.writes_since_fault;
        state.writes_since_fault += 1;
        let mut keep = data.len();
        match state.fault {
            Some(DiskFault::IoError { at }) if at == index => {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            Some(DiskFault::CrashAfter { writes }) if index >= writes => {
                state.dead = true;
                return Err(power_cut());
            }
            Some(DiskFault::Torn { at, keep: kept }) if at == index => {
                state.dead = true;
                keep = usize::try_from(kept).unwrap_or(usize::MAX).min(keep);
            }
            _ => {}
        }
        let range = range(offset, keep, self.capacity);
        let n = range.len();
        let mut bytes = vec![0u8; data.len()];
        data.copy_to(&mut bytes[..]);
        state.data[range].copy_from_slice(&bytes[..n]);
        if state.dead {
            return Err(power_cut());
        }
        Ok(n)
    }

    fn sync(&self) -> io::Result<()> {
        self.state().syncs += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(disk: &MemDisk, offset: u64, bytes: &[u8]) -> io::Result<usize> {
        let mut copy = bytes.to_vec();
        disk.write_at(&VolatileSlice::from(&mut copy[..]), offset)
    }

    #[test]
    fn faults_do_what_they_say() {
        let disk = MemDisk::new("d", 4096);
        assert_eq!(write(&disk, 0, &[1; 512]).unwrap(), 512);
        disk.set_fault(Some(DiskFault::IoError { at: 1 }));
        assert!(write(&disk, 512, &[2; 512]).is_ok());
        assert_eq!(
            write(&disk, 1024, &[3; 512]).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
        assert!(write(&disk, 1536, &[4; 512]).is_ok());
        let contents = disk.contents();
        assert_eq!(
            &contents[1024..1536],
            &[0; 512][..],
            "the failed write changed nothing"
        );

        disk.set_fault(Some(DiskFault::Torn { at: 0, keep: 100 }));
        assert!(write(&disk, 2048, &[5; 1024]).is_err());
        assert!(write(&disk, 0, &[9; 512]).is_err(), "no power after a tear");
        let contents = disk.contents();
        assert_eq!(&contents[2048..2148], &[5; 100][..]);
        assert_eq!(&contents[2148..3072], &[0; 924][..]);
        assert_eq!(contents[0], 1);

        disk.set_fault(Some(DiskFault::CrashAfter { writes: 2 }));
        assert!(write(&disk, 0, &[6; 512]).is_ok());
        assert!(write(&disk, 512, &[6; 512]).is_ok());
        assert!(write(&disk, 1024, &[6; 512]).is_err());
        assert_eq!(disk.contents()[1024], 0);
        assert_eq!(disk.writes(), 9);

        disk.set_fault(None);
        assert!(write(&disk, 1024, &[6; 512]).is_ok());
        let mut back = [0u8; 16];
        assert_eq!(
            disk.read_at(&mut VolatileSlice::from(&mut back[..]), 4090)
                .unwrap(),
            6
        );
    }
}
