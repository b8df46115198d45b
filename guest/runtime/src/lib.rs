//! The guest runtime: what makes an hvt guest an ordinary Rust program.
//!
//! * `alloc` over the guest's heap ([`memory`], talc), with a checked stack
//!   guard;
//! * an async executor ([`spawn`], [`JoinHandle`], [`yield_now`]) that idles
//!   in the yield hypercall until the next timer or device readiness;
//! * time ([`time::sleep`], [`time::timeout`], [`time::interval`],
//!   [`time::Instant`], [`time::wall_clock`]) and channels ([`sync::channel`]);
//! * block devices ([`block::BlockDevice`]): runs of whole blocks, one
//!   hypercall each, checked in the guest;
//! * `println!` and `log` records honouring `--solo5:quiet|error|warn|info|debug`.
//!
//! An application:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! hvt_runtime::manifest!();
//! hvt_runtime::main!(main);
//!
//! async fn main(args: hvt_runtime::Args) -> Result<(), &'static str> {
//!     hvt_runtime::time::sleep(hvt_runtime::time::Duration::from_millis(10)).await;
//!     hvt_runtime::println!("hello {}", args.as_str());
//!     Ok(())
//! }
//! ```
//!
//! On the host (`cargo test`), hypercalls go to the in-process mock tender;
//! see [`testing`].
#![no_std]

extern crate alloc;
#[cfg(not(target_os = "none"))]
extern crate std;

mod args;
pub mod block;
#[doc(hidden)]
pub mod churn;
mod executor;
pub mod io;
mod local;
mod logger;
pub mod memory;
pub mod net;
pub mod sync;
pub mod time;

#[cfg(not(target_os = "none"))]
pub mod host;
#[cfg(not(target_os = "none"))]
pub mod testing;

use core::fmt::Display;
use core::future::Future;

pub use args::Args;
pub use executor::{block_on, live_tasks, spawn, yield_now, JoinHandle};
pub use hvt_bindings::{manifest, print, println};
pub use log;

#[doc(hidden)]
pub use hvt_bindings as __bindings;

/// Runs an application: sets up memory (on the guest) and logging, runs
/// `main` on the executor, and returns the exit status: 0 when it returns
/// `Ok`, 1 (after printing the error) when it returns `Err`.
pub fn start<F, Fut, E>(start: &hvt_bindings::StartInfo, main: F) -> i32
where
    F: FnOnce(Args) -> Fut,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Display + 'static,
{
    #[cfg(target_os = "none")]
    memory::init(start);
    logger::init();
    let result = block_on(main(Args::new(start.cmdline)));
    memory::check_stack_fully();
    match result {
        Ok(()) => 0,
        Err(error) => {
            println!("Error: {error}");
            1
        }
    }
}

/// Declares `async fn main(args: Args) -> Result<(), E>` as the guest's
/// entry point, in a `#![no_main]` binary that also invokes
/// [`manifest!`] in the same module.
///
/// On the guest it is the bindings' entry. On the host it is the process's
/// C `main`: the application runs as a host process on a mock tender with
/// the real clock, its console on stdout and host taps as its network
/// devices ([`host`]), so `cargo run --target x86_64-unknown-linux-gnu --
/// ARGS` behaves as `tender app.hvt ARGS`. (Not in a `cfg(test)` build,
/// where the test harness has the `main`.)
#[macro_export]
macro_rules! main {
    ($main:path) => {
        $crate::__bindings::entry!(__hvt_runtime_main);
        fn __hvt_runtime_main(start: &$crate::__bindings::StartInfo) -> i32 {
            $crate::start(start, $main)
        }

        // Named otherwise in Rust: the application's function may be `main`.
        #[cfg(not(any(target_os = "none", test)))]
        #[export_name = "main"]
        extern "C" fn __hvt_host_main(
            argc: ::core::ffi::c_int,
            argv: *const *const ::core::ffi::c_char,
        ) -> ::core::ffi::c_int {
            // SAFETY: the C runtime passes `main` its argument vector.
            unsafe { $crate::host::c_main(argc, argv, __HVT_MANIFEST, $main) }
        }
    };
}
