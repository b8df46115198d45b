//! Every way the tender fails, in one place: [`Error`] says where a failure
//! comes from, and [`Error::to_bytes`] is what the user sees after the
//! program's name (`crate::diag`), in upstream Solo5's wording.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::memory::InvalidAccess;

/// Every tender-detected failure ends the process with exit code 1 (§8);
/// only the guest's own HALT chooses another code.
pub const TENDER_ERROR_EXIT: i32 = 1;

/// A failure of the tender, by where it comes from. Each variant holds the
/// message the user sees (for [`Error::Kvm`], after "KVM: ").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A command-line mistake (a missing kernel, an option no module takes,
    /// a device the manifest does not declare): the usage text follows the
    /// message (§8).
    Usage(String),
    /// An option before the kernel that no module takes, or that its
    /// module refused: "Invalid option: `X'", after the module's reason if
    /// it gave one (upstream's module warns, then the option is invalid),
    /// then the usage text. The option is kept as given, bytes that are
    /// not UTF-8 included.
    InvalidOption {
        option: OsString,
        why: Option<String>,
    },
    /// A command-line value the tender refuses without the usage text, as
    /// upstream does: a malformed or too large `--mem`, a guest command line
    /// too long, an option for a device this tender does not have.
    Argument(String),
    /// The kernel image: it cannot be opened or read, is not an executable
    /// the tender loads (§2), lacks or refuses the Solo5 notes (§1), or its
    /// manifest is invalid (§4.3). Printed after the file's name, as given
    /// on the command line.
    Elf { file: PathBuf, message: String },
    /// The application manifest is invalid (§4.3), or declares devices that
    /// were not attached (§4.5).
    Manifest(String),
    /// Guest memory: its size, its allocation, its host protection, the
    /// tender's own reads and writes of it (§3.1).
    Memory(String),
    /// KVM refused an operation, or stopped the guest in a way the tender
    /// does not serve. Printed after "KVM: ".
    Kvm(String),
    /// A guest address that failed the check of §5 (bounds or host
    /// protection), in a hypercall's argument or a ring entry.
    GuestAccess {
        /// What the address was for: "hypercall PUTS", "net ring".
        by: String,
        access: InvalidAccess,
    },
    /// The guest broke the ABI otherwise: a port access that is not a
    /// hypercall, an unregistered hypercall number (§5), a corrupt network
    /// ring (§6.7), a wait nothing can end (mock tender).
    Guest(String),
    /// A device back-end or the host resource behind it failed: a tap that
    /// cannot be attached or fails mid-run, the console, the poll set, the
    /// network ring's thread.
    Device(String),
    /// The rest of the tender's own set-up: signal handlers, hypercall
    /// registration, the mock tender's configuration.
    Other(String),
}

impl Error {
    /// True for a command-line mistake, after which the usage text is
    /// printed.
    pub fn shows_usage(&self) -> bool {
        matches!(self, Error::Usage(_) | Error::InvalidOption { .. })
    }

    /// What the user sees, one or more lines without their ends: a file
    /// name or an option that is not UTF-8 is shown as it was given.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Error::InvalidOption { option, why } => {
                let mut out = why
                    .as_ref()
                    .map_or(Vec::new(), |why| format!("{why}\n").into());
                out.extend_from_slice(b"Invalid option: `");
                out.extend_from_slice(option.as_bytes());
                out.push(b'\'');
                out
            }
            Error::Elf { file, message } => {
                let mut out = file.as_os_str().as_bytes().to_vec();
                out.extend_from_slice(b": ");
                out.extend_from_slice(message.as_bytes());
                out
            }
            other => other.to_string().into_bytes(),
        }
    }

    /// The guest accessed `port` other than by a well-formed hypercall (§5).
    pub fn invalid_port(port: u16) -> Error {
        Error::Guest(format!("Invalid guest port access: port=0x{port:x}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidOption { .. } | Error::Elf { .. } => {
                f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
            }
            Error::Usage(message)
            | Error::Argument(message)
            | Error::Manifest(message)
            | Error::Memory(message)
            | Error::Guest(message)
            | Error::Device(message)
            | Error::Other(message) => f.write_str(message),
            Error::Kvm(message) => write!(f, "KVM: {message}"),
            Error::GuestAccess { by, access } => write!(f, "{by}: {access}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The system's text for an I/O error, as C's `err(3)` prints it: without
/// Rust's " (os error N)".
pub fn os_error_text(err: &std::io::Error) -> String {
    let text = err.to_string();
    match text.rsplit_once(" (os error ") {
        Some((message, _)) if err.raw_os_error().is_some() => message.to_owned(),
        _ => text,
    }
}

/// [`os_error_text`] of an `errno` value.
pub fn errno_text(errno: i32) -> String {
    os_error_text(&std::io::Error::from_raw_os_error(errno))
}

/// How a thread other than the vCPU's ends the tender on a fatal error (a
/// device that failed, a guest that broke a shared-memory protocol). The
/// tender prints the message and exits; the mock tender records it.
pub type FatalHandler = std::sync::Arc<dyn Fn(Error) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_upstreams_and_only_usage_errors_show_usage() {
        let kvm = Error::Kvm("KVM_RUN failed: x".into());
        assert_eq!(kvm.to_string(), "KVM: KVM_RUN failed: x");
        let access = Error::GuestAccess {
            by: "hypercall PUTS".into(),
            access: InvalidAccess { gpa: 0x10, len: 8 },
        };
        assert_eq!(
            access.to_string(),
            "hypercall PUTS: Invalid guest access: gpa=0x10, sz=8"
        );
        assert_eq!(
            Error::invalid_port(0x4ff).to_string(),
            "Invalid guest port access: port=0x4ff"
        );
        assert!(Error::Usage("Missing KERNEL operand".into()).shows_usage());
        assert!(!kvm.shows_usage() && !access.shows_usage());
    }

    #[test]
    fn os_errors_read_as_strerror() {
        assert_eq!(errno_text(libc::ENOENT), "No such file or directory");
        assert_eq!(os_error_text(&std::io::Error::other("plain")), "plain");
    }

    #[test]
    fn names_and_options_are_shown_as_given() {
        use std::os::unix::ffi::OsStringExt;
        let option = Error::InvalidOption {
            option: OsString::from_vec(b"--caf\xe9".to_vec()),
            why: None,
        };
        assert!(option.shows_usage());
        assert_eq!(option.to_bytes(), b"Invalid option: `--caf\xe9'");
        assert_eq!(option.to_string(), "Invalid option: `--caf\u{fffd}'");
        let refused = Error::InvalidOption {
            option: "--block:x=y".into(),
            why: Some("Resource not declared in manifest: 'x'".into()),
        };
        assert_eq!(
            refused.to_string(),
            "Resource not declared in manifest: 'x'\nInvalid option: `--block:x=y'"
        );
        let elf = Error::Elf {
            file: PathBuf::from(OsString::from_vec(b"k\xff.hvt".to_vec())),
            message: "Solo5 manifest is invalid".into(),
        };
        assert_eq!(elf.to_bytes(), b"k\xff.hvt: Solo5 manifest is invalid");
        assert!(!elf.shows_usage());
    }
}
