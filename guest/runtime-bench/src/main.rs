//! Measures the runtime from inside a guest and prints `bench.NAME=VALUE`
//! lines: task spawn+complete cost, timer wake-up latency, the yield
//! hypercall's round trip, and allocation throughput of the guest heap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use hvt_runtime::time::{sleep, Duration, Instant};
use hvt_runtime::{println, spawn, Args};

hvt_runtime::manifest!();
hvt_runtime::main!(main);

/// Steps of the allocation workload (shared with the host benchmark).
const CHURN_STEPS: usize = 2_000_000;

/// `duration` in nanoseconds. The durations here come from `Instant`, which
/// counts u64 nanoseconds, so they always fit.
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

async fn main(_args: Args) -> Result<(), &'static str> {
    // Spawn and complete: batches of 10,000 trivial tasks.
    let tasks = 10_000u64;
    let mut best = u64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks).map(|i| spawn(async move { i })).collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await;
        }
        if sum != tasks * (tasks - 1) / 2 {
            return Err("lost a task");
        }
        best = best.min(nanos(start.elapsed()) / tasks);
    }
    println!("bench.spawn_complete_ns={best}");

    // Timer wake-up: how late 1 ms sleeps end, through the runtime (POLL
    // until just before the deadline, then a spin) and, as the baseline,
    // with a plain POLL until the deadline (what the runtime did before).
    let mut late = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..200 {
        let asked = Instant::now() + Duration::from_millis(1);
        hvt_runtime::time::sleep_until(asked).await;
        late.push(nanos(Instant::now() - asked));
        let asked = Instant::now() + Duration::from_millis(1);
        while Instant::now() < asked {
            hvt_runtime::__bindings::poll::yield_until(asked.as_nanos());
        }
        plain.push(nanos(Instant::now() - asked));
    }
    late.sort_unstable();
    plain.sort_unstable();
    println!("bench.timer_late_median_ns={}", late[late.len() / 2]);
    println!("bench.timer_late_max_ns={}", late[late.len() - 1]);
    println!(
        "bench.timer_plain_late_median_ns={}",
        plain[plain.len() / 2]
    );
    println!("bench.timer_plain_late_max_ns={}", plain[plain.len() - 1]);
    println!(
        "bench.wake_margin_ns={}",
        nanos(hvt_runtime::time::wake_margin())
    );

    // Clocks: monotonic and wall-clock reads, and the exits they cost.
    let issued = hvt_runtime::__bindings::hypercall::issued;
    let reads = 100_000u64;
    let exits = issued();
    let start = Instant::now();
    for _ in 0..reads {
        core::hint::black_box(hvt_runtime::time::wall_clock());
    }
    // Counted before printing: a println may flush the console (one PUTS).
    let (ns, exits) = (nanos(start.elapsed()), issued() - exits);
    println!("bench.wall_read_ns={}", ns / reads);
    println!("bench.wall_read_exits={exits}");
    println!(
        "bench.wall_from_page={}",
        u8::from(hvt_runtime::__bindings::clock::wall_from_page())
    );
    let exits = issued();
    let start = Instant::now();
    for _ in 0..reads {
        core::hint::black_box(Instant::now());
    }
    let (ns, exits) = (nanos(start.elapsed()), issued() - exits);
    println!("bench.monotonic_read_ns={}", ns / reads);
    println!("bench.monotonic_read_exits={exits}");
    let calls = 5_000u64;
    let exits = issued();
    let start = Instant::now();
    for _ in 0..calls {
        core::hint::black_box(hvt_runtime::__bindings::clock::walltime_hypercall_ns());
    }
    let (ns, exits) = (nanos(start.elapsed()), issued() - exits);
    println!("bench.walltime_hypercall_ns={}", ns / calls);
    println!("bench.walltime_hypercall_exits={exits}");

    // Console: exits per printed line, buffered (println!) and one PUTS per
    // line (console::write, which is what println! cost before).
    let lines = 1000u64;
    hvt_runtime::__bindings::console::flush();
    let exits = issued();
    let start = Instant::now();
    for i in 0..lines {
        println!("console line {i}");
    }
    // The last flush counts too.
    hvt_runtime::__bindings::console::flush();
    let buffered_ns = nanos(start.elapsed());
    let buffered_exits = issued() - exits;
    let exits = issued();
    let start = Instant::now();
    for i in 0..lines {
        let mut line = alloc::string::String::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!("console line {i}\n"));
        hvt_runtime::__bindings::console::write(line.as_bytes());
    }
    let direct_ns = nanos(start.elapsed());
    let direct_exits = issued() - exits;
    println!("bench.console_lines={lines}");
    println!("bench.console_buffered_exits={buffered_exits}");
    println!("bench.console_buffered_ns={buffered_ns}");
    println!("bench.console_direct_exits={direct_exits}");
    println!("bench.console_direct_ns={direct_ns}");

    // Yield round trip: POLL with a deadline already passed.
    let rounds = 2000u64;
    let start = Instant::now();
    for _ in 0..rounds {
        hvt_runtime::__bindings::poll::yield_until(0);
    }
    println!(
        "bench.yield_roundtrip_ns={}",
        nanos(start.elapsed()) / rounds
    );

    // Allocation throughput of the guest heap (talc).
    let start = Instant::now();
    let checksum =
        hvt_runtime::churn::churn(hvt_runtime::memory::global_allocator(), CHURN_STEPS, 42)
            .ok_or("allocation failed")?;
    let ns = nanos(start.elapsed());
    println!("bench.alloc_steps={CHURN_STEPS}");
    println!("bench.alloc_ns={ns}");
    println!("bench.alloc_checksum={checksum}");
    sleep(Duration::ZERO).await;
    Ok(())
}
