//! Identity-mapped 4-level page tables (§3.3).

use hvt_abi::layout::{
    pte, BOOT_INFO_BASE, GDT_BASE, GUEST_MIN_BASE, PDPT_BASE, PD_BASE, PD_COUNT, PML4_BASE,
    PT0_BASE, TRAP_IDT_BASE, TRAP_STACK_BASE, TRAP_TRAMPOLINE_BASE,
};

use super::Privilege;
use tender_core::error::Result;
use tender_core::memory::{host_len, GuestRam};

const ENTRIES: usize = 512;
const LARGE_PAGE: u64 = 2 << 20;
const PAGE: u64 = 4096;

fn table_bytes(entries: &[u64; ENTRIES]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// Writes PML4, PDPT, the four page directories and PT0 for a guest of
/// `alloc_size` bytes. The user bit is set on every entry for CPL 3 guests.
pub fn write_page_tables(ram: &GuestRam, privilege: Privilege) -> Result<()> {
    let user = if privilege == Privilege::User {
        pte::USER
    } else {
        0
    };
    let table = pte::PRESENT | pte::WRITABLE | user;

    let mut pml4 = [0u64; ENTRIES];
    pml4[0] = PDPT_BASE | table;
    ram.write_bytes(PML4_BASE, &table_bytes(&pml4))?;

    let mut pdpt = [0u64; ENTRIES];
    for (i, entry) in pdpt.iter_mut().take(host_len(PD_COUNT)).enumerate() {
        *entry = (PD_BASE + i as u64 * PAGE) | table;
    }
    ram.write_bytes(PDPT_BASE, &table_bytes(&pdpt))?;

    // The four page directories are contiguous: index i maps i * 2 MiB.
    let large_pages = host_len(ram.alloc_size() / LARGE_PAGE);
    let mut directories = vec![0u64; ENTRIES * host_len(PD_COUNT)];
    directories[0] = PT0_BASE | table;
    for (i, entry) in directories.iter_mut().enumerate().take(large_pages).skip(1) {
        *entry = (i as u64 * LARGE_PAGE) | table | pte::PAGE_SIZE;
    }
    let bytes: Vec<u8> = directories.iter().flat_map(|e| e.to_le_bytes()).collect();
    ram.write_bytes(PD_BASE, &bytes)?;

    // First 2 MiB in 4 KiB pages: nothing below the boot info, low memory
    // read-only, the image area read/write.
    let mut pt0 = [0u64; ENTRIES];
    for (i, entry) in pt0.iter_mut().enumerate() {
        let addr = i as u64 * PAGE;
        *entry = if addr < BOOT_INFO_BASE {
            0
        } else if addr < GUEST_MIN_BASE {
            addr | pte::PRESENT | user
        } else {
            addr | pte::PRESENT | pte::WRITABLE | user
        };
    }
    if privilege == Privilege::User {
        // The trap path (§12.4), supervisor-only: the CPU reads the GDT and
        // the IDT, runs the trampoline and pushes on its stack at CPL 0.
        for (addr, bits) in [
            (GDT_BASE, pte::PRESENT),
            (TRAP_IDT_BASE, pte::PRESENT),
            (TRAP_TRAMPOLINE_BASE, pte::PRESENT),
            (TRAP_STACK_BASE, pte::PRESENT | pte::WRITABLE),
        ] {
            pt0[host_len(addr / PAGE)] = addr | bits;
        }
    }
    ram.write_bytes(PT0_BASE, &table_bytes(&pt0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ram: &GuestRam, table: u64, index: u64) -> u64 {
        let mut b = [0u8; 8];
        ram.read_bytes(table + index * 8, &mut b).unwrap();
        u64::from_le_bytes(b)
    }

    /// The byte values upstream's tender writes for a 64 MiB guest (§3.3).
    #[test]
    fn kernel_tables_match_upstream_bytes() {
        let ram = GuestRam::new(64 << 20).unwrap();
        write_page_tables(&ram, Privilege::Kernel).unwrap();
        assert_eq!(entry(&ram, PML4_BASE, 0), 0x3003);
        assert_eq!(entry(&ram, PML4_BASE, 1), 0);
        let pdpt: Vec<u64> = (0..5).map(|i| entry(&ram, PDPT_BASE, i)).collect();
        assert_eq!(pdpt, [0x4003, 0x5003, 0x6003, 0x7003, 0]);
        assert_eq!(entry(&ram, PD_BASE, 0), 0x8003);
        assert_eq!(entry(&ram, PD_BASE, 1), 0x20_0083);
        assert_eq!(entry(&ram, PD_BASE, 31), 0x3E0_0083);
        assert_eq!(entry(&ram, PD_BASE, 32), 0);
        assert_eq!(entry(&ram, PT0_BASE, 0), 0);
        assert_eq!(entry(&ram, PT0_BASE, 15), 0);
        assert_eq!(entry(&ram, PT0_BASE, 16), 0x10001);
        assert_eq!(entry(&ram, PT0_BASE, 255), 0xFF001);
        assert_eq!(entry(&ram, PT0_BASE, 256), 0x10_0003);
        assert_eq!(entry(&ram, PT0_BASE, 511), 0x1F_F003);
    }

    #[test]
    fn four_gib_fills_all_four_directories() {
        let ram = GuestRam::new(4 << 30).unwrap();
        write_page_tables(&ram, Privilege::Kernel).unwrap();
        assert_eq!(
            entry(&ram, PD_BASE + 3 * PAGE, 511),
            (2047 * LARGE_PAGE) | 0x83
        );
    }

    #[test]
    fn user_tables_add_the_user_bit_and_the_trap_path() {
        let kernel = GuestRam::new(8 << 20).unwrap();
        let user = GuestRam::new(8 << 20).unwrap();
        write_page_tables(&kernel, Privilege::Kernel).unwrap();
        write_page_tables(&user, Privilege::User).unwrap();
        for (table, count) in [
            (PML4_BASE, 512),
            (PDPT_BASE, 512),
            (PD_BASE, 2048),
            (PT0_BASE, 512),
        ] {
            for i in 0..count {
                let k = entry(&kernel, table, i);
                let u = entry(&user, table, i);
                // The trap path's pages: supervisor-only, the stack writable.
                if table == PT0_BASE && matches!(i, 1 | 9..=11) {
                    let writable = if i == 11 { pte::WRITABLE } else { 0 };
                    assert_eq!((k, u), (0, (i * PAGE) | pte::PRESENT | writable));
                    continue;
                }
                let expected = if k == 0 { 0 } else { k | pte::USER };
                assert_eq!(u, expected, "table 0x{table:x} entry {i}");
            }
        }
    }
}
