//! Sandbox benchmark: what the seccomp filters cost. Boot time (exec to
//! exit of `hello`) and the hypercall round trip (`hcloop`: WALLTIME at
//! CPL 3, one KVM_RUN through the vCPU thread's filter per call), each with
//! `--seccomp=on` and `--seccomp=off`, interleaved run by run (the order
//! alternating) so that both see the same machine; then the same again with
//! a CPU hog, a busy thread in this process. Prints medians and minimums,
//! the ratio of the medians on/off and the median of the ratios of the
//! pairs run back to back ("paired", the figure checked against the target:
//! the filter costs at most 5%). Exits cost so much more
//! than the filter that the ratios are mostly noise; the last figure is the
//! filter alone, in this process: an ioctl the vCPU thread's rules allow,
//! timed on a thread with such a filter and on one without.
//!
//! `cargo bench --bench sandbox`. SANDBOX_BENCH_RUNS sets the boot runs per
//! series (default 50, at least 50 for a figure worth quoting),
//! SANDBOX_BENCH_HC_RUNS the hcloop runs (default 15) and
//! SANDBOX_BENCH_HC_CALLS the hypercalls per hcloop run (default 2,000);
//! SANDBOX_BENCH_HOG=0 leaves the hog series out.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tender_core::sandbox::{Allowlist, SeccompMode};

/// The two settings compared.
const MODES: [&str; 2] = ["--seccomp=on", "--seccomp=off"];

/// Runs `tender` with `mode` and `args`, checks that it succeeded and was
/// not stopped by its filter, and returns the wall time from spawn to exit
/// and its stdout.
fn run(tender: &Path, mode: &str, args: &[&str]) -> (Duration, String) {
    let start = Instant::now();
    let out = Command::new(tender)
        .arg(mode)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the tender");
    let elapsed = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("seccomp"),
        "tender {mode} {args:?}: {}\n{stderr}",
        out.status
    );
    (elapsed, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A series' figures, in nanoseconds.
struct Stats {
    min: f64,
    median: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    Stats {
        min: samples[0],
        median: samples[samples.len() / 2],
    }
}

/// `runs` measurements of each mode, interleaved, the order alternating;
/// `measure` returns nanoseconds. Returns the statistics of on, of off, and
/// of the ratio on/off of each pair (run back to back, so that a change in
/// the machine's load between pairs cancels out).
fn interleaved(runs: usize, mut measure: impl FnMut(&str) -> f64) -> [Stats; 3] {
    // One warm-up run of each: page cache, first-use costs.
    for mode in MODES {
        measure(mode);
    }
    let (mut on, mut off) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let ns = measure(MODES[index]);
            if index == 0 {
                on.push(ns);
            } else {
                off.push(ns);
            }
        }
    }
    let ratios = on.iter().zip(&off).map(|(a, b)| a / b).collect();
    [stats(on), stats(off), stats(ratios)]
}

