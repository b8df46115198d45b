//! Booting real guests under KVM, at CPL 3 (our note) and CPL 0 (as upstream).

mod common;

use common::{cpl0_copy, guest, tender};
use hvt_abi::hypercall::exit;
use hvt_abi::layout::MEM_GRANULE;

#[test]
fn hello_at_cpl3_prints_and_exits_0() {
    let run = tender([guest("hello").as_os_str(), "Hello_Solo5".as_ref()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert_eq!(
        run.stdout,
        "Solo5: Bindings version v0.1.0 (tender, Rust, CPL 3)\nHello, World\n\
         Command line is: 'Hello_Solo5'\nSUCCESS\nSolo5: solo5_exit(0) called\n"
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn hello_at_cpl0_prints_and_exits_0() {
    let run = tender([cpl0_copy("hello").as_os_str(), "a".as_ref(), "b".as_ref()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stdout.contains("(tender, Rust, CPL 0)\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("Hello, World\nCommand line is: 'a b'\nSUCCESS\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn hello_fail_exits_1_at_both_levels() {
    for image in [guest("hello"), cpl0_copy("hello")] {
        let run = tender([image.as_os_str(), "x".as_ref(), "fail".as_ref()]);
        assert_eq!(run.code, 1, "{}", run.output());
        assert!(run.stdout.contains("FAILURE"), "{}", run.stdout);
        assert!(
            run.stdout.contains("solo5_exit(1) called"),
            "{}",
            run.stdout
        );
    }
}

/// Upstream's "noexec host" case: a guest names an interpreter that does
/// not exist (§1.4), so the host kernel refuses to run it by itself.
#[test]
fn the_host_kernel_refuses_to_run_a_guest() {
    let err = std::process::Command::new(guest("hello"))
        .output()
        .expect_err("the host ran the guest");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
}

#[test]
fn quiet_log_level_hides_every_solo5_line() {
    let run = tender([
        guest("hello").as_os_str(),
        "--solo5:quiet".as_ref(),
        "x".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(!run.output().contains("Solo5:"), "{}", run.output());
    assert!(
        run.stdout.contains("Command line is: 'x'"),
        "{}",
        run.stdout
    );
}

#[test]
fn small_memory_is_rounded_with_a_warning() {
    // --mem=3 is rounded down to 2 MiB (one granule), which still holds
    // hello's heap.
    let run = tender(["--mem=3".as_ref(), guest("hello").as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.output());
    let rounded = (3 << 20) / MEM_GRANULE * MEM_GRANULE;
    assert!(
        run.stderr
            .contains(&format!("adjusting memory to {rounded} bytes")),
        "{}",
        run.stderr
    );
}

#[test]
fn image_leaving_too_little_heap_aborts_with_255() {
    let run = tender(["--mem=2".as_ref(), guest("big-bss").as_os_str()]);
    assert_eq!(run.code, exit::ABORT, "{}", run.output());
    assert!(
        run.stdout.contains("Solo5: ABORT: Not enough memory"),
        "{}",
        run.stdout
    );
    // With room for a heap the same image runs.
    let run = tender(["--mem=8".as_ref(), guest("big-bss").as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains("big-bss: heap of"), "{}", run.stdout);
}

/// Runs an idle guest, sends it `signal` once it sleeps, and returns the
/// tender's exit code and stderr.
fn signalled(signal: libc::c_int) -> (Option<i32>, String) {
    let child = std::process::Command::new(common::tender_bin())
        .arg(guest("idle"))
        .arg("20000")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn tender");
    // Let the guest reach its first yield before the signal.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = i32::try_from(child.id()).expect("a pid fits an i32");
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sigterm_ends_the_tender_with_exit_1() {
    assert_eq!(
        signalled(libc::SIGTERM),
        (Some(1), "tender: Exiting on signal 15\n".into())
    );
}

#[test]
fn sigint_is_reported_with_its_number_as_upstream_prints_it() {
    assert_eq!(
        signalled(libc::SIGINT),
        (Some(1), "tender: Exiting on signal 2\n".into())
    );
}

#[test]
fn idle_guest_sleeps_in_the_tender_not_on_a_cpu() {
    let run = tender([guest("idle").as_os_str(), "300".as_ref()]);
    assert_eq!(run.code, 0, "{}", run.output());
    // One yield covers the whole sleep (give or take a timer wake-up).
    let yields: u32 = run
        .stdout
        .split("in ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("yield count");
    assert!((1..=3).contains(&yields), "{}", run.stdout);
}
