//! What the store needs of a block device: its geometry, and reading and
//! writing runs of whole blocks. The unikernel's device is
//! [`hvt_runtime::block::BlockDevice`]; the tests use [`crate::fake`] (and
//! the block device on the mock tender).

use alloc::string::{String, ToString};
use core::fmt;

use hvt_runtime::block::{BlockDevice, Error as BlockError};

/// Why a disk request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskError {
    /// The device refuses writes.
    ReadOnly,
    /// The request broke the device's rules (a bug of the store).
    Request(String),
    /// The device failed (an I/O error, a lost power supply).
    Io(String),
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::ReadOnly => f.write_str("the device is read-only"),
            DiskError::Request(what) => write!(f, "bad block request: {what}"),
            DiskError::Io(what) => write!(f, "device error: {what}"),
        }
    }
}

/// A block device. Offsets and lengths are in bytes, and every request is
/// a run of whole blocks within the capacity (the store never asks for
/// anything else).
pub trait Disk {
    /// Bytes per block.
    fn block_size(&self) -> u64;
    /// Size in bytes, a multiple of the block size.
    fn capacity(&self) -> u64;
    /// Whether writes are refused.
    fn read_only(&self) -> bool {
        false
    }
    /// Fills `buffer` from the blocks at byte `offset`.
    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), DiskError>;
    /// Writes `data` to the blocks at byte `offset`: when this returns
    /// `Ok`, the data is on the device (for the tender: in the host's
    /// kernel, which keeps it when the tender is killed).
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DiskError>;
}

impl From<BlockError> for DiskError {
    fn from(error: BlockError) -> Self {
        match error {
            BlockError::ReadOnly => DiskError::ReadOnly,
            BlockError::Device(_) => DiskError::Io(error.to_string()),
            BlockError::NotFound
            | BlockError::Empty
            | BlockError::Misaligned
            | BlockError::OutOfRange => DiskError::Request(error.to_string()),
        }
    }
}

/// The unikernel's block device: each request is one hypercall.
impl Disk for BlockDevice {
    fn block_size(&self) -> u64 {
        BlockDevice::block_size(self)
    }

    fn capacity(&self) -> u64 {
        BlockDevice::capacity(self)
    }

    fn read_only(&self) -> bool {
        self.is_read_only()
    }

    fn read(&mut self, offset: u64, buffer: &mut [u8]) -> Result<(), DiskError> {
        Ok(BlockDevice::read(self, offset, buffer)?)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        Ok(BlockDevice::write(self, offset, data)?)
    }
}
