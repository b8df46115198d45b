//! SIGINT and SIGTERM end the tender with "Exiting on signal N", exit 1 (§8).

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe calls here: format into a stack buffer, write, _exit.
    let mut message = *b"tender: Exiting on signal   \n";
    let digits = message.len() - 3;
    message[digits] = b'0' + ((signal / 10) % 10) as u8;
    message[digits + 1] = b'0' + (signal % 10) as u8;
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(libc::STDERR_FILENO, message.as_ptr().cast(), message.len());
        libc::_exit(crate::error::TENDER_ERROR_EXIT);
    }
}

pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}
