//! The fuzz harnesses of the tender: what it reads from a hostile kernel
//! image, command line or guest, each as a function of arbitrary bytes.
//! The cargo-fuzz targets (`fuzz_targets/`) call them under libFuzzer;
//! `tests/replay.rs` runs them over the corpora with a stable toolchain.
//!
//! The invariant is the same everywhere: whatever the input, no panic, no
//! crash, no access outside guest memory; errors are answers. A panic in
//! any thread (the network ring's too) aborts the process under libFuzzer,
//! so every assertion here is a finding when it fails.
//!
//! Nothing here touches the host: network and block devices are in-memory
//! wires and disks ([`rig::host`]), the poll set is the mock tender's
//! virtual clock, the VM is the mock tender's (no KVM).

mod cli;
mod elf;
mod hypercall;
pub mod input;
pub mod rig;
mod ring;

pub use cli::cli;
pub use elf::elf;
pub use hypercall::{hypercall, ops as hypercall_ops};
pub use ring::{ops as ring_ops, ring};
