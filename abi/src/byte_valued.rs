//! `ByteValued` for the plain-integer structs the tender reads from and writes
//! to guest memory.
// SAFETY (for every impl below): each type is `#[repr(C)]`, made only of
// integers and byte arrays, so every bit pattern is a valid value; padding is
// never read as a field.
use vm_memory::ByteValued;

unsafe impl ByteValued for crate::boot::BootInfo {}
unsafe impl ByteValued for crate::hypercall::Walltime {}
unsafe impl ByteValued for crate::hypercall::Puts {}
unsafe impl ByteValued for crate::hypercall::Poll {}
unsafe impl ByteValued for crate::hypercall::BlockIo {}
unsafe impl ByteValued for crate::hypercall::NetIo {}
unsafe impl ByteValued for crate::hypercall::Halt {}
unsafe impl ByteValued for crate::manifest::MftHeader {}
unsafe impl ByteValued for crate::manifest::MftEntry {}
unsafe impl ByteValued for crate::ring::RingEntry {}
unsafe impl ByteValued for crate::ring::RingCommit {}
unsafe impl ByteValued for crate::note::NoteHeader {}
unsafe impl ByteValued for crate::note::AbiDesc {}
unsafe impl ByteValued for crate::note::UnprivilegedDesc {}
