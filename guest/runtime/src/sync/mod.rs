//! Synchronisation between tasks of one guest.

pub mod channel;
