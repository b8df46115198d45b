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

    // Timer wake-up: how late 1 ms sleeps end.
    let mut late = Vec::new();
    for _ in 0..200 {
        let asked = Instant::now() + Duration::from_millis(1);
        hvt_runtime::time::sleep_until(asked).await;
        late.push(nanos(Instant::now() - asked));
    }
    late.sort_unstable();
    println!("bench.timer_late_median_us={}", late[late.len() / 2] / 1000);
    println!("bench.timer_late_max_us={}", late[late.len() - 1] / 1000);

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
