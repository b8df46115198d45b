//! What a block device is to the block module (§6.5): a back-end with a
//! fixed capacity that reads and writes bytes at offsets, straight between
//! guest memory and the storage. [`FileDisk`] is the tender's (a file or a
//! host block device); the mock tender's is the in-memory
//! [`MemDisk`](super::memdisk::MemDisk).
//!
//! Durability contract: a write that returned `Ok` is in the host kernel
//! (the file's page cache), so it survives the tender being killed; `sync`
//! makes it survive the host too (fdatasync), and the tender calls it on
//! every way out it controls (`docs/block.md`).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::{AsRawFd, RawFd};

use vm_memory::VolatileSlice;

use crate::error::os_error_text;
use crate::error::{Error, Result};

/// One block device's storage.
pub trait BlockBackend: Send + Sync {
    /// The name used in the tender's messages (the image's path).
    fn name(&self) -> &str;

    /// Bytes of storage.
    fn capacity(&self) -> u64;

    /// True when writes are refused (`--block-ro:`).
    fn read_only(&self) -> bool;

    /// Reads `buffer.len()` bytes at `offset` into `buffer`; returns the
    /// bytes read (fewer only at the end of the storage or on a failure the
    /// caller treats as fatal).
    fn read_at(&self, buffer: &mut VolatileSlice<'_>, offset: u64) -> io::Result<usize>;

    /// Writes all of `data` at `offset`; returns the bytes written.
    fn write_at(&self, data: &VolatileSlice<'_>, offset: u64) -> io::Result<usize>;

    /// Makes every acknowledged write durable (fdatasync).
    fn sync(&self) -> io::Result<()>;

    /// The descriptor to fdatasync from a signal handler, if any.
    fn sync_fd(&self) -> Option<RawFd> {
        None
    }

    /// The descriptor reads and writes go to, if any (for the sandbox).
    fn io_fd(&self) -> Option<RawFd> {
        None
    }
}

/// A block device backed by a host file (or host block device).
pub struct FileDisk {
    file: File,
    path: String,
    capacity: u64,
    read_only: bool,
}

/// Takes an advisory whole-file lock without waiting: exclusive for a
/// writable image, shared for a read-only one.
fn lock(file: &File, read_only: bool) -> io::Result<()> {
    let operation = if read_only {
        libc::LOCK_SH
    } else {
        libc::LOCK_EX
    } | libc::LOCK_NB;
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl FileDisk {
    /// Opens the image at `path`, read/write (or read-only), and locks it:
    /// exclusively when writable, so that two tenders never write one
    /// image; shared when read-only, so that many guests can share a base
    /// image that nobody writes. Capacity is the image's size.
    pub fn open(path: &str, read_only: bool) -> Result<FileDisk> {
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|e| {
                Error::Device(format!(
                    "Could not open block device: {path}: {}",
                    os_error_text(&e)
                ))
            })?;
        lock(&file, read_only).map_err(|e| {
            let why = if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                if read_only {
                    "it is open for writing by another process".to_owned()
                } else {
                    "it is in use by another process".to_owned()
                }
            } else {
                os_error_text(&e)
            };
            Error::Device(format!("Could not lock block device: {path}: {why}"))
        })?;
        let capacity = (&file).seek(SeekFrom::End(0)).map_err(|e| {
            Error::Device(format!(
                "{path}: Could not determine capacity: {}",
                os_error_text(&e)
            ))
        })?;
        Ok(FileDisk {
            file,
            path: path.to_owned(),
            capacity,
            read_only,
        })
    }
}

/// One `pread` (or `pwrite`, if `write`) of the whole slice at `offset`.
fn transfer(fd: RawFd, slice: &VolatileSlice<'_>, offset: u64, write: bool) -> io::Result<usize> {
    let offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    loop {
        let n = if write {
            let guard = slice.ptr_guard();
            // SAFETY: the slice is valid memory for its length while `guard`
            // lives; pwrite only reads it.
            unsafe { libc::pwrite(fd, guard.as_ptr().cast(), slice.len(), offset) }
        } else {
            let guard = slice.ptr_guard_mut();
            // SAFETY: as above; pread writes at most `slice.len()` bytes
            // into it, memory the tender may write (checked by the caller).
            unsafe { libc::pread(fd, guard.as_ptr().cast(), slice.len(), offset) }
        };
        if n >= 0 {
            return Ok(n.unsigned_abs());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

impl BlockBackend for FileDisk {
    fn name(&self) -> &str {
        &self.path
    }

    fn capacity(&self) -> u64 {
        self.capacity
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&self, buffer: &mut VolatileSlice<'_>, offset: u64) -> io::Result<usize> {
        transfer(self.file.as_raw_fd(), buffer, offset, false)
    }

    fn write_at(&self, data: &VolatileSlice<'_>, offset: u64) -> io::Result<usize> {
        transfer(self.file.as_raw_fd(), data, offset, true)
    }

    fn sync(&self) -> io::Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.file.sync_data()
    }

    fn sync_fd(&self) -> Option<RawFd> {
        (!self.read_only).then(|| self.file.as_raw_fd())
    }

    fn io_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tag: &str, bytes: &[u8]) -> String {
        let path = std::env::temp_dir().join(format!("tender-disk-{tag}-{}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn reads_and_writes_at_offsets_through_volatile_slices() {
        let path = image("rw", &[0u8; 8192]);
        let disk = FileDisk::open(&path, false).unwrap();
        assert_eq!((disk.capacity(), disk.read_only()), (8192, false));
        let mut data = vec![7u8; 1024];
        assert_eq!(
            disk.write_at(&VolatileSlice::from(&mut data[..]), 4096)
                .unwrap(),
            1024
        );
        let mut back = vec![0u8; 2048];
        assert_eq!(
            disk.read_at(&mut VolatileSlice::from(&mut back[..]), 4096 - 512)
                .unwrap(),
            2048
        );
        assert_eq!(&back[..512], &[0u8; 512][..]);
        assert_eq!(&back[512..1536], &[7u8; 1024][..]);
        // At the end of the file a read comes back short.
        assert_eq!(
            disk.read_at(&mut VolatileSlice::from(&mut back[..]), 8192 - 100)
                .unwrap(),
            100
        );
        disk.sync().unwrap();
        drop(disk);
        assert_eq!(std::fs::read(&path).unwrap()[4096..5120], [7u8; 1024]);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_writable_image_is_locked_and_a_shared_one_is_shared() {
        let path = image("lock", &[0u8; 4096]);
        let writer = FileDisk::open(&path, false).unwrap();
        let err = FileDisk::open(&path, false).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!("Could not lock block device: {path}: it is in use by another process")
        );
        let err = FileDisk::open(&path, true).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "Could not lock block device: {path}: it is open for writing by another process"
            )
        );
        drop(writer);
        let first = FileDisk::open(&path, true).unwrap();
        let second = FileDisk::open(&path, true).unwrap();
        assert!(first.read_only() && second.read_only());
        assert!(FileDisk::open(&path, false).is_err());
        drop((first, second));
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_missing_image_is_an_upstream_message() {
        let err = FileDisk::open("/nonexistent/disk.img", false)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "Could not open block device: /nonexistent/disk.img: No such file or directory"
        );
    }
}
