//! The tender's modules, registered the way Solo5 registers its own. Each
//! one is the whole story of one device or service: its options, its
//! set-up, its hypercalls, its threads and its hooks (see
//! [`crate::module::Module`]). Adding a device is a module file and a line
//! in [`all`].

pub mod block;
pub mod clock;
pub mod core;
pub mod dumpcore;
pub mod gdb;
pub mod net;
pub mod scan;
pub mod trace;

use std::sync::Arc;

use crate::devices::console::Console;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::module::Module;

/// What differs between the tender and the mock tender: where the console
/// goes and where network and block devices come from. Everything else
/// about the modules is the same code.
pub struct Host {
    pub console: Arc<Console>,
    pub open_net: net::OpenNet,
    pub open_block: block::OpenBlock,
}

impl Host {
    /// The real tender's: stdout, Linux taps (or frame sockets) and image
    /// files.
    pub fn system() -> Host {
        Host {
            console: Arc::new(Console::Stdout),
            open_net: Box::new(net::open_host),
            open_block: Box::new(block::open_file),
        }
    }
}

/// The modules of this tender, in upstream order.
pub fn all(host: Host) -> Vec<Box<dyn Module>> {
    vec![
        Box::new(core::Core::new(host.console)),
        Box::new(block::Block::new(host.open_block)),
        Box::new(net::Net::new(host.open_net)),
        Box::new(dumpcore::Dumpcore::new()),
        // Last: it takes its handle on guest memory after every layout change.
        Box::new(clock::Clock::new()),
        // Debugging: watches the hypercall table the others filled.
        Box::new(trace::Trace::new()),
        // Last: its handle on guest memory sees the final layout.
        Box::new(gdb::Gdb::new()),
    ]
}

/// Splits `--prefix:NAME=VALUE` into `(NAME, VALUE)`.
pub fn named_option<'a>(option: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    option
        .strip_prefix(prefix)?
        .strip_prefix(':')?
        .split_once('=')
}

/// An option a module took and refused, in upstream's words (§8): the
/// module's `reason` if it gives one, then ``Invalid option: `OPTION'``;
/// the usage text follows.
pub fn invalid_option(option: &str, reason: Option<String>) -> Error {
    Error::InvalidOption {
        option: option.into(),
        why: reason,
    }
}

/// A device name must be 1-67 characters of `[A-Za-z0-9]` (§4.5).
pub fn valid_device_name(name: &str) -> bool {
    (1..=hvt_abi::manifest::MFT_NAME_MAX).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The single declared device of `kind`, for the short `--net=` / `--block=`
/// forms; `None` unless exactly one exists.
pub fn only_device(manifest: &Manifest, kind: u32) -> Option<String> {
    let mut handles = manifest.handles_of(kind);
    let first = handles.next()?;
    if handles.next().is_some() {
        return None;
    }
    Some(String::from_utf8_lossy(manifest.entries[first].name_bytes()).into_owned())
}
