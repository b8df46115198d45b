//! Every way the tender fails, in one place: [`Error`] says where a failure
//! comes from, and its `Display` is the one line the user sees after
//! "tender: ", in upstream Solo5's wording.

use std::fmt;

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
    /// A command-line value the tender refuses without the usage text, as
    /// upstream does: a malformed or too large `--mem`, a guest command line
    /// too long, an option for a device this tender does not have.
    Argument(String),
    /// The kernel image: it cannot be opened or read, is not an executable
    /// the tender loads (§2), or lacks or refuses the Solo5 notes (§1).
    Elf(String),
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
        matches!(self, Error::Usage(_))
    }

    /// The guest accessed `port` other than by a well-formed hypercall (§5).
    pub fn invalid_port(port: u16) -> Error {
        Error::Guest(format!("Invalid guest port access: port=0x{port:x}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message)
            | Error::Argument(message)
            | Error::Elf(message)
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
}
