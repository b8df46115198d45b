//! The console back-end (§6.1): guest bytes go to the tender's stdout, or
//! into a buffer in the mock tender.

use std::sync::Mutex;

use vm_memory::{VolatileMemoryError, VolatileSlice, WriteVolatile};

/// Where PUTS output goes.
pub enum Console {
    /// The process's stdout, written directly (no buffering in the tender:
    /// what the guest printed is out when it halts or crashes).
    Stdout,
    /// A buffer, for tests.
    Captured(Mutex<Vec<u8>>),
}

impl Console {
    /// A console that keeps what it is given.
    pub fn captured() -> Console {
        Console::Captured(Mutex::new(Vec::new()))
    }

    /// Writes all of `bytes`, retrying on short writes and interruptions.
    pub fn write(&self, bytes: VolatileSlice<'_>) -> std::io::Result<()> {
        match self {
            Console::Stdout => std::io::stdout()
                .write_all_volatile(&bytes)
                .map_err(|e| match e {
                    VolatileMemoryError::IOError(e) => e,
                    other => std::io::Error::other(other.to_string()),
                }),
            Console::Captured(buffer) => {
                let mut buffer = buffer.lock().unwrap_or_else(|e| e.into_inner());
                let start = buffer.len();
                buffer.resize(start + bytes.len(), 0);
                bytes.copy_to(&mut buffer[start..]);
                Ok(())
            }
        }
    }

    /// The descriptor it writes to, if any.
    pub fn fd(&self) -> Option<std::os::fd::RawFd> {
        match self {
            Console::Stdout => Some(libc::STDOUT_FILENO),
            Console::Captured(_) => None,
        }
    }

    /// What a captured console holds (nothing for stdout).
    pub fn captured_bytes(&self) -> Vec<u8> {
        match self {
            Console::Stdout => Vec::new(),
            Console::Captured(buffer) => buffer.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }
}
