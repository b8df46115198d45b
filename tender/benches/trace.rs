//! Trace benchmark: what `--trace` costs per hypercall, and what its hook
//! costs when tracing is off.
//!
//! 1. The hypercall round trip (`hcloop`: N WALLTIME calls at CPL 3, the
//!    guest's own figure in ns per call) without `--trace`, with
//!    `--trace=FILE` (a file in the scratch directory) and with `--trace`
//!    to a piped stderr that the benchmark drains; the series interleaved
//!    run by run, the order rotating. `TRACE_BENCH_BASE=PATH` adds a
//!    tender built without the trace module (e.g. the commit before it),
//!    the "off costs nothing" figure end to end.
//! 2. The dispatcher alone, in this process: `Hypercalls::dispatch_pio`
//!    of a WALLTIME handler with no observer and with an observer that
//!    does nothing, ns per call (the hook's own cost when off is the
//!    first figure against the handler alone).
//!
//! `cargo bench --bench trace`. TRACE_BENCH_RUNS (default 15) runs per
//! series, TRACE_BENCH_CALLS (default 5,000) hypercalls per run.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hvt_abi::hypercall::{nr, Walltime, PIO_BASE};
use tender_core::error::{Error, Result as TenderResult};
use tender_core::hypercall::{Action, Hypercalls, Observer};
use tender_core::memory::GuestRam;
use tender_core::vm::{ExitAction, VmExit};

/// One run of `tender` with `options` on hcloop; ns per call and the
/// bytes of trace it wrote on stderr.
fn run(tender: &Path, options: &[String], hcloop: &Path, calls: usize) -> (f64, usize) {
    let mut child = Command::new(tender)
        .args(options)
        .arg(hcloop)
        .arg(calls.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the tender");
    // Drained as it comes, so that the pipe never blocks the tender.
    let mut stderr = child.stderr.take().expect("stderr");
    let drain = std::thread::spawn(move || {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).expect("read stderr");
        text
    });
    let out = child.wait_with_output().expect("wait");
    let stderr = drain.join().expect("drain");
    assert!(
        out.status.success(),
        "tender {options:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&stderr[..stderr.len().min(2000)])
    );
    (
        common::hcloop_ns(&String::from_utf8_lossy(&out.stdout)),
        stderr.len(),
    )
}

/// An observer that does nothing: the hook's own cost.
struct Nothing;

impl Observer for Nothing {
    fn before(&mut self, _: &GuestRam, _: u16, _: u64) {}
    fn after(&mut self, _: &GuestRam, _: u16, _: u64, _: &Result<Action, Error>, _: Duration) {}
    fn vm_exit(&mut self, _: &VmExit, _: &TenderResult<Option<ExitAction>>, _: Duration) {}
}

/// ns per `dispatch_pio` of WALLTIME, the median of 15 rounds of 200,000.
fn dispatch_ns(observer: Option<Box<dyn Observer>>) -> f64 {
    let ram = GuestRam::new(2 << 20).expect("guest memory");
    let mut table = Hypercalls::default();
    table
        .register(
            nr::WALLTIME,
            Box::new(|ram, gpa| {
                let mut arg: Walltime = ram.read_arg(gpa)?;
                arg.nsecs = std::hint::black_box(arg.nsecs + 1);
                ram.write_arg(gpa, &arg)?;
                Ok(Action::Continue)
            }),
        )
        .expect("register");
    if let Some(observer) = observer {
        table.set_observer(observer);
    }
    let calls = 200_000u32;
    let samples = (0..15)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                let action = table.dispatch_pio(&ram, PIO_BASE + nr::WALLTIME, true, 4, 0x10000);
                std::hint::black_box(action).expect("dispatch");
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(calls)
        })
        .collect();
    common::median(samples)
}

fn main() {
    let runs = common::env_number("TRACE_BENCH_RUNS", 15).max(1);
    let calls = common::env_number("TRACE_BENCH_CALLS", 5_000).max(1);
    let tender = common::tender_bin();
    let hcloop = common::guest("hcloop");
    let file = common::scratch("trace-bench").join("hcloop.trace");
    let mut series: Vec<(String, PathBuf, Vec<String>)> = vec![
        ("off".into(), tender.clone(), vec![]),
        (
            "--trace=FILE".into(),
            tender.clone(),
            vec![format!("--trace={}", file.display())],
        ),
        (
            "--trace (stderr, a pipe)".into(),
            tender.clone(),
            vec!["--trace".into()],
        ),
    ];
    if let Some(base) = std::env::var_os("TRACE_BENCH_BASE") {
        series.push(("base (no trace module)".into(), base.into(), vec![]));
    }
    println!(
        "trace benchmark: hcloop, {calls} WALLTIME calls a run at CPL 3, {runs} runs a series, interleaved"
    );
    // One warm-up run of each.
    for (_, bin, options) in &series {
        run(bin, options, &hcloop, calls);
    }
    let mut samples = vec![Vec::with_capacity(runs); series.len()];
    let mut bytes = vec![0usize; series.len()];
    for i in 0..runs {
        for k in 0..series.len() {
            let index = (i + k) % series.len();
            let (bin, options) = (&series[index].1, &series[index].2);
            let (ns, written) = run(bin, options, &hcloop, calls);
            samples[index].push(ns);
            bytes[index] = written;
        }
    }
    let off = common::median(samples[0].clone());
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>12}",
        "series", "med ns", "min ns", "ratio", "+ns/call"
    );
    for (index, (label, _, _)) in series.iter().enumerate() {
        let med = common::median(samples[index].clone());
        println!(
            "{:<28} {:>9.0} {:>9.0} {:>9.3} {:>12.0}",
            label,
            med,
            common::minimum(&samples[index]),
            med / off,
            med - off
        );
    }
    if let Ok(meta) = std::fs::metadata(&file) {
        println!(
            "trace file: {} bytes a run ({} per call)",
            meta.len(),
            meta.len() / u64::try_from(calls).unwrap_or(1)
        );
    }
    println!("trace on stderr: {} bytes a run", bytes[2]);
    let bare = dispatch_ns(None);
    let hooked = dispatch_ns(Some(Box::new(Nothing)));
    println!(
        "dispatcher alone: {bare:.1} ns a WALLTIME with no observer, {hooked:.1} ns with an observer that does nothing"
    );
}
