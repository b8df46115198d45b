//! `ByteValued` for the plain-integer structs the tender reads from and writes
//! to guest memory.
use vm_memory::ByteValued;

macro_rules! byte_valued {
    ($($ty:ty),* $(,)?) => {
        $(
            // SAFETY: every type listed is `#[repr(C)]`, made only of
            // integers and byte arrays, so every bit pattern is a valid
            // value; padding is never read as a field.
            unsafe impl ByteValued for $ty {}
        )*
    };
}

byte_valued!(
    crate::boot::BootInfo,
    crate::clock::ClockPage,
    crate::hypercall::Walltime,
    crate::hypercall::Puts,
    crate::hypercall::Poll,
    crate::hypercall::BlockIo,
    crate::hypercall::NetIo,
    crate::hypercall::Halt,
    crate::hypercall::TrapFrame,
    crate::manifest::MftHeader,
    crate::manifest::MftEntry,
    crate::ring::RingEntry,
    crate::ring::RingCommit,
    crate::note::NoteHeader,
    crate::note::AbiDesc,
    crate::note::UnprivilegedDesc,
);
