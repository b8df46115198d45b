//! The tender's error type: one line for the user, and the exit code it means.

use std::fmt;

/// Every tender-detected failure ends the process with exit code 1 (§8);
/// only the guest's own HALT chooses another code.
pub const TENDER_ERROR_EXIT: i32 = 1;

/// A failure with the message the user sees on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    /// Print the usage text after the message (bad command lines).
    pub show_usage: bool,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            show_usage: false,
        }
    }

    /// A command-line mistake: the usage text follows the message.
    pub fn usage(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            show_usage: true,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// How a thread other than the vCPU's ends the tender on a fatal error (a
/// device that failed, a guest that broke a shared-memory protocol). The
/// tender prints the message and exits; the mock tender records it.
pub type FatalHandler = std::sync::Arc<dyn Fn(Error) + Send + Sync>;

/// `return Err(Error::new(format!(...)))`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::new(format!($($arg)*))) };
}
