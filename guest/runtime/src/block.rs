//! Block devices: a device declared in the manifest (`manifest!(block
//! "storage")`) and attached by the tender (`--block:storage=PATH`), read
//! and written in runs of whole blocks.
//!
//! ```ignore
//! let disk = BlockDevice::open("storage")?;
//! let size = disk.block_size() as usize;
//! let mut buffer = vec![0u8; 8 * size];
//! disk.read(0, &mut buffer)?;                  // blocks 0..8, one hypercall
//! disk.write(16 * size as u64, &buffer)?;      // blocks 16..24
//! disk.read_async(0, &mut buffer).await?;      // lets other tasks run
//! ```
//!
//! **The rules.** A request is a run of whole blocks: its byte `offset` is
//! a multiple of the block size, its length is a non-zero multiple of the
//! block size, and it ends at or before the capacity. A write to a
//! read-only device (our `--block-ro:` extension) is refused. A request
//! that breaks a rule fails here, in the guest, with a typed [`Error`] and
//! without any hypercall; the device is untouched. The rules are checked
//! in this order: [`Error::ReadOnly`] (writes), [`Error::Empty`],
//! [`Error::Misaligned`], [`Error::OutOfRange`].
//!
//! **One hypercall per run.** [`BlockDevice::read`] and
//! [`BlockDevice::write`] hand a valid run to the tender as one BLOCK_READ
//! or BLOCK_WRITE, whatever its length (Solo5's C API allows exactly one
//! block per call; the hvt tender itself takes any range, §6.5). The vCPU
//! waits while the tender does the `pread`/`pwrite`: a call is synchronous
//! and no other task runs meanwhile.
//!
//! **Async.** Block hypercalls cannot be asynchronous: the tender completes
//! each one before the guest runs again, and block devices never appear in
//! the yield's ready set. So [`BlockDevice::read_async`] and
//! [`BlockDevice::write_async`] do not overlap I/O with computation; what
//! they do is keep a large transfer from monopolising the guest's single
//! CPU. They check the whole request first (a bad request transfers
//! nothing), then transfer it in chunks of at most [`CHUNK`] bytes, one
//! hypercall each, and yield to the other ready tasks (the network stack,
//! timers) each time the block I/O done by async calls, counted across
//! calls, reaches [`CHUNK`] bytes. A task that loops over small async
//! requests thus yields once per [`CHUNK`] bytes too, and a request costs
//! no exit beyond its own hypercall until the budget is reached (the yield
//! is one POLL exit if some task waits on a device, otherwise none). A
//! future dropped between chunks leaves the run partly done: a prefix of
//! whole chunks written, or read into the buffer.

use core::cell::Cell;
use core::fmt;

/// The bindings' raw calls ([`raw::read`], [`raw::write`]: one hypercall
/// with whatever they are given, no rule checked in the guest) and types.
pub use hvt_bindings::block as raw;
pub use hvt_bindings::block::{BlockError, BlockInfo};

use crate::local::runtime_local;

/// The most an async call transfers in one hypercall, and the block I/O
/// between two yields of the task that does it: 1 MiB, a multiple of every
/// block size (512 to 32768).
pub const CHUNK: u64 = 1 << 20;

/// Why a block request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// No attached block device of that name in the manifest.
    NotFound,
    /// A request of zero bytes.
    Empty,
    /// The offset or the length is not a multiple of the block size.
    Misaligned,
    /// The run does not end at or before the device's capacity.
    OutOfRange,
    /// A write to a read-only device.
    ReadOnly,
    /// The tender refused the hypercall.
    Device(BlockError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("block device not attached"),
            Error::Empty => f.write_str("empty block request"),
            Error::Misaligned => {
                f.write_str("block request not a run of whole blocks (offset or length)")
            }
            Error::OutOfRange => f.write_str("block request beyond the end of the device"),
            Error::ReadOnly => f.write_str("block device is read-only"),
            Error::Device(error) => write!(f, "block device error: {error}"),
        }
    }
}

impl From<BlockError> for Error {
    fn from(error: BlockError) -> Self {
        Error::Device(error)
    }
}

/// Checks a request of `len` bytes at `offset` against the rules (module
/// docs), without touching the device.
pub fn check_request(info: &BlockInfo, offset: u64, len: usize, write: bool) -> Result<(), Error> {
    if write && info.read_only {
        return Err(Error::ReadOnly);
    }
    if len == 0 {
        return Err(Error::Empty);
    }
    let len = len as u64;
    let size = info.block_size;
    if size == 0 || !offset.is_multiple_of(size) || !len.is_multiple_of(size) {
        return Err(Error::Misaligned);
    }
    match offset.checked_add(len) {
        Some(end) if end <= info.capacity => Ok(()),
        _ => Err(Error::OutOfRange),
    }
}

runtime_local! {
    /// Bytes of async block I/O since the last yield (module docs).
    static SINCE_YIELD: Cell<u64> = Cell::new(0);
}

/// Counts `bytes` of async I/O; yields when they add up to [`CHUNK`].
async fn account(bytes: u64) {
    let total = SINCE_YIELD.with(|c| c.get()).saturating_add(bytes);
    if total >= CHUNK {
        SINCE_YIELD.with(|c| c.set(0));
        crate::yield_now().await;
    } else {
        SINCE_YIELD.with(|c| c.set(total));
    }
}

/// A block device of the manifest, attached by the tender.
#[derive(Debug, Clone)]
pub struct BlockDevice {
    info: BlockInfo,
}

impl BlockDevice {
    /// The attached block device `name` of the manifest.
    pub fn open(name: &str) -> Result<BlockDevice, Error> {
        raw::acquire(name)
            .map(BlockDevice::from_info)
            .map_err(|_| Error::NotFound)
    }

