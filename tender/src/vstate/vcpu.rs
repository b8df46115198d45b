//! The KVM vCPU as modules see it ([`Vcpu`]): registers in the
//! architecture's terms, and KVM's debug controls.

use kvm_bindings::{
    kvm_dtable, kvm_fpu, kvm_guest_debug, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, Msrs,
    KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP, KVM_GUESTDBG_USE_SW_BP,
};
use kvm_ioctls::VcpuFd;
use tender_core::error::Result;
use tender_core::vm::{
    DebugControl, DescriptorTable, FpuRegisters, Registers, Segment, SpecialRegisters, Vcpu,
    Watchpoint,
};

use super::vm::kvm_error;

/// The VM's one vCPU.
pub struct KvmVcpu {
    pub fd: VcpuFd,
}

impl KvmVcpu {
    pub fn new(mut fd: VcpuFd) -> KvmVcpu {
        let immediate_exit = std::ptr::addr_of_mut!(fd.get_kvm_run().immediate_exit);
        // SAFETY: the kvm_run mapping lives as long as `fd`; `Drop`
        // unregisters the byte before the mapping goes.
        unsafe { tender_core::interrupt::register_immediate_exit(immediate_exit) };
        KvmVcpu { fd }
    }
}

impl KvmVcpu {
    /// MXCSR, from the legacy area of `KVM_GET_XSAVE` (bytes 24-27, the
    /// `FXSAVE` layout): `KVM_GET_FPU` leaves it out.
    fn mxcsr(&self) -> Result<u32> {
        let xsave = self
            .fd
            .get_xsave()
            .map_err(|e| kvm_error("ioctl (GET_XSAVE)", e))?;
        Ok(xsave.region[6])
    }
}

impl Drop for KvmVcpu {
    fn drop(&mut self) {
        // SAFETY: unregisters (null).
        unsafe { tender_core::interrupt::register_immediate_exit(std::ptr::null_mut()) };
    }
}

pub(super) fn segment_from_kvm(s: &kvm_segment) -> Segment {
    Segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: s.present != 0,
        dpl: s.dpl,
        db: s.db != 0,
        s: s.s != 0,
        l: s.l != 0,
        g: s.g != 0,
        avl: s.avl != 0,
        unusable: s.unusable != 0,
    }
}

fn segment_to_kvm(s: &Segment) -> kvm_segment {
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: s.present.into(),
        dpl: s.dpl,
        db: s.db.into(),
        s: s.s.into(),
        l: s.l.into(),
        g: s.g.into(),
        avl: s.avl.into(),
        unusable: s.unusable.into(),
        padding: 0,
    }
}

fn table_from_kvm(t: &kvm_dtable) -> DescriptorTable {
    DescriptorTable {
        base: t.base,
        limit: t.limit,
    }
}

fn table_to_kvm(t: &DescriptorTable) -> kvm_dtable {
    kvm_dtable {
        base: t.base,
        limit: t.limit,
        ..Default::default()
    }
}

/// Bit of DR7 that enables breakpoint `index` locally.
fn dr7_local_enable(index: usize) -> u64 {
    1 << (2 * index)
}

/// DR7's R/W (write: 01, read or write: 11) and LEN (1: 00, 2: 01, 8: 10,
/// 4: 11) bits of slot `index`.
fn dr7_watch_bits(index: usize, watch: &Watchpoint) -> u64 {
    let rw: u64 = if watch.reads { 0b11 } else { 0b01 };
    let len: u64 = match watch.len {
        1 => 0b00,
        2 => 0b01,
        8 => 0b10,
        _ => 0b11,
    };
    (rw | len << 2) << (16 + 4 * index)
}

/// `IA32_TSC`.
const MSR_IA32_TSC: u32 = 0x10;

