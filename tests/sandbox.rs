//! The self-sandbox (docs/security.md) on a running tender: every thread
//! confined, each filter live, descriptors cleaned, privileges dropped on
//! request, and the tender still running under an outer filter built from
//! the documented start-up calls.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{guest, is_root, tender_bin, ConsoleLines, NetNs};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// The `Key:\tvalue` lines of a /proc status file.
fn status(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        .collect()
}

/// The status of every thread of `pid`, by thread name.
fn threads(pid: u32) -> Vec<(String, BTreeMap<String, String>)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = status(&entry.unwrap().path().join("status"));
        all.push((status.get("Name").cloned().unwrap_or_default(), status));
    }
    all
}

/// Waits until `pid`'s threads include one called `name`.
fn wait_for_thread(pid: u32, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !threads(pid).iter().any(|(n, _)| n == name) {
        assert!(Instant::now() < deadline, "no thread {name}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tender serving `echo` on a tap of its own, with the ring.
fn echo_with_ring(ns: &NetNs, tap: &str, extra_env: &[(&str, &str)]) -> (Child, ConsoleLines) {
    let mut command = ns.exec(tender_bin());
    command
        .arg(format!("--net:service={tap}"))
        .arg(guest("echo"))
        .arg("--ipv4=10.83.0.2/24")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in extra_env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("start the tender");
    let console = ConsoleLines::capture(&mut child);
    (child, console)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn every_thread_is_confined_while_the_guest_runs() {
    if !is_root() {
        eprintln!("needs root (netns, tap); skipped");
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.83.0.1/24"));
    let (child, mut console) = echo_with_ring(&ns, &tap, &[]);
    console.wait_for("echo: listening", Duration::from_secs(20));
    let pid = child.id();
    wait_for_thread(pid, "net-ring");
    let all = threads(pid);
    assert!(all.len() >= 2, "{all:?}");
    for (name, status) in &all {
        assert_eq!(
            status.get("Seccomp").map(String::as_str),
            Some("2"),
            "{name}"
        );
        let filters: u32 = status
            .get("Seccomp_filters")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(filters >= 1, "{name}: {status:?}");
        assert_eq!(
            status.get("NoNewPrivs").map(String::as_str),
            Some("1"),
            "{name}"
        );
    }
    stop(child);
}

#[test]
fn the_vcpu_filter_is_live_and_ends_the_process() {
    let run = Command::new(tender_bin())
        .env("TENDER_SECCOMP_SELFTEST", "vcpu")
        .arg(guest("hello"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        format!(
            "tender: seccomp: thread 'vcpu' made a forbidden system call: {}\n",
            libc::SYS_getppid
        )
    );
    // The guest never ran.
    assert_eq!(String::from_utf8_lossy(&run.stdout), "");
    // In log mode the call goes through, and so does the guest.
    let run = Command::new(tender_bin())
        .env("TENDER_SECCOMP_SELFTEST", "vcpu")
        .args(["--seccomp=log".as_ref(), guest("hello").as_os_str()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{run:?}");
}

#[test]
fn the_ring_thread_filter_is_live_and_ends_the_process() {
    if !is_root() {
        eprintln!("needs root (netns, tap); skipped");
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.83.0.1/24"));
    let (mut child, mut console) =
        echo_with_ring(&ns, &tap, &[("TENDER_SECCOMP_SELFTEST", "net-ring")]);
    let line = console.wait_for("tender: seccomp:", Duration::from_secs(20));
    assert_eq!(
        line,
        format!(
            "tender: seccomp: thread 'net-ring' made a forbidden system call: {}",
            libc::SYS_getppid
        )
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "the whole process ends");
}

/// Descriptors of `pid` and what they point at.
fn fds(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn inherited_descriptors_and_the_kernel_file_are_closed() {
    let idle = guest("idle");
    let leaked = std::fs::File::open("/etc/hostname").unwrap();
    let leaked_fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    let mut command = Command::new(tender_bin());
    command
        .args([idle.as_os_str(), "1500".as_ref()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs between fork and exec and only calls
    // fcntl, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            // The child keeps the descriptor across exec, as a careless
            // parent's would be.
            libc::fcntl(leaked_fd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let child = command.spawn().unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(500));
    let open = fds(pid);
    stop(child);
    assert!(!open.iter().any(|t| t == "/etc/hostname"), "{open:?}");
    let kernel = std::fs::canonicalize(&idle).unwrap();
    assert!(
        !open.iter().any(|t| Path::new(t) == kernel),
        "the kernel file is still open: {open:?}"
    );
    assert!(!open.iter().any(|t| t == "/dev/kvm"), "{open:?}");
}

#[test]
fn user_and_chroot_drop_privileges_and_need_root() {
    if !is_root() {
        eprintln!("needs root; skipped");
        return;
    }
    let root = common::scratch("chroot");
    let child = Command::new(tender_bin())
        .args([
            "--user=65534:65534".as_ref(),
            format!("--chroot={}", root.display()).as_ref(),
            guest("idle").as_os_str(),
            "1500".as_ref(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(500));
    let main = status(Path::new(&format!("/proc/{pid}/status")));
    let cwd_root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        main.get("Uid").is_some_and(|uid| uid.starts_with("65534")),
        "{main:?}"
    );
    assert!(
        main.get("Gid").is_some_and(|gid| gid.starts_with("65534")),
        "{main:?}"
    );
    assert_eq!(cwd_root, std::fs::canonicalize(&root).unwrap());
    // Without root, the options are refused.
    let run = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tender_bin())
        .args(["--user=65534".as_ref(), guest("hello").as_os_str()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "tender: --user and --chroot need the tender to run as root\n"
    );
}

/// The system calls docs/security.md lists for the tender's start-up and
/// its threads (regenerate with scripts/startup-syscalls.sh), plus what
/// the test harness's exec needs.
const DOCUMENTED: &[libc::c_long] = &[
    libc::SYS_arch_prctl,
    libc::SYS_brk,
    libc::SYS_clone3,
    libc::SYS_close,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_wait,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_flock,
    libc::SYS_futex,
    libc::SYS_getdents64,
    libc::SYS_geteuid,
    libc::SYS_getrandom,
    libc::SYS_gettid,
    libc::SYS_ioctl,
    libc::SYS_lseek,
    libc::SYS_madvise,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_munmap,
    libc::SYS_newfstatat,
    libc::SYS_openat,
    libc::SYS_poll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_prlimit64,
    libc::SYS_pwrite64,
    libc::SYS_read,
    libc::SYS_readlink,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sched_getaffinity,
    libc::SYS_seccomp,
    libc::SYS_set_robust_list,
    libc::SYS_set_tid_address,
    libc::SYS_sigaltstack,
    libc::SYS_socket,
    libc::SYS_statx,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_write,
];

#[test]
fn the_tender_runs_under_an_outer_filter_of_the_documented_calls() {
    let rules = DOCUMENTED.iter().map(|&call| (call, Vec::new())).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )
    .unwrap();
    let program: BpfProgram = filter.try_into().unwrap();
    let mut command = Command::new(tender_bin());
    command
        .args([guest("idle").as_os_str(), "1000".as_ref()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only makes the prctl and
    // seccomp calls of apply_filter, over a program compiled beforehand.
    unsafe {
        command
            .pre_exec(move || seccompiler::apply_filter(&program).map_err(std::io::Error::other));
    }
    let child = command.spawn().unwrap();
    let pid = child.id();
    std::thread::sleep(Duration::from_millis(400));
    let main = status(Path::new(&format!("/proc/{pid}/status")));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("idle: slept 1000 ms"),
        "{out:?}"
    );
    // The outer filter and the tender's own.
    let filters: u32 = main
        .get("Seccomp_filters")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(filters, 2, "{main:?}");
}

#[test]
fn user_with_the_network_ring_drops_every_thread() {
    if !is_root() {
        eprintln!("needs root (netns, tap); skipped");
        return;
    }
    let mut ns = NetNs::new();
    let tap = ns.add_tap(None, true, Some("10.83.0.1/24"));
    let mut command = ns.exec(tender_bin());
    command
        .arg("--user=65534")
        .arg(format!("--net:service={tap}"))
        .arg(guest("echo"))
        .arg("--ipv4=10.83.0.2/24")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start the tender");
    let mut console = ConsoleLines::capture(&mut child);
    console.wait_for("echo: listening", Duration::from_secs(20));
    let pid = child.id();
    wait_for_thread(pid, "net-ring");
    for (name, status) in threads(pid) {
        assert!(
            status
                .get("Uid")
                .is_some_and(|uid| uid.starts_with("65534")),
            "{name}: {status:?}"
        );
        assert_eq!(
            status.get("Seccomp").map(String::as_str),
            Some("2"),
            "{name}"
        );
    }
    stop(child);
    assert!(
        !console.output().contains("seccomp"),
        "{}",
        console.output()
    );
}
