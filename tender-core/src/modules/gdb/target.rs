//! The guest as gdb sees it ([`Stub`], a `gdbstub` target): the registers
//! of the stop, guest memory through [`GuestRam::debugger_access`], and
//! breakpoints as the session will set them (watchpoints: `watch.rs`).

use gdbstub::common::Signal;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpointOps, SwBreakpoint,
    SwBreakpointOps, WatchKind,
};
use gdbstub::target::{Target, TargetError, TargetResult};

use super::arch::{abridged_tag_word, full_tag_word, RegistersWithBases, X86_64WithBases};
use super::watch::WriteWatches;
use super::INT3;
use crate::error::Result;
use crate::memory::GuestRam;
use crate::vm::{FpuRegisters, Registers, SpecialRegisters, Vcpu, Watchpoint};

/// How gdb asked the guest to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resume {
    Continue,
    Step,
}

/// What gdb sees: the registers of the stop, guest memory, breakpoints.
pub(super) struct Stub {
    pub(super) ram: GuestRam,
    pub(super) regs: Registers,
    pub(super) sregs: SpecialRegisters,
    /// The x87 and SSE registers, where the vCPU gives them.
    pub(super) fpu: Option<FpuRegisters>,
    pub(super) regs_dirty: bool,
    pub(super) sregs_dirty: bool,
    pub(super) fpu_dirty: bool,
    pub(super) resume: Option<Resume>,
    /// Software breakpoints: address and the byte `int3` replaced.
    pub(super) software: Vec<(u64, u8)>,
    /// DR0-DR3.
    pub(super) hardware: [Option<u64>; 4],
    /// Watchpoints in debug registers (`TENDER_GDB_DR_WATCH=1`).
    pub(super) watch: [Option<(Watchpoint, WatchKind)>; 4],
    /// Put watchpoints in the debug registers rather than compare bytes
    /// after every step (hardware KVM, CPL 0: see `watch.rs`).
    pub(super) debug_register_watch: bool,
    /// The stub's own write watchpoints (`watch.rs`).
    pub(super) write_watches: WriteWatches,
    /// Serve gdb's software breakpoints with debug registers while one is
    /// free (`TENDER_GDB_INT3=1` turns it off, for hardware KVM).
    pub(super) hardware_first: bool,
    /// A CPL 3 guest: no debug registers.
    pub(super) cpl3: bool,
}

impl Stub {
    /// Writes the special and FPU registers gdb changed back to the vCPU,
    /// before the guest resumes (the general registers need more care at
    /// CPL 3: the callers write those).
    pub(super) fn write_back_state(&self, vcpu: &mut dyn Vcpu) -> Result<()> {
        if self.sregs_dirty {
            vcpu.set_special_registers(&self.sregs)?;
        }
        if let (true, Some(fpu)) = (self.fpu_dirty, &self.fpu) {
            vcpu.set_fpu(fpu)?;
        }
        Ok(())
    }
}

