//! The vCPU run loop: hypercalls go to the dispatch table, every other VM
//! exit to the modules, and what no module takes ends the guest with the
//! message of §8.

use hvt_abi::hypercall::{nr, PIO_BASE};
use hvt_abi::layout::TRAP_PORT;
use kvm_ioctls::VcpuExit;
use tender_core::error::{Error, Result};
use tender_core::hypercall::{Action, Hypercalls};
use tender_core::lifecycle::ModuleSet;
use tender_core::memory::GuestRam;
use tender_core::stats::Counter;
use tender_core::vm::{ExitAction, Registers, SpecialRegisters, TrapDecision, Vcpu, VmExit};

use super::fault_report::{general_registers, hex_fields, TRIPLE_FAULT_GENERAL_REGISTERS};
use super::trap::{Trap, TrappedVcpu};
use super::vcpu::KvmVcpu;
use super::vm::kvm_error;
use crate::arch::x86_64::Privilege;

/// How a run ends when the tender itself does not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// HALT hypercall (or a module that ended the guest): the exit code.
    Halt(i32),
    /// An unprivileged guest faulted without reaching its trap path (a
    /// triple fault, §12.4): the message to print; exit 255.
    GuestFault(String),
    /// A CPL 3 guest's trap ended it (§12.4): [`Trap::report`]; exit 255.
    Trap(Box<Trap>),
    /// A CPL 0 guest stopped the CPU in a way the tender does not serve (a
    /// triple fault, `hlt`, a write to host read-only memory): the error
    /// to report, exit 1 as upstream. Unlike [`Err`], the guest's state is
    /// what it made it (a core dump may be written).
    Unserved(Error),
}

fn rip(vcpu: &KvmVcpu) -> u64 {
    vcpu.registers().map(|r| r.rip).unwrap_or(0)
}

/// The guest's registers, for the report of a fault.
fn register_dump(vcpu: &KvmVcpu) -> String {
    let (Ok(r), Ok(s)) = (vcpu.registers(), vcpu.special_registers()) else {
        return "registers unavailable".into();
    };
    fault_registers(&r, &s)
}

/// The registers of the triple fault's report, from KVM's view.
fn fault_registers(r: &Registers, s: &SpecialRegisters) -> String {
    let mut fields = vec![
        ("rip", r.rip),
        ("rsp", r.rsp),
        ("rflags", r.rflags),
        ("cr2", s.cr2),
        ("cs", u64::from(s.cs.selector)),
    ];
    fields.extend_from_slice(&general_registers(r)[..TRIPLE_FAULT_GENERAL_REGISTERS]);
    hex_fields(&fields)
}

/// A hypercall: a 32-bit OUT to one of the hypercall ports (§5).
fn is_hypercall(port: u16, size: u8) -> bool {
    size == 4 && port >= PIO_BASE && port - PIO_BASE < nr::MAX
}

/// The I/O access size of the current KVM_EXIT_IO.
fn io_size(vcpu: &mut KvmVcpu) -> u8 {
    // SAFETY: only called on a KVM_EXIT_IO, for which `io` is the valid
    // member of the exit union.
    unsafe { vcpu.fd.get_kvm_run().__bindgen_anon_1.io.size }
}

