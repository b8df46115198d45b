//! Console output (§6.1): PUTS. Each PUTS is a VM exit, so on the guest
//! `print!`, `println!` and `log!` go through a buffer of [`BUFFER_SIZE`]
//! bytes that is written with one PUTS:
//!
//! * when the next message does not fit;
//! * when a message that ends a line is printed while the oldest buffered
//!   byte is more than [`FLUSH_AGE_NS`] old (a guest that prints while it
//!   computes shows its lines at least that often);
//! * before every yield (POLL) and before HALT (exit, abort, a panic, the
//!   runtime's stack and memory checks), so nothing is lost on a way out the
//!   guest controls;
//! * on [`flush`], and on [`write()`] (`solo5_console_write`), which keeps its
//!   unbuffered meaning: its bytes are on the console when it returns.
//!
//! What is lost: at most the buffer's contents if the guest dies without
//! running its own code again (a triple fault, §12.4, or the tender being
//! killed). Before the memory check of the start-up, and on the host, every
//! message is written at once.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use hvt_abi::hypercall::{nr, Puts};

use crate::cmdline::LogLevel;
use crate::hypercall::hypercall;

/// Bytes of console output the guest keeps before it must write them.
pub const BUFFER_SIZE: usize = 4096;
/// A line printed while buffered output is older than this is written at
/// once (with everything before it).
pub const FLUSH_AGE_NS: u64 = 1_000_000;

/// Output waiting for its PUTS, and when the oldest byte of it came.
pub struct OutputBuffer {
    data: [u8; BUFFER_SIZE],
    used: usize,
    oldest_ns: u64,
}

impl OutputBuffer {
    pub const fn new() -> OutputBuffer {
        OutputBuffer {
            data: [0; BUFFER_SIZE],
            used: 0,
            oldest_ns: 0,
        }
    }

    /// The bytes waiting.
    pub fn pending(&self) -> &[u8] {
        &self.data[..self.used]
    }

    /// Appends `bytes` at time `now_ns`, handing full buffers to `out`
    /// first. A run longer than the buffer goes to `out` directly.
    pub fn append(&mut self, bytes: &[u8], now_ns: u64, out: &mut impl FnMut(&[u8])) {
        if bytes.len() > BUFFER_SIZE - self.used {
            self.flush(out);
            if bytes.len() >= BUFFER_SIZE {
                out(bytes);
                return;
            }
        }
        if self.used == 0 {
            self.oldest_ns = now_ns;
        }
        self.data[self.used..self.used + bytes.len()].copy_from_slice(bytes);
        self.used += bytes.len();
    }

    /// True when a line just printed at `now_ns` should be written now.
    pub fn stale(&self, now_ns: u64) -> bool {
        self.used != 0 && now_ns.saturating_sub(self.oldest_ns) > FLUSH_AGE_NS
    }

    /// Hands what is waiting to `out`, in one piece.
    pub fn flush(&mut self, out: &mut impl FnMut(&[u8])) {
        if self.used != 0 {
            out(&self.data[..self.used]);
            self.used = 0;
        }
    }
}

impl Default for OutputBuffer {
    fn default() -> Self {
        OutputBuffer::new()
    }
}

/// The guest's console buffer. In .bss: touched only once `BUFFERING` is
/// set, after the start-up's memory check.
struct Shared(UnsafeCell<OutputBuffer>);
// SAFETY: the guest is single-threaded, without interrupts; on the host it
// is never used (`BUFFERING` stays false).
unsafe impl Sync for Shared {}
static BUFFER: Shared = Shared(UnsafeCell::new(OutputBuffer::new()));
// In .data (a zero initial value would put it in .bss): read before the
// memory check.
#[cfg_attr(target_os = "none", link_section = ".data")]
static BUFFERING: AtomicBool = AtomicBool::new(false);

/// Runs `f` on the console buffer. No caller runs guest code (formatting,
/// a panic) inside `f`, so the borrow is never taken twice.
fn with_buffer<R>(f: impl FnOnce(&mut OutputBuffer) -> R) -> R {
    // SAFETY: single-threaded guest; see above: `f` never re-enters.
    f(unsafe { &mut *BUFFER.0.get() })
}

