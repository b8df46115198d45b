//! Reports what the guest sees at entry, one `key=value` per line, for the
//! tests to compare with §3.4 and §4: registers, boot info, manifest, command
//! line, and at CPL 0 the control registers.
#![no_std]
#![no_main]

use hvt_bindings::abi::manifest::MftEntry;
use hvt_bindings::{boot, print, println, start, StartInfo};

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
    cmdline_bytes(info.cmdline);
    println!("heap_start=0x{:x}", start.heap_start);
    low_memory(info.cmdline);
    descriptor_tables();
    if start::privilege_level() == 0 {
        control_registers();
    }
    0
}

/// The command line as the tender wrote it, in hex: bytes that are not
/// UTF-8 too (the bindings hand the application an empty line then).
fn cmdline_bytes(cmdline: u64) {
    // SAFETY: the tender wrote a NUL-terminated command line there.
    let bytes = unsafe { core::ffi::CStr::from_ptr(cmdline as *const core::ffi::c_char) };
    print!("cmdline.hex=");
    for byte in bytes.to_bytes() {
        print!("{byte:02x}");
    }
    println!();
}

/// What low memory holds apart from the boot info, manifest and command
/// line (which end at the command line's NUL): the 4 KiB pages with a
/// non-zero byte past that point, and a checksum of those bytes.
fn low_memory(cmdline: u64) {
    // SAFETY: the tender wrote a NUL-terminated command line there.
    let len = unsafe { core::ffi::CStr::from_ptr(cmdline as *const core::ffi::c_char) }
        .to_bytes()
        .len() as u64;
    let from = cmdline + len + 1;
    let mut pages = 0u64;
    let mut sum = 0xcbf2_9ce4_8422_2325u64;
    print!("low.nonzero_pages=");
    for page in (0x10000..0x100000u64).step_by(0x1000) {
        let mut nonzero = false;
        for addr in page.max(from)..page + 0x1000 {
            // SAFETY: 0x10000-0xFFFFF is mapped (read-only) for the guest.
            let byte = unsafe { core::ptr::read_volatile(addr as *const u8) };
            if byte != 0 {
                nonzero = true;
                sum = (sum ^ u64::from(byte) ^ addr).wrapping_mul(0x100_0000_01b3);
            }
        }
        if nonzero {
            print!("{}0x{page:x}", if pages == 0 { "" } else { "," });
            pages += 1;
        }
    }
    println!();
    println!("low.checksum=0x{sum:x}");
    let page = hvt_bindings::abi::layout::CLOCK_PAGE_BASE;
    let mut clock = [0u8; 8];
    for (i, byte) in clock.iter_mut().enumerate() {
        // SAFETY: as above; the clock page's first bytes (seq, version).
        *byte = unsafe { core::ptr::read_volatile((page + i as u64) as *const u8) };
    }
    println!(
        "clock.seq={}",
        u32::from_le_bytes([clock[0], clock[1], clock[2], clock[3]])
    );
    println!(
        "clock.version={}",
        u32::from_le_bytes([clock[4], clock[5], clock[6], clock[7]])
    );
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

/// GDTR, IDTR and TR (`sgdt`, `sidt`, `str`: allowed at CPL 3 without
/// UMIP), and the RSP0 of the TSS at CPL 3 (§12.4).
fn descriptor_tables() {
    let mut gdtr = [0u8; 10];
    let mut idtr = [0u8; 10];
    let tr: u16;
    // SAFETY: stores 10 bytes into each buffer and reads TR; nothing else.
    unsafe {
        core::arch::asm!("sgdt [{}]", in(reg) gdtr.as_mut_ptr());
        core::arch::asm!("sidt [{}]", in(reg) idtr.as_mut_ptr());
        core::arch::asm!("str {0:x}", out(reg) tr);
    }
    for (name, table) in [("gdtr", gdtr), ("idtr", idtr)] {
        let limit = u16::from_le_bytes([table[0], table[1]]);
        let mut base = [0u8; 8];
        base.copy_from_slice(&table[2..10]);
        println!("{name}.base=0x{:x}", u64::from_le_bytes(base));
        println!("{name}.limit=0x{limit:x}");
    }
    println!("tr=0x{tr:x}");
    if start::privilege_level() == 3 {
        let at = hvt_bindings::abi::layout::USER_TSS_BASE + 4;
        // SAFETY: the TSS is mapped (read-only) for a CPL 3 guest.
        let rsp0 = unsafe { core::ptr::read_volatile(at as *const u64) };
        println!("tss.rsp0=0x{rsp0:x}");
    }
}
