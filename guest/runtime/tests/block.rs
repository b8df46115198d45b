//! Block devices on the host: the runtime's `BlockDevice` against the mock
//! tender's block module (the real tender's option parsing, range checks
//! and handlers) over in-memory disks (`MemDisk`).
//!
//! "Without a hypercall" is proved by the disk's request counters: the
//! tender passes any request inside the device to the disk, whatever its
//! alignment or length (§6.5), so a request the guest refused is one the
//! counters never see. For the rules the tender also enforces (the end of
//! the device, read-only), the guest is given a device description
//! stricter than the real device (`BlockDevice::from_info`), so that the
//! refused request would have succeeded had it been sent.

use std::cell::Cell;
use std::format;
use std::rc::Rc;
use std::string::String;
use std::sync::Arc;
use std::vec;
use std::vec::Vec;

use core::future::Future;

use hvt_runtime::block::{raw, BlockDevice, BlockError, BlockInfo, Error, CHUNK};
use hvt_runtime::testing::{run_config, MemDisk, MockConfig, MockDisk, Outcome};
use hvt_runtime::{spawn, yield_now};

const MIB: u64 = 1 << 20;

/// Fails the guest with a message unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs `main` on a mock tender with `disks` and expects it to succeed.
fn run_disks<F, Fut>(disks: &[MockDisk<'_>], main: F) -> Outcome
where
    F: FnOnce() -> Fut + 'static,
    Fut: Future<Output = Result<(), String>> + 'static,
{
    let config = MockConfig {
        disks,
        ..MockConfig::default()
    };
    let outcome = run_config(&config, move |_| main());
    assert_eq!(outcome.code, 0, "{outcome:?}");
    outcome
}

fn disk_with<'a>(
    name: &'a str,
    disk: &Arc<MemDisk>,
    block_size: u16,
    read_only: bool,
) -> MockDisk<'a> {
    MockDisk {
        block_size: Some(block_size),
        read_only,
        ..MockDisk::new(name, disk)
    }
}

/// Byte `i` of a test run: not periodic in any power of two.
// reason: truncation intended: the low 8 bits.
#[allow(clippy::cast_possible_truncation)]
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(31) ^ (i / 1021) ^ seed) as u8)
        .collect()
}

fn range(offset: u64, len: usize) -> std::ops::Range<usize> {
    let start = usize::try_from(offset).unwrap();
    start..start + len
}

#[test]
fn open_finds_attached_block_devices_by_name() {
    let storage = Arc::new(MemDisk::new("storage", MIB));
    let backup = Arc::new(MemDisk::new("backup", 256 << 10));
    let disks = [
        MockDisk::new("storage", &storage),
        disk_with("backup", &backup, 4096, true),
    ];
    run_disks(&disks, || async {
        let storage = BlockDevice::open("storage").map_err(|e| e.to_string())?;
        let expected = BlockInfo {
            handle: 1,
            capacity: MIB,
            block_size: 512,
            read_only: false,
        };
        ensure!(storage.info() == expected, "storage: {:?}", storage.info());
        ensure!(
            storage.blocks() == 2048,
            "storage blocks {}",
            storage.blocks()
        );
        let backup = BlockDevice::open("backup").map_err(|e| e.to_string())?;
        let expected = BlockInfo {
            handle: 2,
            capacity: 256 << 10,
            block_size: 4096,
            read_only: true,
        };
        ensure!(backup.info() == expected, "backup: {:?}", backup.info());
        ensure!(
            backup.is_read_only() && backup.blocks() == 64,
            "backup {backup:?}"
        );
        let missing = BlockDevice::open("elsewhere").map(|d| d.info());
        ensure!(missing == Err(Error::NotFound), "elsewhere: {missing:?}");
        let raw = raw::acquire("elsewhere");
        ensure!(raw == Err(BlockError::Invalid), "raw acquire: {raw:?}");
        Ok(())
    });
}

#[test]
fn no_block_device_means_not_found() {
    run_disks(&[], || async {
        let missing = BlockDevice::open("storage").map(|d| d.info());
        ensure!(missing == Err(Error::NotFound), "{missing:?}");
        Ok(())
    });
}

