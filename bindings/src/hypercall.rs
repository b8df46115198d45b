//! The hypercall transport (§5): `outl %eax, %dx` with `DX = 0x500 + nr` and
//! `EAX` the guest-physical address of the argument struct.

/// Issues hypercall `nr` with `arg` as its argument struct. The handler's
/// results are in `*arg` when this returns.
///
/// # Safety
/// `arg` must point at the argument struct `nr` expects, below 4 GiB (guest
/// memory always is), and its contents must be what the ABI says.
use core::sync::atomic::{AtomicU64, Ordering};

/// Hypercalls issued through [`hypercall`]: for a guest, every one is a VM
/// exit (benchmarks count exits with it). In .data: counted before the
/// start-up's memory check, when the .bss may lie beyond guest memory.
#[cfg_attr(target_os = "none", link_section = ".data")]
static ISSUED: AtomicU64 = AtomicU64::new(0);

/// The number of hypercalls this guest has issued so far.
pub fn issued() -> u64 {
    ISSUED.load(Ordering::Relaxed)
}

fn count() {
    // Single-threaded guest: no need for a locked add.
    ISSUED.store(
        ISSUED.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

#[cfg(target_os = "none")]
#[inline(always)]
pub unsafe fn hypercall<T>(nr: u16, arg: *mut T) {
    count();
    // No `nomem`: the asm is a compiler barrier, so the argument struct is
    // written before and read after the exit (x86 is TSO, no fence needed).
    // reason: guest memory ends at 4 GiB at most (`MAX_MEM_SIZE`), so the
    // address of a guest struct fits in EAX; on every hypercall, so no check.
    #[allow(clippy::cast_possible_truncation)]
    let gpa = arg as usize as u32;
    // SAFETY: the caller guarantees `arg` is the struct `nr` expects; the
    // `out` only exits to the tender, which reads and writes that struct.
    unsafe {
        core::arch::asm!(
            "out dx, eax",
            in("dx") hvt_abi::hypercall::PIO_BASE + nr,
            in("eax") gpa,
            options(nostack, preserves_flags),
        );
    }
}

/// Host build: forwards to the installed transport.
///
/// # Safety
/// As for the guest build: `arg` must be the struct `nr` expects.
#[cfg(not(target_os = "none"))]
pub unsafe fn hypercall<T>(nr: u16, arg: *mut T) {
    count();
    crate::host::call(nr, arg.cast())
}