    /// A device from what the bindings' [`raw::acquire`] returned.
    pub fn from_info(info: BlockInfo) -> BlockDevice {
        BlockDevice { info }
    }

    /// Handle, capacity, block size and read-only flag.
    pub fn info(&self) -> BlockInfo {
        self.info
    }

    /// Size of the device in bytes.
    pub fn capacity(&self) -> u64 {
        self.info.capacity
    }

    /// Bytes per block.
    pub fn block_size(&self) -> u64 {
        self.info.block_size
    }

    /// Number of blocks.
    pub fn blocks(&self) -> u64 {
        self.info
            .capacity
            .checked_div(self.info.block_size)
            .unwrap_or(0)
    }

    /// Whether the tender refuses writes to this device.
    pub fn is_read_only(&self) -> bool {
        self.info.read_only
    }

    /// The async calls' chunk: [`CHUNK`], or the largest whole number of
    /// blocks in it (at least one block), should the block size not divide it.
    fn chunk_len(&self) -> usize {
        let size = self.info.block_size.max(1);
        let chunk = (CHUNK - CHUNK % size).max(size);
        usize::try_from(chunk).unwrap_or(usize::MAX)
    }

    /// Reads the run of blocks at byte `offset` that fills `buffer`, with
    /// one hypercall.
    pub fn read(&self, offset: u64, buffer: &mut [u8]) -> Result<(), Error> {
        check_request(&self.info, offset, buffer.len(), false)?;
        Ok(raw::read(self.info.handle, offset, buffer)?)
    }

    /// Writes `data`, a run of whole blocks, at byte `offset`, with one
    /// hypercall.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        check_request(&self.info, offset, data.len(), true)?;
        Ok(raw::write(self.info.handle, offset, data)?)
    }

    /// [`read`](Self::read) in chunks of at most [`CHUNK`] bytes, letting
    /// other tasks run (module docs).
    pub async fn read_async(&self, offset: u64, buffer: &mut [u8]) -> Result<(), Error> {
        check_request(&self.info, offset, buffer.len(), false)?;
        let mut at = offset;
        for chunk in buffer.chunks_mut(self.chunk_len()) {
            raw::read(self.info.handle, at, chunk)?;
            at += chunk.len() as u64;
            account(chunk.len() as u64).await;
        }
        Ok(())
    }

    /// [`write`](Self::write) in chunks of at most [`CHUNK`] bytes, letting
    /// other tasks run (module docs).
    pub async fn write_async(&self, offset: u64, data: &[u8]) -> Result<(), Error> {
        check_request(&self.info, offset, data.len(), true)?;
        let mut at = offset;
        for chunk in data.chunks(self.chunk_len()) {
            raw::write(self.info.handle, at, chunk)?;
            at += chunk.len() as u64;
            account(chunk.len() as u64).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(capacity: u64, block_size: u64, read_only: bool) -> BlockInfo {
        BlockInfo {
            handle: 1,
            capacity,
            block_size,
            read_only,
        }
    }

    #[test]
    fn runs_of_whole_blocks_within_the_capacity_pass() {
        let disk = info(1 << 20, 512, false);
        for (offset, len) in [
            (0, 512),
            (512, 512),
            (0, 1 << 20),
            ((1 << 20) - 512, 512),
            (4096, 8 * 512),
        ] {
            assert_eq!(check_request(&disk, offset, len, false), Ok(()));
            assert_eq!(check_request(&disk, offset, len, true), Ok(()));
        }
        let disk = info(64 << 10, 4096, false);
        assert_eq!(check_request(&disk, 60 << 10, 4096, true), Ok(()));
    }

    #[test]
    fn each_rule_has_its_error() {
        let disk = info(1 << 20, 4096, false);
        assert_eq!(check_request(&disk, 0, 0, false), Err(Error::Empty));
        assert_eq!(check_request(&disk, 4096, 0, true), Err(Error::Empty));
        assert_eq!(
            check_request(&disk, 512, 4096, false),
            Err(Error::Misaligned)
        );
        assert_eq!(check_request(&disk, 0, 512, false), Err(Error::Misaligned));
        assert_eq!(check_request(&disk, 0, 4097, true), Err(Error::Misaligned));
        assert_eq!(
            check_request(&disk, 1 << 20, 4096, false),
            Err(Error::OutOfRange)
        );
        assert_eq!(
            check_request(&disk, (1 << 20) - 4096, 8192, false),
            Err(Error::OutOfRange)
        );
        assert_eq!(
            check_request(&disk, u64::MAX - 4095, 4096, false),
            Err(Error::OutOfRange),
            "offset + length overflows"
        );
        // An empty device has no run at all.
        assert_eq!(
            check_request(&info(0, 512, false), 0, 512, false),
            Err(Error::OutOfRange)
        );
    }

    #[test]
    fn writes_to_a_read_only_device_are_refused_first() {
        let disk = info(1 << 20, 512, true);
        assert_eq!(check_request(&disk, 0, 512, false), Ok(()));
        assert_eq!(check_request(&disk, 0, 512, true), Err(Error::ReadOnly));
        assert_eq!(check_request(&disk, 1, 0, true), Err(Error::ReadOnly));
    }

    #[test]
    fn a_zero_block_size_refuses_everything() {
        assert_eq!(
            check_request(&info(1 << 20, 0, false), 0, 512, false),
            Err(Error::Misaligned)
        );
    }

    #[test]
    fn errors_display() {
        use std::string::ToString;
        assert_eq!(Error::ReadOnly.to_string(), "block device is read-only");
        assert_eq!(
            Error::Device(BlockError::Invalid).to_string(),
            "block device error: SOLO5_R_EINVAL"
        );
        assert_eq!(Error::NotFound.to_string(), "block device not attached");
    }
}
