//! `--trace[=FILE]`: a line per hypercall and per other VM exit, and a
//! summary at the end, with the sandbox on (docs/debugging.md).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cpl0_copy, guest, scratch, tender, tender_bin};

/// The `len=` of every PUTS line of `trace`.
fn puts_lengths(trace: &str) -> Vec<u64> {
    trace
        .lines()
        .filter(|line| line.starts_with("PUTS("))
        .map(|line| {
            let len = line.split("len=").nth(1).expect("a len").split(')').next();
            len.unwrap().parse().expect("a number")
        })
        .collect()
}

/// The summary's row for `call`: (calls, errors).
fn summary_row(trace: &str, call: &str) -> Option<(u64, u64)> {
    trace.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, _, calls, errors, name] if *name == call => {
                Some((calls.parse().ok()?, errors.parse().ok()?))
            }
            [_, calls, errors, name] if *name == call => {
                Some((calls.parse().ok()?, errors.parse().ok()?))
            }
            _ => None,
        }
    })
}

#[test]
fn hello_is_traced_on_stderr_at_both_levels() {
    for image in [guest("hello"), cpl0_copy("hello")] {
        let run = tender([
            "--trace".as_ref(),
            image.as_os_str(),
            "Hello_Solo5".as_ref(),
        ]);
        assert_eq!(run.code, 0, "{}", run.output());
        assert!(run.stdout.contains("SUCCESS"), "{}", run.stdout);
        let lengths = puts_lengths(&run.stderr);
        assert!(!lengths.is_empty(), "no PUTS in {}", run.stderr);
        assert_eq!(
            lengths.iter().sum::<u64>(),
            run.stdout.len() as u64,
            "the PUTS lengths are the console's bytes: {}",
            run.stderr
        );
        assert!(
            run.stderr
                .lines()
                .filter(|l| l.starts_with("PUTS("))
                .all(|l| l.contains(") = 0 <") && l.ends_with('>')),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .lines()
                .any(|l| l == "HALT(cookie=0x0, status=0)"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("    seconds  usecs/call     calls    errors call"),
            "{}",
            run.stderr
        );
        assert_eq!(
            summary_row(&run.stderr, "PUTS"),
            Some((lengths.len() as u64, 0))
        );
        assert_eq!(summary_row(&run.stderr, "HALT"), Some((1, 0)));
        assert!(summary_row(&run.stderr, "total").is_some());
    }
}

#[test]
fn a_trace_file_leaves_the_console_alone() {
    let dir = scratch("trace-file");
    let file = dir.join("hello.trace");
    std::fs::write(&file, "old contents to be truncated\n".repeat(100)).unwrap();
    let mut option = std::ffi::OsString::from("--trace=");
    option.push(&file);
    let run = tender([option.as_os_str(), guest("hello").as_os_str()]);
    let plain = tender([guest("hello")]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert_eq!(
        run.stdout, plain.stdout,
        "stdout is the guest's console only"
    );
    assert_eq!(run.stderr, plain.stderr, "nothing traced on stderr");
    let trace = std::fs::read_to_string(&file).unwrap();
    assert!(!trace.contains("old contents"), "{trace}");
    assert_eq!(
        puts_lengths(&trace).iter().sum::<u64>(),
        run.stdout.len() as u64
    );
    assert!(trace.contains("HALT(cookie=0x0, status=0)\n"), "{trace}");
    assert!(summary_row(&trace, "total").is_some(), "{trace}");
}

#[test]
fn an_unwritable_trace_file_is_one_line_and_exit_1() {
    let dir = scratch("trace-bad");
    let run = tender([
        format!("--trace={}/no/such/dir/t", dir.display()).as_ref(),
        guest("hello").as_os_str(),
    ]);
    assert_eq!(run.code, 1, "{}", run.output());
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "tender: Could not open trace file {}/no/such/dir/t: No such file or directory\n",
            dir.display()
        )
    );
    let run = tender(["--trace=", guest("hello").to_str().unwrap()]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("Invalid option: `--trace='"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_traced_tender_stays_confined_and_summarises_on_sigterm() {
    let file = scratch("trace-seccomp").join("idle.trace");
    let child = Command::new(tender_bin())
        .arg(format!("--trace={}", file.display()))
        .args([guest("idle").as_os_str(), "20000".as_ref()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Once the guest runs, it PUTS its banner (the trace shows it: the
    // vCPU thread is filtered by then), then waits in a POLL of 20 s.
    let start = Instant::now();
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains("PUTS(")) {
        assert!(start.elapsed() < Duration::from_secs(20), "no PUTS traced");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        status.lines().any(|l| l == "Seccomp:\t2"),
        "not confined: {status}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Exiting on signal 15"), "{stderr}");
    let trace = std::fs::read_to_string(&file).unwrap();
    // The signal handler wrote the summary into the file, from whichever
    // thread it ran on, without a seccomp refusal.
    assert!(!stderr.contains("seccomp"), "{stderr}");
    let (puts, _) = summary_row(&trace, "PUTS").expect("a PUTS row");
    assert!(puts >= 1, "{trace}");
    assert!(summary_row(&trace, "total").is_some(), "{trace}");
}

#[test]
fn hostile_arguments_are_traced_without_a_panic() {
    let mem = 64u64 << 20;
    for (action, expected) in [
        (
            "gpa-oob",
            format!(
                "WALLTIME(arg={:#x} invalid) = ERROR (hypercall WALLTIME: Invalid guest access: gpa={:#x}, sz=8)",
                mem + 0x1000,
                mem + 0x1000
            ),
        ),
        (
            "puts-huge",
            format!("PUTS(data=0x100000, len={}) = ERROR (", u64::MAX - 0x1000),
        ),
        ("hc0", "hypercall(num=0, arg=0x".to_owned()),
        (
            "port-low",
            "EXIT io_out(port=0x4ff, size=4, value=0x".to_owned(),
        ),
        ("in", "EXIT io_in(port=0x501, size=4) = not served".to_owned()),
    ] {
        for image in [guest("hostile"), cpl0_copy("hostile")] {
            let run = tender([
                "--trace".as_ref(),
                "--mem=64".as_ref(),
                image.as_os_str(),
                action.as_ref(),
            ]);
            assert_eq!(run.code, 1, "{action}: {}", run.output());
            assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
            assert!(
                run.stderr.contains(&expected),
                "{action}: expected '{expected}' in {}",
                run.stderr
            );
            assert!(
                summary_row(&run.stderr, "total").is_some_and(|(_, errors)| errors >= 1),
                "{action}: {}",
                run.stderr
            );
        }
    }
}
