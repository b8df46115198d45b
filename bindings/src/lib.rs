//! Guest-side bindings for the Solo5 `hvt` ABI (version 2), in Rust.
//!
//! A guest built with these bindings is an ordinary hvt unikernel: it runs on
//! this project's `tender` and on upstream `solo5-hvt`. It executes no
//! privileged instruction (no SSE either: target `x86_64-unknown-none`), and
//! says so in a note of ours, so `tender` starts it at CPL 3 (§12).
//!
//! An application declares its devices with [`manifest!`] and its entry
//! point with [`entry!`]:
//!
//! ```ignore
//! hvt_bindings::manifest!();
//! hvt_bindings::entry!(main);
//! fn main(start: &hvt_bindings::StartInfo) -> i32 { 0 }
//! ```
#![no_std]

pub use hvt_abi as abi;

pub mod block;
pub mod boot;
pub mod clock;
pub mod cmdline;
pub mod console;
pub mod exit;
pub mod hypercall;
pub mod net;
pub mod notes;
pub mod poll;

#[cfg(not(target_os = "none"))]
pub mod host;

#[cfg(all(target_os = "none", feature = "panic-handler"))]
mod panic;
#[cfg(target_os = "none")]
pub mod start;

pub use boot::StartInfo;
