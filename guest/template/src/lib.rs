//! The application: everything but the entry point, so that the tests in
//! `tests/` can run it on the host against the mock tender.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;

use hvt_runtime::time::{sleep, Duration};
use hvt_runtime::{println, spawn, Args};

/// Greets its command line, waits for two tasks that sleep, and fails with
/// `--fail`.
pub async fn app(args: Args) -> Result<(), &'static str> {
    println!("Hello from myapp! Command line: '{}'", args.as_str());
    let tasks: Vec<_> = [30u64, 10]
        .into_iter()
        .map(|ms| {
            spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                ms
            })
        })
        .collect();
    for task in tasks {
        println!("a task slept {} ms", task.await);
    }
    if args.has("--fail") {
        return Err("asked to fail");
    }
    Ok(())
}
