//! Boot information, manifest copy and command line in low memory (§4.1,
//! §4.2).

use hvt_abi::boot::BootInfo;
use hvt_abi::layout::{BOOT_INFO_BASE, CMDLINE_SIZE};

use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::memory::GuestRam;

/// Writes `info` (whose `cmdline` and `mft` are filled in here), then the
/// manifest right after it, then the command line right after that. The
/// command line is bytes as given (not necessarily UTF-8); at most 8191 of
/// them fit, as upstream counts.
pub fn write(
    ram: &GuestRam,
    mut info: BootInfo,
    manifest: &Manifest,
    cmdline: &[u8],
) -> Result<()> {
    let mft = manifest.to_bytes();
    let mft_gpa = BOOT_INFO_BASE + std::mem::size_of::<BootInfo>() as u64;
    let cmdline_gpa = mft_gpa + mft.len() as u64;
    if cmdline.len() >= CMDLINE_SIZE {
        return Err(Error::Argument(format!(
            "Guest command line too long (max={} characters)",
            CMDLINE_SIZE - 1
        )));
    }
    info.cmdline = cmdline_gpa;
    info.mft = mft_gpa;
    ram.write_obj(BOOT_INFO_BASE, &info)?;
    ram.write_bytes(mft_gpa, &mft)?;
    // The area after the command line is still zero: NUL-terminated.
    ram.write_bytes(cmdline_gpa, cmdline)
}
