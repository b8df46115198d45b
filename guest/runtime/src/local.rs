//! Runtime state, one copy per guest.
//!
//! A guest has one CPU and no interrupts, so its runtime state can live in
//! plain statics. On the host, where the tests run several guests on
//! several threads at once, each thread gets its own copy instead.

/// A static holding runtime state on the guest (see the module docs).
#[cfg(target_os = "none")]
pub struct GuestLocal<T> {
    value: T,
}

// SAFETY: a guest has exactly one thread of execution and no interrupt
// handlers, so a `GuestLocal` is never accessed concurrently.
#[cfg(target_os = "none")]
unsafe impl<T> Sync for GuestLocal<T> {}

#[cfg(target_os = "none")]
impl<T> GuestLocal<T> {
    pub const fn new(value: T) -> Self {
        GuestLocal { value }
    }

    /// The same shape as `LocalKey::with` on the host.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.value)
    }
}

/// Declares runtime state: a `static` on the guest, a `thread_local!` on the
/// host. Either way it is used as `NAME.with(|value| ...)`.
macro_rules! runtime_local {
    ($(#[$attr:meta])* static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(target_os = "none")]
        $(#[$attr])*
        static $name: $crate::local::GuestLocal<$ty> = $crate::local::GuestLocal::new($init);
        #[cfg(not(target_os = "none"))]
        std::thread_local! {
            $(#[$attr])*
            static $name: $ty = const { $init };
        }
    };
}

pub(crate) use runtime_local;
