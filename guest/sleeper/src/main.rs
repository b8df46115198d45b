//! The behaviour of Solo5's `time` conformance case, on the runtime: the
//! monotonic clock advances, a yield with a past deadline returns at once,
//! five 1 s sleeps each last 1-1.2 s, and the wall clock is after 2017.
#![no_std]
#![no_main]

use hvt_runtime::time::{sleep, wall_clock, Duration, Instant};
use hvt_runtime::{println, Args};

hvt_runtime::manifest!();
hvt_runtime::main!(main);

/// 2017-01-01T00:00:00Z.
const YEAR_2017: Duration = Duration::from_secs(1_483_228_800);

async fn main(_args: Args) -> Result<(), &'static str> {
    let t0 = Instant::now();
    let t1 = Instant::now();
    if t1 <= t0 && hvt_runtime::__bindings::clock::monotonic_ns() <= t1.as_nanos() {
        return Err("monotonic clock did not advance");
    }
    // A yield whose deadline has passed returns at once.
    let before = Instant::now();
    hvt_runtime::__bindings::poll::yield_until(0);
    let waited = before.elapsed();
    println!("yield with a past deadline took {} us", waited.as_micros());
    if waited > Duration::from_millis(50) {
        return Err("yield with a past deadline blocked");
    }
    for i in 1..=5 {
        let start = Instant::now();
        sleep(Duration::from_secs(1)).await;
        let slept = start.elapsed();
        println!("sleep {i}: {} ms", slept.as_millis());
        if slept < Duration::from_secs(1) {
            return Err("slept too little");
        }
        if slept > Duration::from_millis(1200) {
            return Err("slept too much");
        }
    }
    let wall = wall_clock();
    println!("wall clock: {} s since the epoch", wall.as_secs());
    if wall < YEAR_2017 {
        return Err("wall clock is before 2017");
    }
    println!("SUCCESS");
    Ok(())
}
