//! Host-side device back-ends the modules are built from.

pub mod console;
pub mod frame;
pub mod net_ring;
pub mod poller;
pub mod tap;
pub mod wire;
