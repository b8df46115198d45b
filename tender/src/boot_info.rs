//! Boot information, manifest copy and command line in low memory (§4.1, §4.2).

use hvt_abi::boot::BootInfo;
use hvt_abi::layout::{BOOT_INFO_BASE, CMDLINE_SIZE};

use crate::error::Result;
use crate::manifest::Manifest;
use crate::vstate::memory::GuestRam;

/// What the tender tells the guest at boot.
pub struct BootParams<'a> {
    pub kernel_end: u64,
    pub tsc_hz: u64,
    pub manifest: &'a Manifest,
    pub cmdline: &'a str,
    pub host_features: u32,
    pub net_ring: u64,
}

/// Writes boot info, then the manifest right after it, then the command
/// line area right after that.
pub fn write_boot_info(ram: &GuestRam, params: &BootParams<'_>) -> Result<()> {
    let mft = params.manifest.to_bytes();
    let mft_gpa = BOOT_INFO_BASE + std::mem::size_of::<BootInfo>() as u64;
    let cmdline_gpa = mft_gpa + mft.len() as u64;
    let info = BootInfo {
        mem_size: ram.visible_size(),
        kernel_end: params.kernel_end,
        cpu_cycle_freq: params.tsc_hz,
        cmdline: cmdline_gpa,
        mft: mft_gpa,
        host_features: params.host_features,
        guest_features: 0,
        net_ring: params.net_ring,
    };
    ram.write_obj(BOOT_INFO_BASE, &info)?;
    ram.write_bytes(mft_gpa, &mft)?;
    // The command line was bounded by the CLI; the area stays NUL-padded.
    debug_assert!(params.cmdline.len() < CMDLINE_SIZE);
    ram.write_bytes(cmdline_gpa, params.cmdline.as_bytes())
}