/// A thread that spins until dropped: a CPU hog in this process.
struct Hog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Hog {
    fn start() -> Hog {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut spins = 0u64;
            while !flag.load(Ordering::Relaxed) {
                spins = std::hint::black_box(spins.wrapping_add(1));
            }
            spins
        });
        Hog {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `KVM_RUN`, `_IO(0xAE, 0x80)`.
const KVM_RUN: u64 = 0xae80;

/// Nanoseconds per `ioctl(/dev/null, KVM_RUN)` (ENOTTY at once), the
/// median of `rounds` rounds of `calls` calls, on a thread of its own: with
/// a filter shaped as the vCPU thread's of a guest with a net and a block
/// device (the same rules, other descriptors made up), or with none. Also
/// the nanoseconds it took to build (compile) and to install the filter (0
/// without).
fn ioctl_ns(filtered: bool, rounds: usize, calls: u32) -> (f64, f64, f64) {
    // Opened and closed here: the filtered thread may not close it.
    let null = std::fs::File::open("/dev/null").expect("open /dev/null");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    let median = std::thread::spawn(move || {
        let mut samples = Vec::with_capacity(rounds);
        let (mut compile, mut install) = (0.0, 0.0);
        if filtered {
            let start = Instant::now();
            let (tap, image, epoll, timer, doorbell) =
                (fd + 100, fd + 101, fd + 102, fd + 103, fd + 104);
            let mut list = Allowlist::new("bench");
            list.allow_ioctls(fd, &[KVM_RUN, 0x8090_ae81, 0x8138_ae83])
                .allow(libc::SYS_brk)
                .allow_fds(libc::SYS_write, &[libc::STDOUT_FILENO, tap, doorbell])
                .allow_fds(libc::SYS_epoll_wait, &[epoll])
                .allow_fds(libc::SYS_epoll_pwait, &[epoll])
                .allow_fds(libc::SYS_timerfd_settime, &[timer])
                .allow_fds(libc::SYS_read, &[timer, tap])
                .allow(libc::SYS_futex)
                .allow_fds(libc::SYS_pread64, &[image])
                .allow_fds(libc::SYS_pwrite64, &[image])
                .allow_fds(libc::SYS_fdatasync, &[image])
                // What this thread needs besides: the clock if the vDSO
                // cannot serve it, and a Rust thread's exit.
                .allow(libc::SYS_clock_gettime)
                .allow(libc::SYS_sigaltstack)
                .allow(libc::SYS_munmap)
                .allow(libc::SYS_madvise)
                .allow(libc::SYS_rt_sigprocmask)
                .allow(libc::SYS_exit);
            let filter = list.compile(SeccompMode::Enforce).expect("compile");
            compile = start.elapsed().as_secs_f64() * 1e9;
            filter.apply().expect("install the filter");
            install = start.elapsed().as_secs_f64() * 1e9 - compile;
        }
        for _ in 0..rounds {
            let start = Instant::now();
            for _ in 0..calls {
                // SAFETY: an ioctl with no argument on our own /dev/null
                // descriptor; it fails with ENOTTY and touches no memory.
                std::hint::black_box(unsafe { libc::ioctl(fd, KVM_RUN) });
            }
            samples.push(start.elapsed().as_secs_f64() * 1e9 / f64::from(calls));
        }
        (stats(samples).median, compile, install)
    })
    .join()
    .expect("the ioctl thread");
    drop(null);
    median
}

struct Bench {
    tender: PathBuf,
    hello: PathBuf,
    hcloop: PathBuf,
    boot_runs: usize,
    hc_runs: usize,
    hc_calls: String,
}

impl Bench {
    /// The boot and hcloop series, printed as two rows; returns the median
    /// round trip without the filter, in nanoseconds.
    fn series(&self, label: &str) -> f64 {
        let hello = self.hello.to_str().expect("a UTF-8 path");
        let hcloop = self.hcloop.to_str().expect("a UTF-8 path");
        let boot = interleaved(self.boot_runs, |mode| {
            run(&self.tender, mode, &[hello]).0.as_secs_f64() * 1e9
        });
        let round_trip = interleaved(self.hc_runs, |mode| {
            // Guest-measured: a u64 of nanoseconds, far below 2^53.
            common::hcloop_ns(&run(&self.tender, mode, &[hcloop, &self.hc_calls]).1)
        });
        row(
            &format!("boot, hello{label} ({} runs)", self.boot_runs),
            1e6,
            "ms",
            &boot,
        );
        row(
            &format!("hypercall round trip{label} ({} runs)", self.hc_runs),
            1e3,
            "us",
            &round_trip,
        );
        round_trip[1].median
    }
}

fn row(name: &str, unit_ns: f64, unit: &str, [on, off, paired]: &[Stats; 3]) {
    println!(
        "{:<44} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:<3} {:>6.3} {:>6.3} {}",
        name,
        on.median / unit_ns,
        off.median / unit_ns,
        on.min / unit_ns,
        off.min / unit_ns,
        unit,
        on.median / off.median,
        paired.median,
        if paired.median <= 1.05 {
            "ok"
        } else {
            "OVER 5%"
        }
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo test --benches` lists benchmarks; there are no tests here.
        return;
    }
    let bench = Bench {
        tender: common::tender_bin(),
        hello: common::guest("hello"),
        hcloop: common::guest("hcloop"),
        boot_runs: common::env_number("SANDBOX_BENCH_RUNS", 50),
        hc_runs: common::env_number("SANDBOX_BENCH_HC_RUNS", 15),
        hc_calls: common::env_number("SANDBOX_BENCH_HC_CALLS", 2000).to_string(),
    };
    let hog = std::env::var("SANDBOX_BENCH_HOG").map_or(true, |v| v != "0");
    println!(
        "sandbox benchmark: --seccomp=on against --seccomp=off, interleaved; \
         hcloop: {} WALLTIME calls a run, CPL 3",
        bench.hc_calls
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:<3} {:>6} {:>6}",
        "", "on med", "off med", "on min", "off min", "", "on/off", "paired"
    );
    let round_trip = bench.series("");
    if hog {
        let _hog = Hog::start();
        bench.series(", CPU hog");
    }
    // Alternating threads, so that both see the same machine.
    let (mut with, mut without) = (Vec::new(), Vec::new());
    let (mut compile, mut install) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        without.push(ioctl_ns(false, 21, 20_000).0);
        let (ns, built, installed) = ioctl_ns(true, 21, 20_000);
        with.push(ns);
        compile.push(built);
        install.push(installed);
    }
    let (with, without) = (stats(with).median, stats(without).median);
    println!(
        "filter alone: the vCPU filter takes {:.0} us to build, {:.0} us to install (medians of 5)",
        stats(compile).median / 1e3,
        stats(install).median / 1e3
    );
    println!(
        "filter alone: an allowed KVM_RUN ioctl costs {:.0} ns with the vCPU filter, {:.0} ns \
         without: {:+.0} ns a system call, {:.3}% of the round trip above",
        with,
        without,
        with - without,
        (with - without) / round_trip * 100.0
    );
}
