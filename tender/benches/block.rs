//! Block benchmark: in one run, block I/O from a guest under the tender
//! (CPL 3, the runtime's `BlockDevice`, one hypercall per request) and the
//! same I/O from this host process with `pread`/`pwrite` on the same image
//! file, plus the hypercall round trip measured by the same guest:
//!
//! * sequential 1 MiB reads and writes over the whole image, MB/s;
//! * random 4 KiB reads and writes (4 KiB-aligned offsets, the same
//!   sequence on both sides), time per request and IOPS.
//!
//! Both sides use the host's page cache (no O_DIRECT): the image is written
//! in full and read once before anything is measured, so both measure the
//! same thing, the cost of reaching the cached data. The ratios printed are
//! the targets: a random 4 KiB request from the guest against the
//! host's `pread`/`pwrite` plus one hypercall round trip (at most 1.2x),
//! and the guest's sequential 1 MiB read throughput against the host's (at
//! least 70%).
//!
//! `cargo bench --bench block` (`BLOCK_BENCH_MIB=N` for an image of N MiB,
//! default 256).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

const SEQ: u64 = 1 << 20;
const RAND: u64 = 4096;
/// Random requests per round (three rounds, best kept), as the guest's.
const RANDOM: u64 = 10_000;
/// Passes over the image for the sequential figures, best kept.
const PASSES: u32 = 3;
/// The guest's seed (block-bench.rs).
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// xorshift64*, as the guest's.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn nanos(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn run_guest(image: &Path) -> HashMap<String, u64> {
    let run = common::tender([
        format!("--block:storage={}", image.display()),
        common::guest("block-bench").display().to_string(),
        "--solo5:quiet".into(),
        format!("--passes={PASSES}"),
        format!("--random={RANDOM}"),
    ]);
    assert_eq!(run.code, 0, "{}", run.output());
    run.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("bench.")?.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// What the host measured, as the guest measures it.
struct Host {
    seq_read: u64,
    seq_read_big: u64,
    seq_write: u64,
    rand_read: u64,
    rand_write: u64,
}

/// The host's figures on `file` (MB/s, ns per request).
fn host_figures(file: &File, capacity: u64) -> Host {
    let mut buffer = vec![0u8; 1 << 20];
    let mut best = u64::MAX;
    for pass in 0..=PASSES {
        let start = Instant::now();
        for offset in (0..capacity).step_by(1 << 20) {
            file.read_exact_at(&mut buffer, offset).expect("pread");
        }
        if pass > 0 {
            best = best.min(nanos(start));
        }
    }
    let seq_read = capacity * 1000 / best.max(1);
    let mut big = vec![0u8; 8 << 20];
    let mut best = u64::MAX;
    for _ in 0..PASSES {
        let start = Instant::now();
        for offset in (0..capacity).step_by(8 << 20) {
            file.read_exact_at(&mut big, offset).expect("pread");
        }
        best = best.min(nanos(start));
    }
    let seq_read_big = capacity * 1000 / best.max(1);
    buffer[0] ^= 0xFF;
    let mut best = u64::MAX;
    for _ in 0..PASSES {
        let start = Instant::now();
        for offset in (0..capacity).step_by(1 << 20) {
            file.write_all_at(&buffer, offset).expect("pwrite");
        }
        best = best.min(nanos(start));
    }
    let seq_write = capacity * 1000 / best.max(1);
    let blocks = capacity / RAND;
    let block = &mut buffer[..4096];
    let mut random = [0u64; 2];
    for (slot, write) in random.iter_mut().zip([false, true]) {
        let mut best = u64::MAX;
        let mut state = SEED;
        for _ in 0..3 {
            let start = Instant::now();
            for _ in 0..RANDOM {
                let offset = next(&mut state) % blocks * RAND;
                if write {
                    file.write_all_at(block, offset).expect("pwrite");
                } else {
                    file.read_exact_at(block, offset).expect("pread");
                }
            }
            best = best.min(nanos(start) / RANDOM);
        }
        *slot = best;
    }
    Host {
        seq_read,
        seq_read_big,
        seq_write,
        rand_read: random[0],
        rand_write: random[1],
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::var("BLOCK_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let capacity = mib * SEQ;
    let dir = common::scratch("block-bench");
    let image = dir.join("bench.img");

    // A fully written image (no holes), then one read: all of it cached.
    {
        let mut file = File::create(&image).expect("create image");
        let chunk: Vec<u8> = (0..SEQ).map(|i| (i % 251) as u8).collect();
        for _ in 0..mib {
            file.write_all(&chunk).expect("write image");
        }
        file.sync_all().expect("sync image");
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&image)
        .expect("open image");
    let mut buffer = vec![0u8; 1 << 20];
    for offset in (0..capacity).step_by(1 << 20) {
        file.read_exact_at(&mut buffer, offset).expect("warm");
    }

    let guest = run_guest(&image);
    assert_eq!(guest["capacity"], capacity, "the guest saw the whole image");
    let host = host_figures(&file, capacity);
    drop(file);
    std::fs::remove_dir_all(&dir).ok();

    let hypercall = guest["walltime_ns"];
    let iops = |ns: u64| 1e9 / ns.max(1) as f64;
    println!(
        "block benchmark: {mib} MiB image file, host page cache on both sides (no O_DIRECT; \
         written and read once before measuring); guest at CPL 3 through \
         hvt_runtime::block, one hypercall per request; guest times from the TSC"
    );
    println!(
        "  hypercall round trip             {:>8} ns (WALLTIME, 20,000 calls, same guest)",
        hypercall
    );
    println!(
        "  refused BLOCK_READ round trip    {:>8} ns (beyond the end: exit + checks, no pread)",
        guest["null_block_ns"]
    );
    println!("sequential 1 MiB requests, whole image, best of {PASSES} passes");
    for (name, guest_mbps, host_mbps) in [
        ("read ", guest["seq_read_mbps"], host.seq_read),
        ("write", guest["seq_write_mbps"], host.seq_write),
    ] {
        println!(
            "  {name} guest {:>6} MB/s, host {:>6} MB/s: guest at {:>5.1}% of the host{}",
            guest_mbps,
            host_mbps,
            100.0 * guest_mbps as f64 / host_mbps.max(1) as f64,
            if name == "read " {
                " (target: at least 70%)"
            } else {
                ""
            }
        );
    }
    if let Some(&big) = guest.get("seq_read_8m_mbps") {
        println!(
            "  read in 8 MiB runs (one hypercall each): guest {big:>6} MB/s, host {:>6} MB/s: \
             guest at {:>5.1}% of the host",
            host.seq_read_big,
            100.0 * big as f64 / host.seq_read_big.max(1) as f64
        );
    }
    println!(
        "random 4 KiB requests, {RANDOM} per round, best of 3 rounds (same offsets on both sides)"
    );
    for (name, guest_ns, host_ns) in [
        ("read ", guest["rand_read_ns"], host.rand_read),
        ("write", guest["rand_write_ns"], host.rand_write),
    ] {
        let floor = host_ns + hypercall;
        println!(
            "  {name} guest {:>6} ns ({:>7.0} IOPS), host {:>6} ns ({:>7.0} IOPS); \
             guest / (host + hypercall {floor} ns) = {:.2}x (target: at most 1.2x)",
            guest_ns,
            iops(guest_ns),
            host_ns,
            iops(host_ns),
            guest_ns as f64 / floor.max(1) as f64
        );
    }
}
