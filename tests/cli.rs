//! Bad command lines (§3.1, §4.2, §4.5, §8): each ends with its message on
//! stderr and exit 1, never with a panic or a signal.

mod common;

use common::{guest, scratch, tender, Run};
use hvt_abi::layout::{CMDLINE_SIZE, MAX_MEM_SIZE, MEM_GRANULE};
use hvt_abi::note::HVT_ABI_VERSION;

/// Runs the tender and checks that it refused cleanly: exit 1, not killed by
/// a signal (-1), no panic, nothing on stdout.
fn refused<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let run = tender(args);
    assert_ne!(run.code, -1, "tender was killed: {}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(run.code, 1, "{}", run.output());
    assert_eq!(run.stdout, "", "{}", run.output());
    run
}

/// `message` on the first line of stderr, then the usage text.
fn assert_message_then_usage(run: &Run, message: &str) {
    let expected = format!("tender: {message}\nusage: tender ");
    assert!(
        run.stderr.starts_with(&expected),
        "expected {expected:?} at the start of {:?}",
        run.stderr
    );
}

/// The refusal of a guest memory of `size` bytes.
fn too_much_memory(size: u64) -> String {
    format!("tender: guest memory size {size} bytes exceeds the max size {MAX_MEM_SIZE} bytes\n")
}

/// `mib` MiB rounded down to whole granules, as the tender reports it.
fn rounded(mib: u64) -> u64 {
    mib.wrapping_mul(1 << 20) & !(MEM_GRANULE - 1)
}

/// The refusal of a guest command line that does not fit its area.
fn command_line_too_long() -> String {
    format!(
        "tender: Guest command line too long (max={} characters)\n",
        CMDLINE_SIZE - 1
    )
}

fn hello() -> String {
    guest("hello").to_str().expect("UTF-8 path").to_owned()
}

#[test]
fn no_arguments_is_missing_kernel_operand() {
    let run = refused(Vec::<String>::new());
    assert_message_then_usage(&run, "Missing KERNEL operand");
}

#[test]
fn only_options_is_missing_kernel_operand() {
    let run = refused(["--mem=2"]);
    assert_message_then_usage(&run, "Missing KERNEL operand");
}

#[test]
fn double_dash_without_kernel_is_missing_kernel_operand() {
    let run = refused(["--mem=2", "--"]);
    assert_message_then_usage(&run, "Missing KERNEL operand");
}

#[test]
fn unknown_option_is_invalid() {
    let run = refused(["--bogus", &hello()]);
    assert_message_then_usage(&run, "Invalid option: `--bogus'");
}

#[test]
fn mem_zero_is_malformed() {
    let run = refused(["--mem=0", &hello()]);
    assert_eq!(run.stderr, "tender: Malformed argument to --mem\n");
}

#[test]
fn mem_not_a_number_is_malformed() {
    let run = refused(["--mem=abc", &hello()]);
    assert_eq!(run.stderr, "tender: Malformed argument to --mem\n");
}

#[test]
fn mem_4098_exceeds_the_maximum() {
    let run = refused(["--mem=4098", &hello()]);
    assert_eq!(run.stderr, too_much_memory(4098 << 20));
}

#[test]
fn mem_negative_exceeds_the_maximum() {
    // -1 MiB wraps to 2^64 - 2^20, reported rounded down to 2 MiB as upstream.
    let run = refused(["--mem=-1", &hello()]);
    assert_eq!(run.stderr, too_much_memory(rounded(u64::MAX)));
}

#[test]
fn mem_4099_reports_the_rounded_size() {
    let run = refused(["--mem=4099", &hello()]);
    assert!(
        run.stderr.ends_with(&too_much_memory(rounded(4099))),
        "{}",
        run.stderr
    );
}

#[test]
fn help_prints_usage_to_stderr_and_exits_1() {
    let run = refused(["--help"]);
    assert!(run.stderr.starts_with("usage: tender "), "{}", run.stderr);
    assert!(run.stderr.contains("[ --mem="), "{}", run.stderr);
}

#[test]
fn help_wins_over_a_kernel_after_it() {
    let run = refused(["--help", &hello()]);
    assert!(run.stderr.starts_with("usage: tender "), "{}", run.stderr);
}

#[test]
fn version_prints_abi_version_and_exits_0() {
    let run = tender(["--version"]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains(&format!("ABI version {HVT_ABI_VERSION}\n")),
        "{}",
        run.stderr
    );
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
fn kernel_that_does_not_exist_cannot_be_opened() {
    let path = scratch("cli-missing-kernel").join("no-such-kernel");
    let run = refused([&path]);
    let expected = format!(
        "tender: {}: Could not open: No such file or directory",
        path.display()
    );
    assert!(run.stderr.starts_with(&expected), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn kernel_that_is_a_directory_is_refused() {
    let dir = scratch("cli-directory-kernel");
    let run = refused([&dir]);
    assert!(
        run.stderr
            .starts_with(&format!("tender: {}: ", dir.display())),
        "{}",
        run.stderr
    );
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
fn block_device_not_in_manifest_is_not_declared() {
    let run = refused(["--block:foo=x", &hello()]);
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

#[test]
fn bad_option_after_a_good_mem_option_is_still_refused() {
    let run = refused(["--mem=2", "--bogus", &hello()]);
    assert_message_then_usage(&run, "Invalid option: `--bogus'");
}

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

#[test]
fn arguments_that_are_not_utf8_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let run = refused([std::ffi::OsStr::new(&hello()), bad]);
    assert_eq!(
        run.stderr,
        "tender: argument is not valid UTF-8: caf\u{fffd}\n"
    );
}
