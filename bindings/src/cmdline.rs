//! The `--solo5:` log-level options at the front of the command line (§4.2).

/// Log levels, in increasing verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Quiet,
    Error,
    Warn,
    Info,
    Debug,
}

/// Strips leading `--solo5:LEVEL` tokens, separated by white space as C's
/// `isspace` knows it; the last one wins. Default INFO.
pub fn strip_log_options(cmdline: &str) -> (LogLevel, &str) {
    let (level, rest) = strip_log_options_bytes(cmdline.as_bytes());
    // `rest` is a tail of `cmdline` that starts after a space: a character
    // boundary.
    let rest = &cmdline[cmdline.len() - rest.len()..];
    (level, rest)
}

/// [`strip_log_options`] on bytes: the command line need not be UTF-8
/// (upstream passes the tender's arguments through as they are). The rest is
/// a tail of `cmdline`, so a NUL after `cmdline` also ends the rest.
pub fn strip_log_options_bytes(cmdline: &[u8]) -> (LogLevel, &[u8]) {
    let mut level = LogLevel::Info;
    let mut rest = trim_spaces(cmdline);
    loop {
        let (token, tail) = match rest.iter().position(|&b| is_c_space(b)) {
            Some(space) => (&rest[..space], &rest[space + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        level = match token {
            b"--solo5:quiet" => LogLevel::Quiet,
            b"--solo5:error" => LogLevel::Error,
            b"--solo5:warn" => LogLevel::Warn,
            b"--solo5:info" => LogLevel::Info,
            b"--solo5:debug" => LogLevel::Debug,
            _ => return (level, rest),
        };
        rest = trim_spaces(tail);
    }
}

/// C's `isspace` in the C locale, which upstream's bindings split on.
fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_leading_log_options_only() {
        assert_eq!(strip_log_options("a b"), (LogLevel::Info, "a b"));
        assert_eq!(strip_log_options("--solo5:quiet a"), (LogLevel::Quiet, "a"));
        assert_eq!(
            strip_log_options("--solo5:quiet --solo5:debug"),
            (LogLevel::Debug, "")
        );
        assert_eq!(
            strip_log_options("a --solo5:quiet"),
            (LogLevel::Info, "a --solo5:quiet")
        );
        assert_eq!(
            strip_log_options("--solo5:loud x"),
            (LogLevel::Info, "--solo5:loud x")
        );
        assert_eq!(strip_log_options(""), (LogLevel::Info, ""));
        // Any of C's white space separates, as upstream's isspace.
        assert_eq!(
            strip_log_options("--solo5:quiet\tx y"),
            (LogLevel::Quiet, "x y")
        );
        assert_eq!(
            strip_log_options("\n--solo5:warn\r\n--solo5:error\x0b\x0cz"),
            (LogLevel::Error, "z")
        );
    }

    #[test]
    fn strips_bytes_that_are_not_utf8_and_keeps_a_tail() {
        let line = b"--solo5:warn \xff\xfe x\0";
        let (level, rest) = strip_log_options_bytes(&line[..line.len() - 1]);
        assert_eq!((level, rest), (LogLevel::Warn, &b"\xff\xfe x"[..]));
        // The tail ends where the line ends: the NUL follows it.
        let all = strip_log_options_bytes(b"--solo5:quiet").1;
        assert!(all.is_empty());
    }
}
