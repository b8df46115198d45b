//! Guests built on the runtime, under KVM at CPL 3 and at CPL 0.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{cpl0_copy, guest, tender, Run};
use hvt_abi::hypercall::exit;

fn both_levels(name: &str) -> [(PathBuf, &'static str); 2] {
    [(guest(name), "CPL 3"), (cpl0_copy(name), "CPL 0")]
}

fn run(image: &std::path::Path, args: &[&str]) -> Run {
    let mut argv = vec![image.as_os_str().to_owned()];
    argv.extend(args.iter().map(Into::into));
    tender(argv)
}

#[test]
fn sleeper_passes_at_cpl3() {
    let run = run(&guest("sleeper"), &[]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains("SUCCESS"), "{}", run.stdout);
    assert_eq!(run.stdout.matches("sleep ").count(), 5, "{}", run.stdout);
}

#[test]
fn sleeper_passes_at_cpl0() {
    let run = run(&cpl0_copy("sleeper"), &[]);
    assert_eq!(run.code, 0, "{}", run.output());
    assert!(run.stdout.contains("CPL 0"), "{}", run.stdout);
    assert!(run.stdout.contains("SUCCESS"), "{}", run.stdout);
}

#[test]
fn ten_thousand_tasks_complete_at_both_levels() {
    for (image, level) in both_levels("tasks") {
        let run = run(&image, &["--tasks=10000"]);
        assert_eq!(run.code, 0, "{level}: {}", run.output());
        assert!(
            run.stdout.contains("tasks: 10000 tasks done"),
            "{level}: {}",
            run.stdout
        );
        assert!(run.stdout.contains("SUCCESS"), "{level}: {}", run.stdout);
    }
}

/// A sleeping guest costs the host no CPU: the tender blocks in epoll.
#[test]
// The child is reaped by wait4, which also returns its CPU time.
#[allow(clippy::zombie_processes)]
fn an_idle_guest_uses_under_5_percent_of_a_core() {
    let start = Instant::now();
    let child = std::process::Command::new(common::tender_bin())
        .arg(guest("sleeper"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let child_pid = i32::try_from(child.id()).expect("a pid fits an i32");
    // SAFETY: waits for our own child.
    let pid = unsafe { libc::wait4(child_pid, &mut status, 0, &mut usage) };
    assert_eq!(pid, child_pid);
    let wall = start.elapsed();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let cpu = |t: libc::timeval| {
        let secs = u64::try_from(t.tv_sec).expect("a CPU time is not negative");
        let micros = u64::try_from(t.tv_usec).expect("a CPU time is not negative");
        Duration::from_secs(secs) + Duration::from_micros(micros)
    };
    let used = cpu(usage.ru_utime) + cpu(usage.ru_stime);
    assert!(wall >= Duration::from_secs(5));
    let share = used.as_secs_f64() / wall.as_secs_f64();
    assert!(
        share < 0.05,
        "the idle guest used {used:?} of CPU in {wall:?} ({:.1}%)",
        share * 100.0
    );
}

#[test]
fn out_of_memory_ends_with_a_message_and_255() {
    for (image, level) in both_levels("oom") {
        let run = tender(["--mem=8".as_ref(), image.as_os_str()]);
        assert_eq!(run.code, exit::ABORT, "{level}: {}", run.output());
        assert!(
            run.stdout.contains("Solo5: ABORT: panicked at"),
            "{level}: {}",
            run.stdout
        );
        assert!(
            run.stdout
                .contains("memory allocation of 1048576 bytes failed"),
            "{level}: {}",
            run.stdout
        );
    }
}

#[test]
fn a_panicking_task_ends_with_its_message_and_255() {
    for (image, level) in both_levels("task-panic") {
        let run = run(&image, &[]);
        assert_eq!(run.code, exit::ABORT, "{level}: {}", run.output());
        assert!(
            run.stdout.contains("Solo5: ABORT: panicked at"),
            "{level}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains("task gave up: index 5 of 3"),
            "{level}: {}",
            run.stdout
        );
    }
}

#[test]
fn stack_overflow_into_the_guard_is_detected() {
    let run = run(&guest("stack-overflow"), &[]);
    assert_eq!(run.code, exit::ABORT, "{}", run.output());
    assert!(
        run.stdout
            .contains("Solo5: ABORT: stack overflow: the stack outgrew its 512 KiB"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("went unnoticed"), "{}", run.stdout);
}

#[test]
fn too_little_memory_for_the_runtime_is_refused() {
    // 2 MiB leaves the bindings their 512 KiB but not the runtime its
    // stack, guard and heap.
    let run = tender(["--mem=2".as_ref(), guest("tasks").as_os_str()]);
    assert_eq!(run.code, exit::ABORT, "{}", run.output());
    assert!(
        run.stdout
            .contains("Solo5: ABORT: Not enough memory for the runtime"),
        "{}",
        run.stdout
    );
    let run = tender([
        "--mem=4".as_ref(),
        guest("tasks").as_os_str(),
        "--tasks=100".as_ref(),
    ]);
    assert_eq!(run.code, 0, "{}", run.output());
}
