//! CPUID passthrough (§3.5): what KVM supports, unmodified.
//!
//! `KVM_GET_SUPPORTED_CPUID` is the slowest step of start-up on our hosts
//! (0.7-0.9 ms, more than creating the VM), so it is asked on a thread of
//! its own, on its own /dev/kvm descriptor, while the main thread creates
//! the VM and loads the image.

use std::thread::JoinHandle;

use kvm_bindings::CpuId;
use kvm_ioctls::{Kvm, VcpuFd};

use crate::error::{Error, Result};

/// Upstream asks KVM for at most this many entries.
const MAX_CPUID_ENTRIES: usize = 100;

/// The supported-CPUID query, under way.
pub struct PendingCpuid(JoinHandle<Result<CpuId>>);

fn query() -> Result<CpuId> {
    let kvm = Kvm::new().map_err(|e| Error::new(format!("KVM: could not open /dev/kvm: {e}")))?;
    kvm.get_supported_cpuid(MAX_CPUID_ENTRIES)
        .map_err(|e| Error::new(format!("KVM: KVM_GET_SUPPORTED_CPUID failed: {e}")))
}

impl PendingCpuid {
    pub fn start() -> PendingCpuid {
        PendingCpuid(std::thread::spawn(query))
    }

    /// Waits for the query and gives the result to `vcpu`.
    pub fn apply(self, vcpu: &VcpuFd) -> Result<()> {
        let cpuid = self
            .0
            .join()
            .map_err(|_| Error::new("KVM: the CPUID query thread failed"))??;
        vcpu.set_cpuid2(&cpuid)
            .map_err(|e| Error::new(format!("KVM: KVM_SET_CPUID2 failed: {e}")))
    }
}
