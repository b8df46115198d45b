//! Density benchmark: 100 `hello` guests started at once (each its own
//! tender process) on the machine's cores, against 100 fork+exec of
//! `/bin/true` started the same way in the same run. Reports boots per
//! second (100 / wall time from the first spawn to the last exit) and CPU
//! time (user + system) per boot, and the ratio of each to the baseline.
//!
//! `cargo bench --bench density` (DENSITY_BENCH_GUESTS changes the 100,
//! DENSITY_BENCH_ROUNDS the 7 rounds; medians of the rounds are printed).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One round: `count` processes of `program args` started back to back,
/// then all reaped. Returns the wall time from the first spawn to the last
/// exit and the CPU time all of them used.
fn round(count: usize, program: &PathBuf, args: &[OsString]) -> (Duration, Duration) {
    let start = Instant::now();
    let mut pids = Vec::with_capacity(count);
    for _ in 0..count {
        // Reaped by wait4 below, which also gives its own rusage.
        #[allow(clippy::zombie_processes)]
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        pids.push(libc::pid_t::try_from(child.id()).expect("pid fits pid_t"));
    }
    let mut cpu = Duration::ZERO;
    for pid in pids {
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with valid out-pointers; its
        // `Child` was dropped without waiting.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(rc, pid, "wait4: {}", std::io::Error::last_os_error());
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "{program:?} {args:?} failed: status {status:#x}"
        );
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec.unsigned_abs())
                + Duration::from_micros(t.tv_usec.unsigned_abs())
        };
        cpu += tv(usage.ru_utime) + tv(usage.ru_stime);
    }
    (start.elapsed(), cpu)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .max(1)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks; there are no tests here.
        return;
    }
    let guests = env_count("DENSITY_BENCH_GUESTS", 100);
    let rounds = env_count("DENSITY_BENCH_ROUNDS", 7);
    let tender = common::tender_bin();
    let hello = common::guest("hello").into_os_string();
    let rows: [(&str, PathBuf, Vec<OsString>); 3] = [
        ("fork+exec /bin/true (baseline)", "/bin/true".into(), vec![]),
        (
            "tender hello, CPL 3, default 512 MiB",
            tender.clone(),
            vec![hello.clone()],
        ),
        (
            "tender hello, CPL 3, --mem=2",
            tender,
            vec!["--mem=2".into(), hello],
        ),
    ];
    // Warm-up: page cache, first-use costs.
    for (_, program, args) in &rows {
        round(guests.min(10), program, args);
    }
    // Rounds in turns, so that other load falls on every row alike.
    let mut rates = vec![Vec::new(); rows.len()];
    let mut cpus = vec![Vec::new(); rows.len()];
    for _ in 0..rounds {
        for (i, (_, program, args)) in rows.iter().enumerate() {
            let (wall, cpu) = round(guests, program, args);
            rates[i].push(guests as f64 / wall.as_secs_f64());
            cpus[i].push(cpu.as_secs_f64() * 1e3 / guests as f64);
        }
    }
    let rate: Vec<f64> = rates.into_iter().map(common::median).collect();
    let cpu: Vec<f64> = cpus.into_iter().map(common::median).collect();
    // SAFETY: sysconf has no preconditions.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    println!(
        "density benchmark: {guests} processes started at once, {cores} cores, median of {rounds} rounds"
    );
    println!(
        "{:<40} {:>9} {:>10} {:>12} {:>10}",
        "", "boots/s", "x baseline", "CPU ms/boot", "x baseline"
    );
    for (i, (name, _, _)) in rows.iter().enumerate() {
        println!(
            "{:<40} {:>9.0} {:>9.2}x {:>12.3} {:>9.2}x",
            name,
            rate[i],
            rate[i] / rate[0],
            cpu[i],
            cpu[i] / cpu[0]
        );
    }
}
