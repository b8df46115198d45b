//! Block-device probe on the device `storage` (tests/block.rs). Modes, by
//! the first argument:
//!
//! * `check` (or nothing): writes the pattern to every 10th block and to
//!   the last block (blocks 0..30 as one run, zeros included, the others
//!   one block per call), reads the whole device back with `read_async`
//!   and checks every block (pattern or zeros), then checks that the guest
//!   API refuses an empty, a short, a misaligned and a beyond-the-end
//!   request, and that the tender answers EINVAL to raw hypercalls beyond
//!   the end. Prints `blockprobe: OK blocks=N block_size=S written=W`.
//! * `ro`: the device must be read-only: reading block 0 works, the API
//!   refuses a write (`ReadOnly`), the raw hypercall gets `EUNSPEC`.
//!   Prints `blockprobe: ro OK api=ReadOnly raw=SOLO5_R_EUNSPEC`.
//! * `info`: prints `blockprobe: capacity=C block_size=S read_only=R`.
//! * `write-byte N X [COUNT]`: fills COUNT blocks (default 1) from block N
//!   with byte X (decimal), one hypercall. Prints `blockprobe: wrote ...`.
//! * `read-sum N [COUNT]`: reads COUNT blocks from block N and prints
//!   `blockprobe: read-sum N COUNT fnv=HEX first=B` (FNV-1a 64 of the bytes,
//!   and the first byte).
//! * `raw read|write OFFSET LEN`: one raw hypercall, no guest check (a
//!   write sends LEN bytes of 0x5A); prints `blockprobe: raw OP OFFSET LEN
//!   -> OK` or the result code name. Always exits 0.
//!
//! Any other outcome prints `Error: ...` and exits 1.
//!
//! The pattern of block `n`, `block_size` bytes: `n` as 8 little-endian
//! bytes, then byte `i` (from 8) is `(n + i) as u8 ^ 0xA5`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;

use hvt_runtime::block::{raw, BlockDevice, BlockError, Error};
use hvt_runtime::{println, Args};

hvt_runtime::manifest!(block "storage");
hvt_runtime::main!(main);

/// Blocks read back per call when checking the whole device.
const READ_RUN: u64 = 256;

fn pattern(n: u64, block: &mut [u8]) {
    for (i, byte) in block.iter_mut().enumerate() {
        *byte = match i {
            0..8 => n.to_le_bytes()[i],
            // reason: only the low byte is wanted.
            #[allow(clippy::cast_possible_truncation)]
            _ => (n.wrapping_add(i as u64) as u8) ^ 0xA5,
        };
    }
}

