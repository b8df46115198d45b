//! Booting real guests under KVM, at CPL 3 (our note) and CPL 0 (as upstream).

mod common;

use common::{cpl0_copy, guest, tender};

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
    // --mem=3 is rounded down to 2 MiB, which still holds hello's heap.
    let run = tender(["--mem=3".as_ref(), guest("hello").as_os_str()]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(
        run.stderr.contains("adjusting memory to 2097152 bytes"),
        "{}",
        run.stderr
    );
}
