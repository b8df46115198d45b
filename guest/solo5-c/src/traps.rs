//! CPU exceptions at CPL 0 (upstream `solo5-hvt`): a report and ABORT, as
//! upstream's bindings give them, instead of a triple fault.
//!
//! At CPL 0 the library loads an IDT whose 32 exception gates lead to
//! [`on_trap`]: it prints `Solo5: trap: type=#PF ec=0x... rip=0x...
//! rsp=0x... rflags=0x...` (and `cr2` for a page fault), then `Solo5:
//! ABORT: ...: Fatal trap`, and halts with 255 and the trap frame as the
//! cookie (§6.6). At CPL 3 (`tender`) there is no IDT: `lidt` would fault
//! there, and the tender reports a fault of a CPL 3 guest itself (§12.4).
//! Traps run on a stack of their own (IST1 of a TSS the library loads into
//! a copy of the tender's GDT), as upstream's bindings run theirs.

use hvt_bindings::abi::hypercall::{exit, HALT_COOKIE_MAX};
use hvt_bindings::abi::layout::{GDT_CODE_KERNEL, GDT_DATA_KERNEL};
use hvt_bindings::cmdline::LogLevel;
use hvt_bindings::exit::halt_with_cookie;

/// Upstream's names of the 32 exception vectors.
const NAMES: [&str; 32] = [
    "#DE", "#DB", "#NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#9", "#TS", "#NP", "#SS",
    "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#21", "#22", "#23", "#24", "#25",
    "#26", "#27", "#28", "#29", "#30", "#31",
];

/// What a stub leaves on the stack for [`on_trap`]: the vector, the error
/// code (0 when the CPU pushes none), then the CPU's own frame.
#[repr(C)]
struct Frame {
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// The cookie HALT points at: the trap frame upstream's bindings pass
/// (`cr2, error_code, rip, cs, rflags, rsp, ss`), in a block of the size the
/// tender reads.
#[repr(C, align(16))]
struct Cookie([u64; COOKIE_WORDS]);

/// 512 bytes: the constant fits any usize.
#[allow(clippy::cast_possible_truncation)]
const COOKIE_WORDS: usize = HALT_COOKIE_MAX as usize / 8;

static mut COOKIE: Cookie = Cookie([0; COOKIE_WORDS]);

/// 32 gates of 16 bytes each.
#[repr(C, align(16))]
struct Idt([u64; 64]);

static mut IDT: Idt = Idt([0; 64]);

/// The IDTR limit: the table's size less one (511).
const IDT_LIMIT: u16 = 32 * 16 - 1;
const _: () = assert!(core::mem::size_of::<Idt>() == IDT_LIMIT as usize + 1);

/// The address of vector `vector`'s stub.
fn stub_address(vector: usize) -> u64 {
    extern "C" {
        static solo5_c_trap_table: [u64; 32];
    }
    // SAFETY: the table is 32 addresses, written by the assembler.
    unsafe {
        core::ptr::addr_of!(solo5_c_trap_table)
            .cast::<u64>()
            .add(vector)
            .read()
    }
}

// One stub per vector: push a zero error code where the CPU pushes none
// (all vectors but 8, 10-14, 17, 21, 29 and 30), push the vector, and go
// to the common part, which passes the frame to Rust on a 16-byte aligned
// stack. `on_trap` never returns. The table lists the stubs' addresses.
core::arch::global_asm!(
    ".pushsection .rodata.solo5_c_trap_table, \"a\"",
    ".balign 8",
    ".global solo5_c_trap_table",
    "solo5_c_trap_table:",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    ".quad solo5_c_trap_\\n",
    ".endr",
    ".popsection",
    ".pushsection .text.solo5_c_traps, \"ax\"",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "solo5_c_trap_\\n:",
    ".if \\n == 8 || (\\n >= 10 && \\n <= 14) || \\n == 17 || \\n == 21 || \\n == 29 || \\n == 30",
    ".else",
    "push 0",
    ".endif",
    "push \\n",
    "jmp solo5_c_trap_common",
    ".endr",
    "solo5_c_trap_common:",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {handler}",
    "ud2",
    ".popsection",
    handler = sym on_trap,
);

/// The stack traps run on (IST1 of our TSS), as upstream's bindings give
/// theirs: a fault on a broken stack is still reported.
#[repr(C, align(16))]
struct TrapStack([u8; 8192]);

static mut TRAP_STACK: TrapStack = TrapStack([0; 8192]);

/// A 64-bit TSS: only IST1 is used. 104 bytes; the I/O map base at its end
/// means no I/O bitmap.
#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    io_map_base: u16,
}

static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp: [0; 3],
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    io_map_base: 104,
};

