//! `solo5_console_write`.

use core::ffi::c_char;

/// # Safety
/// `buf` points at `size` readable bytes (or `size` is 0).
#[no_mangle]
pub unsafe extern "C" fn solo5_console_write(buf: *const c_char, size: usize) {
    if buf.is_null() || size == 0 {
        return;
    }
    // SAFETY: the caller's buffer of `size` bytes.
    let bytes = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), size) };
    hvt_bindings::console::write(bytes);
}
