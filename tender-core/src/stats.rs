//! Counters for `TENDER_STATS=1`: what the tender did for its guest (exits,
//! ring entries, ...), printed as one line on stderr when the guest ends,
//! also when a signal ends it. Benchmarks read the line; nothing else
//! depends on it.
//!
//! The line is written by code that a signal handler may run: no
//! allocation, no lock, one `write(2)`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// One counter, shared by the code that counts and the line that prints it.
#[derive(Debug, Default, Clone)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the line prints, in order: set once, before the guest runs.
static PRINTED: OnceLock<Vec<(&'static str, Counter)>> = OnceLock::new();

/// Prints `counters` when [`print()`] is called. Only the first call counts:
/// a tender runs one guest.
pub fn enable(counters: Vec<(&'static str, Counter)>) {
    let _ = PRINTED.set(counters);
}

/// Writes `PROGRAM: stats: NAME=VALUE ...` to stderr if [`enable`] was
/// called. Async-signal-safe.
pub fn print() {
    let Some(counters) = PRINTED.get() else {
        return;
    };
    let mut line = [0u8; 1024];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        let n = bytes.len().min(line.len() - len);
        line[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    push(crate::diag::program_name());
    push(b": stats:");
    for (name, counter) in counters {
        push(b" ");
        push(name.as_bytes());
        push(b"=");
        push(decimal(counter.get(), &mut [0; 20]));
    }
    push(b"\n");
    // SAFETY: write(2) of our own buffer, `len` bytes of it.
    unsafe { libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), len) };
}

/// `value` in decimal, written at the end of `digits`, with no allocation
/// (for signal handlers).
pub fn decimal(mut value: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        // reason: a digit, below 10.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (value % 10) as u8;
        digits[start] = b'0' + digit;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    &digits[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for (value, text) in [
            (0, "0"),
            (7, "7"),
            (15, "15"),
            (u64::MAX, "18446744073709551615"),
        ] {
            assert_eq!(decimal(value, &mut [0; 20]), text.as_bytes());
        }
    }

    #[test]
    fn counters_count() {
        let counter = Counter::default();
        let shared = counter.clone();
        counter.add(2);
        shared.add(40);
        assert_eq!(counter.get(), 42);
    }
}
