//! Many concurrent tasks with timers and channels: `--tasks=N` workers
//! (default 10,000) each sleep a little, yield, and report through a
//! channel; a spinning task checks that a busy task starves no timer.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use hvt_runtime::sync::channel::channel;
use hvt_runtime::time::{sleep, Duration, Instant};
use hvt_runtime::{println, spawn, yield_now, Args};

hvt_runtime::manifest!();
hvt_runtime::main!(main);

async fn main(args: Args) -> Result<(), &'static str> {
    let count: u64 = args
        .value("--tasks")
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let start = Instant::now();
    let (tx, mut rx) = channel();
    let mut handles = Vec::new();
    for i in 0..count {
        let tx = tx.clone();
        handles.push(spawn(async move {
            sleep(Duration::from_micros(i % 500)).await;
            yield_now().await;
            tx.send(i).map_err(|_| "receiver gone")?;
            Ok::<u64, &'static str>(i)
        }));
    }
    drop(tx);
    let (mut received, mut sum) = (0u64, 0u64);
    while let Some(i) = rx.recv().await {
        received += 1;
        sum += i;
    }
    let mut joined = 0u64;
    for handle in handles {
        joined += handle.await?;
    }
    let expected = count * count.saturating_sub(1) / 2;
    if received != count || sum != expected || joined != expected {
        return Err("a task's report went missing");
    }
    println!(
        "tasks: {count} tasks done in {} ms",
        start.elapsed().as_millis()
    );

    // A task that is always ready must not starve a sleeping one.
    let sleeper = spawn(async {
        let t = Instant::now();
        sleep(Duration::from_millis(20)).await;
        t.elapsed()
    });
    let spinner = spawn(async move {
        let mut spins = 0u64;
        while !sleeper.is_finished() {
            spins += 1;
            yield_now().await;
        }
        (sleeper.await, spins)
    });
    let (slept, spins) = spinner.await;
    println!(
        "tasks: a 20 ms sleep next to a busy task took {} ms ({spins} spins)",
        slept.as_millis()
    );
    if slept > Duration::from_millis(200) {
        return Err("a busy task starved a timer");
    }
    println!("SUCCESS");
    Ok(())
}
