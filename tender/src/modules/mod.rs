//! Tender modules, registered the way Solo5 registers its own: each one
//! takes its command-line options, sets up its devices and registers its
//! hypercalls. A new capability is a new module, not a branch elsewhere.

pub mod block;
pub mod core;
pub mod net;

use std::rc::Rc;

use crate::devices::poller::Poller;
use crate::error::Result;
use crate::hypercall::Hypercalls;
use crate::manifest::Manifest;
use crate::vstate::memory::GuestRam;

/// What a module sees while the VM is being set up.
pub struct SetupContext<'a> {
    pub manifest: &'a mut Manifest,
    pub hypercalls: &'a mut Hypercalls,
    pub poller: &'a Rc<Poller>,
    pub ram: &'a GuestRam,
}

pub trait Module {
    /// Module name, as in `--help`.
    fn name(&self) -> &'static str;

    /// Usage lines for `--help`.
    fn usage(&self) -> &'static str;

    /// Offered every option the core does not take. Returns `Ok(true)` if
    /// the option is this module's, `Err` if it is but is malformed.
    fn parse_option(&mut self, option: &str, manifest: &mut Manifest) -> Result<bool>;

    /// Opens devices and registers hypercalls, after all options are parsed.
    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()>;
}

/// The modules of this tender, in upstream order.
pub fn all() -> Vec<Box<dyn Module>> {
    vec![
        Box::new(core::Core),
        Box::new(block::Block),
        Box::new(net::Net::default()),
    ]
}

/// Splits `--prefix:NAME=VALUE` into `(NAME, VALUE)`.
pub fn named_option<'a>(option: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    option
        .strip_prefix(prefix)?
        .strip_prefix(':')?
        .split_once('=')
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
