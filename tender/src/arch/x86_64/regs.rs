//! vCPU registers at the first instruction (§3.4, §12).

use hvt_abi::layout::{
    initial_rsp, BOOT_INFO_BASE, CR0_INIT, CR4_INIT, EFER_INIT, GDT_BASE, PML4_BASE, RFLAGS_INIT,
    RFLAGS_IOPL3, TRAP_IDT_BASE, TRAP_IDT_LIMIT,
};
use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

use super::{gdt, Privilege};

/// Special registers: long mode, paging on, the tender's GDT loaded.
pub fn initial_sregs(mut sregs: kvm_sregs, privilege: Privilege) -> kvm_sregs {
    let (code, data) = gdt::code_and_data(privilege);
    sregs.cs = code;
    sregs.ss = data;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.tr = gdt::task_register(privilege);
    sregs.ldt = kvm_segment {
        unusable: 1,
        ..Default::default()
    };
    sregs.gdt.base = GDT_BASE;
    sregs.gdt.limit = gdt::limit(privilege);
    // A CPL 3 guest's exceptions go to the tender's trap path (§12.4); a
    // CPL 0 guest has no IDT until it loads its own, as upstream.
    (sregs.idt.base, sregs.idt.limit) = match privilege {
        Privilege::Kernel => (0, 0),
        Privilege::User => (TRAP_IDT_BASE, TRAP_IDT_LIMIT),
    };
    sregs.cr0 = CR0_INIT;
    sregs.cr2 = 0;
    sregs.cr3 = PML4_BASE;
    sregs.cr4 = CR4_INIT;
    sregs.cr8 = 0;
    sregs.efer = EFER_INIT;
    sregs
}

/// General registers: entry point, boot info in RDI, stack at the top.
pub fn initial_regs(entry: u64, mem_size: u64, privilege: Privilege) -> kvm_regs {
    let iopl = if privilege == Privilege::User {
        RFLAGS_IOPL3
    } else {
        0
    };
    kvm_regs {
        rip: entry,
        rdi: BOOT_INFO_BASE,
        rsp: initial_rsp(mem_size),
        rflags: RFLAGS_INIT | iopl,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_match_section_3_4() {
        let regs = initial_regs(0x100020, 512 << 20, Privilege::Kernel);
        assert_eq!(
            (regs.rip, regs.rdi, regs.rsp, regs.rflags),
            (0x100020, 0x10000, 0x1FFF_FFF8, 2)
        );
        assert_eq!((regs.rax, regs.rbx, regs.rbp, regs.r15), (0, 0, 0, 0));
        let user = initial_regs(0x100020, 512 << 20, Privilege::User);
        assert_eq!(user.rflags, 0x3002);
        let sregs = initial_sregs(kvm_sregs::default(), Privilege::Kernel);
        assert_eq!(
            (sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer),
            (0x8001_0021, 0x2000, 0x620, 0x500)
        );
        assert_eq!(
            (sregs.gdt.base, sregs.gdt.limit, sregs.idt.limit),
            (0x1000, 23, 0)
        );
        assert_eq!(
            (sregs.tr.type_, sregs.tr.present, sregs.ldt.unusable),
            (11, 1, 1)
        );
    }
}
