//! An application that `tests/host_process.rs` runs as a host process, as
//! `cargo run --target x86_64-unknown-linux-gnu -- ARGS` runs one: prints
//! its command line; `--sleep=MS` sleeps that long (the real clock);
//! `--fail` ends with an error and `--panic` panics.
#![no_std]
#![no_main]

use hvt_runtime::time::{sleep, Duration, Instant};
use hvt_runtime::{println, Args};

hvt_runtime::manifest!();
hvt_runtime::main!(main);

async fn main(args: Args) -> Result<(), &'static str> {
    println!("command line: '{}'", args.as_str());
    if let Some(ms) = args.value("--sleep").and_then(|ms| ms.parse().ok()) {
        let start = Instant::now();
        sleep(Duration::from_millis(ms)).await;
        println!("slept {} ms", start.elapsed().as_millis());
    }
    if args.has("--panic") {
        panic!("on purpose");
    }
    if args.has("--fail") {
        return Err("asked to fail");
    }
    Ok(())
}
