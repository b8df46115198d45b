//! Running guest code on the host, against the in-process mock tender.
//!
//! [`run`] gives the calling thread a fresh mock tender, routes the
//! bindings' hypercalls, clock and boot information to it, runs `main`
//! exactly as a guest would (the runtime's `start`, then the bindings'
//! exit), and reports what a user of the real tender would see: the exit
//! code and the console.
//!
//! [`run_with_net`] does the same with network devices, wired to each other
//! in pairs by in-memory wires (lossy if asked), so that one guest can run
//! two network stacks back to back:
//!
//! ```ignore
//! run_with_net("", &["a", "b"], WireConfig::clean(), |_| async {
//!     let a = Stack::new("a", Config::ipv4(...))?;   // handle 1
//!     let b = Stack::new("b", Config::ipv4(...))?;   // handle 2
//!     ...
//! });
//! ```

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::string::{String, ToString};
use std::sync::Once;

use core::fmt::Display;
use core::future::Future;

use tender_mock::{self as mock, GuestExit, MockTender};

pub use tender_mock::{DiskFault, MemDisk, MockConfig, MockDisk, WireConfig, WireStats};

use crate::Args;

/// What a guest run left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code a tender process would have had.
    pub code: i32,
    /// Everything the guest printed.
    pub console: String,
    /// The tender's error, if it stopped the guest; or the panic message.
    pub error: Option<String>,
}

fn quiet_guest_exits() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(std::boxed::Box::new(move |info| {
            // A guest's exit unwinds with a GuestExit: not an error.
            if info.payload().downcast_ref::<GuestExit>().is_none() {
                default(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".into()
    }
}

/// Runs `main` as a guest with command line `cmdline` on a fresh mock
/// tender. A panic in the guest is reported as the guest would end on
/// KVM: exit code 255 with the message.
pub fn run<F, Fut, E>(cmdline: &str, main: F) -> Outcome
where
    F: FnOnce(Args) -> Fut,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Display + 'static,
{
    run_with_net(cmdline, &[], WireConfig::clean(), main)
}

/// Runs `main` as [`run`] does, on a mock tender with the network devices
/// `devices` (handles 1, 2, ... in this order; MAC `02:00:00:00:00:HH`
/// with HH the handle; MTU 1500). The devices are wired to each other in
/// pairs, the first with the second, the third with the fourth, and so on,
/// by wires that behave as `wire` says. Panics if `devices` is odd.
pub fn run_with_net<F, Fut, E>(
    cmdline: &str,
    devices: &[&str],
    wire: WireConfig,
    main: F,
) -> Outcome
where
    F: FnOnce(Args) -> Fut,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Display + 'static,
{
    let config = MockConfig {
        cmdline,
        net_devices: devices,
        wire,
        ..MockConfig::default()
    };
    run_config(&config, main)
}

/// Runs `main` as [`run`] does, on a mock tender made from `config`: its
/// command line, wired network devices and in-memory block devices
/// ([`MockDisk`]: keep an `Arc` of the [`MemDisk`] to look at it after the
/// run, inject [`DiskFault`]s, or run another guest on it). Panics if the
/// mock refuses the configuration.
///
/// ```ignore
/// let disk = Arc::new(MemDisk::new("storage", 1 << 20));
/// let outcome = run_config(
///     &MockConfig { disks: &[MockDisk::new("storage", &disk)], ..MockConfig::default() },
///     |_| async { /* BlockDevice::open("storage") ... */ Ok::<(), &str>(()) },
/// );
/// ```
pub fn run_config<F, Fut, E>(config: &MockConfig<'_>, main: F) -> Outcome
where
    F: FnOnce(Args) -> Fut,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Display + 'static,
{
    let cmdline = config.cmdline;
    quiet_guest_exits();
    reset_runtime();
    mock::install(MockTender::with_config(config).expect("mock tender"));
    hvt_bindings::host::set_transport(mock::hypercall);
    hvt_bindings::host::set_clock(mock::monotonic_ns);
    hvt_bindings::host::set_boot_info_source(mock::boot_info);
    hvt_bindings::host::set_port_writer(mock::port_write);
    let (level, cmdline) = hvt_bindings::cmdline::strip_log_options(cmdline);
    hvt_bindings::console::set_log_level(level);
    let cmdline: &'static str = std::boxed::Box::leak(cmdline.to_string().into_boxed_str());
    let start = hvt_bindings::StartInfo {
        cmdline,
        heap_start: 0,
        heap_size: 0,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let status = crate::start(&start, main);
        hvt_bindings::exit::exit(status)
    }));
    // Leftover tasks are dropped now, while the thread's runtime state is
    // alive (their destructors deregister timers and waits).
    reset_runtime();
    let mock = mock::uninstall().expect("mock tender still installed");
    let console = String::from_utf8_lossy(&mock.console_output()).into_owned();
    let (code, error) = match result {
        Ok(()) => unreachable!("exit returned to the guest"),
        Err(payload) => match payload.downcast::<GuestExit>() {
            Ok(exit) => (exit.code, exit.error),
            Err(payload) => (255, Some(panic_message(&*payload))),
        },
    };
    Outcome {
        code,
        console,
        error,
    }
}

fn reset_runtime() {
    crate::executor::reset();
    crate::time::reset();
    crate::io::reset();
}

/// The current virtual monotonic time of this thread's guest, in ns.
pub fn virtual_now_ns() -> u64 {
    mock::monotonic_ns()
}

/// What happened so far on the wire of this thread's network device
/// `handle` (both directions), if it has one.
pub fn wire_stats(handle: usize) -> Option<WireStats> {
    mock::with(|m| m.wire_port(handle).map(|port| port.stats()))
}

/// Changes the impairments of the wire of device `handle` from now on.
pub fn reconfigure_wire(handle: usize, config: WireConfig) {
    mock::with(|m| {
        m.wire_port(handle)
            .expect("no wire on this handle")
            .reconfigure(config)
    })
}
