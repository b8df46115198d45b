//! A CPL 3 guest's trap, as the run loop receives it from the trampoline
//! (§12.4, `arch::x86_64::traps`), and what may be done with it: end the
//! guest with a precise report, or resume it, optionally with a changed
//! frame. The modules decide which (`Module::trap`, a debugger's hook);
//! this is what carries out their decision.
//!
//! At the trampoline's exit KVM's RIP, RSP, RFLAGS, CS, SS and RDX are the
//! trampoline's; the guest's are in the frame on the trap stack. Every
//! other register is the guest's, live in KVM. [`Trap::registers`] and
//! [`TrappedVcpu`] give the merged view: the guest's registers at the trap.
//!
//! Resuming needs no KVM call: the tender rewrites the frame in guest
//! memory and lets the stub `iretq` (so the vCPU thread's filter needs no
//! `KVM_SET_REGS`/`KVM_SET_SREGS` for it).

use hvt_abi::layout::{GDT_CODE_INDEX, GDT_DATA_INDEX, TRAP_PORT};
use tender_core::error::{Error, Result};
use tender_core::memory::GuestRam;
use tender_core::vm::{DebugControl, FpuRegisters, Registers, SpecialRegisters, TrapResume, Vcpu};

use super::fault_report::{general_registers, hex_fields};
use super::vcpu::KvmVcpu;
use crate::arch::x86_64::traps::{
    self, StackFrame, FRAME_RDX, FRAME_RFLAGS, FRAME_RIP, FRAME_RSP, FRAME_SIZE,
};
use crate::arch::x86_64::{gdt, Privilege};

use tender_core::vm::RFLAGS_TF;
/// RFLAGS.RF: the CPU sets it in the frame of a fault; not the guest's.
pub const RFLAGS_RF: u64 = 1 << 16;

/// The guest's frame at the trap, as the CPU pushed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The faulting instruction (a fault), or the next one (a trap: #BP
    /// after `int3`, #DB after a step).
    pub rip: u64,
    /// The guest's selectors: 0x0B and 0x13.
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// One trap of a CPL 3 guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// Exception vector, 0-31.
    pub vector: u8,
    /// Error code; 0 for vectors without one.
    pub error: u64,
    /// CR2 at the trap: the faulting address of a #PF.
    pub cr2: u64,
    pub frame: Frame,
    /// The guest's registers at the trap (frame and KVM merged).
    registers: Registers,
    /// KVM's special registers at the trampoline's exit.
    special: SpecialRegisters,
    /// GPA of the stack frame (the trampoline's RSP).
    frame_at: u64,
}

impl Trap {
    /// Reads the trap at an exit on [`TRAP_PORT`]: the registers with
    /// `KVM_GET_REGS`/`KVM_GET_SREGS` (already on the vCPU thread's
    /// list), the frame from the trap stack. An `out` to the port from
    /// anywhere but the trampoline is an invalid port access.
    pub fn read(vcpu: &KvmVcpu, ram: &GuestRam) -> Result<Trap> {
        let kvm = vcpu.registers()?;
        let special = vcpu.special_registers()?;
        if !traps::in_trampoline(special.cs.selector, kvm.rip) {
            return Err(Error::invalid_port(TRAP_PORT));
        }
        let mut bytes = [0u8; FRAME_SIZE];
        ram.read_bytes(kvm.rsp, &mut bytes)?;
        let stack = StackFrame::from_bytes(&bytes);
        let frame = Frame {
            rip: stack.rip,
            cs: stack.cs,
            rflags: stack.rflags,
            rsp: stack.rsp,
            ss: stack.ss,
        };
        let registers = Registers {
            rip: frame.rip,
            rsp: frame.rsp,
            rflags: frame.rflags & !RFLAGS_RF,
            rdx: stack.rdx,
            ..kvm
        };
        Ok(Trap {
            vector: u8::try_from(stack.vector).unwrap_or(u8::MAX),
            error: stack.error,
            cr2: special.cr2,
            frame,
            registers,
            special,
            frame_at: kvm.rsp,
        })
    }

    /// The guest's general registers, RIP and RFLAGS (RF masked) at the
    /// trap.
    pub fn registers(&self) -> Registers {
        self.registers
    }

    /// The guest's special registers at the trap: CS and SS its own
    /// (§12), CR2 the trap's, the rest KVM's.
    pub fn special_registers(&self) -> SpecialRegisters {
        let (code, data) = gdt::code_and_data(Privilege::User);
        let mut special = self.special;
        special.cs = super::vcpu::segment_from_kvm(&code);
        special.ss = super::vcpu::segment_from_kvm(&data);
        debug_assert_eq!(special.cs.selector, (GDT_CODE_INDEX << 3) | 3);
        debug_assert_eq!(special.ss.selector, (GDT_DATA_INDEX << 3) | 3);
        special
    }

    /// Lets the guest continue from this trap: writes the changed RIP and
    /// RFLAGS into the frame (the trampoline's `iretq` loads them). Call
    /// before the next `KVM_RUN`.
    pub fn resume(&self, ram: &GuestRam, resume: TrapResume) -> Result<()> {
        if let Some(rip) = resume.rip {
            ram.write_bytes(self.frame_at + FRAME_RIP, &rip.to_le_bytes())?;
        }
        if let Some(step) = resume.single_step {
            // The frame's, as a debugger may have rewritten it.
            let mut bytes = [0u8; 8];
            ram.read_bytes(self.frame_at + FRAME_RFLAGS, &mut bytes)?;
            let rflags = u64::from_le_bytes(bytes);
            let rflags = if step {
                rflags | RFLAGS_TF
            } else {
                rflags & !RFLAGS_TF
            };
            ram.write_bytes(self.frame_at + FRAME_RFLAGS, &rflags.to_le_bytes())?;
        }
        Ok(())
    }