/// Runs the guest until it halts or the tender must stop it. `returns`
/// counts the returns from KVM_RUN (every exit the tender sees, for
/// `TENDER_STATS`).
pub fn run(
    vcpu: &mut KvmVcpu,
    ram: &GuestRam,
    hypercalls: &mut Hypercalls,
    modules: &mut ModuleSet,
    privilege: Privilege,
    returns: &Counter,
) -> Result<Stop> {
    // After an exit was served, not after a KVM_RUN that a signal cut
    // short (no exit of the guest's).
    let mut exited = false;
    // A debugger looks after each hypercall: a CPL 3 guest's step ends
    // there, and a Ctrl-C during a POLL is seen there.
    let debugged = modules.vcpu_debug();
    loop {
        if exited {
            modules.guest_resume()?;
        }
        let exit = vcpu.fd.run();
        returns.add(1);
        exited = exit.is_ok();
        let exit = match exit {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                match modules.interrupted(vcpu)? {
                    Some(ExitAction::Exit(code)) => return Ok(Stop::Halt(code)),
                    Some(ExitAction::Resume) | None => continue,
                }
            }
            Err(e) if e.errno() == libc::EFAULT => {
                return Ok(Stop::Unserved(Error::Kvm(format!(
                    "host/guest translation fault: rip=0x{:x}",
                    rip(vcpu)
                ))))
            }
            Err(e) => return Err(kvm_error("ioctl (RUN)", e)),
        };
        modules.guest_exit()?;
        let exit = match exit {
            VcpuExit::IoOut(port, data) => {
                let mut word = [0u8; 4];
                let n = data.len().min(4);
                word[..n].copy_from_slice(&data[..n]);
                let value = u32::from_le_bytes(word);
                // `data` spans count × size for string I/O; the access size
                // is what counts (§5 ignores the count).
                let size = io_size(vcpu);
                if port == TRAP_PORT && privilege == Privilege::User {
                    // Only the trampoline reports here (else: invalid port).
                    let trap = Trap::read(vcpu, ram)?;
                    let decision = modules.trap(
                        trap.vector,
                        &mut TrappedVcpu {
                            vcpu: &mut *vcpu,
                            trap: &trap,
                            ram,
                        },
                        ram,
                    )?;
                    match decision {
                        Some(TrapDecision::Resume(resume)) => {
                            trap.resume(ram, resume)?;
                            continue;
                        }
                        Some(TrapDecision::Exit(code)) => return Ok(Stop::Halt(code)),
                        // A trap no module resumes ends the guest, with its report.
                        Some(TrapDecision::End) | None => return Ok(Stop::Trap(Box::new(trap))),
                    }
                }
                if is_hypercall(port, size) {
                    match hypercalls.dispatch_pio(ram, port, true, 4, value)? {
                        Action::Continue if debugged => {
                            match modules.after_hypercall(vcpu, ram)? {
                                Some(ExitAction::Exit(code)) => return Ok(Stop::Halt(code)),
                                Some(ExitAction::Resume) | None => continue,
                            }
                        }
                        Action::Continue => continue,
                        Action::Exit(code) => return Ok(Stop::Halt(code)),
                    }
                }
                VmExit::IoOut { port, size, value }
            }
            VcpuExit::IoIn(port, data) => VmExit::IoIn {
                port,
                size: u8::try_from(data.len()).unwrap_or(u8::MAX),
            },
            VcpuExit::MmioWrite(gpa, _) => VmExit::Mmio { gpa, write: true },
            VcpuExit::MmioRead(gpa, _) => VmExit::Mmio { gpa, write: false },
            VcpuExit::Debug(debug) => VmExit::Debug {
                exception: debug.exception,
                pc: debug.pc,
                dr6: debug.dr6,
                dr7: debug.dr7,
            },
            VcpuExit::Hlt => VmExit::Hlt,
            VcpuExit::Shutdown => VmExit::Shutdown,
            VcpuExit::FailEntry(reason, _) => {
                return Err(Error::Kvm(format!(
                    "entry failure: hw_entry_failure_reason=0x{reason:x}"
                )))
            }
            VcpuExit::InternalError => {
                // SAFETY: the exit reason says the `internal` union member is valid.
                let suberror = unsafe { vcpu.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
                return Ok(Stop::Unserved(Error::Kvm(format!(
                    "internal error exit: suberror=0x{suberror:x}"
                ))));
            }
            _ => {
                let reason = vcpu.fd.get_kvm_run().exit_reason;
                return Ok(Stop::Unserved(Error::Kvm(format!(
                    "unhandled exit: exit_reason=0x{reason:x}, rip=0x{:x}",
                    rip(vcpu)
                ))));
            }
        };
        let served = match hypercalls.observer() {
            None => modules.vm_exit(&exit, vcpu, ram),
            Some(observer) => {
                let start = std::time::Instant::now();
                let served = modules.vm_exit(&exit, vcpu, ram);
                observer.vm_exit(&exit, &served, start.elapsed());
                served
            }
        };
        match served? {
            Some(ExitAction::Resume) => continue,
            Some(ExitAction::Exit(code)) => return Ok(Stop::Halt(code)),
            None => return unserved(&exit, vcpu, privilege),
        }
    }
}

/// The core's answer to an exit no module took.
fn unserved(exit: &VmExit, vcpu: &mut KvmVcpu, privilege: Privilege) -> Result<Stop> {
    let error = match *exit {
        VmExit::IoOut { port, .. } | VmExit::IoIn { port, .. } => {
            return Err(Error::invalid_port(port))
        }
        // A write to a page the host maps read-only (guest text or rodata)
        // surfaces as MMIO on shadow-paging KVM: the same guest fault as
        // EFAULT on hardware KVM (§11).
        VmExit::Mmio { .. } => Error::Kvm(format!(
            "host/guest translation fault: rip=0x{:x}",
            rip(vcpu)
        )),
        VmExit::Shutdown if privilege == Privilege::User => {
            return Ok(Stop::GuestFault(format!(
                "Guest fault (triple fault at CPL 3): {}",
                register_dump(vcpu)
            )))
        }
        VmExit::Shutdown | VmExit::Hlt | VmExit::Debug { .. } => {
            let reason = vcpu.fd.get_kvm_run().exit_reason;
            Error::Kvm(format!(
                "unhandled exit: exit_reason=0x{reason:x}, rip=0x{:x}",
                rip(vcpu)
            ))
        }
    };
    Ok(Stop::Unserved(error))
}

#[cfg(test)]
mod tests {
    use tender_core::vm::Segment;

    use super::*;

    #[test]
    fn the_triple_fault_report_shows_kvm_registers_up_to_rbp() {
        let r = Registers {
            rip: 0x10_00b0,
            rsp: 0x1fff_fb00,
            rflags: 0x10046,
            rax: 0xa,
            rdi: 0xd1,
            rbp: 0xb,
            // Not in this report.
            r8: 8,
            ..Registers::default()
        };
        let s = SpecialRegisters {
            cr2: 0xdead,
            cs: Segment {
                selector: 0x0b,
                ..Segment::default()
            },
            ..SpecialRegisters::default()
        };
        assert_eq!(
            fault_registers(&r, &s),
            "rip=0x1000b0 rsp=0x1ffffb00 rflags=0x10046 cr2=0xdead cs=0xb \
             rax=0xa rbx=0x0 rcx=0x0 rdx=0x0 rsi=0x0 rdi=0xd1 rbp=0xb"
        );
    }
}
