//! The hypercall transport (§5): `outl %eax, %dx` with `DX = 0x500 + nr` and
//! `EAX` the guest-physical address of the argument struct.

/// Issues hypercall `nr` with `arg` as its argument struct. The handler's
/// results are in `*arg` when this returns.
///
/// # Safety
/// `arg` must point at the argument struct `nr` expects, below 4 GiB (guest
/// memory always is), and its contents must be what the ABI says.
#[cfg(target_os = "none")]
#[inline(always)]
pub unsafe fn hypercall<T>(nr: u16, arg: *mut T) {
    // No `nomem`: the asm is a compiler barrier, so the argument struct is
    // written before and read after the exit (x86 is TSO, no fence needed).
    core::arch::asm!(
        "out dx, eax",
        in("dx") hvt_abi::hypercall::PIO_BASE + nr,
        in("eax") arg as usize as u32,
        options(nostack, preserves_flags),
    );
}

/// Host build: forwards to the installed transport.
///
/// # Safety
/// As for the guest build: `arg` must be the struct `nr` expects.
#[cfg(not(target_os = "none"))]
pub unsafe fn hypercall<T>(nr: u16, arg: *mut T) {
    crate::host::call(nr, arg.cast())
}
