//! CPUID passthrough (§3.5): what KVM supports, unmodified.

use kvm_ioctls::{Kvm, VcpuFd};

use crate::error::{Error, Result};

/// Upstream asks KVM for at most this many entries.
const MAX_CPUID_ENTRIES: usize = 100;

pub fn passthrough(kvm: &Kvm, vcpu: &VcpuFd) -> Result<()> {
    let cpuid = kvm
        .get_supported_cpuid(MAX_CPUID_ENTRIES)
        .map_err(|e| Error::new(format!("KVM: KVM_GET_SUPPORTED_CPUID failed: {e}")))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| Error::new(format!("KVM: KVM_SET_CPUID2 failed: {e}")))
}
