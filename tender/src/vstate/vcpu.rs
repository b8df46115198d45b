//! The vCPU run loop: every VM exit of §8, with its message.

use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::arch::x86_64::Privilege;
use crate::error::{Error, Result};
use crate::hypercall::{Action, Hypercalls};
use crate::vstate::memory::GuestRam;

/// How a run ends when the tender itself does not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// HALT hypercall: the exit code.
    Halt(i32),
    /// An unprivileged guest faulted (§12): the message to print; exit 255.
    GuestFault(String),
}

fn rip(vcpu: &VcpuFd) -> u64 {
    vcpu.get_regs().map(|r| r.rip).unwrap_or(0)
}

/// The guest's registers, for the report of a fault.
fn register_dump(vcpu: &VcpuFd) -> String {
    let (Ok(r), Ok(s)) = (vcpu.get_regs(), vcpu.get_sregs()) else {
        return "registers unavailable".into();
    };
    format!(
        "rip=0x{:x} rsp=0x{:x} rflags=0x{:x} cr2=0x{:x} cs=0x{:x} \
         rax=0x{:x} rbx=0x{:x} rcx=0x{:x} rdx=0x{:x} rsi=0x{:x} rdi=0x{:x} rbp=0x{:x}",
        r.rip,
        r.rsp,
        r.rflags,
        s.cr2,
        s.cs.selector,
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp
    )
}

fn unhandled(vcpu: &mut VcpuFd) -> Error {
    let reason = vcpu.get_kvm_run().exit_reason;
    Error::new(format!(
        "KVM: unhandled exit: exit_reason=0x{reason:x}, rip=0x{:x}",
        rip(vcpu)
    ))
}

/// Runs the guest until it halts or the tender must stop it.
pub fn run(
    vcpu: &mut VcpuFd,
    ram: &GuestRam,
    hypercalls: &mut Hypercalls,
    privilege: Privilege,
) -> Result<Stop> {
    loop {
        let exit = match vcpu.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => continue,
            Err(e) if e.errno() == libc::EFAULT => {
                return Err(Error::new(format!(
                    "KVM: host/guest translation fault: rip=0x{:x}",
                    rip(vcpu)
                )))
            }
            Err(e) => return Err(Error::new(format!("KVM: KVM_RUN failed: {e}"))),
        };
        match exit {
            VcpuExit::IoOut(port, data) => {
                let mut word = [0u8; 4];
                let n = data.len().min(4);
                word[..n].copy_from_slice(&data[..n]);
                let value = u32::from_le_bytes(word);
                // `data` spans count × size for string I/O; the access size
                // is what counts (§5 ignores the count).
                let size = usize::from(vcpu.get_kvm_run().exit_reason_io_size());
                match hypercalls.dispatch_pio(ram, port, true, size, value)? {
                    Action::Continue => {}
                    Action::Exit(code) => return Ok(Stop::Halt(code)),
                }
            }
            VcpuExit::IoIn(port, _) => {
                return Err(Error::new(format!(
                    "Invalid guest port access: port=0x{port:x}"
                )))
            }
            // A write to a page the host maps read-only (guest text or
            // rodata) surfaces as MMIO on shadow-paging KVM: the same guest
            // fault as EFAULT on hardware KVM (§11).
            VcpuExit::MmioWrite(addr, _) | VcpuExit::MmioRead(addr, _) => {
                return Err(Error::new(format!(
                    "KVM: host/guest translation fault: rip=0x{:x}, gpa=0x{addr:x}",
                    rip(vcpu)
                )))
            }
            VcpuExit::FailEntry(reason, _) => {
                return Err(Error::new(format!(
                    "KVM: entry failure: hw_entry_failure_reason=0x{reason:x}"
                )))
            }
            VcpuExit::InternalError => {
                // SAFETY: the exit reason says the `internal` union member is valid.
                let suberror = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
                return Err(Error::new(format!(
                    "KVM: internal error exit: suberror=0x{suberror:x}"
                )));
            }
            VcpuExit::Shutdown if privilege == Privilege::User => {
                return Ok(Stop::GuestFault(format!(
                    "Guest fault (triple fault at CPL 3): {}",
                    register_dump(vcpu)
                )))
            }
            _ => return Err(unhandled(vcpu)),
        }
    }
}

/// Reads the I/O access size of the current KVM_EXIT_IO.
trait IoSize {
    fn exit_reason_io_size(&self) -> u8;
}

impl IoSize for kvm_bindings::kvm_run {
    fn exit_reason_io_size(&self) -> u8 {
        // SAFETY: only called on a KVM_EXIT_IO, for which `io` is the valid
        // union member.
        unsafe { self.__bindgen_anon_1.io.size }
    }
}
