//! Block devices: `solo5_block_acquire`, `solo5_block_write`,
//! `solo5_block_read`, with Solo5's rule of one whole, aligned block per
//! call, checked here as upstream's bindings check it (the tender itself
//! accepts any range within the device, §6.5).

use core::ffi::c_char;

use hvt_bindings::abi::manifest::MFT_DEV_BLOCK_BASIC;
use hvt_bindings::block::{self, BlockError};
use hvt_bindings::boot::manifest_entries;

use crate::acquire::acquire_device;
use crate::Solo5Result;

/// `struct solo5_block_info`.
#[repr(C)]
pub struct Solo5BlockInfo {
    capacity: u64,
    block_size: u64,
}

fn result(error: BlockError) -> Solo5Result {
    match error {
        BlockError::Again => Solo5Result::Again,
        BlockError::Invalid => Solo5Result::Einval,
        BlockError::Unspecified => Solo5Result::Eunspec,
    }
}

/// True when `handle` is an attached block device and `[offset, offset +
/// size)` is exactly one of its blocks.
fn one_block(handle: u64, offset: u64, size: usize) -> bool {
    let Some(entry) = usize::try_from(handle)
        .ok()
        .and_then(|index| manifest_entries().get(index))
    else {
        return false;
    };
    if entry.kind != MFT_DEV_BLOCK_BASIC || entry.attached == 0 {
        return false;
    }
    let device = entry.block();
    let block_size = u64::from(device.block_size);
    block_size != 0
        && size as u64 == block_size
        && offset.is_multiple_of(block_size)
        && offset
            .checked_add(block_size)
            .is_some_and(|end| end <= device.capacity)
}

/// # Safety
/// `name` is a NUL-terminated string; `handle` and `info` are writable.
#[no_mangle]
pub unsafe extern "C" fn solo5_block_acquire(
    name: *const c_char,
    handle: *mut u64,
    info: *mut Solo5BlockInfo,
) -> Solo5Result {
    // SAFETY: the caller's pointers, as this function's contract says.
    unsafe {
        acquire_device(name, handle, info, |name| {
            let device = block::acquire(name).map_err(result)?;
            let info = Solo5BlockInfo {
                capacity: device.capacity,
                block_size: device.block_size,
            };
            Ok((device.handle, info))
        })
    }
}

/// # Safety
/// `buf` points at `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn solo5_block_write(
    handle: u64,
    offset: u64,
    buf: *const u8,
    size: usize,
) -> Solo5Result {
    if buf.is_null() || !one_block(handle, offset, size) {
        return Solo5Result::Einval;
    }
    // SAFETY: the caller's buffer of `size` bytes.
    let data = unsafe { core::slice::from_raw_parts(buf, size) };
    block::write(handle, offset, data).map_or_else(result, |()| Solo5Result::Ok)
}

/// # Safety
/// `buf` points at `size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn solo5_block_read(
    handle: u64,
    offset: u64,
    buf: *mut u8,
    size: usize,
) -> Solo5Result {
    if buf.is_null() || !one_block(handle, offset, size) {
        return Solo5Result::Einval;
    }
    // SAFETY: the caller's buffer of `size` bytes.
    let buffer = unsafe { core::slice::from_raw_parts_mut(buf, size) };
    block::read(handle, offset, buffer).map_or_else(result, |()| Solo5Result::Ok)
}
