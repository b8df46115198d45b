//! KVM state: guest memory, the VM and its single vCPU.

pub mod memory;
pub mod vcpu;
pub mod vm;