    /// The one-line report of a trap that ends the guest.
    pub fn report(&self) -> String {
        let f = &self.frame;
        let mut fields = vec![
            ("error", self.error),
            ("cr2", self.cr2),
            ("rip", f.rip),
            ("rsp", f.rsp),
            ("rflags", f.rflags),
            ("cs", f.cs),
            ("ss", f.ss),
        ];
        fields.extend(general_registers(&self.registers));
        format!(
            "Guest fault: vector {} ({}) {}",
            self.vector,
            traps::vector_name(u64::from(self.vector)),
            hex_fields(&fields)
        )
    }
}

/// The vCPU as the guest left it at a trap: what modules that record the
/// guest's last state (dumpcore) or debug it (`--gdb`) read. Register
/// reads give the trap's view; a register write puts RIP, RSP, RFLAGS and
/// RDX into the frame (the trampoline's `iretq` and `pop rdx` load them)
/// and the others into KVM; special registers and debug controls go to
/// KVM unchanged.
pub struct TrappedVcpu<'a> {
    pub vcpu: &'a mut KvmVcpu,
    pub trap: &'a Trap,
    pub ram: &'a GuestRam,
}

impl Vcpu for TrappedVcpu<'_> {
    fn registers(&self) -> Result<Registers> {
        Ok(self.trap.registers())
    }

    fn set_registers(&mut self, registers: &Registers) -> Result<()> {
        let at = self.trap.frame_at;
        let ram = self.ram;
        ram.write_bytes(at + FRAME_RDX, &registers.rdx.to_le_bytes())?;
        ram.write_bytes(at + FRAME_RIP, &registers.rip.to_le_bytes())?;
        // RF is the CPU's (set on faults), kept as it pushed it.
        let rflags = (registers.rflags & !RFLAGS_RF) | (self.trap.frame.rflags & RFLAGS_RF);
        ram.write_bytes(at + FRAME_RFLAGS, &rflags.to_le_bytes())?;
        ram.write_bytes(at + FRAME_RSP, &registers.rsp.to_le_bytes())?;
        let kvm = self.vcpu.registers()?;
        self.vcpu.set_registers(&Registers {
            rip: kvm.rip,
            rsp: kvm.rsp,
            rflags: kvm.rflags,
            rdx: kvm.rdx,
            ..*registers
        })
    }

    fn special_registers(&self) -> Result<SpecialRegisters> {
        Ok(self.trap.special_registers())
    }

    fn set_special_registers(&mut self, registers: &SpecialRegisters) -> Result<()> {
        // KVM's CS and SS are the trampoline's until its `iretq` (which
        // loads the guest's from the frame): they stay, as do CR2 and the
        // rest a debugger has no business changing mid-trap.
        let kvm = self.vcpu.special_registers()?;
        self.vcpu.set_special_registers(&SpecialRegisters {
            cs: kvm.cs,
            ss: kvm.ss,
            ..*registers
        })
    }

    fn set_debug(&mut self, control: &DebugControl) -> Result<()> {
        self.vcpu.set_debug(control)
    }

    // The trampoline uses no x87 or SSE register: KVM's are the guest's.
    fn fpu(&self) -> Result<FpuRegisters> {
        self.vcpu.fpu()
    }

    fn set_fpu(&mut self, fpu: &FpuRegisters) -> Result<()> {
        self.vcpu.set_fpu(fpu)
    }

    fn guest_tsc(&self) -> Result<u64> {
        self.vcpu.guest_tsc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_the_trap_the_frame_and_every_general_register() {
        let trap = Trap {
            vector: 14,
            error: 6,
            cr2: 0,
            frame: Frame {
                rip: 0x10_00b0,
                cs: 0x0b,
                rflags: 0x10046,
                rsp: 0x1fff_fb00,
                ss: 0x13,
            },
            registers: Registers {
                rax: 1,
                rbx: 2,
                rcx: 3,
                rdx: 4,
                rsi: 5,
                rdi: 6,
                rsp: 0x1fff_fb00,
                rbp: 7,
                r8: 8,
                r9: 9,
                r10: 10,
                r11: 11,
                r12: 12,
                r13: 13,
                r14: 14,
                r15: 15,
                rip: 0x10_00b0,
                rflags: 0x46,
            },
            special: SpecialRegisters::default(),
            frame_at: 0xbfd0,
        };
        assert_eq!(
            trap.report(),
            "Guest fault: vector 14 (#PF) error=0x6 cr2=0x0 rip=0x1000b0 rsp=0x1ffffb00 \
             rflags=0x10046 cs=0xb ss=0x13 rax=0x1 rbx=0x2 rcx=0x3 rdx=0x4 rsi=0x5 rdi=0x6 \
             rbp=0x7 r8=0x8 r9=0x9 r10=0xa r11=0xb r12=0xc r13=0xd r14=0xe r15=0xf"
        );
    }
}