/// Runs of blocks go to the disk as one request each and come back intact.
fn round_trip(block_size: u16) {
    let bs = u64::from(block_size);
    let disk = Arc::new(MemDisk::new("storage", 256 * bs));
    let guest_disk = disk.clone();
    run_disks(
        &[disk_with("storage", &disk, block_size, false)],
        move || async move {
            let disk = guest_disk;
            let dev = BlockDevice::open("storage").map_err(|e| e.to_string())?;
            ensure!(dev.block_size() == bs, "block size {}", dev.block_size());
            let len = usize::try_from(8 * bs).unwrap();
            let run = pattern(bs, len);
            dev.write(3 * bs, &run).map_err(|e| e.to_string())?;
            ensure!(disk.writes() == 1, "8 blocks in {} writes", disk.writes());
            let mut back = vec![0u8; len];
            dev.read(3 * bs, &mut back).map_err(|e| e.to_string())?;
            ensure!(disk.reads() == 1, "8 blocks in {} reads", disk.reads());
            ensure!(back == run, "the run reads back wrong");
            // Block by block, too.
            let one = usize::try_from(bs).unwrap();
            let mut block = vec![0u8; one];
            for (i, expected) in run.chunks(one).enumerate() {
                dev.read((3 + i as u64) * bs, &mut block)
                    .map_err(|e| e.to_string())?;
                ensure!(block == expected, "block {} reads back wrong", 3 + i);
            }
            // The first and the last block of the device.
            let last = dev.capacity() - bs;
            for (offset, seed) in [(0, 1), (last, 2)] {
                let data = pattern(seed, one);
                dev.write(offset, &data).map_err(|e| e.to_string())?;
                dev.read(offset, &mut block).map_err(|e| e.to_string())?;
                ensure!(block == data, "block at {offset} reads back wrong");
            }
            // The async path, on the same bytes.
            let mut back = vec![0u8; len];
            dev.read_async(3 * bs, &mut back)
                .await
                .map_err(|e| e.to_string())?;
            ensure!(back == run, "the async read differs");
            let twice: Vec<u8> = run.iter().map(|b| !b).collect();
            dev.write_async(3 * bs, &twice)
                .await
                .map_err(|e| e.to_string())?;
            dev.read(3 * bs, &mut back).map_err(|e| e.to_string())?;
            ensure!(back == twice, "the async write did not land");
            Ok(())
        },
    );
    // What the disk holds, seen from the host.
    let contents = disk.contents();
    let len = usize::try_from(8 * bs).unwrap();
    let inverted: Vec<u8> = pattern(bs, len).iter().map(|b| !b).collect();
    assert_eq!(&contents[range(3 * bs, len)], &inverted[..]);
    let one = usize::try_from(bs).unwrap();
    assert_eq!(&contents[..one], &pattern(1, one)[..]);
    assert_eq!(&contents[contents.len() - one..], &pattern(2, one)[..]);
    assert!(
        contents[range(11 * bs, usize::try_from(244 * bs).unwrap())]
            .iter()
            .all(|&b| b == 0),
        "nothing else was written"
    );
}

#[test]
fn runs_of_512_byte_blocks_round_trip() {
    round_trip(512);
}

#[test]
fn runs_of_4096_byte_blocks_round_trip() {
    round_trip(4096);
}

