//! What the bindings hand the application at start (§7).

use hvt_abi::boot::BootInfo;
use hvt_abi::manifest::{MftEntry, MftHeader};

/// Handed to the application's entry point.
#[derive(Debug, Clone, Copy)]
pub struct StartInfo {
    /// The command line with the `--solo5:` log options removed; empty if
    /// the rest is not UTF-8 (upstream passes the tender's arguments as
    /// bytes; Solo5's C API, `guest/solo5-c`, hands them over as they are).
    pub cmdline: &'static str,
    /// First free byte after the image, 4 KiB aligned.
    pub heap_start: usize,
    /// Bytes from `heap_start` to the top of memory; the initial stack lives
    /// at the top of this region.
    pub heap_size: usize,
}

/// The boot information the tender wrote, kept for the life of the guest.
static mut BOOT_INFO: Option<&'static BootInfo> = None;

/// Remembers the boot information. Called once, before the application.
///
/// # Safety
/// `info` must be the tender's boot information, valid forever.
pub unsafe fn set_boot_info(info: &'static BootInfo) {
    // SAFETY: single-threaded guest; written once before anything reads it.
    unsafe { BOOT_INFO = Some(info) };
}

/// The boot information, once the bindings started.
#[cfg(target_os = "none")]
pub fn boot_info() -> Option<&'static BootInfo> {
    // SAFETY: written once at start, read-only afterwards.
    unsafe { BOOT_INFO }
}

/// The boot information: on the host, from the source a test harness
/// installed ([`crate::host::set_boot_info_source`]), else what
/// [`set_boot_info`] stored.
#[cfg(not(target_os = "none"))]
pub fn boot_info() -> Option<&'static BootInfo> {
    // SAFETY: as on the guest, written before anything reads it.
    crate::host::boot_info().or(unsafe { BOOT_INFO })
}

/// The tender's manifest copy (§4.4): its entries, attached devices filled in.
/// (On the host, the manifest the installed boot information points at.)
pub fn manifest_entries() -> &'static [MftEntry] {
    let Some(info) = boot_info() else { return &[] };
    let header = info.mft as *const MftHeader;
    // SAFETY: the tender wrote a valid manifest at `mft`, followed by
    // `entries` entries, in memory that stays mapped and unchanged.
    unsafe {
        let count = (*header).entries as usize;
        core::slice::from_raw_parts(header.add(1).cast::<MftEntry>(), count)
    }
}
