//! The clock page (§12.7) and the buffered console (§6.1), from inside real
//! guests: wall-clock readings from the page against the WALLTIME
//! hypercall, their cost in exits, and console output kept whole and in
//! order on every way out.

mod common;

use std::collections::HashMap;

use common::{cpl0_copy, guest, tender};

fn figures(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(map: &HashMap<String, String>, key: &str) -> u64 {
    map.get(key)
        .unwrap_or_else(|| panic!("{key} not reported"))
        .parse()
        .unwrap_or_else(|_| panic!("{key}: {}", map[key]))
}

#[test]
fn the_clock_page_agrees_with_walltime_and_costs_no_exit() {
    // 1.5 s: the page is refreshed (on exits, every 10 ms) many times.
    let run = tender([guest("clockprobe").as_os_str(), "1500".as_ref()]);
    assert_eq!(run.code, 0, "{}", run.output());
    let map = figures(&run.stdout);
    assert_eq!(map["clock.host_features"], "0x2");
    assert_eq!(map["clock.from_page"], "1");
    assert_eq!(map["clock.page.version"], "1");
    assert!(number(&map, "clock.page.steps") >= 1);
    assert!(number(&map, "clock.samples") > 100);
    // Each page reading lies between the WALLTIME readings around it,
    // give or take 1 ms.
    let behind = number(&map, "clock.max_behind_ns");
    let ahead = number(&map, "clock.max_ahead_ns");
    assert!(
        behind <= 1_000_000 && ahead <= 1_000_000,
        "{behind} {ahead}"
    );
    // Millions of reads, no exit, never backwards.
    assert!(number(&map, "clock.reads") > 10_000);
    assert_eq!(map["clock.exits_during_reads"], "0");
    assert_eq!(map["clock.wall_backwards"], "0");
    assert_eq!(map["clock.monotonic_backwards"], "0");
}

#[test]
fn without_our_note_the_wall_clock_is_walltime() {
    let run = tender([cpl0_copy("clockprobe").as_os_str(), "100".as_ref()]);
    assert_eq!(run.code, 0, "{}", run.output());
    let map = figures(&run.stdout);
    assert_eq!(map["clock.host_features"], "0x0");
    assert_eq!(map["clock.from_page"], "0");
    assert!(!map.contains_key("clock.page.seq"));
    // Every reading is a hypercall: 100,000s of them would take seconds.
    assert_ne!(map["clock.exits_during_reads"], "0");
}

/// The probe's 300 lines and its two direct writes, in order.
fn expected_lines() -> String {
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&format!("line {i}\n"));
        if i % 100 == 50 {
            text.push_str("direct\n");
        }
    }
    text.push_str("no newline at the end");
    text
}

#[test]
fn console_output_is_whole_and_in_order_on_every_way_out() {
    let banner = "Solo5: Bindings version v0.1.0 (tender, Rust, CPL 3)\n";
    for (how, code, tail) in [
        ("return", 0, "Solo5: solo5_exit(0) called\n"),
        ("exit", 3, "Solo5: solo5_exit(3) called\n"),
        ("abort", 255, "Solo5: solo5_abort() called\n"),
        (
            "panic",
            255,
            "Solo5: ABORT: panicked at probes/src/bin/consoleprobe.rs:26:20:\non purpose\n",
        ),
    ] {
        let run = tender([guest("consoleprobe").as_os_str(), how.as_ref()]);
        assert_eq!(run.code, code, "{how}: {}", run.output());
        assert_eq!(
            run.stdout,
            format!("{banner}{}{tail}", expected_lines()),
            "{how}"
        );
    }
}

#[test]
fn printed_lines_share_exits() {
    let run = tender([guest("consoleprobe").as_os_str(), "count".as_ref()]);
    assert_eq!(run.code, 0, "{}", run.output());
    let map = figures(&run.stdout);
    let puts = number(&map, "console.puts_for_300_lines");
    // Three direct writes are one PUTS each (with what was buffered); the
    // 300 lines (2.4 kB) fit the buffer. A slow run may add flushes of
    // lines older than 1 ms, never one per line.
    assert!((3..=30).contains(&puts), "{puts} PUTS for 300 lines");
    assert!(run.stdout.starts_with(&format!(
        "Solo5: Bindings version v0.1.0 (tender, Rust, CPL 3)\n{}",
        expected_lines()
    )));
}
