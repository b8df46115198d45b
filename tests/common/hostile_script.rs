//! Driving the `hostile` probe's scripts (guest/probes/src/bin/hostile-lib):
//! each step prints `hostile: STEP => words`, the tests read those words.
//! Shared by several test files, each using part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use super::{cpl0_copy, guest, tender, Run};

/// The tender was not the one that failed: no panic, no death by a signal
/// (`timeout` reports one as 128 + N).
pub fn assert_no_crash(run: &Run, what: &str) {
    assert!(
        !run.stderr.contains("panicked"),
        "{what}: the tender panicked: {}",
        run.output()
    );
    assert!(
        run.code >= 0 && !(124..=159).contains(&run.code),
        "{what}: the tender died by a signal ({}): {}",
        run.code,
        run.output()
    );
}

/// Runs `image` with `mem` bytes of guest memory and the script `steps`
/// (no devices), and checks that the tender itself did not crash.
pub fn run_script<S: AsRef<str>>(image: &Path, mem: u64, steps: &[S]) -> Run {
    let mut argv = vec![format!("--mem={}", mem >> 20), image.display().to_string()];
    argv.extend(steps.iter().map(|s| s.as_ref().to_owned()));
    let run = tender(argv);
    let what: Vec<&str> = steps.iter().map(AsRef::as_ref).collect();
    assert_no_crash(&run, &what.join(" "));
    run
}

/// The words step `step` printed when it returned; `None` if it did not.
pub fn step_words(run: &Run, step: &str) -> Option<Vec<u64>> {
    let prefix = format!("hostile: {step} =>");
    run.stdout.lines().find_map(|line| {
        let rest = line.strip_prefix(&prefix)?;
        Some(
            rest.split_whitespace()
                .map(|w| {
                    let hex = w.strip_prefix("0x").unwrap_or_else(|| panic!("word {w}"));
                    u64::from_str_radix(hex, 16).expect("hex word")
                })
                .collect(),
        )
    })
}

/// The guest image `name` at CPL 3 and its CPL 0 copy, with "is CPL 3".
pub fn at_both_levels(name: &str) -> [(PathBuf, bool); 2] {
    [(guest(name), true), (cpl0_copy(name), false)]
}