impl Vcpu for KvmVcpu {
    fn complete_pending_io(&mut self) -> Result<()> {
        // KVM's API: re-entering with `immediate_exit` set completes the
        // pending operation of the last exit and returns EINTR before the
        // guest runs another instruction.
        self.fd.set_kvm_immediate_exit(1);
        let entered = match self.fd.run() {
            Err(e) if e.errno() == libc::EINTR => Ok(()),
            // Single-stepping at CPL 0, KVM may end the finished `out`
            // with the step's debug exit: the instruction is complete too.
            Ok(kvm_ioctls::VcpuExit::Debug(_)) => Ok(()),
            Err(e) => Err(kvm_error("ioctl (RUN)", e)),
            Ok(_) => Err(tender_core::error::Error::Kvm(
                "KVM_RUN with immediate_exit ran the guest".into(),
            )),
        };
        // A stop requested meanwhile (a debugger's signal) still stands.
        self.fd
            .set_kvm_immediate_exit(u8::from(tender_core::interrupt::pending()));
        entered
    }

    fn guest_tsc(&self) -> Result<u64> {
        let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
            index: MSR_IA32_TSC,
            ..Default::default()
        }])
        .map_err(|e| tender_core::error::Error::Kvm(format!("KVM_GET_MSRS: {e:?}")))?;
        let read = self
            .fd
            .get_msrs(&mut msrs)
            .map_err(|e| kvm_error("ioctl (GET_MSRS)", e))?;
        match msrs.as_slice().first() {
            Some(entry) if read == 1 => Ok(entry.data),
            _ => Err(tender_core::error::Error::Kvm(
                "KVM_GET_MSRS did not return IA32_TSC".into(),
            )),
        }
    }

    fn registers(&self) -> Result<Registers> {
        let r = self
            .fd
            .get_regs()
            .map_err(|e| kvm_error("ioctl (GET_REGS)", e))?;
        Ok(Registers {
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rsp: r.rsp,
            rbp: r.rbp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            rflags: r.rflags,
        })
    }

    fn set_registers(&mut self, r: &Registers) -> Result<()> {
        let regs = kvm_regs {
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rsp: r.rsp,
            rbp: r.rbp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
            r11: r.r11,
            r12: r.r12,
            r13: r.r13,
            r14: r.r14,
            r15: r.r15,
            rip: r.rip,
            rflags: r.rflags,
        };
        self.fd
            .set_regs(&regs)
            .map_err(|e| kvm_error("ioctl (SET_REGS)", e))
    }

    fn fpu(&self) -> Result<FpuRegisters> {
        let f = self
            .fd
            .get_fpu()
            .map_err(|e| kvm_error("ioctl (GET_FPU)", e))?;
        let mut st = [[0u8; 10]; 8];
        for (st, fpr) in st.iter_mut().zip(&f.fpr) {
            st.copy_from_slice(&fpr[..10]);
        }
        Ok(FpuRegisters {
            st,
            fcw: f.fcw,
            fsw: f.fsw,
            ftwx: f.ftwx,
            last_opcode: f.last_opcode,
            last_ip: f.last_ip,
            last_dp: f.last_dp,
            xmm: f.xmm.map(u128::from_le_bytes),
            mxcsr: self.mxcsr()?,
        })
    }

    fn set_fpu(&mut self, fpu: &FpuRegisters) -> Result<()> {
        let mut fpr = [[0u8; 16]; 8];
        for (fpr, st) in fpr.iter_mut().zip(&fpu.st) {
            fpr[..10].copy_from_slice(st);
        }
        let f = kvm_fpu {
            fpr,
            fcw: fpu.fcw,
            fsw: fpu.fsw,
            ftwx: fpu.ftwx,
            last_opcode: fpu.last_opcode,
            last_ip: fpu.last_ip,
            last_dp: fpu.last_dp,
            xmm: fpu.xmm.map(u128::to_le_bytes),
            mxcsr: fpu.mxcsr,
            ..Default::default()
        };
        self.fd
            .set_fpu(&f)
            .map_err(|e| kvm_error("ioctl (SET_FPU)", e))
    }

    fn special_registers(&self) -> Result<SpecialRegisters> {
        let s = self
            .fd
            .get_sregs()
            .map_err(|e| kvm_error("ioctl (GET_SREGS)", e))?;
        Ok(SpecialRegisters {
            cs: segment_from_kvm(&s.cs),
            ds: segment_from_kvm(&s.ds),
            es: segment_from_kvm(&s.es),
            fs: segment_from_kvm(&s.fs),
            gs: segment_from_kvm(&s.gs),
            ss: segment_from_kvm(&s.ss),
            tr: segment_from_kvm(&s.tr),
            ldt: segment_from_kvm(&s.ldt),
            gdt: table_from_kvm(&s.gdt),
            idt: table_from_kvm(&s.idt),
            cr0: s.cr0,
            cr2: s.cr2,
            cr3: s.cr3,
            cr4: s.cr4,
            cr8: s.cr8,
            efer: s.efer,
        })
    }

    fn set_special_registers(&mut self, r: &SpecialRegisters) -> Result<()> {
        // Start from KVM's own state, so what we do not model (the APIC
        // base, pending interrupts) stays as it is.
        let mut s: kvm_sregs = self
            .fd
            .get_sregs()
            .map_err(|e| kvm_error("ioctl (GET_SREGS)", e))?;
        s.cs = segment_to_kvm(&r.cs);
        s.ds = segment_to_kvm(&r.ds);
        s.es = segment_to_kvm(&r.es);
        s.fs = segment_to_kvm(&r.fs);
        s.gs = segment_to_kvm(&r.gs);
        s.ss = segment_to_kvm(&r.ss);
        s.tr = segment_to_kvm(&r.tr);
        s.ldt = segment_to_kvm(&r.ldt);
        s.gdt = table_to_kvm(&r.gdt);
        s.idt = table_to_kvm(&r.idt);
        s.cr0 = r.cr0;
        s.cr2 = r.cr2;
        s.cr3 = r.cr3;
        s.cr4 = r.cr4;
        s.cr8 = r.cr8;
        s.efer = r.efer;
        self.fd
            .set_sregs(&s)
            .map_err(|e| kvm_error("ioctl (SET_SREGS)", e))
    }

    fn set_debug(&mut self, control: &DebugControl) -> Result<()> {
        let mut debug = kvm_guest_debug::default();
        if control.enabled {
            debug.control = KVM_GUESTDBG_ENABLE;
            if control.single_step {
                debug.control |= KVM_GUESTDBG_SINGLESTEP;
            }
            if control.software_breakpoints {
                debug.control |= KVM_GUESTDBG_USE_SW_BP;
            }
            let mut dr7 = 0;
            for (index, address) in control.hardware_breakpoints.iter().enumerate() {
                if let Some(address) = address {
                    // Execute breakpoints: R/W and LEN bits stay 0.
                    debug.arch.debugreg[index] = *address;
                    dr7 |= dr7_local_enable(index);
                }
            }
            for (index, watch) in control.watchpoints.iter().enumerate() {
                if let Some(watch) = watch {
                    debug.arch.debugreg[index] = watch.address;
                    dr7 |= dr7_local_enable(index) | dr7_watch_bits(index, watch);
                }
            }
            if dr7 != 0 {
                debug.control |= KVM_GUESTDBG_USE_HW_BP;
                debug.arch.debugreg[7] = dr7;
            }
        }
        self.fd
            .set_guest_debug(&debug)
            .map_err(|e| kvm_error("ioctl (SET_GUEST_DEBUG)", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_through_kvm() {
        let segment = Segment {
            base: 0x1000,
            limit: 0xffff_ffff,
            selector: 0x1b,
            type_: 11,
            present: true,
            dpl: 3,
            db: false,
            s: true,
            l: true,
            g: true,
            avl: false,
            unusable: false,
        };
        assert_eq!(segment_from_kvm(&segment_to_kvm(&segment)), segment);
        assert_eq!(dr7_local_enable(0), 1);
        assert_eq!(dr7_local_enable(3), 0x40);
    }
}
