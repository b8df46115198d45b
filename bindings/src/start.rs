//! Guest entry (§7). The tender jumps to `_start` with the boot information's
//! address in RDI and RSP = top of memory - 8.

use hvt_abi::boot::BootInfo;

use crate::cmdline::{strip_log_options_bytes, LogLevel};
use crate::{boot, clock, console, exit, StartInfo};

/// Registers exactly as the tender left them at the first instruction:
/// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8-r15, rflags, cs, ss.
///
/// In `.data`, not `.bss`: the bss may end beyond guest memory, and nothing
/// there may be touched before the memory check.
#[no_mangle]
#[link_section = ".data"]
static mut HVT_ENTRY_REGISTERS: [u64; 19] = [0; 19];

// Saves the entry registers before any compiled code runs, then jumps (not
// calls) to Rust so the stack keeps the alignment of a fresh call.
core::arch::global_asm!(
    ".section .text.start, \"ax\"",
    ".global _start",
    "_start:",
    "mov [rip + {regs} + 0], rax",
    "mov [rip + {regs} + 8], rbx",
    "mov [rip + {regs} + 16], rcx",
    "mov [rip + {regs} + 24], rdx",
    "mov [rip + {regs} + 32], rsi",
    "mov [rip + {regs} + 40], rdi",
    "mov [rip + {regs} + 48], rbp",
    "mov [rip + {regs} + 56], rsp",
    "mov [rip + {regs} + 64], r8",
    "mov [rip + {regs} + 72], r9",
    "mov [rip + {regs} + 80], r10",
    "mov [rip + {regs} + 88], r11",
    "mov [rip + {regs} + 96], r12",
    "mov [rip + {regs} + 104], r13",
    "mov [rip + {regs} + 112], r14",
    "mov [rip + {regs} + 120], r15",
    "pushfq",
    "pop rax",
    "mov [rip + {regs} + 128], rax",
    "mov rax, cs",
    "mov [rip + {regs} + 136], rax",
    "mov rax, ss",
    "mov [rip + {regs} + 144], rax",
    "xor eax, eax",
    // The top 1 KiB below the initial RSP stays unused: nothing live lies in
    // the last bytes of memory, where a guest may have a device transfer
    // data (the hostile suite's edge transfers do). A multiple of 16, so the
    // alignment of a fresh call is kept.
    "sub rsp, 1024",
    "jmp {start}",
    regs = sym HVT_ENTRY_REGISTERS,
    start = sym bindings_start,
);

/// The registers saved at `_start`.
pub fn entry_registers() -> [u64; 19] {
    // SAFETY: written once by `_start` before any Rust code ran.
    unsafe { core::ptr::addr_of!(HVT_ENTRY_REGISTERS).read() }
}

/// CS's place in [`entry_registers`] (`_start` stores it at offset 136).
const ENTRY_CS: usize = 17;

/// The privilege level the guest runs at, CS's low bits at `_start`: 3
/// on `tender` for a guest with our note (§12), 0 on upstream
/// `solo5-hvt`. Nothing after `_start` changes it, so the saved CS is the
/// answer, without reading CS again.
#[inline]
pub fn privilege_level() -> u8 {
    // One load, not a copy of every register: C programs may ask at each
    // `solo5_set_tls_base`.
    // SAFETY: written once by `_start` before any Rust code ran.
    let cs = unsafe { core::ptr::addr_of!(HVT_ENTRY_REGISTERS[ENTRY_CS]).read() };
    // Two bits: the cast keeps them all.
    #[allow(clippy::cast_possible_truncation)]
    let level = (cs & 3) as u8;
    level
}

/// Heap smaller than this aborts at start, as upstream does.
const MIN_HEAP: usize = 512 << 10;

extern "C" {
    static _end: u8;
}

extern "Rust" {
    fn __hvt_app_main(start: &StartInfo) -> i32;
}

unsafe extern "C" fn bindings_start(info: *const BootInfo) -> ! {
    // SAFETY: the tender passes the address of its boot information, which
    // stays mapped (read-only) for the life of the guest.
    let info: &'static BootInfo = unsafe { &*info };

    // Only the stack and .data until the memory check has passed: the bss
    // of a large image may lie beyond the end of guest memory.
    // SAFETY: the tender wrote a NUL-terminated command line at `cmdline`.
    let raw = unsafe { core::ffi::CStr::from_ptr(info.cmdline as *const core::ffi::c_char) };
    // The log options count whatever follows them; a rest that is not
    // UTF-8 reaches a Rust application as an empty line (the C API hands
    // over the bytes).
    let (level, rest) = strip_log_options_bytes(raw.to_bytes());
    let cmdline = core::str::from_utf8(rest).unwrap_or("");
    console::set_log_level(level);
    let heap_start = (core::ptr::addr_of!(_end) as usize + 0xFFF) & !0xFFF;
    let mem_size = usize::try_from(info.mem_size).unwrap_or(usize::MAX);
    if mem_size < heap_start + MIN_HEAP {
        crate::log!(LogLevel::Error, "ABORT: Not enough memory");
        exit::halt(hvt_abi::hypercall::exit::ABORT);
    }

    // SAFETY: first thing after the check, single-threaded.
    unsafe { boot::set_boot_info(info) };
    // The .bss is in memory: console output may wait in its buffer.
    console::start_buffering();
    clock::init(info.cpu_cycle_freq);
    clock::init_wall(info.host_features);
    crate::log!(
        LogLevel::Info,
        "Bindings version v{} (tender, Rust, CPL {})",
        env!("CARGO_PKG_VERSION"),
        privilege_level()
    );
    let start = StartInfo {
        cmdline,
        heap_start,
        heap_size: mem_size - heap_start,
    };
    // SAFETY: the application defines it with `entry!`.
    let status = unsafe { __hvt_app_main(&start) };
    exit::exit(status)
}
