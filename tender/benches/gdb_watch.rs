//! What a write watchpoint costs under `--gdb` (docs/debugging.md): the
//! host delivers no data breakpoint, so the stub carries out a continue
//! as single steps while a watchpoint is set. Measured on `gdbprobe
//! spin` (built with debug information), whose loop adds one to `SPINS`
//! for ever, at CPL 0 and at CPL 3, two series each, interleaved run by
//! run:
//! 1. plain: gdb continues the spinning guest, nothing set;
//! 2. watched: `watch TOTAL` (not written while the guest spins: every
//!    step is compared, none is reported), then the same continue.
//!
//! A run: gdb reads `SPINS`, continues; after D seconds this process
//! sends gdb SIGINT (gdb's Ctrl-C) and gdb reads `SPINS` again: loop
//! iterations a second, timed here from gdb's continue to its stop. Once
//! per level, `stepi 1000` from the stop counts the loop's instructions
//! an iteration, which turns iterations into instructions a second.
//!
//! `cargo bench --bench gdb_watch`. GDB_WATCH_BENCH_RUNS (default 3)
//! runs a series, GDB_WATCH_BENCH_SECONDS (default 1) seconds a run.
//! Needs gdb.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What one run measured.
struct Run {
    /// Loop iterations a second while gdb's continue ran.
    iterations_per_second: f64,
    /// Loop iterations during `stepi 1000`, if asked for.
    iterations_in_1000_steps: Option<u64>,
}

/// gdb's value history lines (`$N = V`), in order.
fn printed_values(out: &str) -> Vec<u64> {
    out.lines()
        .filter(|l| l.starts_with('$'))
        .filter_map(|l| l.split(" = ").nth(1)?.trim().parse().ok())
        .collect()
}

fn run(image: &Path, debug_image: &Path, port: u16, watched: bool, count_steps: bool) -> Run {
    let mut tender = Command::new(common::tender_bin())
        .arg("--gdb")
        .arg(format!("--gdb-port={port}"))
        .arg(image)
        .arg("spin")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tender");
    let mut stderr = BufReader::new(tender.stderr.take().expect("piped"));
    let mut line = String::new();
    stderr
        .read_line(&mut line)
        .expect("the tender says where it listens");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let mut commands: Vec<String> = vec![
        format!("target remote 127.0.0.1:{port}"),
        "set language rust".into(),
        // Past the five writes of `accumulate`, into the spin loop.
        "break gdbprobe::accumulate".into(),
    ];
    commands.extend(std::iter::repeat_n("continue".to_string(), 5));
    commands.push("delete".into());
    // Back in `main`, which spins from here on.
    commands.push("finish".into());
    if watched {
        commands.push("watch gdbprobe::TOTAL".into());
    }
    commands.push("print gdbprobe::SPINS".into());
    commands.push("echo CONTINUING\\n".into());
    commands.push("continue".into());
    commands.push("echo STOPPED\\n".into());
    commands.push("print gdbprobe::SPINS".into());
    if count_steps {
        commands.push("delete".into());
        commands.push("stepi 1000".into());
        commands.push("print gdbprobe::SPINS".into());
    }
    commands.push("kill".into());
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx"]);
    for c in &commands {
        gdb.arg("-ex").arg(c);
    }
    let mut gdb = gdb
        .arg(debug_image)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run gdb");
    let mut stdout = BufReader::new(gdb.stdout.take().expect("piped"));
    let mut out = String::new();
    while !out.contains("CONTINUING") {
        assert!(
            stdout.read_line(&mut out).unwrap_or(0) > 0,
            "gdb ended early:\n{out}"
        );
    }
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(
        common::env_number("GDB_WATCH_BENCH_SECONDS", 1) as u64,
    ));
    let gdb_pid = libc::pid_t::try_from(gdb.id()).expect("a pid");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(gdb_pid, libc::SIGINT) };
    while !out.contains("Program received signal SIGINT") {
        assert!(
            stdout.read_line(&mut out).unwrap_or(0) > 0,
            "gdb ended before the stop:\n{out}"
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    out.push_str(&rest);
    let _ = gdb.wait();
    let _ = tender.wait();
    let values = printed_values(&out);
    assert!(values.len() >= 2, "no SPINS values in\n{out}");
    Run {
        iterations_per_second: (values[1] - values[0]) as f64 / seconds,
        iterations_in_1000_steps: count_steps
            .then(|| values.get(2).map(|v| v - values[1]))
            .flatten(),
    }
}

fn main() {
    let found = common::gdb_installed();
    if !found {
        println!("gdb is not installed: nothing measured");
        return;
    }
    let runs = common::env_number("GDB_WATCH_BENCH_RUNS", 3);
    let seconds = common::env_number("GDB_WATCH_BENCH_SECONDS", 1);
    let debug_image = common::probe_with_debug_info("gdbprobe");
    let levels = [
        ("CPL 0", common::cpl0_copy_of(&debug_image)),
        ("CPL 3", debug_image.clone()),
    ];
    let mut port = 30000 + (std::process::id() % 10000) as u16;
    println!(
        "gdb watchpoint benchmark: gdbprobe spin, {seconds} s a run, {runs} runs a series, interleaved"
    );
    println!(
        "{:<6} {:<18} {:>16} {:>16} {:>12} {:>10}",
        "level", "series", "med instr/s", "min instr/s", "us/instr", "slowdown"
    );
    for (level, image) in &levels {
        let mut plain = Vec::new();
        let mut watched = Vec::new();
        let mut per_iteration = None;
        for i in 0..runs {
            for watch in [i % 2 == 0, i % 2 != 0] {
                port += 1;
                let count = watch && per_iteration.is_none();
                let result = run(image, &debug_image, port, watch, count);
                if let Some(n) = result.iterations_in_1000_steps.filter(|&n| n > 0) {
                    per_iteration = Some(1000.0 / n as f64);
                }
                if watch {
                    watched.push(result.iterations_per_second);
                } else {
                    plain.push(result.iterations_per_second);
                }
            }
        }
        let k = per_iteration.expect("stepi 1000 moved the loop");
        let plain_median = common::median(plain.clone()) * k;
        for (label, samples) in [("plain continue", &plain), ("watched continue", &watched)] {
            let median = common::median(samples.clone()) * k;
            println!(
                "{:<6} {:<18} {:>16.0} {:>16.0} {:>12.4} {:>9.1}x",
                level,
                label,
                median,
                common::minimum(samples) * k,
                1e6 / median,
                plain_median / median
            );
        }
        println!("{level}: the loop is {k:.1} instructions an iteration (stepi 1000)");
    }
}
