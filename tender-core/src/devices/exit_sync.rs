//! Descriptors to fdatasync on the way out, from anywhere: a signal handler
//! (SIGINT, SIGTERM), a module thread's fatal error, or the normal end.
//! fdatasync is async-signal-safe and the table is a fixed array of
//! atomics, so a signal handler may walk it.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// At most one image per manifest entry.
const SLOTS: usize = hvt_abi::manifest::MFT_MAX_ENTRIES;

static FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];

/// Adds `fd` to the table; false if it is full.
pub fn register(fd: RawFd) -> bool {
    FDS.iter().any(|slot| {
        slot.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    })
}

/// Removes `fd` from the table (its owner syncs and closes it itself).
pub fn unregister(fd: RawFd) {
    for slot in &FDS {
        let _ = slot.compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// fdatasync on every registered descriptor. Async-signal-safe.
pub fn sync_all() {
    for slot in &FDS {
        let fd = slot.load(Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: fdatasync takes a descriptor and no memory; on a
            // descriptor closed meanwhile it fails with EBADF, harmlessly.
            unsafe { libc::fdatasync(fd) };
        }
    }
}

/// The descriptors registered now.
pub fn registered() -> Vec<RawFd> {
    FDS.iter()
        .map(|slot| slot.load(Ordering::SeqCst))
        .filter(|&fd| fd >= 0)
        .collect()
}
