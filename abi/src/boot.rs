//! `struct hvt_boot_info` (§4.1).

/// Boot information at [`crate::layout::BOOT_INFO_BASE`], read-only to the guest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootInfo {
    /// Guest-visible memory size in bytes (excludes the network ring area).
    pub mem_size: u64,
    /// Highest end of the loaded (`p_filesz > 0`) segments.
    pub kernel_end: u64,
    /// TSC frequency in Hz.
    pub cpu_cycle_freq: u64,
    /// GPA of the NUL-terminated command line.
    pub cmdline: u64,
    /// GPA of the manifest copy.
    pub mft: u64,
    /// Features the tender offers ([`HOST_FEATURE_RING_IO`], ...).
    pub host_features: u32,
    /// Always 0: reserved for future negotiation.
    pub guest_features: u32,
    /// GPA of `struct hvt_ring`, 0 if none is offered.
    pub net_ring: u64,
}

/// `HVT_FEATURE_RING_IO`: the shared-memory network ring is available.
pub const HOST_FEATURE_RING_IO: u32 = 1 << 0;

/// Ours (§12.7): the clock page at [`crate::layout::CLOCK_PAGE_BASE`] is
/// kept current, so the guest reads wall-clock time from the TSC without a
/// WALLTIME exit. Offered only to guests with our unprivileged note.
pub const HOST_FEATURE_CLOCK_PAGE: u32 = 1 << 1;

/// Ours (§12.8), offered only with [`HOST_FEATURE_RING_IO`] to guests that
/// carry our note: ring entries are also served at each of the guest's
/// exits, a doorbell of [`crate::ring::DOORBELL_SERVE_NOW`] is served before
/// the guest resumes, and read commits carry [`crate::ring::COMMIT_DRAINED`].
pub const HOST_FEATURE_RING_EXIT_SERVICE: u32 = 1 << 2;

crate::assert_layout!(BootInfo, size = 56,
    mem_size @ 0, kernel_end @ 8, cpu_cycle_freq @ 16, cmdline @ 24, mft @ 32,
    host_features @ 40, guest_features @ 44, net_ring @ 48);
