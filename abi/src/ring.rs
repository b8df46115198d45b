//! The shared-memory network ring, `struct hvt_ring` (§6.7).

/// Slots in each of the two rings (`HVT_RING_SIZE`).
pub const RING_SIZE: usize = 1024;
/// Largest frame the guest sends through the ring (`HVT_RING_BUF_SIZE`).
pub const RING_BUF_SIZE: usize = 2048;

/// Entry operations.
pub const OP_NET_WRITE: u32 = 1;
pub const OP_NET_READ: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RingEntry {
    pub operation: u32,
    pub handle: u32,
    pub data: u64,
    pub len: u32,
    pub id: u32,
    pub reserved: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RingCommit {
    pub id: u32,
    pub ret: i32,
    pub len: u32,
    /// `reserved` upstream, always 0 there; [`COMMIT_DRAINED`] when the
    /// tender offers [`HOST_FEATURE_RING_EXIT_SERVICE`] (§12.8).
    ///
    /// [`HOST_FEATURE_RING_EXIT_SERVICE`]: crate::boot::HOST_FEATURE_RING_EXIT_SERVICE
    pub flags: u32,
}

/// Commit flag (§12.8): when this read was served, the device had no
/// further frame waiting, so a guest may stop reading until its next yield
/// reports the device again. Upstream never sets it: a guest that sees 0
/// reads on until it gets `AGAIN`.
pub const COMMIT_DRAINED: u32 = 1 << 0;

/// Entry flag, in `RingEntry::reserved` (§12.8): serve this read only once
/// the guest's next exit has been served, so that a read published just
/// before a yield waits with it and brings the frame that ends the wait.
/// Entries after it wait for it. Ignored for guests without §12.8.
pub const ENTRY_AFTER_EXIT: u64 = 1 << 0;

/// Doorbell value (§12.8) that asks the tender to serve the ring before the
/// guest goes on, in the vCPU's own exit: the tender registers its in-kernel
/// doorbell for value 0 only, so this write reaches it as a port exit.
/// Upstream's doorbell takes any value, so on upstream it is an ordinary
/// kick.
pub const DOORBELL_SERVE_NOW: u32 = 1;

#[repr(C)]
pub struct Ring {
    /// Entries produced (guest).
    pub ent_tail: u32,
    /// Commits consumed (guest).
    pub com_head: u32,
    pub _pad0: [u8; 56],
    /// Entries consumed (host).
    pub ent_head: u32,
    /// Commits produced (host).
    pub com_tail: u32,
    /// Set by the host when it sleeps and wants the doorbell.
    pub needs_kick: u32,
    pub _pad1: [u8; 52],
    pub entries: [RingEntry; RING_SIZE],
    pub commits: [RingCommit; RING_SIZE],
}

crate::assert_layout!(RingEntry, size = 32, operation @ 0, handle @ 4, data @ 8, len @ 16, id @ 20, reserved @ 24);
crate::assert_layout!(RingCommit, size = 16, id @ 0, ret @ 4, len @ 8, flags @ 12);
crate::assert_layout!(Ring, size = 49_280,
    ent_tail @ 0, com_head @ 4, ent_head @ 64, com_tail @ 68, needs_kick @ 72,
    entries @ 128, commits @ 32_896);
