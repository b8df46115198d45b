//! The state a guest sees at its first instruction (§3.4, §4), reported by
//! the `entry-state` probe guest from inside the VM. Page-table and GDT bytes
//! are not mapped for the guest; the tender's unit tests check those.

mod common;

use std::collections::HashMap;

use common::{cpl0_copy, guest, tender};
use hvt_abi::boot::{BootInfo, HOST_FEATURE_CLOCK_PAGE};
use hvt_abi::clock::CLOCK_PAGE_VERSION;
use hvt_abi::layout::{
    initial_rsp, BOOT_INFO_BASE, CR0_INIT, CR4_INIT, DEFAULT_MEM_SIZE, EFER_INIT, GDT_BASE,
    GDT_CODE_INDEX, GDT_DATA_INDEX, GDT_LIMIT, GUEST_MIN_BASE, PML4_BASE, RFLAGS_INIT,
    RFLAGS_IOPL3, TRAP_IDT_BASE, TRAP_IDT_LIMIT, TRAP_STACK_TOP, USER_GDT_LIMIT,
};
use hvt_abi::manifest::{mft_size, MFT_RESERVED_FIRST};

/// Runs the probe with `options` before and `args` after the image.
fn report(options: &[&str], image: &std::path::Path, args: &[&str]) -> HashMap<String, String> {
    let mut argv: Vec<std::ffi::OsString> = options.iter().map(Into::into).collect();
    argv.push(image.as_os_str().to_owned());
    argv.extend(args.iter().map(Into::into));
    let run = tender(argv);
    assert_eq!(run.code, 0, "{}", run.output());
    run.stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn hex(map: &HashMap<String, String>, key: &str) -> u64 {
    let text = map.get(key).unwrap_or_else(|| panic!("{key} not reported"));
    u64::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex value")
}

fn check_common(map: &HashMap<String, String>, mem: u64) {
    assert_eq!(hex(map, "rdi"), BOOT_INFO_BASE);
    assert_eq!(hex(map, "rsp"), initial_rsp(mem));
    for reg in [
        "rax", "rbx", "rcx", "rdx", "rsi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14",
        "r15",
    ] {
        assert_eq!(hex(map, reg), 0, "{reg}");
    }
    assert_eq!(hex(map, "boot.mem_size"), mem);
    // The manifest copy follows the boot info, the command line follows
    // the manifest: here one entry, the reserved one.
    let mft = BOOT_INFO_BASE + std::mem::size_of::<BootInfo>() as u64;
    assert_eq!(hex(map, "boot.mft"), mft);
    assert_eq!(hex(map, "boot.cmdline"), mft + mft_size(1) as u64);
    assert_eq!(hex(map, "boot.guest_features"), 0);
    assert_eq!(hex(map, "boot.net_ring"), 0);
    let kernel_end = hex(map, "boot.kernel_end");
    assert!(
        kernel_end > GUEST_MIN_BASE && kernel_end.is_multiple_of(0x1000),
        "kernel_end 0x{kernel_end:x}"
    );
    assert!(hex(map, "heap_start") >= kernel_end);
    let freq: u64 = map["boot.cpu_cycle_freq"].parse().unwrap();
    assert!(freq > 100_000_000, "TSC frequency {freq}");
    assert_eq!(map["mft.entries"], "1");
    assert_eq!(
        map["mft.0"],
        format!("type:{MFT_RESERVED_FIRST:#x},attached:0,name:")
    );
}

/// FNV-1a's offset basis: the probe's checksum of no non-zero byte.
const EMPTY_CHECKSUM: u64 = 0xcbf2_9ce4_8422_2325;

#[test]
fn cpl0_entry_state_matches_upstream() {
    let map = report(&[], &cpl0_copy("entry-state"), &["one", "two"]);
    check_common(&map, DEFAULT_MEM_SIZE);
    // Nothing of ours: no feature bit, and low memory past the command
    // line is all zero (no TSS, no clock page), as upstream leaves it.
    assert_eq!(hex(&map, "boot.host_features"), 0);
    assert_eq!(map["low.nonzero_pages"], "");
    assert_eq!(hex(&map, "low.checksum"), EMPTY_CHECKSUM);
    assert_eq!(map["clock.seq"], "0");
    assert_eq!(hex(&map, "rflags"), RFLAGS_INIT);
    // Selectors: GDT index times 8, RPL 0.
    assert_eq!(hex(&map, "cs"), u64::from(GDT_CODE_INDEX) * 8);
    assert_eq!(hex(&map, "ss"), u64::from(GDT_DATA_INDEX) * 8);
    assert_eq!(hex(&map, "cr0"), CR0_INIT);
    assert_eq!(hex(&map, "cr3"), PML4_BASE);
    assert_eq!(hex(&map, "cr4"), CR4_INIT);
    assert_eq!(hex(&map, "efer"), EFER_INIT);
    assert_eq!(map["cmdline"], "one two");
    // Upstream's tables: three descriptors, no IDT (§3.4), no trap path.
    assert_eq!(hex(&map, "gdtr.base"), GDT_BASE);
    assert_eq!(hex(&map, "gdtr.limit"), u64::from(GDT_LIMIT));
    assert_eq!(hex(&map, "idtr.base"), 0);
    assert_eq!(hex(&map, "idtr.limit"), 0);
    assert!(!map.contains_key("tss.rsp0"));
}

#[test]
fn cpl3_entry_state_is_upstream_state_in_ring_3() {
    let map = report(&[], &guest("entry-state"), &["--solo5:quiet", "a", "b c"]);
    check_common(&map, DEFAULT_MEM_SIZE);
    // Ours: the clock page is offered (§12.7) and already written; low
    // memory holds the TSS and its bitmap's end byte, and the clock page.
    assert_eq!(
        hex(&map, "boot.host_features"),
        u64::from(HOST_FEATURE_CLOCK_PAGE)
    );
    assert_eq!(map["low.nonzero_pages"], "0x18000,0x1a000,0x1b000");
    let seq: u32 = map["clock.seq"].parse().unwrap();
    assert!(seq >= 2 && seq.is_multiple_of(2), "clock page seq {seq}");
    assert_eq!(map["clock.version"], CLOCK_PAGE_VERSION.to_string());
    // Both selectors carry RPL 3. (Shadow-paging KVM reports the host's
    // user selectors and always runs user mode with IF set; what matters is
    // the privilege level.)
    assert_eq!(hex(&map, "cs") & 3, 3);
    assert_eq!(hex(&map, "ss") & 3, 3);
    let rflags = hex(&map, "rflags");
    // Apart from IF (0x200, as just said) and IOPL, which the tender sets
    // (§12) and shadow-paging KVM clears.
    assert_eq!(
        rflags & !(0x200 | RFLAGS_IOPL3),
        RFLAGS_INIT,
        "rflags 0x{rflags:x}"
    );
    assert!(
        !map.contains_key("cr0"),
        "a CPL 3 guest cannot read control registers"
    );
    // The log option is stripped before the application sees the line.
    assert_eq!(map["cmdline"], "a b c");
    // The trap path (§12.4): a fourth descriptor (DPL 0 code for the
    // gates), the IDT, and RSP0 at the top of the trap stack. (The GDT,
    // IDT, trampoline and stack pages are supervisor-only:
    // tests/hostile.rs `the_trap_path_pages_are_supervisor_only`.)
    assert_eq!(hex(&map, "gdtr.base"), GDT_BASE);
    assert_eq!(hex(&map, "gdtr.limit"), u64::from(USER_GDT_LIMIT));
    assert_eq!(hex(&map, "idtr.base"), TRAP_IDT_BASE);
    assert_eq!(hex(&map, "idtr.limit"), u64::from(TRAP_IDT_LIMIT));
    assert_eq!(hex(&map, "tss.rsp0"), TRAP_STACK_TOP);
}

#[test]
fn memory_size_sets_stack_and_boot_info() {
    let map = report(&["--mem=64"], &guest("entry-state"), &[]);
    check_common(&map, 64 << 20);
    assert_eq!(map["cmdline"], "");
}
