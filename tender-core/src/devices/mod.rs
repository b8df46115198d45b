//! Host-side back-ends the modules are built from.

pub mod console;
pub mod disk;
pub mod exit_sync;
pub mod frame;
pub mod memdisk;
pub mod poller;
pub mod socket;
pub mod tap;
pub mod wire;
