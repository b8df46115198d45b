//! Runtime benchmark: figures measured inside a guest under the tender
//! (task spawn+complete, timer wake-up lateness, yield round trip, heap
//! throughput), the raw hypercall cost at CPL 3 and CPL 0, and the same
//! allocation workload on the host with the system allocator and with talc,
//! all in one run.
//!
//! `cargo bench --bench runtime`

#[path = "../../tests/common/mod.rs"]
mod common;

#[path = "../../guest/runtime/src/churn.rs"]
mod churn;

use std::collections::HashMap;
use std::time::Instant;

/// The guest's allocator configuration, on the host.
type Talc = talc::TalcLock<spinning_top::RawSpinlock, talc::source::Manual>;

fn run_guest(image: &std::path::Path, args: &[&str]) -> HashMap<String, u64> {
    let mut argv = vec![image.as_os_str().to_owned()];
    argv.extend(args.iter().map(Into::into));
    let run = common::tender(argv);
    assert_eq!(run.code, 0, "{}", run.output());
    run.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("bench.")?.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn hcloop_ns(image: &std::path::Path) -> u64 {
    let run = common::tender([image.as_os_str(), "20000".as_ref()]);
    assert_eq!(run.code, 0, "{}", run.output());
    // Whole nanoseconds are the precision this bench prints.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ns = common::hcloop_ns(&run.stdout).round() as u64;
    ns
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let figures = run_guest(&common::guest("runtime-bench"), &["--solo5:quiet"]);
    let steps = usize::try_from(figures["alloc_steps"]).expect("alloc_steps fits a usize");
    let guest_talc_ns = figures["alloc_ns"];

    // The same workload on the host: system allocator, then talc.
    let start = Instant::now();
    let system_sum = churn::churn(&std::alloc::System, steps, 42).expect("system allocator");
    let system_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut arena = vec![0u64; (64 << 20) / 8];
    let talc = Talc::new(talc::source::Manual);
    // SAFETY: the arena outlives the allocator's use below and is given once.
    unsafe { talc.lock().claim(arena.as_mut_ptr().cast(), 64 << 20) }.expect("claim");
    let start = Instant::now();
    let talc_sum = churn::churn(&talc, steps, 42).expect("talc");
    let host_talc_ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    assert_eq!(
        system_sum, talc_sum,
        "both allocators ran the same workload"
    );
    assert_eq!(
        figures["alloc_checksum"], talc_sum,
        "the guest ran the same workload"
    );
    drop(arena);

    let cpl3 = hcloop_ns(&common::guest("hcloop"));
    let cpl0 = hcloop_ns(&common::cpl0_copy("hcloop"));

    let per_step = |ns: u64| ns as f64 / steps as f64;
    println!("runtime benchmark (guest figures at CPL 3 under tender)");
    println!(
        "  task spawn + complete        {:>8} ns per task (best of 5 x 10,000)",
        figures["spawn_complete_ns"]
    );
    let us = |key: &str| figures[key] as f64 / 1e3;
    println!(
        "  1 ms sleep wakes late by     {:>8.1} us median, {:.1} us max (200 sleeps; POLL to {:.0} us before, then a TSC spin)",
        us("timer_late_median_ns"),
        us("timer_late_max_ns"),
        us("wake_margin_ns")
    );
    println!(
        "    baseline, plain POLL       {:>8.1} us median, {:.1} us max (same run; {:.2}x the median lateness)",
        us("timer_plain_late_median_ns"),
        us("timer_plain_late_max_ns"),
        figures["timer_late_median_ns"] as f64 / figures["timer_plain_late_median_ns"].max(1) as f64
    );
    let source = if figures["wall_from_page"] == 1 {
        "clock page"
    } else {
        "WALLTIME"
    };
    println!(
        "  wall-clock read ({source:<10})  {:>8} ns, {} exits in 100,000 reads ({:.0}x cheaper than WALLTIME)",
        figures["wall_read_ns"],
        figures["wall_read_exits"],
        figures["walltime_hypercall_ns"] as f64 / figures["wall_read_ns"].max(1) as f64
    );
    println!(
        "  monotonic read (TSC)         {:>8} ns, {} exits in 100,000 reads",
        figures["monotonic_read_ns"], figures["monotonic_read_exits"]
    );
    println!(
        "    baseline, WALLTIME         {:>8} ns, {} exits in 5,000 calls",
        figures["walltime_hypercall_ns"], figures["walltime_hypercall_exits"]
    );
    let lines = figures["console_lines"] as f64;
    println!(
        "  println!, buffered           {:>8.3} exits per line, {:.2} us per line ({} lines)",
        figures["console_buffered_exits"] as f64 / lines,
        figures["console_buffered_ns"] as f64 / lines / 1e3,
        figures["console_lines"]
    );
    println!(
        "    baseline, one PUTS a line  {:>8.3} exits per line, {:.2} us per line",
        figures["console_direct_exits"] as f64 / lines,
        figures["console_direct_ns"] as f64 / lines / 1e3
    );
    println!(
        "  yield round trip (POLL 0)    {:>8.1} us",
        figures["yield_roundtrip_ns"] as f64 / 1e3
    );
    println!(
        "  hypercall round trip, CPL 3  {:>8.1} us (WALLTIME, 20,000 calls)",
        cpl3 as f64 / 1e3
    );
    println!(
        "  hypercall round trip, CPL 0  {:>8.1} us (same guest without our note)",
        cpl0 as f64 / 1e3
    );
    println!("allocation workload: {steps} free+allocate steps of 16-2048 bytes");
    println!(
        "  host, system allocator       {:>8.1} ns per step (baseline)",
        per_step(system_ns)
    );
    println!(
        "  host, talc                   {:>8.1} ns per step ({:.2}x the system allocator's throughput)",
        per_step(host_talc_ns),
        system_ns as f64 / host_talc_ns as f64
    );
    println!(
        "  guest, talc (CPL 3)          {:>8.1} ns per step ({:.2}x the system allocator's throughput)",
        per_step(guest_talc_ns),
        system_ns as f64 / guest_talc_ns as f64
    );
}