impl Target for Stub {
    type Arch = X86_64WithBases;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl SingleThreadBase for Stub {
    fn read_registers(&mut self, all: &mut RegistersWithBases) -> TargetResult<(), Self> {
        all.fs_base = Some(self.sregs.fs.base);
        all.gs_base = Some(self.sregs.gs.base);
        let regs = &mut all.core;
        let r = &self.regs;
        regs.regs = [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ];
        regs.rip = r.rip;
        // RFLAGS' upper half is reserved (zero).
        regs.eflags = u32::try_from(r.rflags & 0xffff_ffff).unwrap_or(0);
        let s = &self.sregs;
        regs.segments.cs = s.cs.selector.into();
        regs.segments.ss = s.ss.selector.into();
        regs.segments.ds = s.ds.selector.into();
        regs.segments.es = s.es.selector.into();
        regs.segments.fs = s.fs.selector.into();
        regs.segments.gs = s.gs.selector.into();
        if let Some(f) = &self.fpu {
            regs.st = f.st;
            regs.fpu.fctrl = f.fcw.into();
            regs.fpu.fstat = f.fsw.into();
            regs.fpu.ftag = full_tag_word(f.ftwx, f.fsw, &f.st).into();
            // 64-bit FXSAVE: no selectors, the offsets' low halves.
            regs.fpu.fioff = (f.last_ip & 0xffff_ffff) as u32;
            regs.fpu.fooff = (f.last_dp & 0xffff_ffff) as u32;
            regs.fpu.fop = f.last_opcode.into();
            regs.xmm = f.xmm;
            regs.mxcsr = f.mxcsr;
        }
        Ok(())
    }

    fn write_registers(&mut self, all: &RegistersWithBases) -> TargetResult<(), Self> {
        let regs = &all.core;
        let r = &mut self.regs;
        let g = &regs.regs;
        let new = Registers {
            rax: g[0],
            rbx: g[1],
            rcx: g[2],
            rdx: g[3],
            rsi: g[4],
            rdi: g[5],
            rbp: g[6],
            rsp: g[7],
            r8: g[8],
            r9: g[9],
            r10: g[10],
            r11: g[11],
            r12: g[12],
            r13: g[13],
            r14: g[14],
            r15: g[15],
            rip: regs.rip,
            rflags: (r.rflags & !0xffff_ffff) | u64::from(regs.eflags),
        };
        if new != *r {
            *r = new;
            self.regs_dirty = true;
        }
        let s = &mut self.sregs;
        let selectors = [
            (&mut s.cs, regs.segments.cs),
            (&mut s.ss, regs.segments.ss),
            (&mut s.ds, regs.segments.ds),
            (&mut s.es, regs.segments.es),
            (&mut s.fs, regs.segments.fs),
            (&mut s.gs, regs.segments.gs),
        ];
        for (segment, selector) in selectors {
            let selector = u16::try_from(selector & 0xffff).unwrap_or(0);
            if segment.selector != selector {
                segment.selector = selector;
                self.sregs_dirty = true;
            }
        }
        for (segment, base) in [(&mut s.fs, all.fs_base), (&mut s.gs, all.gs_base)] {
            let Some(base) = base else {
                continue;
            };
            if segment.base != base {
                segment.base = base;
                self.sregs_dirty = true;
            }
        }
        if let Some(f) = &mut self.fpu {
            let low16 = |v: u32| (v & 0xffff) as u16;
            let new = FpuRegisters {
                st: regs.st,
                fcw: low16(regs.fpu.fctrl),
                fsw: low16(regs.fpu.fstat),
                ftwx: abridged_tag_word(low16(regs.fpu.ftag)),
                last_opcode: low16(regs.fpu.fop),
                last_ip: (f.last_ip & !0xffff_ffff) | u64::from(regs.fpu.fioff),
                last_dp: (f.last_dp & !0xffff_ffff) | u64::from(regs.fpu.fooff),
                xmm: regs.xmm,
                // `KVM_SET_FPU` does not write it: gdb's change would
                // show until the next stop only.
                mxcsr: f.mxcsr,
            };
            if new != *f {
                *f = new;
                self.fpu_dirty = true;
            }
        }
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let visible = self.ram.visible_size();
        let n = usize::try_from(visible.saturating_sub(start))
            .unwrap_or(usize::MAX)
            .min(data.len());
        if n == 0 {
            return Err(TargetError::Errno(14));
        }
        self.ram
            .debugger_access(start, &mut data[..n], false)
            .map_err(|_| TargetError::Errno(14))?;
        // gdb sees the guest's own bytes, not our int3s.
        for (addr, byte) in &self.software {
            let at = addr
                .checked_sub(start)
                .and_then(|i| usize::try_from(i).ok());
            if let Some(slot) = at.and_then(|i| data[..n].get_mut(i)) {
                *slot = *byte;
            }
        }
        Ok(n)
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        let mut bytes = data.to_vec();
        // Where a breakpoint's `int3` sits, gdb's byte becomes the one the
        // `int3` hides (put back when the breakpoint goes), and the `int3`
        // stays.
        for (addr, hidden) in &mut self.software {
            let at = addr
                .checked_sub(start)
                .and_then(|i| usize::try_from(i).ok());
            if let Some(slot) = at.and_then(|i| bytes.get_mut(i)) {
                *hidden = *slot;
                *slot = INT3;
            }
        }
        self.ram
            .debugger_access(start, &mut bytes, true)
            .map_err(|_| TargetError::Errno(14))
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for Stub {
    fn resume(&mut self, _signal: Option<Signal>) -> std::result::Result<(), Self::Error> {
        self.resume = Some(Resume::Continue);
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Stub {
    fn step(&mut self, _signal: Option<Signal>) -> std::result::Result<(), Self::Error> {
        self.resume = Some(Resume::Step);
        Ok(())
    }
}

impl Breakpoints for Stub {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    // CPL 3: none on this host (the host loads no debug registers).
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        (!self.cpl3).then_some(self)
    }

    // At both privilege levels: the stub's own (`watch.rs`).
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for Stub {
    fn add_sw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        if self.software.iter().any(|(a, _)| *a == addr) {
            return Ok(true);
        }
        // On shadow-paging KVM every CPL 0 instruction is emulated, and the
        // emulator cannot deliver an `int3` in long mode (internal error
        // exit): a free debug register serves the breakpoint instead, and
        // `int3` only when all four are taken (hardware KVM).
        if self.hardware_first && self.free_slot().is_some() {
            return self.add_hw_breakpoint(addr, kind);
        }
        let mut byte = [0u8];
        if self.ram.debugger_access(addr, &mut byte, false).is_err()
            || self.ram.debugger_access(addr, &mut [INT3], true).is_err()
        {
            return Ok(false);
        }
        self.software.push((addr, byte[0]));
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, kind: usize) -> TargetResult<bool, Self> {
        let Some(i) = self.software.iter().position(|(a, _)| *a == addr) else {
            return self.remove_hw_breakpoint(addr, kind);
        };
        let (_, byte) = self.software.swap_remove(i);
        Ok(self.ram.debugger_access(addr, &mut [byte], true).is_ok())
    }
}

impl Stub {
    /// A debug register neither a breakpoint nor a watchpoint holds.
    pub(super) fn free_slot(&self) -> Option<usize> {
        (0..4).find(|&i| self.hardware[i].is_none() && self.watch[i].is_none())
    }
}

impl HwBreakpoint for Stub {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some(slot) = self.free_slot() else {
            return Ok(false);
        };
        self.hardware[slot] = Some(addr);
        Ok(true)
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some(slot) = self.hardware.iter().position(|a| *a == Some(addr)) else {
            return Ok(false);
        };
        self.hardware[slot] = None;
        Ok(true)
    }
}
