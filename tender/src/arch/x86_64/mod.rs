//! x86_64 long-mode set-up exactly as §3 describes it.

pub mod cpuid;
pub mod gdt;
pub mod paging;
pub mod regs;
pub mod traps;

/// The privilege level the guest starts at (§12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    /// CPL 0, as upstream Solo5 runs every guest.
    Kernel,
    /// CPL 3: the guest carries our note and executes no privileged
    /// instruction. On shadow-paging KVM this runs natively.
    User,
}
