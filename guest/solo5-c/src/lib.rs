//! Solo5's C API (`include/solo5.h`) on top of the Rust hvt bindings, built
//! as `libsolo5_hvt.a`: a C program written for Solo5 links with it (see
//! `scripts/hvt-cc`) and becomes an hvt unikernel that runs at CPL 3 on
//! `tender` (it carries the bindings' note) and at CPL 0 on upstream
//! `solo5-hvt`.
//!
//! The bindings' `_start` sets the guest up and calls the application entry
//! this library defines, which calls the C program's `solo5_app_main`. Each
//! `solo5_*` function is a thin layer over the bindings; the C rules that
//! Rust's types do not carry (null pointers, one block per call) are checked
//! here. Every pointer a C caller passes is trusted as C trusts it.
#![no_std]

mod acquire;
mod app;
mod block;
mod console;
mod net;
mod stack_protector;
mod tls;
mod traps;

/// `solo5_result_t`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // AGAIN is only ever returned by the tender, as a number.
pub enum Solo5Result {
    Ok = 0,
    Again = 1,
    Einval = 2,
    Eunspec = 3,
}
