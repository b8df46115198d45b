//! Guest-physical memory map and CPU constants (§3).

/// Lowest legal load address of an ELF segment (`HVT_GUEST_MIN_BASE`).
pub const GUEST_MIN_BASE: u64 = 0x10_0000;
/// GPA of the tender's GDT.
pub const GDT_BASE: u64 = 0x1000;
/// GPA of the PML4; also the value of CR3.
pub const PML4_BASE: u64 = 0x2000;
/// GPA of the PDPT.
pub const PDPT_BASE: u64 = 0x3000;
/// GPA of the first of the four page directories (one per GiB).
pub const PD_BASE: u64 = 0x4000;
/// Number of page directories (always all four, whatever the memory size).
pub const PD_COUNT: u64 = 4;
/// GPA of the 4 KiB page table that maps the first 2 MiB.
pub const PT0_BASE: u64 = 0x8000;
/// GPA of `struct hvt_boot_info`; the guest receives it in RDI.
pub const BOOT_INFO_BASE: u64 = 0x1_0000;
/// Size of the command line area, NUL included (`HVT_CMDLINE_SIZE`).
pub const CMDLINE_SIZE: usize = 8192;

/// GPA of the TSS the tender gives an unprivileged guest (§12): its I/O
/// permission bitmap lets CPL 3 code reach the hypercall ports where a
/// hypervisor does not honour RFLAGS.IOPL (shadow-paging KVM clears it on
/// the first exit). Read-only low memory, above the command line area.
pub const USER_TSS_BASE: u64 = 0x1_8000;
/// Offset of the I/O bitmap in that TSS (right after the 104-byte TSS).
pub const USER_TSS_IOMAP_OFFSET: u16 = 104;
/// Bytes of the I/O bitmap: one bit per port, all clear (every port
/// reaches the tender, which refuses all but its own), then one byte of
/// all ones as the architecture requires.
pub const USER_TSS_IOMAP_SIZE: u64 = USER_TSS_IOMAP_BYTES as u64;
const USER_TSS_IOMAP_BYTES: u32 = 65536 / 8 + 1;
/// TR limit: TSS plus bitmap, minus one.
pub const USER_TSS_LIMIT: u32 = USER_TSS_IOMAP_OFFSET as u32 + USER_TSS_IOMAP_BYTES - 1;

/// GPA of the clock page (§12.7), offered to unprivileged guests with
/// [`crate::boot::HOST_FEATURE_CLOCK_PAGE`]: the first page boundary above
/// the TSS and its bitmap (which end at 0x1A068), in read-only low memory.
pub const CLOCK_PAGE_BASE: u64 = 0x1_B000;

/// Default guest memory (512 MiB), in bytes.
pub const DEFAULT_MEM_SIZE: u64 = 512 << 20;
/// Guest memory is sized in multiples of one large page.
pub const MEM_GRANULE: u64 = 2 << 20;
/// Largest guest memory (4 GiB).
pub const MAX_MEM_SIZE: u64 = 4 << 30;

/// RSP at the first instruction (§3.2, §3.4): the guest-visible `mem_size`
/// minus 8, so that RSP + 8 is a multiple of 16, as just after a `call`.
pub const fn initial_rsp(mem_size: u64) -> u64 {
    mem_size - 8
}

/// Page-table entry bits used by the tender.
pub mod pte {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    /// Only set for unprivileged guests (§12).
    pub const USER: u64 = 1 << 2;
    pub const PAGE_SIZE: u64 = 1 << 7;
}

/// GDT descriptors written at [`GDT_BASE`] for a CPL 0 guest (§3.3).
pub const GDT_NULL: u64 = 0;
pub const GDT_CODE_KERNEL: u64 = 0x00AF_9900_0000_FFFF;
pub const GDT_DATA_KERNEL: u64 = 0x00CF_9300_0000_FFFF;
/// The same descriptors with DPL 3, for an unprivileged guest (§12).
pub const GDT_CODE_USER: u64 = 0x00AF_F900_0000_FFFF;
pub const GDT_DATA_USER: u64 = 0x00CF_F300_0000_FFFF;
/// GDT indices of the code and data descriptors.
pub const GDT_CODE_INDEX: u16 = 1;
pub const GDT_DATA_INDEX: u16 = 2;
/// GDTR limit: three 8-byte descriptors, minus one.
pub const GDT_LIMIT: u16 = 3 * 8 - 1;

