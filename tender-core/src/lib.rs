//! The half of `tender` that knows nothing of KVM: what the real tender and
//! the in-process mock tender (`tender-mock`) share, so that both serve a
//! guest with exactly the same code.
//!
//! * [`memory`]: guest memory as a cloneable handle that carries the one
//!   address check of §5;
//! * [`hypercall`]: the dispatch table modules register their handlers in;
//!   [`halt`]: the HALT argument, which more than its handler reads;
//! * [`module`] and [`lifecycle`]: what a module is (its options, memory,
//!   set-up, hypercalls, hooks) and the sequence that drives every module;
//! * [`vm`]: the few VM and vCPU operations a module may ask of its host,
//!   as traits the KVM tender and the mock implement;
//! * [`modules`]: core, block and net, each the whole story of one device;
//! * [`devices`]: the host back-ends modules are built from (console, poll
//!   set, tap, in-memory wire);
//! * [`error`] and [`diag`]: every failure, and the lines on stderr under
//!   the program's name.
//!
//! Section numbers (§N) refer to the ABI reference, `docs/abi.md`.

pub mod boot_info;
pub mod devices;
pub mod diag;
pub mod error;
pub mod halt;
pub mod hypercall;
pub mod interrupt;
pub mod lifecycle;
pub mod manifest;
pub mod memory;
pub mod module;
pub mod modules;
pub mod sandbox;
pub mod stats;
pub mod vm;

pub use error::{Error, Result};
pub use memory::GuestRam;
