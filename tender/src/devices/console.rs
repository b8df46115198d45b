//! The console back-end (§6.1): guest bytes go to the tender's stdout.

use vm_memory::VolatileSlice;

/// Where PUTS output goes: the process's stdout, or a buffer in tests.
pub enum Console {
    Stdout,
    Captured(Vec<u8>),
}

impl Console {
    /// Writes all of `bytes`, retrying on short writes.
    pub fn write(&mut self, bytes: VolatileSlice<'_>) -> std::io::Result<()> {
        match self {
            Console::Stdout => {
                let guard = bytes.ptr_guard();
                let mut ptr = guard.as_ptr();
                let mut left = bytes.len();
                while left > 0 {
                    // SAFETY: `ptr..ptr+left` lies inside the validated
                    // guest slice, which stays mapped while `guard` lives.
                    let n = unsafe { libc::write(libc::STDOUT_FILENO, ptr.cast(), left) };
                    if n < 0 {
                        let err = std::io::Error::last_os_error();
                        if err.kind() == std::io::ErrorKind::Interrupted {
                            continue;
                        }
                        return Err(err);
                    }
                    // SAFETY: n <= left, so the pointer stays in the slice.
                    ptr = unsafe { ptr.add(n as usize) };
                    left -= n as usize;
                }
                Ok(())
            }
            Console::Captured(buffer) => {
                let start = buffer.len();
                buffer.resize(start + bytes.len(), 0);
                bytes.copy_to(&mut buffer[start..]);
                Ok(())
            }
        }
    }
}
