//! What a module may ask of the virtual machine it serves, without knowing
//! that it is KVM: the tender implements these traits over KVM, the mock
//! tender over plain memory. The vocabulary (registers, exits, debug
//! controls) is the architecture's, not KVM's.

use std::sync::Arc;

use vm_memory::GuestRegionMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::error::Result;

/// An optional capability of the host's hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extension {
    /// Port writes can signal an eventfd without leaving the kernel.
    IoEventFd,
    /// Single-stepping and breakpoints ([`Vcpu::set_debug`]).
    GuestDebug,
}

/// VM-wide operations a module may use during set-up.
pub trait VmOps {
    /// True when the hypervisor offers `extension`.
    fn has_extension(&self, extension: Extension) -> bool;

    /// Signals `eventfd` when the guest writes the 32-bit value `datamatch`
    /// to `port`, in the host kernel, without a VM exit to this process.
    /// Other writes to the port (other values or sizes) still exit.
    fn register_ioevent(&mut self, eventfd: &EventFd, port: u16, datamatch: u32) -> Result<()>;

    /// Maps `region` into the guest at its own guest address, beside the
    /// guest's memory (read-only to the guest when `read_only`). The VM
    /// keeps the region alive.
    fn add_memory_region(&mut self, region: Arc<GuestRegionMmap>, read_only: bool) -> Result<()>;
}

/// A segment register, descriptor cache included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub type_: u8,
    pub present: bool,
    pub dpl: u8,
    pub db: bool,
    pub s: bool,
    pub l: bool,
    pub g: bool,
    pub avl: bool,
    pub unusable: bool,
}

/// The GDTR or IDTR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DescriptorTable {
    pub base: u64,
    pub limit: u16,
}

/// RFLAGS.TF: a #DB after the next instruction (a debugger's step).
pub const RFLAGS_TF: u64 = 1 << 8;

/// General-purpose registers, instruction pointer and flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// Segment, descriptor-table and control registers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialRegisters {
    pub cs: Segment,
    pub ds: Segment,
    pub es: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub ss: Segment,
    pub tr: Segment,
    pub ldt: Segment,
    pub gdt: DescriptorTable,
    pub idt: DescriptorTable,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
}

/// The x87 and SSE registers, in `FXSAVE`'s form (as `KVM_GET_FPU` gives
/// them): a debugger's view of the guest's floating point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FpuRegisters {
    /// ST(0) to ST(7), 80 bits each.
    pub st: [[u8; 10]; 8],
    pub fcw: u16,
    pub fsw: u16,
    /// The abridged tag word: bit N set when physical register N is in use.
    pub ftwx: u8,
    pub last_opcode: u16,
    pub last_ip: u64,
    pub last_dp: u64,
    pub xmm: [u128; 16],
    /// Read with the rest; `KVM_SET_FPU` does not write it.
    pub mxcsr: u32,
}

/// Debug controls of the vCPU: stepping and breakpoints that end a run
/// with [`VmExit::Debug`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DebugControl {
    /// Debugging on at all; without it the other fields are ignored.
    pub enabled: bool,
    /// Exit after every instruction.
    pub single_step: bool,
    /// `int3` in the guest exits to the tender instead of the guest.
    pub software_breakpoints: bool,
    /// Up to four instruction breakpoints in the debug registers.
    pub hardware_breakpoints: [Option<u64>; 4],
    /// Hardware watchpoints (DR0-DR3 after the breakpoints' slots, DR7's
    /// R/W and LEN bits): address, length (1, 2, 4 or 8) and whether reads
    /// also trigger. A slot holds a breakpoint or a watchpoint, not both.
    pub watchpoints: [Option<Watchpoint>; 4],
}

/// A hardware watchpoint of [`DebugControl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watchpoint {
    pub address: u64,
    pub len: u8,
    pub reads: bool,
}

/// The vCPU, as a module sees it.
pub trait Vcpu {
    fn registers(&self) -> Result<Registers>;
    fn set_registers(&mut self, registers: &Registers) -> Result<()>;
    fn special_registers(&self) -> Result<SpecialRegisters>;
    fn set_special_registers(&mut self, registers: &SpecialRegisters) -> Result<()>;
    /// Sets the debug controls ([`Extension::GuestDebug`]).
    fn set_debug(&mut self, control: &DebugControl) -> Result<()>;
    /// The guest's time-stamp counter now (its `IA32_TSC`), for a module
    /// that relates the guest's TSC to host time (the clock page, §12.7).
    fn guest_tsc(&self) -> Result<u64> {
        Err(crate::error::Error::Other(
            "this vCPU cannot read the guest TSC".into(),
        ))
    }
    /// The x87 and SSE registers (a debugger's stop).
    fn fpu(&self) -> Result<FpuRegisters> {
        Err(crate::error::Error::Other(
            "this vCPU cannot read the FPU".into(),
        ))
    }
    fn set_fpu(&mut self, _fpu: &FpuRegisters) -> Result<()> {
        Err(crate::error::Error::Other(
            "this vCPU cannot write the FPU".into(),
        ))
    }
    /// Finishes the instruction of the exit just served (KVM moves RIP past
    /// an `out` only on the next `KVM_RUN`) without running the guest
    /// further, so that the registers read next are those after it: what a
    /// debugger stopping the guest after a hypercall must show.
    fn complete_pending_io(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A VM exit the core does not serve itself, offered to the modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    /// A debug event: breakpoint, single step (see [`DebugControl`]).
    Debug {
        exception: u32,
        pc: u64,
        dr6: u64,
        dr7: u64,
    },
    /// A port write that is not a well-formed hypercall.
    IoOut { port: u16, size: u8, value: u32 },
    /// A port read.
    IoIn { port: u16, size: u8 },
    /// An access to guest-physical memory no memory backs (or that the host
    /// maps read-only).
    Mmio { gpa: u64, write: bool },
    /// The guest halted the CPU.
    Hlt,
    /// Triple fault.
    Shutdown,
}

/// How a CPL 3 guest continues from a trap (§12.4): the frame the
/// trampoline's `iretq` loads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrapResume {
    /// Where to continue (default: the frame's RIP).
    pub rip: Option<u64>,
    /// Set or clear RFLAGS.TF (a single step), or leave it.
    pub single_step: Option<bool>,
}

/// A module's answer to a CPL 3 guest's trap ([`crate::module::Module::trap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapDecision {
    /// Return to the guest through the trampoline.
    Resume(TrapResume),
    /// End the guest as the trap would without a debugger (the report,
    /// exit 255).
    End,
    /// End the guest; the process exits with this code.
    Exit(i32),
}

/// What a module that took a VM exit wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitAction {
    /// Run the guest again.
    Resume,
    /// End the guest; the process exits with this code.
    Exit(i32),
}
