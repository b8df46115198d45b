//! The Solo5 `hvt` ABI, version 2, as `#[repr(C)]` Rust.
//!
//! This crate is the single place where both sides of the ABI, the `tender`
//! (host) and the guest `bindings`, get their numbers and layouts from. Every
//! size and field offset stated in the ABI reference (`docs/abi.md`) is checked at
//! compile time at the bottom of each module, so a layout mistake does not
//! build. Section numbers (§N) refer to that document.
#![no_std]

pub mod boot;
pub mod clock;
pub mod hypercall;
pub mod layout;
pub mod manifest;
pub mod note;
pub mod ring;

#[cfg(feature = "vm-memory")]
mod byte_valued;

/// Offset of `field` in `T`, usable in `const` context.
#[macro_export]
#[doc(hidden)]
macro_rules! assert_layout {
    ($ty:ty, size = $size:expr $(, $field:ident @ $off:expr)* $(,)?) => {
        const _: () = assert!(core::mem::size_of::<$ty>() == $size);
        $(const _: () = assert!(core::mem::offset_of!($ty, $field) == $off);)*
    };
}
