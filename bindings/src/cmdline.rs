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

/// Strips leading `--solo5:LEVEL` tokens; the last one wins. Default INFO.
pub fn strip_log_options(cmdline: &str) -> (LogLevel, &str) {
    let mut level = LogLevel::Info;
    let mut rest = cmdline.trim_start_matches(' ');
    loop {
        let (token, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        level = match token {
            "--solo5:quiet" => LogLevel::Quiet,
            "--solo5:error" => LogLevel::Error,
            "--solo5:warn" => LogLevel::Warn,
            "--solo5:info" => LogLevel::Info,
            "--solo5:debug" => LogLevel::Debug,
            _ => return (level, rest),
        };
        rest = tail.trim_start_matches(' ');
    }
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
    }
}
