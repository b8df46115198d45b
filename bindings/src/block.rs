//! Block devices (§4.6, §6.5): acquire a device declared in the manifest,
//! then read and write its bytes by hypercall.
//!
//! [`read()`] and [`write()`] are the raw hypercalls: each issues exactly one
//! BLOCK_READ or BLOCK_WRITE with the offset and buffer it is given, and
//! checks nothing (the tender checks the handle and the range, §6.5). The
//! rules of the API (whole blocks, aligned, within the capacity, no write
//! to a read-only device) are the caller's: `hvt_runtime::block` enforces
//! them in the guest.

use core::fmt;

use hvt_abi::hypercall::{nr, result, BlockIo};
use hvt_abi::manifest::{MFT_BLOCK_READ_ONLY, MFT_DEV_BLOCK_BASIC};

use crate::boot::manifest_entries;
use crate::hypercall::hypercall;

/// A `solo5_result_t` other than OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// `SOLO5_R_AGAIN`: the hvt tender never returns it for block devices.
    Again,
    /// Bad handle or range (`SOLO5_R_EINVAL`); also what [`acquire`]
    /// returns for a name that is not an attached block device.
    Invalid,
    /// Anything else (`SOLO5_R_EUNSPEC`): our tender's answer to a write
    /// to a read-only device (§12.6).
    Unspecified,
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockError::Again => "SOLO5_R_AGAIN",
            BlockError::Invalid => "SOLO5_R_EINVAL",
            BlockError::Unspecified => "SOLO5_R_EUNSPEC",
        })
    }
}

fn check(ret: i32) -> Result<(), BlockError> {
    match ret {
        result::OK => Ok(()),
        result::AGAIN => Err(BlockError::Again),
        result::EINVAL => Err(BlockError::Invalid),
        _ => Err(BlockError::Unspecified),
    }
}

/// What the tender told the guest about an attached block device
/// (`struct solo5_block_info`, plus our read-only flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockInfo {
    /// The handle: the device's manifest index.
    pub handle: u64,
    /// Size of the device in bytes, a multiple of `block_size`.
    pub capacity: u64,
    /// Bytes per block: a power of two from 512 to 32768 with our tender.
    pub block_size: u64,
    /// The tender refuses writes (`MFT_BLOCK_READ_ONLY`, `--block-ro:`).
    /// Always false on upstream Solo5, which has no such flag.
    pub read_only: bool,
}

/// `solo5_block_acquire`: the attached block device called `name`.
pub fn acquire(name: &str) -> Result<BlockInfo, BlockError> {
    let entries = manifest_entries();
    let (index, entry) = entries
        .iter()
        .enumerate()
        .find(|(_, e)| e.kind == MFT_DEV_BLOCK_BASIC && e.name_bytes() == name.as_bytes())
        .ok_or(BlockError::Invalid)?;
    if entry.attached == 0 {
        return Err(BlockError::Invalid);
    }
    let block = entry.block();
    Ok(BlockInfo {
        handle: index as u64,
        capacity: block.capacity,
        block_size: u64::from(block.block_size),
        read_only: block.flags & MFT_BLOCK_READ_ONLY != 0,
    })
}

/// One BLOCK_WRITE: `data` to the device at byte `offset`.
pub fn write(handle: u64, offset: u64, data: &[u8]) -> Result<(), BlockError> {
    let mut arg = BlockIo {
        handle,
        offset,
        data: data.as_ptr() as u64,
        len: data.len() as u64,
        ret: 0,
        _pad: 0,
    };
    // SAFETY: a BLOCK_WRITE argument naming a live buffer of `len` bytes,
    // which the tender only reads.
    unsafe { hypercall(nr::BLOCK_WRITE, &mut arg) };
    check(arg.ret)
}

/// One BLOCK_READ: `buffer.len()` bytes from the device at byte `offset`.
pub fn read(handle: u64, offset: u64, buffer: &mut [u8]) -> Result<(), BlockError> {
    let mut arg = BlockIo {
        handle,
        offset,
        data: buffer.as_mut_ptr() as u64,
        len: buffer.len() as u64,
        ret: 0,
        _pad: 0,
    };
    // SAFETY: a BLOCK_READ argument naming a live, writable buffer of `len`
    // bytes, borrowed mutably for the call.
    unsafe { hypercall(nr::BLOCK_READ, &mut arg) };
    check(arg.ret)
}