/// Every rule the guest enforces, on a device of 64 blocks of `block_size`.
fn rules_refused_without_a_hypercall(block_size: u16) {
    let bs = u64::from(block_size);
    let one = usize::try_from(bs).unwrap();
    let disk = Arc::new(MemDisk::from_bytes(
        "storage",
        pattern(7, usize::try_from(64 * bs).unwrap()),
    ));
    let before = disk.contents();
    let guest_disk = disk.clone();
    run_disks(
        &[disk_with("storage", &disk, block_size, false)],
        move || async move {
            let disk = guest_disk;
            let dev = BlockDevice::open("storage").map_err(|e| e.to_string())?;
            let capacity = dev.capacity();
            let mut buffer = vec![0u8; 3 * one];
            let mut refused = Vec::new();
            let mut check = |what: &str, got: Result<(), Error>, wanted: Error| {
                if got != Err(wanted) {
                    refused.push(format!("{what}: {got:?}, wanted {wanted:?}"));
                }
            };
            check("empty read", dev.read(0, &mut []), Error::Empty);
            check("empty write", dev.write(bs, &[]), Error::Empty);
            check(
                "short read",
                dev.read(0, &mut buffer[..one - 1]),
                Error::Misaligned,
            );
            check(
                "half read",
                dev.read(0, &mut buffer[..one / 2]),
                Error::Misaligned,
            );
            check(
                "long write",
                dev.write(0, &buffer[..one + 1]),
                Error::Misaligned,
            );
            check(
                "1.5 blocks",
                dev.write(0, &buffer[..one + one / 2]),
                Error::Misaligned,
            );
            check(
                "offset 1",
                dev.read(1, &mut buffer[..one]),
                Error::Misaligned,
            );
            check(
                "offset bs/2",
                dev.write(bs / 2, &buffer[..one]),
                Error::Misaligned,
            );
            check(
                "offset bs+8",
                dev.read(bs + 8, &mut buffer[..one]),
                Error::Misaligned,
            );
            check(
                "read at end",
                dev.read(capacity, &mut buffer[..one]),
                Error::OutOfRange,
            );
            check(
                "write at end",
                dev.write(capacity, &buffer[..one]),
                Error::OutOfRange,
            );
            check(
                "read across end",
                dev.read(capacity - bs, &mut buffer[..2 * one]),
                Error::OutOfRange,
            );
            check(
                "write far beyond",
                dev.write(1000 * capacity, &buffer[..one]),
                Error::OutOfRange,
            );
            check(
                "offset + length overflows",
                dev.read(u64::MAX - (bs - 1), &mut buffer[..one]),
                Error::OutOfRange,
            );
            check(
                "async read across end",
                dev.read_async(capacity - 2 * bs, &mut buffer).await,
                Error::OutOfRange,
            );
            check(
                "async misaligned write",
                dev.write_async(1, &buffer[..one]).await,
                Error::Misaligned,
            );
            check(
                "async empty read",
                dev.read_async(0, &mut []).await,
                Error::Empty,
            );
            // Requests the real device would take: refused by a stricter view.
            let smaller = BlockDevice::from_info(BlockInfo {
                capacity: capacity / 2,
                ..dev.info()
            });
            check(
                "beyond a smaller view",
                smaller.read(capacity / 2, &mut buffer[..one]),
                Error::OutOfRange,
            );
            let read_only = BlockDevice::from_info(BlockInfo {
                read_only: true,
                ..dev.info()
            });
            check(
                "read-only view",
                read_only.write(0, &buffer[..one]),
                Error::ReadOnly,
            );
            check(
                "read-only view, async",
                read_only.write_async(0, &buffer[..one]).await,
                Error::ReadOnly,
            );
            ensure!(refused.is_empty(), "{refused:#?}");
            ensure!(
                disk.reads() == 0 && disk.writes() == 0,
                "the disk saw {} reads and {} writes",
                disk.reads(),
                disk.writes()
            );
            // The views still work for what they allow, as one request each.
            read_only
                .read(0, &mut buffer[..one])
                .map_err(|e| e.to_string())?;
            smaller.read(0, &mut buffer).map_err(|e| e.to_string())?;
            ensure!(disk.reads() == 2, "{} reads", disk.reads());
            Ok(())
        },
    );
    assert_eq!(disk.contents(), before, "the disk is unchanged");
}

#[test]
fn broken_rules_fail_in_the_guest_with_512_byte_blocks() {
    rules_refused_without_a_hypercall(512);
}

#[test]
fn broken_rules_fail_in_the_guest_with_4096_byte_blocks() {
    rules_refused_without_a_hypercall(4096);
}

#[test]
fn raw_calls_reach_the_tender_unchecked() {
    let disk = Arc::new(MemDisk::from_bytes("storage", pattern(3, 64 << 10)));
    let guest_disk = disk.clone();
    run_disks(&[MockDisk::new("storage", &disk)], move || async move {
        let disk = guest_disk;
        let dev = BlockDevice::open("storage").map_err(|e| e.to_string())?;
        let handle = dev.info().handle;
        // Any alignment and length inside the device: the tender's OK.
        let mut three = [0u8; 3];
        raw::read(handle, 1, &mut three).map_err(|e| e.to_string())?;
        ensure!(three[..] == pattern(3, 4)[1..], "raw read at 1: {three:?}");
        raw::write(handle, 5, &[9, 9]).map_err(|e| e.to_string())?;
        ensure!(disk.contents()[5..7] == [9, 9], "raw write at 5");
        // Outside it, or on a bad handle: EINVAL from the tender.
        let capacity = dev.capacity();
        for (offset, len, h) in [
            (capacity, 512, handle),
            (capacity - 1, 2, handle),
            (u64::MAX, 1, handle),
            (0, 512, handle + 1),
            (0, 512, 0),
        ] {
            let mut buffer = vec![0u8; len];
            let got = raw::read(h, offset, &mut buffer);
            ensure!(
                got == Err(BlockError::Invalid),
                "raw read {len} at {offset} on {h}: {got:?}"
            );
        }
        // A refusal by the tender reaches the API as a device error.
        let lying = BlockDevice::from_info(BlockInfo {
            capacity: 2 * capacity,
            ..dev.info()
        });
        let got = lying.read(capacity, &mut [0u8; 512]);
        ensure!(got == Err(Error::Device(BlockError::Invalid)), "{got:?}");
        Ok(())
    });
}

