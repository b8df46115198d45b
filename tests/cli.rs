//! The command line (§3.1, §4.2, §4.5, §8) as upstream's `solo5-hvt` reads
//! it, and what the user sees: the exact lines on stderr, each under the
//! program's name, and the exit code. A refusal is exit 1, never a panic or
//! a signal. (See docs/solo5-compatibility.md.)

mod common;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use common::{guest, scratch, tender, tender_bin, ConsoleFifo, Run};
use hvt_abi::layout::{CMDLINE_SIZE, MAX_MEM_SIZE};
use hvt_abi::note::HVT_ABI_VERSION;

/// What a run left, as bytes (stderr may hold bytes that are not UTF-8).
struct RawRun {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl RawRun {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `program` (the tender, or a link to it) with `argv0` as its
/// `argv[0]`.
fn run_as<S: AsRef<OsStr>>(program: &Path, argv0: &OsStr, args: &[S]) -> RawRun {
    let out = Command::new(program)
        .arg0(argv0)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the tender");
    RawRun {
        status: out.status,
        stdout: out.stdout,
        stderr: out.stderr,
    }
}

/// Runs the tender and checks that it refused cleanly: exit 1, not killed by
/// a signal (-1), no panic, nothing on stdout.
fn refused<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let run = tender(args);
    assert_ne!(run.code, -1, "tender was killed: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(run.code, 1, "{}", run.output());
    assert_eq!(run.stdout, "", "{}", run.output());
    run
}

/// The usage text, as `--help` prints it.
fn usage() -> String {
    let run = refused(["--help"]);
    run.stderr
}

/// `message` under the program's name, then the usage text: all of stderr.
fn assert_message_then_usage(run: &Run, message: &str) {
    assert_eq!(run.stderr, format!("tender: {message}\n{}", usage()));
}

fn hello() -> String {
    guest("hello").to_str().expect("UTF-8 path").to_owned()
}

/// The `entry-state` probe's report (`key=value` lines) of a run that
/// succeeded, and its stderr.
fn entry_state(options: &[&str], args: &[OsString]) -> (Vec<(String, String)>, String) {
    let mut argv: Vec<OsString> = options.iter().map(Into::into).collect();
    argv.push(guest("entry-state").into_os_string());
    argv.extend(args.iter().cloned());
    let run = tender(argv);
    assert_eq!(run.code, 0, "{}", run.output());
    let report = run
        .stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (report, run.stderr)
}

fn value<'a>(report: &'a [(String, String)], key: &str) -> &'a str {
    report
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{key} not reported"))
}

/// The guest memory the probe saw, in MiB.
fn guest_mib(report: &[(String, String)]) -> u64 {
    let hex = value(report, "boot.mem_size").trim_start_matches("0x");
    u64::from_str_radix(hex, 16).expect("hex") >> 20
}

/// The command line the probe found in its memory, as bytes.
fn guest_cmdline(report: &[(String, String)]) -> Vec<u8> {
    let hex = value(report, "cmdline.hex");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex byte"))
        .collect()
}

// ---------------------------------------------------------------------------
// The program's name (§8): every line under basename(argv[0]).

/// A directory with a link named `solo5-hvt` to the tender.
fn solo5_hvt_link() -> PathBuf {
    let dir = scratch("cli-solo5-hvt");
    let link = dir.join("solo5-hvt");
    match std::os::unix::fs::symlink(tender_bin(), &link) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => panic!("symlink: {e}"),
        _ => link,
    }
}

