//! KVM state: the VM, its single vCPU, and the loop that runs it.

mod fault_report;
pub mod run;
pub mod trap;
pub mod vcpu;
pub mod vm;
