//! Trap path benchmark (issue 12, `docs/abi.md` §12.4): what giving every
//! CPL 3 guest its IDT, trampoline and trap stack costs while nothing
//! traps. The path has no switch: the comparison is against a tender built
//! without it, named by `TRAPS_BENCH_BASE=PATH` (e.g. built from the commit
//! before the trap path; without it the benchmark measures this tender
//! alone).
//!
//! Two figures a run, the series interleaved run by run, the order
//! rotating:
//! 1. boot: `hello` at CPL 3, from the tender's exec to its exit (wall
//!    clock, in this process);
//! 2. the hypercall round trip: `hcloop`, N WALLTIME calls at CPL 3, the
//!    guest's own figure in µs per call.
//!
//! `cargo bench --bench traps`. TRAPS_BENCH_RUNS (default 40) runs per
//! series, TRAPS_BENCH_CALLS (default 5,000) hypercalls per run.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs `tender image args`; wall-clock ms from spawn to exit, and stdout.
fn run(tender: &Path, image: &Path, args: &[String]) -> (f64, String) {
    let start = Instant::now();
    let out = Command::new(tender)
        .arg(image)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run the tender");
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert!(
        out.status.success(),
        "{}: {}\n{}",
        tender.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (ms, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn main() {
    let runs = common::env_number("TRAPS_BENCH_RUNS", 40).max(1);
    let calls = common::env_number("TRAPS_BENCH_CALLS", 5_000).max(1);
    let hello = common::guest("hello");
    let hcloop = common::guest("hcloop");
    let mut series: Vec<(String, PathBuf)> = vec![("trap path".into(), common::tender_bin())];
    match std::env::var_os("TRAPS_BENCH_BASE") {
        Some(base) => series.push(("base (no trap path)".into(), base.into())),
        None => println!("TRAPS_BENCH_BASE not set: this tender alone"),
    }
    println!(
        "trap path benchmark: hello boot and hcloop ({calls} WALLTIME calls) at CPL 3, {runs} runs a series, interleaved"
    );
    let hcloop_args = [calls.to_string()];
    for (_, bin) in &series {
        run(bin, &hello, &[]);
        run(bin, &hcloop, &hcloop_args);
    }
    let mut boot = vec![Vec::with_capacity(runs); series.len()];
    let mut round_trip = vec![Vec::with_capacity(runs); series.len()];
    for i in 0..runs {
        for k in 0..series.len() {
            let index = (i + k) % series.len();
            let bin = &series[index].1;
            boot[index].push(run(bin, &hello, &[]).0);
            let (_, stdout) = run(bin, &hcloop, &hcloop_args);
            round_trip[index].push(common::hcloop_ns(&stdout) / 1e3);
        }
    }
    println!(
        "{:<22} {:>14} {:>14} {:>16} {:>16}",
        "series", "boot med ms", "boot min ms", "WALLTIME med µs", "WALLTIME min µs"
    );
    for (index, (label, _)) in series.iter().enumerate() {
        println!(
            "{:<22} {:>14.2} {:>14.2} {:>16.1} {:>16.1}",
            label,
            common::median(boot[index].clone()),
            common::minimum(&boot[index]),
            common::median(round_trip[index].clone()),
            common::minimum(&round_trip[index]),
        );
    }
}