#[test]
fn linked_as_solo5_hvt_it_speaks_as_solo5_hvt() {
    let link = solo5_hvt_link();
    let run = |args: &[&str]| run_as(&link, link.as_os_str(), args);

    let bad = run(&["-x", &hello()]);
    assert_eq!(bad.code(), Some(1));
    let stderr = bad.stderr();
    assert!(
        stderr.starts_with(
            "solo5-hvt: Invalid option: `-x'\n\
             usage: solo5-hvt [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]\n"
        ),
        "{stderr}"
    );

    let version = run(&["--version"]);
    assert_eq!(version.code(), Some(0));
    assert_eq!(
        version.stderr(),
        format!(
            "solo5-hvt tender, version v{}-tender\nABI version {HVT_ABI_VERSION}\n",
            env!("CARGO_PKG_VERSION")
        )
    );

    let malformed = run(&["--mem=0", &hello()]);
    assert_eq!(malformed.code(), Some(1));
    assert_eq!(
        malformed.stderr(),
        "solo5-hvt: Malformed argument to --mem\n"
    );

    let missing = scratch("cli-solo5-hvt").join("no-such-kernel");
    let missing = run(&[missing.to_str().unwrap()]);
    assert_eq!(missing.code(), Some(1));
    assert_eq!(
        missing.stderr(),
        format!(
            "solo5-hvt: {}: Could not open: No such file or directory\n",
            scratch("cli-solo5-hvt").join("no-such-kernel").display()
        )
    );

    let adjusted = run(&["--mem=3", &hello()]);
    assert_eq!(adjusted.code(), Some(0), "{}", adjusted.stderr());
    assert_eq!(
        adjusted.stderr(),
        "solo5-hvt: adjusting memory to 2097152 bytes\n"
    );
}

#[test]
fn the_name_is_the_last_component_of_argv0() {
    let tender = tender_bin();
    for (argv0, name) in [
        ("/opt/unikernels/bin/my-hvt", "my-hvt"),
        ("relative/dir/hvt//", "hvt"),
        ("tender", "tender"),
        ("/", "/"),
        // No name: what Linux gives a program started without arguments.
        ("", "tender"),
    ] {
        let run = run_as(&tender, OsStr::new(argv0), &[] as &[&str]);
        assert_eq!(run.code(), Some(1), "{argv0:?}");
        let stderr = run.stderr();
        let expected = format!("{name}: Missing KERNEL operand\nusage: {name} [ CORE OPTIONS ]");
        assert!(stderr.starts_with(&expected), "{argv0:?}: {stderr}");
    }
}

// ---------------------------------------------------------------------------
// Usage, help, version (§8)