fn holds_pattern(n: u64, last: u64) -> bool {
    n.is_multiple_of(10) || n == last
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn size(bytes: u64) -> Result<usize, String> {
    usize::try_from(bytes).map_err(|_| format!("{bytes} bytes do not fit memory"))
}

fn number(args: &Args, i: usize, default: Option<u64>) -> Result<u64, String> {
    match args.get(i) {
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {i}: {text:?} is not a number")),
        None => default.ok_or_else(|| format!("argument {i} missing")),
    }
}

fn expect(what: &str, got: Result<(), Error>, wanted: Error) -> Result<(), String> {
    if got == Err(wanted) {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, wanted {wanted:?}"))
    }
}

fn expect_raw(what: &str, got: Result<(), BlockError>, wanted: BlockError) -> Result<(), String> {
    if got == Err(wanted) {
        Ok(())
    } else {
        Err(format!(
            "{what}: raw hypercall got {got:?}, wanted {wanted:?}"
        ))
    }
}

async fn main(args: Args) -> Result<(), String> {
    let disk = BlockDevice::open("storage").map_err(|e| format!("open storage: {e}"))?;
    match args.get(0).unwrap_or("check") {
        "check" => check(&disk).await,
        "ro" => read_only(&disk),
        "info" => {
            let info = disk.info();
            println!(
                "blockprobe: capacity={} block_size={} read_only={}",
                info.capacity, info.block_size, info.read_only
            );
            Ok(())
        }
        "write-byte" => {
            let (first, byte) = (number(&args, 1, None)?, number(&args, 2, None)?);
            let count = number(&args, 3, Some(1))?;
            let byte = u8::try_from(byte).map_err(|_| "the byte must be 0..=255")?;
            let data = vec![byte; size(count * disk.block_size())?];
            disk.write(first * disk.block_size(), &data)
                .map_err(|e| format!("write-byte: {e}"))?;
            println!("blockprobe: wrote {count} block(s) from {first} with byte {byte}");
            Ok(())
        }
        "read-sum" => {
            let (first, count) = (number(&args, 1, None)?, number(&args, 2, Some(1))?);
            let mut data = vec![0u8; size(count * disk.block_size())?];
            disk.read(first * disk.block_size(), &mut data)
                .map_err(|e| format!("read-sum: {e}"))?;
            println!(
                "blockprobe: read-sum {first} {count} fnv={:016x} first={}",
                fnv1a(&data),
                data[0]
            );
            Ok(())
        }
        "raw" => {
            let op = args.get(1).unwrap_or("");
            let (offset, len) = (number(&args, 2, None)?, number(&args, 3, None)?);
            let mut data = vec![0x5Au8; size(len)?];
            let handle = disk.info().handle;
            let result = match op {
                "read" => raw::read(handle, offset, &mut data),
                "write" => raw::write(handle, offset, &data),
                _ => return Err(format!("raw: {op:?} is not read or write")),
            };
            let outcome = match result {
                Ok(()) => String::from("OK"),
                Err(e) => format!("{e}"),
            };
            println!("blockprobe: raw {op} {offset} {len} -> {outcome}");
            Ok(())
        }
        other => Err(format!("unknown mode {other:?}")),
    }
}

async fn check(disk: &BlockDevice) -> Result<(), String> {
    let size_b = disk.block_size();
    let bs = size(size_b)?;
    let blocks = disk.blocks();
    let last = blocks - 1;
    println!(
        "blockprobe: {blocks} blocks of {size_b} bytes, read_only={}",
        disk.is_read_only()
    );

    // Blocks 0..30 (or all of a smaller device) as one run, zeros included.
    let run = blocks.min(30);
    let mut data = vec![0u8; size(run * size_b)?];
    for (n, block) in (0..run).zip(data.chunks_mut(bs)) {
        if holds_pattern(n, last) {
            pattern(n, block);
        }
    }
    disk.write(0, &data)
        .map_err(|e| format!("write run: {e}"))?;
    let mut written = (0..run).filter(|&n| holds_pattern(n, last)).count();
    let mut block = vec![0u8; bs];
    for n in (run..blocks).filter(|&n| holds_pattern(n, last)) {
        pattern(n, &mut block);
        disk.write(n * size_b, &block)
            .map_err(|e| format!("write block {n}: {e}"))?;
        written += 1;
    }

    // Everything back, in runs, through the async path.
    let mut buffer = vec![0u8; size(READ_RUN * size_b)?];
    let mut expected = vec![0u8; bs];
    let mut n = 0;
    while n < blocks {
        let count = READ_RUN.min(blocks - n);
        let run = &mut buffer[..size(count * size_b)?];
        disk.read_async(n * size_b, run)
            .await
            .map_err(|e| format!("read blocks {n}..{}: {e}", n + count))?;
        for (i, got) in (n..n + count).zip(run.chunks(bs)) {
            expected.fill(0);
            if holds_pattern(i, last) {
                pattern(i, &mut expected);
            }
            if got != expected.as_slice() {
                return Err(format!("block {i} reads back wrong"));
            }
        }
        n += count;
    }

    // The API's rules, refused in the guest.
    let capacity = disk.capacity();
    let mut two = vec![0u8; 2 * bs];
    expect("empty read", disk.read(0, &mut []), Error::Empty)?;
    expect("empty write", disk.write(0, &[]), Error::Empty)?;
    expect(
        "short read",
        disk.read(0, &mut two[..bs / 2]),
        Error::Misaligned,
    )?;
    expect(
        "long write",
        disk.write(0, &two[..bs + 1]),
        Error::Misaligned,
    )?;
    expect(
        "misaligned read",
        disk.read(1, &mut two[..bs]),
        Error::Misaligned,
    )?;
    expect(
        "misaligned write",
        disk.write(size_b / 2, &two[..bs]),
        Error::Misaligned,
    )?;
    expect(
        "read at the end",
        disk.read(capacity, &mut two[..bs]),
        Error::OutOfRange,
    )?;
    expect(
        "write across the end",
        disk.write(capacity - size_b, &two),
        Error::OutOfRange,
    )?;
    expect(
        "async read across the end",
        disk.read_async(capacity - size_b, &mut two).await,
        Error::OutOfRange,
    )?;

    // And by the tender, for raw hypercalls.
    let handle = disk.info().handle;
    let invalid = BlockError::Invalid;
    expect_raw(
        "read at the end",
        raw::read(handle, capacity, &mut two[..bs]),
        invalid,
    )?;
    expect_raw(
        "read across the end",
        raw::read(handle, capacity - size_b, &mut two),
        invalid,
    )?;
    expect_raw(
        "write across the end",
        raw::write(handle, capacity - 1, &two[..2]),
        invalid,
    )?;
    expect_raw(
        "offset + length overflows",
        raw::read(handle, u64::MAX - 1, &mut two[..bs]),
        invalid,
    )?;
    expect_raw(
        "bad handle",
        raw::read(handle + 1, 0, &mut two[..bs]),
        invalid,
    )?;

    // Nothing the refusals touched changed the device.
    disk.read(capacity - size_b, &mut block)
        .map_err(|e| format!("read last block: {e}"))?;
    pattern(last, &mut expected);
    if block != expected {
        return Err("the last block changed".into());
    }
    println!("blockprobe: OK blocks={blocks} block_size={size_b} written={written}");
    Ok(())
}

fn read_only(disk: &BlockDevice) -> Result<(), String> {
    if !disk.is_read_only() {
        return Err("storage is not read-only".into());
    }
    let mut block = vec![0u8; size(disk.block_size())?];
    disk.read(0, &mut block)
        .map_err(|e| format!("read block 0: {e}"))?;
    let api = disk.write(0, &block);
    if api != Err(Error::ReadOnly) {
        return Err(format!("API write: got {api:?}, wanted ReadOnly"));
    }
    let fill = vec![0xEEu8; block.len()];
    let result = raw::write(disk.info().handle, 0, &fill);
    if result != Err(BlockError::Unspecified) {
        return Err(format!("raw write: got {result:?}, wanted EUNSPEC"));
    }
    println!(
        "blockprobe: ro OK api=ReadOnly raw={}",
        BlockError::Unspecified
    );
    Ok(())
}
