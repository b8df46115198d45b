//! SIGINT and SIGTERM end the tender with "NAME: Exiting on signal N",
//! exit 1 (§8).

use tender_core::error::{Error, Result, TENDER_ERROR_EXIT};
use vmm_sys_util::signal::register_signal_handler;

extern "C" fn on_signal(signal: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Only async-signal-safe calls here: sync, one write from a stack
    // buffer, _exit. The number in decimal, as upstream's "%d" prints it.
    let mut digits = [0; 20];
    let number = tender_core::stats::decimal(u64::try_from(signal).unwrap_or(0), &mut digits);
    // Writable images are made durable before the tender goes.
    tender_core::devices::exit_sync::sync_all();
    // The counters of `TENDER_STATS=1`, if asked for.
    tender_core::stats::print();
    // The `--trace` summary, if tracing.
    tender_core::modules::trace::print_on_signal();
    tender_core::diag::write_line(&[b"Exiting on signal ", number]);
    // SAFETY: _exit(2) is async-signal-safe.
    unsafe { libc::_exit(TENDER_ERROR_EXIT) };
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        register_signal_handler(signal, on_signal)
            .map_err(|e| Error::Other(format!("Could not install a signal handler: {e}")))?;
    }
    Ok(())
}