/// Our GDT: the tender's null, code and data descriptors, then the TSS's
/// 16-byte descriptor (selector 0x18).
#[repr(C, align(16))]
struct Gdt([u64; 5]);

static mut GDT: Gdt = Gdt([0; 5]);

#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

/// Loads a GDT of our own with a TSS in it, so that the gates can switch to
/// [`TRAP_STACK`]. Its code and data descriptors are those CS and the data
/// segments hold now (the tender's GDT is not mapped in the guest, so it is
/// not copied: §3.4's values, 64-bit code at 0x08, data at 0x10), so no
/// segment needs reloading.
///
/// # Safety
/// At CPL 0, before the C program runs.
unsafe fn load_tss() {
    // SAFETY: single-threaded, before the C program runs.
    let (gdt, tss) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(GDT),
            core::ptr::addr_of_mut!(TSS),
        )
    };
    gdt.0[1] = GDT_CODE_KERNEL;
    gdt.0[2] = GDT_DATA_KERNEL;
    let stack_top = core::ptr::addr_of!(TRAP_STACK) as u64 + 8192;
    // SAFETY: our TSS, not in use yet.
    unsafe { core::ptr::addr_of_mut!((*tss).ist[0]).write_unaligned(stack_top) };
    let base = tss as u64;
    let limit = core::mem::size_of::<Tss>() as u64 - 1;
    // An available 64-bit TSS (type 9), present.
    gdt.0[3] = (limit & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | (0x89 << 40)
        | (((limit >> 16) & 0xF) << 48)
        | (((base >> 24) & 0xFF) << 56);
    gdt.0[4] = base >> 32;
    let pointer = TablePointer {
        limit: 5 * 8 - 1,
        base: core::ptr::addr_of!(GDT) as u64,
    };
    // SAFETY: at CPL 0; the new GDT keeps the descriptors CS and the data
    // segments were loaded from, at the same selectors.
    unsafe {
        core::arch::asm!(
            "lgdt [{pointer}]",
            "ltr {selector:x}",
            pointer = in(reg) &pointer,
            selector = in(reg) 0x18u16,
            options(nostack, preserves_flags),
        )
    };
}

/// Loads the IDT, at CPL 0 only (`lidt` is privileged).
pub fn install(cpl: u8) {
    if cpl != 0 {
        return;
    }
    // SAFETY: at CPL 0, before the C program runs.
    unsafe { load_tss() };
    let cs: u16;
    // SAFETY: reading CS has no effect.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: single-threaded, before the C program runs; nothing else
    // touches the table.
    let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
    for vector in 0..32 {
        let offset = stub_address(vector);
        // A 64-bit interrupt gate: present, DPL 0, type 0xE, IST 1.
        idt.0[2 * vector] = (offset & 0xFFFF)
            | (u64::from(cs) << 16)
            | (1 << 32)
            | (0x8E << 40)
            | ((offset >> 16) & 0xFFFF) << 48;
        idt.0[2 * vector + 1] = offset >> 32;
    }
    let pointer = TablePointer {
        limit: IDT_LIMIT,
        base: core::ptr::addr_of!(IDT) as u64,
    };
    // SAFETY: at CPL 0; the table is static and filled above.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags))
    };
}

extern "C" fn on_trap(frame: *const Frame) -> ! {
    // SAFETY: the stub passes the frame it built on the stack.
    let frame = unsafe { &*frame };
    let vector = usize::try_from(frame.vector).unwrap_or(usize::MAX);
    let name = NAMES.get(vector).copied().unwrap_or("#??");
    hvt_bindings::log!(
        LogLevel::Error,
        "trap: type={} ec={:#x} rip={:#x} rsp={:#x} rflags={:#x}",
        name,
        frame.error_code,
        frame.rip,
        frame.rsp,
        frame.rflags
    );
    let cr2 = if vector == 14 {
        let cr2: u64;
        // SAFETY: at CPL 0 (only then is this IDT loaded); reads CR2.
        unsafe {
            core::arch::asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags))
        };
        hvt_bindings::log!(LogLevel::Info, "trap: cr2={:#x}", cr2);
        cr2
    } else {
        0
    };
    hvt_bindings::log!(
        LogLevel::Error,
        "ABORT: {}:{}: Fatal trap",
        file!(),
        line!()
    );
    // SAFETY: single-threaded; the guest ends with this HALT.
    let cookie = unsafe { &mut *core::ptr::addr_of_mut!(COOKIE) };
    cookie.0[..7].copy_from_slice(&[
        cr2,
        frame.error_code,
        frame.rip,
        frame.cs,
        frame.rflags,
        frame.rsp,
        frame.ss,
    ]);
    halt_with_cookie(exit::ABORT, cookie.0.as_ptr() as u64)
}
