//! The C program's start and end: `solo5_app_main`, `solo5_exit`,
//! `solo5_abort`, and the clocks and yield it sees time through.

use core::ffi::{c_char, c_int, CStr};

use hvt_bindings::cmdline::strip_log_options_bytes;
use hvt_bindings::{clock, exit, poll, StartInfo};

/// `struct solo5_start_info`.
#[repr(C)]
pub struct Solo5StartInfo {
    cmdline: *const c_char,
    heap_start: usize,
    heap_size: usize,
}

extern "C" {
    fn solo5_app_main(info: *const Solo5StartInfo) -> c_int;
}

hvt_bindings::entry!(start_c_program);

fn start_c_program(start: &StartInfo) -> i32 {
    crate::stack_protector::init();
    crate::traps::install(hvt_bindings::start::privilege_level());
    let info = Solo5StartInfo {
        cmdline: c_cmdline(),
        heap_start: start.heap_start,
        heap_size: start.heap_size,
    };
    // SAFETY: the C program defines `solo5_app_main` with this signature;
    // `info` outlives the call.
    unsafe { solo5_app_main(&info) }
}

/// The command line without its `--solo5:` options, as bytes (a C program
/// gets the tender's arguments as they were, UTF-8 or not): a tail of the
/// NUL-terminated line the tender wrote, so it is NUL-terminated too.
fn c_cmdline() -> *const c_char {
    let Some(info) = hvt_bindings::boot::boot_info() else {
        return c"".as_ptr();
    };
    // SAFETY: the tender wrote a NUL-terminated command line at `cmdline`,
    // in memory that stays mapped and unchanged.
    let line = unsafe { CStr::from_ptr(info.cmdline as *const c_char) };
    strip_log_options_bytes(line.to_bytes()).1.as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn solo5_exit(status: c_int) -> ! {
    exit::exit(status)
}

#[no_mangle]
pub extern "C" fn solo5_abort() -> ! {
    exit::abort()
}

#[no_mangle]
pub extern "C" fn solo5_clock_monotonic() -> u64 {
    clock::monotonic_ns()
}

#[no_mangle]
pub extern "C" fn solo5_clock_wall() -> u64 {
    clock::wall_ns()
}

/// # Safety
/// `ready_set` is null or points at a writable `solo5_handle_set_t`.
#[no_mangle]
pub unsafe extern "C" fn solo5_yield(deadline: u64, ready_set: *mut u64) {
    let ready = poll::yield_until(deadline);
    if !ready_set.is_null() {
        // SAFETY: the caller's pointer, checked for null.
        unsafe { ready_set.write(ready) };
    }
}
