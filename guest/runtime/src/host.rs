//! Running an application as a host process, as MirageOS's unix target does:
//! `cargo run --target x86_64-unknown-linux-gnu -- ARGS`.
//!
//! On the host, [`main!`](crate::main) defines the process's C `main`,
//! which calls [`run_process`]: the application runs on a mock tender made
//! with [`MockConfig::system`] (the real clock, the console on stdout, host
//! taps as network devices), and the process behaves as `tender app.hvt
//! ARGS` would:
//!
//! * the guest's command line is ARGS joined with single spaces (leading
//!   `--solo5:LEVEL` options set the log level and are removed);
//! * the network device NAME that the manifest declares is the tap named by
//!   the environment variable `HVT_NET_NAME` (`HVT_NET_service=tap0` is
//!   `--net:service=tap0`; `@FD` names an open tap descriptor). A declared
//!   device without one is the tender's "declared but not attached" error;
//! * the exit code is the guest's status (0, 1, 255 after a panic), or 1
//!   with one line `tender: ...` on stderr for anything the tender refuses
//!   (a bad hypercall, a tap that cannot be opened, a command line that is
//!   too long, an argument that is not UTF-8).
//!
//! The guest's hypercalls are served by the mock's copy of the tender's
//! modules, with the same checks. The process exits as the tender does when
//! the guest halts: without unwinding, so it works with `panic = "abort"`.

use std::ffi::{c_char, c_int, CStr, OsString};
use std::io::Write;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{eprintln, format};

use core::fmt::Display;
use core::future::Future;

use hvt_bindings::abi::layout::CMDLINE_SIZE;
use hvt_bindings::abi::manifest::{MftEntry, MFT_DEV_NET_BASIC};
use hvt_bindings::cmdline::{strip_log_options, LogLevel};
use tender_core::error::TENDER_ERROR_EXIT;
use tender_core::hypercall::Action;
use tender_core::manifest::Manifest;
use tender_mock::{self as mock, MockConfig, MockTender};

use crate::Args;

/// The prefix of the environment variables that attach network devices:
/// `HVT_NET_service=tap0`.
pub const NET_ENV_PREFIX: &str = "HVT_NET_";

/// Exit code of a guest that panicked (a Solo5 ABORT).
const ABORT_EXIT: i32 = hvt_bindings::abi::hypercall::exit::ABORT;

/// What the process's arguments and environment ask of the mock tender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The guest's command line, log options included (as in the boot
    /// information).
    pub cmdline: String,
    /// Network devices on taps: (device name, tap or `@FD`), in manifest
    /// order.
    pub taps: Vec<(String, String)>,
}

