//! Network devices: `solo5_net_acquire`, `solo5_net_write`,
//! `solo5_net_read` (the bindings' hypercalls).

use core::ffi::c_char;

use hvt_bindings::net::{self, NetError};

use crate::acquire::acquire_device;
use crate::Solo5Result;

/// `struct solo5_net_info`.
#[repr(C)]
pub struct Solo5NetInfo {
    mac_address: [u8; 6],
    mtu: usize,
}

fn result(error: NetError) -> Solo5Result {
    match error {
        NetError::Again => Solo5Result::Again,
        NetError::Invalid => Solo5Result::Einval,
        NetError::Unspecified => Solo5Result::Eunspec,
    }
}

/// # Safety
/// `name` is a NUL-terminated string; `handle` and `info` are writable.
#[no_mangle]
pub unsafe extern "C" fn solo5_net_acquire(
    name: *const c_char,
    handle: *mut u64,
    info: *mut Solo5NetInfo,
) -> Solo5Result {
    // SAFETY: the caller's pointers, as this function's contract says.
    unsafe {
        acquire_device(name, handle, info, |name| {
            let device = net::acquire(name).map_err(result)?;
            let info = Solo5NetInfo {
                mac_address: device.mac,
                mtu: usize::from(device.mtu),
            };
            Ok((device.handle, info))
        })
    }
}

/// # Safety
/// `buf` points at `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn solo5_net_write(handle: u64, buf: *const u8, size: usize) -> Solo5Result {
    if buf.is_null() {
        return Solo5Result::Einval;
    }
    // SAFETY: the caller's buffer of `size` bytes.
    let frame = unsafe { core::slice::from_raw_parts(buf, size) };
    net::write(handle, frame).map_or_else(result, |()| Solo5Result::Ok)
}

/// # Safety
/// `buf` points at `size` writable bytes; `read_size` is writable.
#[no_mangle]
pub unsafe extern "C" fn solo5_net_read(
    handle: u64,
    buf: *mut u8,
    size: usize,
    read_size: *mut usize,
) -> Solo5Result {
    if buf.is_null() || read_size.is_null() {
        return Solo5Result::Einval;
    }
    // SAFETY: the caller's buffer of `size` bytes.
    let buffer = unsafe { core::slice::from_raw_parts_mut(buf, size) };
    match net::read(handle, buffer) {
        Ok(len) => {
            // SAFETY: the caller's pointer, checked for null.
            unsafe { read_size.write(len) };
            Solo5Result::Ok
        }
        Err(error) => result(error),
    }
}
