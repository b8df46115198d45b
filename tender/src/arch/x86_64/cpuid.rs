//! CPUID passthrough (§3.5): what KVM supports, unmodified.
//!
//! `KVM_GET_SUPPORTED_CPUID` is one of the slowest steps of start-up on our
//! hosts (0.7-0.9 ms). Asking it on a thread of its own while the main
//! thread created the VM did not help (measured: 3.90 ms median boot with
//! the thread, 3.73 ms without; the ioctls serialise in the kernel), so it
//! is asked in line.

use kvm_ioctls::{Kvm, VcpuFd};

use tender_core::error::{Error, Result};

/// Upstream asks KVM for at most this many entries.
const MAX_CPUID_ENTRIES: usize = 100;

/// Gives `vcpu` every CPUID leaf KVM supports.
pub fn passthrough(kvm: &Kvm, vcpu: &VcpuFd) -> Result<()> {
    let cpuid = kvm
        .get_supported_cpuid(MAX_CPUID_ENTRIES)
        .map_err(|e| Error::Kvm(format!("KVM_GET_SUPPORTED_CPUID failed: {e}")))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| Error::Kvm(format!("KVM_SET_CPUID2 failed: {e}")))
}