/// The tender's first pass over `args` (the process arguments without the
/// program name) and the device environment: the command line and the taps
/// of the network devices `manifest` declares. `env` looks a variable up.
/// Errors are the tender's messages.
pub fn invocation(
    args: &[OsString],
    manifest: &[MftEntry],
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Invocation, String> {
    let mut words = Vec::with_capacity(args.len());
    for arg in args {
        match arg.to_str() {
            Some(word) => words.push(word),
            None => {
                return Err(format!(
                    "argument is not valid UTF-8: {}",
                    arg.to_string_lossy()
                ))
            }
        }
    }
    let cmdline = words.join(" ");
    if cmdline.len() >= CMDLINE_SIZE {
        return Err(format!(
            "Guest command line too long (max={} characters)",
            CMDLINE_SIZE - 1
        ));
    }
    let mut taps = Vec::new();
    for entry in manifest.iter().filter(|e| e.kind == MFT_DEV_NET_BASIC) {
        let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
        let variable = format!("{NET_ENV_PREFIX}{name}");
        if let Some(value) = env(&variable) {
            let value = value.into_string().map_err(|raw| {
                format!("{variable} is not valid UTF-8: {}", raw.to_string_lossy())
            })?;
            taps.push((name, value));
        }
    }
    Ok(Invocation { cmdline, taps })
}

/// The tender's attach check (§4.5) on `manifest` with the devices `taps`
/// attached: the tender's message for every declared device left out.
pub fn check_attached(manifest: &[MftEntry], taps: &[(String, String)]) -> Result<(), String> {
    let mut entries = manifest.to_vec();
    for entry in entries.iter_mut().skip(1) {
        let attached = entry.kind == MFT_DEV_NET_BASIC
            && taps
                .iter()
                .any(|(name, _)| name.as_bytes() == entry.name_bytes());
        entry.attached = u8::from(attached);
    }
    Manifest { entries }
        .check_all_attached()
        .map_err(|e| e.to_string())
}

/// Ends the process as the tender does on an error: the message on stderr,
/// each of its lines under the tender's name, exit 1.
fn fail(message: &str) -> ! {
    finish_with(
        || {
            for line in message.lines() {
                eprintln!("tender: {line}");
            }
        },
        TENDER_ERROR_EXIT,
    )
}

/// Stops the mock tender (its modules halt as the tender's do at exit),
/// runs `last_words`, flushes stdout and exits with `code`.
fn finish_with(last_words: impl FnOnce(), code: i32) -> ! {
    drop(mock::uninstall());
    last_words();
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The bindings' transport in a host process: the hypercall is served by
/// this thread's mock tender; a HALT ends the process with the guest's
/// status, and whatever the tender refuses (or a module thread reported as
/// fatal) ends it with the tender's message and 1.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
fn transport(number: u16, arg: *mut u8) {
    let (result, fatal) = mock::with(|m| {
        // SAFETY: the bindings pass the argument struct of `number`, built
        // by guest code in this process from its own buffers.
        let result = unsafe { m.serve(number, arg) };
        (result, m.fatal_errors().into_iter().next())
    });
    match (result, fatal) {
        (Err(message), _) | (Ok(_), Some(message)) => fail(&message),
        (Ok(Action::Exit(code)), None) => finish_with(|| {}, code),
        (Ok(Action::Continue), None) => {}
    }
}

/// A guest that panics prints `Solo5: ABORT: ...` on its console and exits
/// 255, as on the tender. (A panic on another thread, one of the mock
/// tender's, is the tender's failure: the default report, then exit 1.)
fn abort_on_guest_panic() {
    let guest = std::thread::current().id();
    let default = std::panic::take_hook();
    std::panic::set_hook(std::boxed::Box::new(move |info| {
        if std::thread::current().id() == guest {
            // Not through the mock: the panic may have come from inside it.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "Solo5: ABORT: {info}");
            let _ = out.flush();
            std::process::exit(ABORT_EXIT)
        }
        default(info);
        std::process::exit(TENDER_ERROR_EXIT)
    }));
}

/// Runs `main` as the application of a host process: `args` are the
/// process's arguments without the program name, `manifest` its declared
/// devices (reserved first entry included, as [`manifest!`](crate::manifest)
/// lists them). Never returns: the process exits as `tender` would have
/// (see the [module documentation](self)).
pub fn run_process<F, Fut, E>(args: &[OsString], manifest: &[MftEntry], main: F) -> !
where
    F: FnOnce(Args) -> Fut,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Display + 'static,
{
    let Invocation { cmdline, taps } =
        invocation(args, manifest, |name| std::env::var_os(name)).unwrap_or_else(|e| fail(&e));
    let tap_refs: Vec<(&str, &str)> = taps
        .iter()
        .map(|(name, iface)| (name.as_str(), iface.as_str()))
        .collect();
    let tender = MockTender::with_config(&MockConfig::system(&cmdline, &tap_refs))
        .unwrap_or_else(|e| fail(&e.to_string()));
    if let Err(e) = check_attached(manifest, &taps) {
        let example = manifest
            .iter()
            .find(|e| e.kind == MFT_DEV_NET_BASIC)
            .map_or("service".into(), |e| {
                String::from_utf8_lossy(e.name_bytes())
            });
        fail(&format!(
            "{e}\nA host process attaches network device NAME to a tap with \
             {NET_ENV_PREFIX}NAME=TAP (e.g. {NET_ENV_PREFIX}{example}=tap0)."
        ));
    }
    mock::install(tender);
    hvt_bindings::host::set_transport(transport);
    hvt_bindings::host::set_clock(mock::monotonic_ns);
    hvt_bindings::host::set_boot_info_source(mock::boot_info);
    abort_on_guest_panic();

    let (level, stripped) = strip_log_options(&cmdline);
    hvt_bindings::console::set_log_level(level);
    hvt_bindings::log!(
        LogLevel::Info,
        "Bindings version v{} (tender, Rust, host process)",
        env!("CARGO_PKG_VERSION")
    );
    let cmdline: &'static str = std::boxed::Box::leak(stripped.to_string().into_boxed_str());
    let start = hvt_bindings::StartInfo {
        cmdline,
        heap_start: 0,
        heap_size: 0,
    };
    let status = crate::start(&start, main);
    hvt_bindings::exit::exit(status)
}

/// [`run_process`] with the arguments the C runtime passed to `main`: what
/// [`main!`](crate::main) calls on the host.
///
/// # Safety
/// `argv` must hold `argc` valid NUL-terminated strings, as the C
/// runtime's arguments to `main` do.
#[doc(hidden)]
pub unsafe fn c_main<F, Fut, E>(
    argc: c_int,
    argv: *const *const c_char,
    manifest: &[MftEntry],
    main: F,
) -> !
where
    F: FnOnce(Args) -> Fut,
    Fut: Future<Output = Result<(), E>> + 'static,
    E: Display + 'static,
{
    use std::os::unix::ffi::OsStringExt;
    let count = usize::try_from(argc).unwrap_or(0);
    let args: Vec<OsString> = (1..count)
        .map(|i| {
            // SAFETY: the caller promises `argc` valid strings at `argv`.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from_vec(arg.to_bytes().to_vec())
        })
        .collect();
    run_process(&args, manifest, main)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hvt_bindings::abi::manifest::MFT_DEV_BLOCK_BASIC;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    const MANIFEST: &[MftEntry] = &[
        MftEntry::RESERVED_FIRST,
        MftEntry::new("service", MFT_DEV_NET_BASIC),
        MftEntry::new("admin", MFT_DEV_NET_BASIC),
    ];

    #[test]
    fn the_command_line_is_the_args_joined_by_single_spaces() {
        let none = |_: &str| None;
        let run = invocation(&os(&["--solo5:quiet", "a", "", "b c"]), &[], none).unwrap();
        assert_eq!(run.cmdline, "--solo5:quiet a  b c");
        assert!(run.taps.is_empty());
        assert_eq!(invocation(&[], &[], none).unwrap().cmdline, "");
        let long = "x".repeat(CMDLINE_SIZE);
        assert_eq!(
            invocation(&os(&[&long]), &[], none).unwrap_err(),
            "Guest command line too long (max=8191 characters)"
        );
        assert!(invocation(&os(&[&long[1..]]), &[], none).is_ok());
    }

    #[test]
    fn arguments_that_are_not_utf8_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(std::vec![b'a', 0xff]);
        assert_eq!(
            invocation(&[bad], &[], |_| None).unwrap_err(),
            "argument is not valid UTF-8: a\u{fffd}"
        );
    }

    #[test]
    fn taps_come_from_the_environment_in_manifest_order() {
        let env = |name: &str| match name {
            "HVT_NET_admin" => Some(OsString::from("tap1")),
            "HVT_NET_service" => Some(OsString::from("@5")),
            "HVT_NET_other" => Some(OsString::from("tap9")),
            _ => None,
        };
        let run = invocation(&[], MANIFEST, env).unwrap();
        let expected = [("service", "@5"), ("admin", "tap1")].map(|(n, t)| (n.into(), t.into()));
        assert_eq!(run.taps, expected);
        assert_eq!(check_attached(MANIFEST, &run.taps), Ok(()));
    }

    #[test]
    fn a_declared_device_without_a_tap_is_the_tenders_error() {
        let manifest = [
            MftEntry::RESERVED_FIRST,
            MftEntry::new("service", MFT_DEV_NET_BASIC),
            MftEntry::new("storage", MFT_DEV_BLOCK_BASIC),
            MftEntry::new("admin", MFT_DEV_NET_BASIC),
        ];
        let taps = std::vec![("admin".into(), "tap1".into())];
        assert_eq!(
            check_attached(&manifest, &taps).unwrap_err(),
            "Device 'service' of type NET_BASIC declared but not attached.\n\
             Device 'storage' of type BLOCK_BASIC declared but not attached.\n\
             All declared devices must be attached. See --help for syntax."
        );
        assert_eq!(check_attached(&[MftEntry::RESERVED_FIRST], &[]), Ok(()));
    }
}
