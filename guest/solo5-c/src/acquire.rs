//! Acquiring a device by its manifest name: what `solo5_net_acquire` and
//! `solo5_block_acquire` share.

use core::ffi::{c_char, CStr};

use crate::Solo5Result;

/// The common part of `solo5_net_acquire` and `solo5_block_acquire`: reads
/// `name`, asks `acquire` for the device's handle and info and writes them
/// out. EINVAL for a null pointer or a name no manifest has (not UTF-8).
///
/// # Safety
/// `name` is null or a NUL-terminated string; `handle` and `info` are null
/// or writable.
pub(crate) unsafe fn acquire_device<T>(
    name: *const c_char,
    handle: *mut u64,
    info: *mut T,
    acquire: impl FnOnce(&str) -> Result<(u64, T), Solo5Result>,
) -> Solo5Result {
    if name.is_null() || handle.is_null() || info.is_null() {
        return Solo5Result::Einval;
    }
    // SAFETY: the caller's NUL-terminated string, checked for null.
    let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
        return Solo5Result::Einval;
    };
    match acquire(name) {
        Ok((device, device_info)) => {
            // SAFETY: the caller's pointers, checked for null.
            unsafe {
                handle.write(device);
                info.write(device_info);
            }
            Solo5Result::Ok
        }
        Err(error) => error,
    }
}
