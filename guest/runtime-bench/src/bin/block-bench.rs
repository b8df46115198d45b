//! Measures block I/O from inside a guest on the device `storage` and
//! prints `bench.NAME=VALUE` lines (tender/benches/block.rs runs it, and
//! does the same I/O from the host on the same image):
//!
//! * `seq_read_mbps`, `seq_write_mbps`: the whole device in 1 MiB requests,
//!   best of `--passes=N` (default 3), MB/s (10^6 bytes per second);
//! * `seq_read_8m_mbps`: the same reads in runs of 8 MiB (one hypercall
//!   each), to show what the exit costs at 1 MiB;
//! * `rand_read_ns`, `rand_write_ns`: 4 KiB requests at random 4 KiB-aligned
//!   offsets, `--random=N` per round (default 10,000), best of 3 rounds, ns
//!   per request;
//! * `walltime_ns`: the WALLTIME hypercall's round trip (20,000 calls);
//! * `null_block_ns`: a BLOCK_READ the tender refuses (beyond the end):
//!   the exit, the argument checks and the way back, without the `pread`.
//!
//! Every request goes through `hvt_runtime::block::BlockDevice::read` or
//! `write`: the guest API's checks, then one hypercall. The first pass over
//! the device (reads) warms the host's page cache and is not counted.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;

use hvt_runtime::block::{raw, BlockDevice};
use hvt_runtime::time::{Duration, Instant};
use hvt_runtime::{println, Args};

hvt_runtime::manifest!(block "storage");
hvt_runtime::main!(main);

const SEQ: u64 = 1 << 20;
const BIG: u64 = 8 << 20;
const RAND: u64 = 4096;
/// The seed of the random offsets (the host side uses the same).
const SEED: u64 = 0x9E37_79B9_7F4A_7C15;

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// xorshift64*: the next random value.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn text(error: hvt_runtime::block::Error) -> String {
    format!("{error}")
}

async fn main(args: Args) -> Result<(), String> {
    let passes: u32 = args
        .value("--passes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let random: u64 = args
        .value("--random")
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let disk = BlockDevice::open("storage").map_err(text)?;
    let capacity = disk.capacity();
    if capacity < SEQ || capacity % SEQ != 0 {
        return Err(format!("storage: {capacity} bytes, not whole MiB"));
    }
    println!("bench.capacity={capacity}");
    let mut buffer = vec![0u8; 1 << 20];

    // Warm-up pass, then sequential reads.
    let mut best = u64::MAX;
    for pass in 0..=passes {
        let start = Instant::now();
        for offset in (0..capacity).step_by(1 << 20) {
            disk.read(offset, &mut buffer).map_err(text)?;
        }
        if pass > 0 {
            best = best.min(nanos(start.elapsed()));
        }
    }
    println!("bench.seq_read_mbps={}", capacity * 1000 / best.max(1));

    // The same in runs of 8 MiB, where the device allows.
    if capacity % BIG == 0 {
        let mut big = vec![0u8; 8 << 20];
        let mut best = u64::MAX;
        for _ in 0..passes {
            let start = Instant::now();
            for offset in (0..capacity).step_by(8 << 20) {
                disk.read(offset, &mut big).map_err(text)?;
            }
            best = best.min(nanos(start.elapsed()));
        }
        println!("bench.seq_read_8m_mbps={}", capacity * 1000 / best.max(1));
    }

    // Sequential writes (of what the reads left in the buffer, plus a tag).
    buffer[0] ^= 0xFF;
    let mut best = u64::MAX;
    for _ in 0..passes {
        let start = Instant::now();
        for offset in (0..capacity).step_by(1 << 20) {
            disk.write(offset, &buffer).map_err(text)?;
        }
        best = best.min(nanos(start.elapsed()));
    }
    println!("bench.seq_write_mbps={}", capacity * 1000 / best.max(1));

    // Random 4 KiB requests: the same offsets for reads and for writes.
    let blocks = capacity / RAND;
    let block = &mut buffer[..4096];
    for (name, write) in [("rand_read_ns", false), ("rand_write_ns", true)] {
        let mut best = u64::MAX;
        let mut state = SEED;
        for _ in 0..3 {
            let start = Instant::now();
            for _ in 0..random {
                let offset = next(&mut state) % blocks * RAND;
                if write {
                    disk.write(offset, block).map_err(text)?;
                } else {
                    disk.read(offset, block).map_err(text)?;
                }
            }
            best = best.min(nanos(start.elapsed()) / random.max(1));
        }
        println!("bench.{name}={best}");
    }

    // The bare exits.
    let rounds = 20_000u64;
    let start = Instant::now();
    for _ in 0..rounds {
        core::hint::black_box(hvt_runtime::__bindings::clock::walltime_hypercall_ns());
    }
    println!("bench.walltime_ns={}", nanos(start.elapsed()) / rounds);
    let handle = disk.info().handle;
    let start = Instant::now();
    for _ in 0..rounds {
        let _ = core::hint::black_box(raw::read(handle, capacity, block));
    }
    println!("bench.null_block_ns={}", nanos(start.elapsed()) / rounds);
    Ok(())
}
