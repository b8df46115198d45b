//! Socket errors, as values: nothing a peer does makes the guest panic.

use core::fmt;

use super::config::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The network device is not in the manifest or not attached.
    NoDevice,
    /// A malformed addressing option on the command line.
    Config(ConfigError),
    /// The peer reset the connection, or it timed out.
    ConnectionReset,
    /// The connection is not open (closed, or never connected).
    NotConnected,
    /// Writing after this side shut the connection down.
    BrokenPipe,
    /// The address or port cannot be used (e.g. port 0, no route).
    Unaddressable,
    /// The operation is not valid in the socket's state.
    InvalidState,
    /// A datagram larger than the socket's buffer.
    Truncated,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Config(error) => return error.fmt(f),
            Error::NoDevice => "network device not attached",
            Error::ConnectionReset => "connection reset",
            Error::NotConnected => "not connected",
            Error::BrokenPipe => "broken pipe",
            Error::Unaddressable => "address unusable",
            Error::InvalidState => "invalid socket state",
            Error::Truncated => "datagram truncated",
        })
    }
}