#[test]
fn usage_has_upstreams_lines_and_help_exits_1() {
    let text = usage();
    assert!(
        text.starts_with(
            "usage: tender [ CORE OPTIONS ] [ MODULE OPTIONS ] [ -- ] KERNEL [ ARGS ]\n\
             KERNEL is the filename of the unikernel to run.\n\
             ARGS are optional arguments passed to the unikernel.\n\
             Core options:\n  \
             [ --mem=512 ] (guest memory in MB)\n    \
             --help (display this help)\n    \
             --version (display version information)\n"
        ),
        "{text}"
    );
    for line in [
        "Compiled-in modules: core block net dumpcore clock trace gdb 
",
        "    --dumpcore=DIR (enable guest core dump on abort/trap)
",
        "Compiled-in module options:\n",
        "  [ --gdb-port=1234 ] (port to use)\n",
        "    --block:NAME=PATH (attach block device/file at PATH as block storage NAME)\n",
        "  [ --block-sector-size:NAME=SECTORSIZE ] (set sector size for block device NAME; \
         must be a power of two greater than or equal 512)\n",
        "  [ --net-mac:NAME=HWADDR ] (set HWADDR for network NAME)\n",
        "  [ --trace[=FILE] ] (trace hypercalls and VM exits to stderr or FILE, \
         with a summary at exit)\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
}

#[test]
fn help_wins_over_anything_before_the_kernel() {
    for args in [
        vec!["--help".to_owned(), hello()],
        vec!["--bogus".to_owned(), "--help".to_owned()],
        vec!["--mem=0".to_owned(), "-x".to_owned(), "--help".to_owned()],
    ] {
        let run = refused(&args);
        assert_eq!(run.stderr, usage(), "{args:?}");
    }
}

#[test]
fn version_prints_two_lines_and_exits_0() {
    for args in [&["--version"][..], &["--bogus", "--version", "k"]] {
        let run = tender(args);
        assert_eq!(run.code, 0, "{}", run.output());
        assert_eq!(run.stdout, "");
        assert_eq!(
            run.stderr,
            format!(
                "tender tender, version v{}-tender\nABI version {HVT_ABI_VERSION}\n",
                env!("CARGO_PKG_VERSION")
            )
        );
    }
}

// ---------------------------------------------------------------------------
// The first pass (§8): every argument starting with '-' before the kernel
// is an option; the kernel is read before any option is judged.

#[test]
fn no_kernel_is_missing_kernel_operand() {
    for args in [
        &[][..],
        &["--mem=2"],
        &["--mem=2", "--"],
        &["--bogus"],
        &["-x", "-"],
    ] {
        let run = refused(args);
        assert_message_then_usage(&run, "Missing KERNEL operand");
    }
}

#[test]
fn a_dash_option_before_the_kernel_is_invalid() {
    let run = refused(["-x", &hello()]);
    assert_message_then_usage(&run, "Invalid option: `-x'");
    let run = refused(["-", &hello()]);
    assert_message_then_usage(&run, "Invalid option: `-'");
    let run = refused(["--bogus", &hello()]);
    assert_message_then_usage(&run, "Invalid option: `--bogus'");
}

#[test]
fn the_first_bad_option_is_the_one_reported() {
    let run = refused(["--mem=2", "--bogus", "-y", &hello()]);
    assert_message_then_usage(&run, "Invalid option: `--bogus'");
    // The memory size is judged after every option was read.
    let run = refused(["--mem=4098", "--bogus", &hello()]);
    assert_message_then_usage(&run, "Invalid option: `--bogus'");
}

#[test]
fn the_kernel_is_read_before_the_options_are_judged() {
    let missing = scratch("cli-order").join("no-such-kernel");
    let expected = format!(
        "tender: {}: Could not open: No such file or directory\n",
        missing.display()
    );
    for option in ["--bogus", "--mem=abc", "-x"] {
        let run = refused([OsStr::new(option), missing.as_os_str()]);
        assert_eq!(run.stderr, expected, "{option}");
    }
}

#[test]
fn after_the_kernel_and_after_double_dash_arguments_are_the_guests() {
    let (report, _) = entry_state(&["--mem=2", "--"], &["--help".into(), "-x".into()]);
    assert_eq!(guest_cmdline(&report), b"--help -x");
}

// ---------------------------------------------------------------------------
// --mem (§3.1, §8): the number at its start, as sscanf("%zd") reads it; the
// last one counts; the size is checked once every option was read.

#[test]
fn mem_takes_the_number_at_its_start() {
    for (option, mib) in [
        ("--mem=12x", 12),
        ("--mem=4k", 4),
        ("--mem= 4", 4),
        ("--mem=\t+6MB", 6),
        ("--mem=0008", 8),
    ] {
        let (report, stderr) = entry_state(&[option], &[]);
        assert_eq!(guest_mib(&report), mib, "{option}");
        assert_eq!(stderr, "", "{option}");
    }
}

#[test]
fn the_last_mem_option_counts() {
    let (report, _) = entry_state(&["--mem=9999", "--mem=64"], &[]);
    assert_eq!(guest_mib(&report), 64);
    let run = refused(["--mem=64", "--mem=9998", &hello()]);
    assert_eq!(
        run.stderr,
        format!(
            "tender: guest memory size {} bytes exceeds the max size {MAX_MEM_SIZE} bytes\n",
            9998u64 << 20
        )
    );
}

#[test]
fn mem_without_a_number_or_of_zero_bytes_is_malformed() {
    // 2^44 MiB is 2^64 bytes: 0 in 64 bits, as upstream computes it.
    for option in [
        "--mem=0",
        "--mem=abc",
        "--mem=",
        "--mem=-",
        "--mem=x12",
        "--mem=17592186044416",
        "--mem=-17592186044416",
        "--mem=-99999999999999999999",
    ] {
        let run = refused([option, &hello()]);
        assert_eq!(
            run.stderr, "tender: Malformed argument to --mem\n",
            "{option}"
        );
    }
}

#[test]
fn mem_sizes_are_adjusted_then_checked_as_upstream() {
    let adjusted = |bytes: u64| format!("tender: adjusting memory to {bytes} bytes\n");
    let too_large = |bytes: u64| {
        format!(
            "tender: guest memory size {bytes} bytes exceeds the max size {MAX_MEM_SIZE} bytes\n"
        )
    };
    // An odd size is rounded down to 2 MiB, with a warning.
    let (report, stderr) = entry_state(&["--mem=3"], &[]);
    assert_eq!(guest_mib(&report), 2);
    assert_eq!(stderr, adjusted(2 << 20));
    let (report, stderr) = entry_state(&["--mem=1"], &[]);
    assert_eq!(guest_mib(&report), 2);
    assert_eq!(stderr, adjusted(2 << 20));
    // 4097 MiB rounds down to the maximum.
    let (report, stderr) = entry_state(&["--mem=4097"], &[]);
    assert_eq!(guest_mib(&report), 4096);
    assert_eq!(stderr, adjusted(4096 << 20));

    let run = refused(["--mem=4098", &hello()]);
    assert_eq!(run.stderr, too_large(4098 << 20));
    // Rounded first, and the adjustment is reported before the refusal.
    let run = refused(["--mem=4099", &hello()]);
    assert_eq!(run.stderr, adjusted(4098 << 20) + &too_large(4098 << 20));
    // A negative size wraps in 64 bits; a huge one is clamped as strtol
    // clamps it: both are far too large.
    let huge = u64::MAX << 21;
    for option in ["--mem=-1", "--mem=99999999999999999999"] {
        let run = refused([option, &hello()]);
        assert_eq!(run.stderr, adjusted(huge) + &too_large(huge), "{option}");
    }
}

// ---------------------------------------------------------------------------
// Bytes that are not UTF-8 (§4.2): passed through, as upstream passes them.

#[test]
fn guest_arguments_that_are_not_utf8_reach_the_guest() {
    let args = [
        OsString::from_vec(b"caf\xe9".to_vec()),
        OsString::from_vec(b"\xff\xfe".to_vec()),
    ];
    let (report, stderr) = entry_state(&[], &args);
    assert_eq!(guest_cmdline(&report), b"caf\xe9 \xff\xfe");
    assert_eq!(stderr, "");
}

#[test]
fn a_kernel_path_that_is_not_utf8_is_opened() {
    let dir = scratch("cli-non-utf8-kernel");
    let kernel = dir.join(OsStr::from_bytes(b"entry-\xe9.hvt"));
    std::fs::copy(guest("entry-state"), &kernel).expect("copy the probe");
    let run = run_as(&tender_bin(), OsStr::new("tender"), &[&kernel]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr());

    // Its name is shown as given in the messages about it.
    let missing = dir.join(OsStr::from_bytes(b"missing-\xe9.hvt"));
    let run = run_as(&tender_bin(), OsStr::new("tender"), &[&missing]);
    assert_eq!(run.code(), Some(1));
    let mut expected = b"tender: ".to_vec();
    expected.extend_from_slice(missing.as_os_str().as_bytes());
    expected.extend_from_slice(b": Could not open: No such file or directory\n");
    assert_eq!(run.stderr, expected);
}

#[test]
fn an_option_that_is_not_utf8_is_shown_as_given() {
    let option = OsString::from_vec(b"--caf\xe9".to_vec());
    let run = run_as(
        &tender_bin(),
        OsStr::new("tender"),
        &[option, hello().into()],
    );
    assert_eq!(run.code(), Some(1));
    assert!(
        run.stderr
            .starts_with(b"tender: Invalid option: `--caf\xe9'\nusage: tender "),
        "{}",
        run.stderr()
    );
    assert!(run.stdout.is_empty());
    // A number followed by bytes that are not UTF-8 is still a number.
    let mem = OsString::from_vec(b"--mem=8\xff".to_vec());
    let run = tender([mem, guest("entry-state").into_os_string()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.contains("boot.mem_size=0x800000\n"),
        "{}",
        run.stdout
    );
}

/// The limit is 8191 bytes, whatever they are: `é` is two of them.
#[test]
fn the_command_line_limit_counts_bytes() {
    let fits = OsString::from("é".repeat(4095) + "a");
    assert_eq!(fits.len(), CMDLINE_SIZE - 1);
    let (report, _) = entry_state(&["--mem=2"], &[fits]);
    assert_eq!(guest_cmdline(&report).len(), CMDLINE_SIZE - 1);

    let too_long = "é".repeat(CMDLINE_SIZE / 2);
    let run = refused([hello(), too_long]);
    assert_eq!(run.stderr, command_line_too_long());
    let mut raw = vec![0xffu8; CMDLINE_SIZE];
    raw[0] = b'x';
    let run = refused([OsString::from(hello()), OsString::from_vec(raw)]);
    assert_eq!(run.stderr, command_line_too_long());
}

// ---------------------------------------------------------------------------
// The guest command line's length (§4.2), checked when it is written, after
// the modules' set-up, as upstream checks it.

/// The refusal of a guest command line that does not fit its area.
fn command_line_too_long() -> String {
    format!(
        "tender: Guest command line too long (max={} characters)\n",
        CMDLINE_SIZE - 1
    )
}

#[test]
fn guest_command_line_of_8192_characters_is_too_long() {
    let run = refused([hello(), "a".repeat(CMDLINE_SIZE)]);
    assert_eq!(run.stderr, command_line_too_long());
}

#[test]
fn joining_spaces_count_towards_the_command_line_limit() {
    // 4096 + 1 space + 4095 = 8192 characters, the whole area.
    let half = CMDLINE_SIZE / 2;
    let run = refused([hello(), "a".repeat(half), "b".repeat(half - 1)]);
    assert_eq!(run.stderr, command_line_too_long());
}

#[test]
fn guest_command_line_of_8191_characters_is_accepted() {
    let long = "a".repeat(CMDLINE_SIZE - 1);
    let run = tender(["--mem=2".to_owned(), hello(), long.clone()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout
            .contains(&format!("Command line is: '{long}'\nSUCCESS\n")),
        "{}",
        run.stdout
    );
}

#[test]
fn a_bad_option_or_device_is_reported_before_a_long_command_line() {
    let long = "a".repeat(CMDLINE_SIZE);
    let run = refused(["--bogus".to_owned(), hello(), long.clone()]);
    assert_message_then_usage(&run, "Invalid option: `--bogus'");
    let run = refused(["--mem=0".to_owned(), hello(), long]);
    assert_eq!(run.stderr, "tender: Malformed argument to --mem\n");
}

// ---------------------------------------------------------------------------
// The kernel file

#[test]
fn kernel_that_does_not_exist_cannot_be_opened() {
    let path = scratch("cli-missing-kernel").join("no-such-kernel");
    let run = refused([&path]);
    assert_eq!(
        run.stderr,
        format!(
            "tender: {}: Could not open: No such file or directory\n",
            path.display()
        )
    );
    // An empty name is a file name like any other.
    let run = refused([""]);
    assert_eq!(
        run.stderr,
        "tender: : Could not open: No such file or directory\n"
    );
}

/// Ours: a clear message where upstream reports a failed read.
#[test]
fn kernel_that_is_a_directory_is_refused() {
    let dir = scratch("cli-directory-kernel");
    let run = refused([&dir]);
    assert_eq!(
        run.stderr,
        format!(
            "tender: {}: Could not open: Is a directory\n",
            dir.display()
        )
    );
}

/// Ours: upstream waits in `open` for a writer.
#[test]
fn kernel_that_is_a_fifo_is_refused_without_hanging() {
    let fifo = scratch("cli-fifo-kernel").join("kernel.fifo");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: creates a FIFO at a path we own.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let run = refused([&fifo]);
    assert_eq!(
        run.stderr,
        format!(
            "tender: {}: Could not open: not a regular file\n",
            fifo.display()
        )
    );
}

// ---------------------------------------------------------------------------
// Devices on the command line (§4.5)

/// Upstream's block module warns, then the option is invalid.
#[test]
fn block_device_not_in_manifest_is_not_declared() {
    let run = refused(["--block:foo=x", &hello()]);
    assert_eq!(
        run.stderr,
        format!(
            "tender: Resource not declared in manifest: 'foo'\n\
             tender: Invalid option: `--block:foo=x'\n{}",
            usage()
        )
    );
    let run = refused(["--block-sector-size:foo=4096", &hello()]);
    assert_eq!(
        run.stderr,
        format!(
            "tender: Resource not declared in manifest: 'foo'\n\
             tender: Invalid option: `--block-sector-size:foo=4096'\n{}",
            usage()
        )
    );
    // A name upstream's sscanf does not match: only the latter.
    let run = refused(["--block:fo-o=x", &hello()]);
    assert_message_then_usage(&run, "Invalid option: `--block:fo-o=x'");
}

#[test]
fn net_device_not_in_manifest_is_not_declared() {
    let run = refused(["--net:foo=tap0", &hello()]);
    assert!(
        run.stderr
            .starts_with("tender: Resource not declared in manifest: 'foo'\n"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("usage: tender "), "{}", run.stderr);
}

#[test]
fn net_mac_for_an_undeclared_device_is_not_declared() {
    let run = refused(["--net-mac:foo=02:00:00:00:00:01", &hello()]);
    assert!(
        run.stderr
            .starts_with("tender: Resource not declared in manifest: 'foo'\n"),
        "{}",
        run.stderr
    );
}

#[test]
fn net_shortcut_without_a_net_device_is_refused() {
    let run = refused(["--net=tap0", &hello()]);
    assert_message_then_usage(
        &run,
        "--net=IFACE needs exactly one network device in the manifest",
    );
}

#[test]
fn block_shortcut_without_a_block_device_is_refused() {
    let run = refused(["--block=disk.img", &hello()]);
    assert_message_then_usage(
        &run,
        "--block=PATH needs exactly one block device in the manifest",
    );
}

// ---------------------------------------------------------------------------
// Signals (§8)

/// SIGTERM while the guest sleeps, with stdout and stderr on one FIFO: the
/// last line is the program's "Exiting on signal 15", exit 1.
#[test]
fn sigterm_while_the_guest_sleeps_ends_with_exiting_on_signal_15() {
    let mut console = ConsoleFifo::new(&scratch("cli-sigterm").join("console.fifo"));
    let link = solo5_hvt_link();
    let mut command = Command::new(&link);
    command.arg(guest("sleeper"));
    let mut child = console.spawn(command);
    // The guest sleeps five times a second; stop it during the first.
    console.wait_for(
        "yield with a past deadline",
        &mut child,
        Duration::from_secs(20),
    );
    let pid = libc::pid_t::try_from(child.id()).expect("pid");
    // SAFETY: signals our own child, not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().expect("wait");
    let output = console.read_to_end();
    assert_eq!(status.code(), Some(1), "{status:?}: {output}");
    assert!(status.signal().is_none());
    assert!(
        output.ends_with("\nsolo5-hvt: Exiting on signal 15\n"),
        "{output}"
    );
    assert!(!output.contains("sleep 2:"), "{output}");
}
