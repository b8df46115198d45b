//! Host-side device back-ends the modules are built from.

pub mod console;
pub mod poller;
