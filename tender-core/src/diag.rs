//! The tender's own lines on stderr. Each starts with the program's name,
//! the last component of `argv[0]` as the C library's `basename` gives it,
//! so a tender installed (or linked) as `solo5-hvt` says `solo5-hvt: ...`
//! as upstream does. Without an `argv[0]` the name is `tender` (Linux hands
//! a program started with no arguments at all an empty `argv[0]`: that is
//! no name either).
//!
//! The name is set once, at start, and kept in a fixed buffer: signal
//! handlers read it with no allocation and no lock, and every line goes out
//! in one `write(2)`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

/// The name when the process was started without an `argv[0]`.
pub const DEFAULT_NAME: &[u8] = b"tender";

/// The longest name kept: a file name component's limit on Linux
/// (`NAME_MAX`); a longer `argv[0]` component is cut.
const NAME_MAX: usize = 255;

struct Name {
    bytes: [u8; NAME_MAX],
    len: usize,
}

static NAME: OnceLock<Name> = OnceLock::new();

/// POSIX `basename`: the last component of `path`, trailing slashes
/// ignored; "/" for a path of slashes only and "." for an empty one.
pub fn basename(path: &[u8]) -> &[u8] {
    let trimmed = match path.iter().rposition(|&b| b != b'/') {
        Some(last) => &path[..=last],
        None if path.is_empty() => return b".",
        None => return b"/",
    };
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(slash) => &trimmed[slash + 1..],
        None => trimmed,
    }
}

/// Sets the program name from `argv0` (`None`: no `argv[0]`). Only the
/// first call counts; call it before any thread or signal handler starts.
pub fn set_program_name(argv0: Option<&OsStr>) {
    let name = match argv0 {
        Some(arg) if !arg.is_empty() => basename(arg.as_bytes()),
        _ => DEFAULT_NAME,
    };
    let len = name.len().min(NAME_MAX);
    let mut bytes = [0; NAME_MAX];
    bytes[..len].copy_from_slice(&name[..len]);
    let _ = NAME.set(Name { bytes, len });
}

/// The program name every line starts with. Async-signal-safe.
pub fn program_name() -> &'static [u8] {
    NAME.get()
        .map_or(DEFAULT_NAME, |name| &name.bytes[..name.len])
}

/// Writes `parts`, after "NAME: ", as one line on stderr, in one `write(2)`
/// from a stack buffer (a line longer than the buffer is cut).
/// Async-signal-safe: for signal handlers and a confined tender.
pub fn write_line(parts: &[&[u8]]) {
    let mut line = [0u8; 1024];
    let mut len = 0;
    let name = program_name();
    for part in [name, b": "].iter().chain(parts) {
        let n = part.len().min(line.len() - 1 - len);
        line[len..len + n].copy_from_slice(&part[..n]);
        len += n;
    }
    line[len] = b'\n';
    len += 1;
    // SAFETY: write(2) of `len` bytes of our own buffer.
    unsafe { libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), len) };
}

/// `message` with every one of its lines after "NAME: ", as upstream's
/// `warnx` prints each line it is given.
pub fn lines(message: &[u8]) -> Vec<u8> {
    let name = program_name();
    let mut out = Vec::with_capacity(message.len() + name.len() + 3);
    for line in message.split(|&b| b == b'\n') {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// Prints `message` on stderr as [`lines`] does, in one write.
pub fn warn(message: impl AsRef<[u8]>) {
    use std::io::Write;
    // Nothing is left to tell of a stderr that fails.
    let _ = std::io::stderr().lock().write_all(&lines(message.as_ref()));
}

/// Prints `text` on stderr as it is (the usage text, the version).
pub fn print(text: impl AsRef<[u8]>) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_is_posixs() {
        for (path, name) in [
            (&b"/usr/bin/solo5-hvt"[..], &b"solo5-hvt"[..]),
            (b"solo5-hvt", b"solo5-hvt"),
            (b"./tender", b"tender"),
            (b"dir/tender//", b"tender"),
            (b"/", b"/"),
            (b"///", b"/"),
            (b"", b"."),
            (b"caf\xe9", b"caf\xe9"),
        ] {
            assert_eq!(basename(path), name, "{:?}", String::from_utf8_lossy(path));
        }
    }

    #[test]
    fn every_line_of_a_message_is_prefixed() {
        // No name set in this test process: the default.
        assert_eq!(program_name(), b"tender");
        assert_eq!(lines(b"one"), b"tender: one\n");
        assert_eq!(lines(b"one\ntwo"), b"tender: one\ntender: two\n");
    }
}
