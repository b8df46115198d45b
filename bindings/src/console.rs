//! Console output (§6.1): PUTS, with formatting that batches a message into
//! as few hypercalls as possible (each one is a VM exit).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use hvt_abi::hypercall::{nr, Puts};

use crate::cmdline::LogLevel;
use crate::hypercall::hypercall;

/// Writes `bytes` to the console in one hypercall (`solo5_console_write`).
pub fn write(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut arg = Puts {
        data: bytes.as_ptr() as u64,
        len: bytes.len() as u64,
    };
    // SAFETY: a PUTS argument naming a live buffer.
    unsafe { hypercall(nr::PUTS, &mut arg) };
}

/// A `fmt::Write` that buffers on the stack and flushes when full or dropped.
pub struct Console {
    buffer: [u8; 512],
    used: usize,
}

impl Default for Console {
    fn default() -> Self {
        Console {
            buffer: [0; 512],
            used: 0,
        }
    }
}

impl Console {
    pub fn flush(&mut self) {
        write(&self.buffer[..self.used]);
        self.used = 0;
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.used == self.buffer.len() {
                self.flush();
            }
            let n = bytes.len().min(self.buffer.len() - self.used);
            self.buffer[self.used..self.used + n].copy_from_slice(&bytes[..n]);
            self.used += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Formats `args` and writes them with as few hypercalls as the size allows.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    let mut console = Console::default();
    let _ = console.write_fmt(args);
}

// Non-zero initial value: in .data, so usable before the memory check.
static LOG_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

pub fn set_log_level(level: LogLevel) {
    LOG_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// True when messages of `level` are printed.
pub fn log_enabled(level: LogLevel) -> bool {
    level != LogLevel::Quiet && level as u8 <= LOG_LEVEL.load(Ordering::Relaxed)
}

/// Prints to the guest console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the guest console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::write(b"\n") };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// A bindings message ("Solo5: ...") at `level`, as upstream prints them.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::console::log_enabled($level) {
            $crate::console::print_fmt(format_args!("Solo5: {}\n", format_args!($($arg)*)))
        }
    };
}