/// The trap path of a guest with our note (§12.4): its GDT gains a DPL 0
/// code descriptor at this index (selector 0x18), the code segment of the
/// exception gates; the GDTR limit grows to four descriptors.
pub const GDT_TRAP_CODE_INDEX: u16 = 3;
pub const GDT_TRAP_CODE_SELECTOR: u16 = GDT_TRAP_CODE_INDEX << 3;
pub const USER_GDT_LIMIT: u16 = 4 * 8 - 1;
/// GPA of the IDT of a guest with our note: [`TRAP_VECTORS`] 64-bit
/// interrupt gates into the trampoline (§12.4). Below the boot information,
/// in pages a CPL 3 guest cannot see (supervisor-only, read-only).
pub const TRAP_IDT_BASE: u64 = 0x9000;
/// Exceptions with a gate: vectors 0-31.
pub const TRAP_VECTORS: u64 = 32;
/// IDTR limit: 32 gates of 16 bytes, minus one.
pub const TRAP_IDT_LIMIT: u16 = 32 * 16 - 1;
/// GPA of the CPL 0 trampoline page (supervisor-only, read-only): one
/// [`TRAP_STUB_SIZE`]-byte stub per vector, reporting on [`TRAP_PORT`].
pub const TRAP_TRAMPOLINE_BASE: u64 = 0xA000;
pub const TRAP_STUB_SIZE: u64 = 32;
/// GPA of the trampoline's stack page (supervisor-only, writable); its top
/// is the TSS's RSP0.
pub const TRAP_STACK_BASE: u64 = 0xB000;
pub const TRAP_STACK_TOP: u64 = TRAP_STACK_BASE + 0x1000;
/// Offset of RSP0 in the TSS.
pub const TSS_RSP0_OFFSET: u64 = 4;
/// The port the trampoline reports a trap on; the tender accepts it only
/// from the trampoline (CS [`GDT_TRAP_CODE_SELECTOR`], RIP in its page).
pub const TRAP_PORT: u16 = 0x5FF;
const _: () = assert!(TRAP_STACK_TOP <= BOOT_INFO_BASE && PT0_BASE < TRAP_IDT_BASE);
const _: () = assert!(TRAP_IDT_LIMIT as u64 == TRAP_VECTORS * 16 - 1);

/// Control register values at entry (§3.4).
pub const CR0_PE: u64 = 1 << 0;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_PG: u64 = 1 << 31;
pub const CR0_INIT: u64 = CR0_PE | CR0_NE | CR0_WP | CR0_PG;
pub const CR4_PAE: u64 = 1 << 5;
pub const CR4_OSFXSR: u64 = 1 << 9;
pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
pub const CR4_INIT: u64 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
/// `wrfsbase`/`rdfsbase` allowed at any CPL: set for guests with our note
/// (§12), which have no `wrmsr` at CPL 3 to set their thread pointer with.
/// Upstream leaves it clear.
pub const CR4_FSGSBASE: u64 = 1 << 16;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
pub const EFER_INIT: u64 = EFER_LME | EFER_LMA;
/// RFLAGS bit 1 is reserved and always set; IF is clear.
pub const RFLAGS_INIT: u64 = 0x2;
/// I/O privilege level 3, so an unprivileged guest may `outl` (§12).
pub const RFLAGS_IOPL3: u64 = 3 << 12;

const _: () = assert!(CR0_INIT == 0x8001_0021);
const _: () = assert!(CR4_INIT == 0x620);
const _: () = assert!(EFER_INIT == 0x500);
const _: () = assert!(initial_rsp(DEFAULT_MEM_SIZE) == 0x1FFF_FFF8);
const _: () = assert!((initial_rsp(MEM_GRANULE) + 8).is_multiple_of(16));