/// Starts buffering console output (the bindings' start-up, once guest
/// memory is known to hold the .bss).
#[cfg(target_os = "none")]
pub(crate) fn start_buffering() {
    BUFFERING.store(true, Ordering::Relaxed);
}

/// True when `print!` output is buffered.
pub fn buffering() -> bool {
    BUFFERING.load(Ordering::Relaxed)
}

/// Writes whatever output is buffered, in one PUTS.
pub fn flush() {
    if buffering() {
        with_buffer(|b| b.flush(&mut puts));
    }
}

fn buffer_str(bytes: &[u8]) {
    let now = crate::clock::monotonic_ns();
    with_buffer(|b| b.append(bytes, now, &mut puts));
}

/// Writes `bytes` to the console (`solo5_console_write`): buffered output
/// first, in the same PUTS when it fits; on the console when this returns.
pub fn write(bytes: &[u8]) {
    if buffering() {
        let now = crate::clock::monotonic_ns();
        with_buffer(|b| {
            b.append(bytes, now, &mut puts);
            b.flush(&mut puts);
        });
    } else {
        puts(bytes);
    }
}

/// One PUTS of `bytes`.
fn puts(bytes: &[u8]) {
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

/// Appends each piece of formatted output to the console buffer.
struct Buffered {
    newline: bool,
}

impl Write for Buffered {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.newline |= s.ends_with('\n');
        buffer_str(s.as_bytes());
        Ok(())
    }
}

/// Formats `args` into the console buffer (written by the policy of this
/// module); before buffering starts, with as few hypercalls as the size
/// allows.
pub fn print_fmt(args: fmt::Arguments<'_>) {
    if buffering() {
        let mut out = Buffered { newline: false };
        let _ = out.write_fmt(args);
        if out.newline {
            let now = crate::clock::monotonic_ns();
            with_buffer(|b| {
                if b.stale(now) {
                    b.flush(&mut puts);
                }
            });
        }
    } else {
        let mut console = Console::default();
        let _ = console.write_fmt(args);
    }
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
    () => { $crate::console::print_fmt(format_args!("\n")) };
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn output_keeps_its_order_across_full_buffers() {
        let mut buffer = OutputBuffer::new();
        let mut written: Vec<Vec<u8>> = Vec::new();
        let mut out = |bytes: &[u8]| written.push(bytes.to_vec());
        let mut expected = Vec::new();
        for i in 0..1000u32 {
            let line = std::format!("line {i}\n");
            expected.extend_from_slice(line.as_bytes());
            buffer.append(line.as_bytes(), 0, &mut out);
        }
        let big = [b'x'; BUFFER_SIZE + 10];
        expected.extend_from_slice(&big);
        buffer.append(&big, 0, &mut out);
        buffer.append(b"tail", 0, &mut out);
        expected.extend_from_slice(b"tail");
        buffer.flush(&mut out);
        buffer.flush(&mut out);
        assert!(written.iter().all(|w| !w.is_empty()), "no empty PUTS");
        // 8,890 bytes of lines: two nearly full buffers, the rest before
        // the big run, the big run directly, then the tail.
        assert_eq!(
            written.len(),
            5,
            "{:?}",
            written.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(written.concat(), expected);
    }

    #[test]
    fn a_line_flushes_only_once_the_oldest_byte_is_old() {
        let mut buffer = OutputBuffer::new();
        let mut none = |_: &[u8]| panic!("no write expected");
        assert!(!buffer.stale(u64::MAX), "empty is never stale");
        buffer.append(b"a\n", 1_000, &mut none);
        buffer.append(b"b\n", 1_000 + FLUSH_AGE_NS, &mut none);
        assert!(!buffer.stale(1_000 + FLUSH_AGE_NS));
        assert!(buffer.stale(1_001 + FLUSH_AGE_NS));
        let mut written = Vec::new();
        buffer.flush(&mut |b: &[u8]| written.extend_from_slice(b));
        assert_eq!(written, b"a\nb\n");
        assert!(buffer.pending().is_empty());
        // The age restarts with the next byte.
        buffer.append(b"c", 5 * FLUSH_AGE_NS, &mut none);
        assert!(!buffer.stale(5 * FLUSH_AGE_NS + 10));
    }
}
