//! Reports what the guest sees at entry, one `key=value` per line, for the
//! tests to compare with §3.4 and §4: registers, boot info, manifest, command
//! line, and at CPL 0 the control registers.
#![no_std]
#![no_main]

use hvt_bindings::abi::manifest::MftEntry;
use hvt_bindings::{boot, println, start, StartInfo};

hvt_bindings::manifest!();
hvt_bindings::entry!(main);

const NAMES: [&str; 19] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rflags", "cs", "ss",
];

fn main(start: &StartInfo) -> i32 {
    for (name, value) in NAMES.iter().zip(start::entry_registers()) {
        println!("{name}=0x{value:x}");
    }
    let info = boot::boot_info().expect("boot info");
    println!("boot.mem_size=0x{:x}", info.mem_size);
    println!("boot.kernel_end=0x{:x}", info.kernel_end);
    println!("boot.cpu_cycle_freq={}", info.cpu_cycle_freq);
    println!("boot.cmdline=0x{:x}", info.cmdline);
    println!("boot.mft=0x{:x}", info.mft);
    println!("boot.host_features=0x{:x}", info.host_features);
    println!("boot.guest_features=0x{:x}", info.guest_features);
    println!("boot.net_ring=0x{:x}", info.net_ring);
    let entries: &[MftEntry] = boot::manifest_entries();
    println!("mft.entries={}", entries.len());
    for (i, e) in entries.iter().enumerate() {
        println!(
            "mft.{i}=type:0x{:x},attached:{},name:{}",
            e.kind,
            e.attached,
            core::str::from_utf8(e.name_bytes()).unwrap_or("?")
        );
    }
    println!("cmdline={}", start.cmdline);
    println!("heap_start=0x{:x}", start.heap_start);
    if start::entry_registers()[17] & 3 == 0 {
        control_registers();
    }
    0
}

/// Privileged reads, only at CPL 0 (the tests strip our note for that).
fn control_registers() {
    let (cr0, cr3, cr4): (u64, u64, u64);
    let (efer_lo, efer_hi): (u32, u32);
    // SAFETY: reading control registers and EFER at CPL 0 has no side effect.
    unsafe {
        core::arch::asm!("mov {}, cr0", out(reg) cr0);
        core::arch::asm!("mov {}, cr3", out(reg) cr3);
        core::arch::asm!("mov {}, cr4", out(reg) cr4);
        core::arch::asm!("rdmsr", in("ecx") 0xC000_0080u32, out("eax") efer_lo, out("edx") efer_hi);
    }
    println!("cr0=0x{cr0:x}");
    println!("cr3=0x{cr3:x}");
    println!("cr4=0x{cr4:x}");
    println!(
        "efer=0x{:x}",
        (u64::from(efer_hi) << 32) | u64::from(efer_lo)
    );
}
