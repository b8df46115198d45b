//! Thread-local storage: `solo5_tls_size`, `solo5_tls_tp_offset`,
//! `solo5_tls_init` and `solo5_set_tls_base`.
//!
//! A block is laid out as the linker assumed when it computed the `%fs`
//! offsets of the program's thread-locals (x86_64 variant II, see the end of
//! `bindings/hvt.lds`): `.tdata`'s initial values, `.tbss` zeroed, padding
//! to the TLS alignment, then the thread pointer, whose value is its own
//! address.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::Solo5Result;

extern "C" {
    /// Start of `.tdata`'s initial image (loaded read-only).
    static _stdata: u8;
    // Absolute symbols: their addresses are the values.
    static _ltdata: u8;
    static _tls_length: u8;
}

/// Bytes of `.tdata`.
fn tdata_len() -> usize {
    core::ptr::addr_of!(_ltdata) as usize
}

/// Bytes from the block's start to the thread pointer.
fn tls_length() -> usize {
    core::ptr::addr_of!(_tls_length) as usize
}

#[no_mangle]
pub extern "C" fn solo5_tls_size() -> usize {
    tls_length() + core::mem::size_of::<usize>()
}

#[no_mangle]
pub extern "C" fn solo5_tls_tp_offset(tls: usize) -> usize {
    tls.wrapping_add(tls_length())
}

/// # Safety
/// `tls` is 0 or the start of `solo5_tls_size()` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn solo5_tls_init(tls: usize) -> Solo5Result {
    if tls == 0 {
        return Solo5Result::Einval;
    }
    let block = tls as *mut u8;
    // SAFETY: the caller's block holds `solo5_tls_size()` bytes; `.tdata`'s
    // image is `tdata_len()` bytes of our own read-only data, which does not
    // overlap a block the program allocated.
    unsafe {
        core::ptr::copy_nonoverlapping(core::ptr::addr_of!(_stdata), block, tdata_len());
        block
            .add(tdata_len())
            .write_bytes(0, tls_length() - tdata_len());
        let tp = block.add(tls_length()).cast::<usize>();
        tp.write_unaligned(tp as usize);
    }
    Solo5Result::Ok
}

/// Makes `base` the thread pointer (FS base). At CPL 3 (on `tender`, which
/// sets CR4.FSGSBASE for guests with our note) with `wrfsbase`; at CPL 0
/// (upstream `solo5-hvt`) with `wrmsr`, which upstream's CPU state allows
/// and which CPL 3 forbids. SOLO5_R_EINVAL at CPL 3 on a CPU without
/// FSGSBASE.
#[no_mangle]
pub extern "C" fn solo5_set_tls_base(base: usize) -> Solo5Result {
    if hvt_bindings::start::privilege_level() == 0 {
        const IA32_FS_BASE: u32 = 0xC000_0100;
        let base = base as u64;
        // wrmsr takes the value as two halves: the casts keep 32 bits each.
        #[allow(clippy::cast_possible_truncation)]
        let (low, high) = (base as u32, (base >> 32) as u32);
        // SAFETY: at CPL 0, writing the FS base changes nothing but the
        // thread pointer, which is what the caller asks.
        unsafe {
            core::arch::asm!(
                "wrmsr",
                in("ecx") IA32_FS_BASE,
                in("eax") low,
                in("edx") high,
                options(nostack, preserves_flags),
            );
        }
        return Solo5Result::Ok;
    }
    if !cpu_has_fsgsbase() {
        return Solo5Result::Einval;
    }
    // SAFETY: the CPU has FSGSBASE and the tender enabled it for our
    // guests; the instruction only sets the thread pointer.
    unsafe { core::arch::asm!("wrfsbase {}", in(reg) base, options(nostack, preserves_flags)) };
    Solo5Result::Ok
}

/// CPUID.(EAX=7,ECX=0):EBX bit 0, asked once (CPUID is a VM exit).
fn cpu_has_fsgsbase() -> bool {
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;
    static FSGSBASE: AtomicU8 = AtomicU8::new(UNKNOWN);
    match FSGSBASE.load(Ordering::Relaxed) {
        YES => true,
        NO => false,
        _ => {
            // CPUID leaf 7 exists on every x86_64 CPU KVM offers.
            let ebx = core::arch::x86_64::__cpuid_count(7, 0).ebx;
            let has = ebx & 1 != 0;
            FSGSBASE.store(if has { YES } else { NO }, Ordering::Relaxed);
            has
        }
    }
}
