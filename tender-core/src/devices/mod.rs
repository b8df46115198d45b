//! Host-side back-ends the modules are built from.

pub mod console;
pub mod frame;
pub mod poller;
pub mod tap;
pub mod wire;