#[test]
fn a_read_only_device_refuses_writes_and_stays_unchanged() {
    let disk = Arc::new(MemDisk::from_bytes("storage", pattern(5, 64 << 10)));
    let before = disk.contents();
    let guest_disk = disk.clone();
    run_disks(
        &[disk_with("storage", &disk, 512, true)],
        move || async move {
            let disk = guest_disk;
            let dev = BlockDevice::open("storage").map_err(|e| e.to_string())?;
            ensure!(dev.is_read_only(), "not read-only: {:?}", dev.info());
            let mut block = [0u8; 512];
            dev.read(512, &mut block).map_err(|e| e.to_string())?;
            ensure!(block[..] == pattern(5, 1024)[512..], "block 1 reads wrong");
            let api = dev.write(0, &[1u8; 512]);
            ensure!(api == Err(Error::ReadOnly), "API write: {api:?}");
            ensure!(disk.writes() == 0, "the API sent a write");
            // The tender refuses the hypercall itself: EUNSPEC (§12.6).
            let got = raw::write(dev.info().handle, 0, &[1u8; 512]);
            ensure!(got == Err(BlockError::Unspecified), "raw write: {got:?}");
            let writable = BlockDevice::from_info(BlockInfo {
                read_only: false,
                ..dev.info()
            });
            let got = writable.write(0, &[1u8; 512]);
            ensure!(
                got == Err(Error::Device(BlockError::Unspecified)),
                "write through a writable view: {got:?}"
            );
            Ok(())
        },
    );
    assert_eq!(disk.contents(), before);
}

/// A task that counts how often it runs, until `stop` is set.
fn ticker(stop: Rc<Cell<bool>>) -> Rc<Cell<u64>> {
    let ticks = Rc::new(Cell::new(0));
    let counter = ticks.clone();
    spawn(async move {
        while !stop.get() {
            counter.set(counter.get() + 1);
            yield_now().await;
        }
    });
    ticks
}

#[test]
fn async_calls_transfer_in_chunks_and_let_other_tasks_run() {
    let disk = Arc::new(MemDisk::new("storage", 4 * MIB));
    let guest_disk = disk.clone();
    let len = usize::try_from(5 * CHUNK / 2).unwrap();
    run_disks(&[MockDisk::new("storage", &disk)], move || async move {
        let disk = guest_disk;
        let dev = BlockDevice::open("storage").map_err(|e| e.to_string())?;
        let stop = Rc::new(Cell::new(false));
        let ticks = ticker(stop.clone());
        yield_now().await;
        let data = pattern(11, len);

        // Synchronous: one request, nobody else runs meanwhile.
        let before = ticks.get();
        dev.write(0, &data).map_err(|e| e.to_string())?;
        ensure!(ticks.get() == before, "a synchronous write yielded");
        ensure!(disk.writes() == 1, "{} writes", disk.writes());

        // Async: 1 MiB, 1 MiB, 0.5 MiB; a yield at least after each full MiB.
        let before = ticks.get();
        dev.write_async(0, &data).await.map_err(|e| e.to_string())?;
        ensure!(disk.writes() == 4, "{} writes", disk.writes());
        ensure!(ticks.get() >= before + 2, "{} turns", ticks.get() - before);

        let mut back = vec![0u8; len];
        let before = ticks.get();
        dev.read_async(0, &mut back)
            .await
            .map_err(|e| e.to_string())?;
        ensure!(disk.reads() == 3, "{} reads", disk.reads());
        ensure!(ticks.get() >= before + 2, "{} turns", ticks.get() - before);
        ensure!(back == data, "the async read differs");

        // Small requests add up: 2 MiB of 4 KiB reads yield twice at least,
        // with one request each.
        let before = ticks.get();
        let mut block = [0u8; 4096];
        for i in 0..512u64 {
            dev.read_async(i * 4096, &mut block)
                .await
                .map_err(|e| e.to_string())?;
        }
        ensure!(disk.reads() == 3 + 512, "{} reads", disk.reads());
        let turns = ticks.get() - before;
        ensure!((2..=3).contains(&turns), "{turns} turns for 2 MiB");
        // A block size that does not divide the chunk: chunks of whole
        // blocks (341 blocks of 3072 bytes), the rest in a second request.
        let odd = BlockDevice::from_info(BlockInfo {
            block_size: 3072,
            ..dev.info()
        });
        let writes = disk.writes();
        let run = vec![0x77u8; 342 * 3072];
        odd.write_async(3072, &run)
            .await
            .map_err(|e| e.to_string())?;
        ensure!(
            disk.writes() == writes + 2,
            "{} writes",
            disk.writes() - writes
        );
        stop.set(true);
        Ok(())
    });
    let contents = disk.contents();
    assert_eq!(&contents[..3072], &pattern(11, 3072)[..]);
    assert!(contents[3072..343 * 3072].iter().all(|&b| b == 0x77));
    assert_eq!(&contents[343 * 3072..len], &pattern(11, len)[343 * 3072..]);
    assert!(contents[len..].iter().all(|&b| b == 0));
}
