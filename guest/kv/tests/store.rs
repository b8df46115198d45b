//! The store over the in-memory fake disk: formatting and refusing
//! devices, operations, recovery, compaction, 507, and crashes at every
//! write of small workloads (the power going before the write, during it
//! with any prefix or subset of its blocks stored, or after it but before
//! the store heard of it), each followed by a restart that must find every
//! acknowledged change and nothing else (the change in flight either done
//! or not), and then a log that goes on working.

mod common;

use common::*;
use kv::fake::{FakeDisk, Fault};
use kv::format::{record_blocks, MAX_KEY, MAX_VALUE};
use kv::store::{OpenError, Put, Store, StoreError};

const BS: u64 = 512;

fn open(disk: &FakeDisk) -> Store<FakeDisk> {
    Store::open(disk.clone()).unwrap_or_else(|e| panic!("open: {e}"))
}

#[test]
fn a_blank_device_is_formatted_once() {
    let disk = FakeDisk::new(BS, 100);
    let store = open(&disk);
    assert!(store.stats().formatted);
    assert_eq!(store.region_blocks(), 49);
    assert_eq!(store.len(), 0);
    assert_eq!(disk.writes(), 1, "formatting writes one superblock");
    drop(store);
    let store = open(&disk);
    assert!(!store.stats().formatted);
    assert_eq!(disk.writes(), 1, "opening a store writes nothing");
}

#[test]
fn a_device_holding_anything_else_is_refused_and_left_alone() {
    type Change = Box<dyn Fn(&mut [u8])>;
    let cases: Vec<(&str, Change)> = vec![
        (
            "a byte in the middle",
            Box::new(|d: &mut [u8]| d[20_000] = 1),
        ),
        (
            "the last byte",
            Box::new(|d: &mut [u8]| *d.last_mut().unwrap() = 0x80),
        ),
        (
            "data after two zero blocks (an ext4 image)",
            Box::new(|d: &mut [u8]| d[1080..1082].copy_from_slice(&[0x53, 0xef])),
        ),
        (
            "a partition table",
            Box::new(|d: &mut [u8]| d[510..512].copy_from_slice(&[0x55, 0xaa])),
        ),
        (
            "text",
            Box::new(|d: &mut [u8]| d[..5].copy_from_slice(b"hello")),
        ),
    ];
    for (what, modify) in cases {
        let disk = FakeDisk::new(BS, 100);
        disk.modify(|d| modify(d));
        let before = disk.contents();
        let error = Store::open(disk.clone()).expect_err(what);
        assert_eq!(error, OpenError::NotAStore, "{what}");
        assert_eq!(disk.contents(), before, "{what}: the device was changed");
        assert_eq!(disk.writes(), 0, "{what}");
    }
}

#[test]
fn a_store_with_both_superblocks_damaged_is_refused() {
    let disk = FakeDisk::new(BS, 100);
    let mut store = open(&disk);
    store.put(b"a", b"1").unwrap();
    drop(store);
    // Slot 0 is blank; slot 1 holds generation 1.
    disk.modify(|d| d[512 + 20] ^= 1);
    assert_eq!(Store::open(disk.clone()).unwrap_err(), OpenError::Damaged);
}

#[test]
fn an_interrupted_format_is_done_again() {
    // The last non-zero byte of the first superblock is byte 56 (the next
    // epoch, 2): with it, the superblock is whole.
    for keep in [0, 1, 5, 8, 40, 56, 57, 511] {
        let disk = FakeDisk::new(BS, 100);
        disk.set_fault(Some(Fault::Torn { at: 0, keep }));
        assert!(Store::open(disk.clone()).is_err());
        disk.set_fault(None);
        let mut store = open(&disk);
        assert_eq!(store.stats().formatted, keep < 57, "keep {keep}");
        store.put(b"k", b"v").unwrap();
        drop(store);
        assert_eq!(open(&disk).get(b"k").unwrap().unwrap(), b"v");
    }
}

#[test]
fn a_partial_superblock_with_anything_else_is_not_a_format() {
    // The first bytes of a superblock (with the magic: a damaged store),
    // and data in the log area.
    let disk = FakeDisk::new(BS, 100);
    disk.set_fault(Some(Fault::Torn { at: 0, keep: 20 }));
    assert!(Store::open(disk.clone()).is_err());
    disk.set_fault(None);
    disk.modify(|d| d[5000] = 1);
    assert_eq!(Store::open(disk.clone()).unwrap_err(), OpenError::Damaged);
    // A superblock slot with a byte the format never writes.
    let disk = FakeDisk::new(BS, 100);
    disk.set_fault(Some(Fault::Torn { at: 0, keep: 20 }));
    assert!(Store::open(disk.clone()).is_err());
    disk.set_fault(None);
    disk.modify(|d| d[512 + 100] = 1);
    assert_eq!(Store::open(disk.clone()).unwrap_err(), OpenError::NotAStore);
}

#[test]
fn geometry_is_checked() {
    assert!(matches!(
        Store::open(FakeDisk::new(256, 100)).unwrap_err(),
        OpenError::Geometry(_)
    ));
    assert_eq!(
        Store::open(FakeDisk::new(BS, 5)).unwrap_err(),
        OpenError::TooSmall
    );
    assert!(Store::open(FakeDisk::new(BS, 6)).is_ok());

    // A store made with 512-byte blocks seen with 4096-byte blocks, and
    // the other way round.
    let disk = FakeDisk::new(BS, 64);
    let mut store = open(&disk);
    store.put(b"a", b"b").unwrap();
    drop(store);
    let bigger_blocks = FakeDisk::from_bytes(4096, disk.contents());
    assert_eq!(
        Store::open(bigger_blocks).unwrap_err(),
        OpenError::Mismatch("made with 512-byte blocks, the device has 4096-byte blocks".into())
    );
    let big = FakeDisk::new(4096, 64);
    open(&big).put(b"a", b"b").unwrap();
    assert_eq!(
        Store::open(FakeDisk::from_bytes(512, big.contents())).unwrap_err(),
        OpenError::Mismatch("made with 4096-byte blocks, the device has 512-byte blocks".into())
    );
    // Cut short: refused. Grown: the store keeps its own layout.
    let mut bytes = disk.contents();
    bytes.truncate(bytes.len() - 512);
    assert!(matches!(
        Store::open(FakeDisk::from_bytes(BS, bytes)).unwrap_err(),
        OpenError::Mismatch(_)
    ));
    let mut bytes = disk.contents();
    bytes.resize(bytes.len() + 4096, 0);
    let mut grown = open(&FakeDisk::from_bytes(BS, bytes));
    assert_eq!(grown.get(b"a").unwrap().unwrap(), b"b");
    assert_eq!(grown.region_blocks(), 31);
}

#[test]
fn a_read_only_device() {
    let disk = FakeDisk::new(BS, 64);
    disk.set_read_only(true);
    assert_eq!(
        Store::open(disk.clone()).unwrap_err(),
        OpenError::ReadOnlyBlank
    );
    disk.set_read_only(false);
    let mut store = open(&disk);
    store.put(b"a", b"b").unwrap();
    drop(store);
    disk.set_read_only(true);
    let mut store = open(&disk);
    assert!(store.is_read_only());
    assert_eq!(store.get(b"a").unwrap().unwrap(), b"b");
    assert_eq!(store.put(b"a", b"c"), Err(StoreError::ReadOnly));
    assert_eq!(store.delete(b"a"), Err(StoreError::ReadOnly));
    assert_eq!(store.get(b"a").unwrap().unwrap(), b"b");
}

#[test]
fn put_get_delete() {
    let disk = FakeDisk::new(BS, 1000);
    let mut store = open(&disk);
    assert_eq!(store.get(b"k").unwrap(), None);
    assert_eq!(store.put(b"k", b"one").unwrap(), Put::Created);
    assert_eq!(store.put(b"k", b"two").unwrap(), Put::Replaced);
    assert_eq!(store.get(b"k").unwrap().unwrap(), b"two");
    assert_eq!(store.put(b"empty", b"").unwrap(), Put::Created);
    assert_eq!(store.get(b"empty").unwrap().unwrap(), b"");
    assert!(store.delete(b"k").unwrap());
    assert!(!store.delete(b"k").unwrap());
    assert_eq!(store.get(b"k").unwrap(), None);

    let long_key = vec![0xa5; MAX_KEY];
    let big = value(1, MAX_VALUE);
    assert_eq!(store.put(&long_key, &big).unwrap(), Put::Created);
    assert_eq!(store.get(&long_key).unwrap().unwrap(), big);
    assert_eq!(
        store.put(&vec![1; MAX_KEY + 1], b"x"),
        Err(StoreError::BadKey)
    );
    assert_eq!(store.put(b"", b"x"), Err(StoreError::BadKey));
    assert_eq!(store.delete(b""), Err(StoreError::BadKey));
    assert_eq!(
        store.put(b"big", &value(2, MAX_VALUE + 1)),
        Err(StoreError::ValueTooLarge)
    );
    assert_eq!(store.len(), 2);
    assert_eq!(store.value_bytes(), MAX_VALUE as u64);
}

#[test]
fn one_write_per_change_and_one_read_per_get() {
    let disk = FakeDisk::new(BS, 1000);
    let mut store = open(&disk);
    for (i, len) in [0usize, 480, 481, 5000, MAX_VALUE].into_iter().enumerate() {
        let (writes, reads) = (disk.writes(), disk.reads());
        store
            .put(format!("k{i}").as_bytes(), &value(i as u64, len))
            .unwrap();
        assert_eq!(disk.writes(), writes + 1);
        let (_, bytes) = *disk.write_log().last().unwrap();
        assert_eq!(bytes as u64, record_blocks(BS, 2 + len) * BS);
        assert_eq!(disk.reads(), reads, "a put reads nothing");
        store.get(format!("k{i}").as_bytes()).unwrap().unwrap();
        assert_eq!(disk.reads(), reads + 1);
    }
    let writes = disk.writes();
    store.delete(b"k0").unwrap();
    assert_eq!(disk.writes(), writes + 1);
    assert!(!store.delete(b"k0").unwrap());
    assert_eq!(disk.writes(), writes + 1, "deleting nothing writes nothing");
}

#[test]
fn recovery_finds_every_change() {
    let disk = FakeDisk::new(BS, 2000);
    let mut store = open(&disk);
    let mut model = Model::new();
    for op in small_workload() {
        perform(&mut store, &mut model, &op).unwrap();
    }
    assert_eq!(dump(&mut store), model);
    drop(store);
    let mut store = open(&disk);
    assert_eq!(dump(&mut store), model);
    // One record per change (deleting what is not there is none).
    assert_eq!(store.stats().recovered, 19);
    assert!(!model.contains_key(&b"ghost"[..]));
}

#[test]
fn a_corrupt_record_is_never_returned() {
    let disk = FakeDisk::new(BS, 200);
    let mut store = open(&disk);
    store.put(b"first", &value(1, 1000)).unwrap();
    store.put(b"second", &value(2, 10)).unwrap();
    // Region 0 starts at block 2; "first" takes blocks 2..5.
    disk.modify(|d| d[3 * 512 + 100] ^= 0x40);
    assert_eq!(store.get(b"first"), Err(StoreError::Corrupt));
    assert_eq!(store.get(b"second").unwrap().unwrap(), value(2, 10));
    // At restart the log ends before the corrupt record.
    drop(store);
    let mut store = open(&disk);
    assert_eq!(store.len(), 0);
    assert_eq!(store.get(b"first").unwrap(), None);
}

#[test]
fn the_log_is_compacted_when_full_and_nothing_is_lost() {
    // Regions of 40 blocks.
    let disk = FakeDisk::new(BS, 82);
    let mut store = open(&disk);
    let mut model = Model::new();
    let mut rng = Rng(7);
    for i in 0..400u64 {
        let key = format!("k{}", rng.below(8)).into_bytes();
        let op = if rng.below(5) == 0 {
            Op::Delete(key)
        } else {
            Op::Put(key, value(i, rng.len_below(1500)))
        };
        let done = perform(&mut store, &mut model, &op).unwrap();
        assert!(done, "8 keys of at most 4 blocks fit in 40 blocks");
        assert!(store.log_blocks() <= store.region_blocks());
    }
    let compactions = store.stats().compactions;
    assert!(compactions > 10, "{compactions} compactions");
    assert_eq!(dump(&mut store), model);
    let generation = store.superblock().generation;
    assert_eq!(generation, 1 + 2 * compactions);
    drop(store);
    let mut store = open(&disk);
    assert_eq!(dump(&mut store), model);
    assert_eq!(store.superblock().generation, generation);
}

#[test]
fn when_the_live_data_does_not_fit_507_changes_nothing() {
    // Regions of 10 blocks: values of 2 blocks each.
    let disk = FakeDisk::new(BS, 22);
    let mut store = open(&disk);
    let two_blocks = |i| value(i, 600);
    for i in 0..5 {
        store
            .put(format!("k{i}").as_bytes(), &two_blocks(i))
            .unwrap();
    }
    let before = disk.contents();
    let writes = disk.writes();
    assert_eq!(store.put(b"k5", &two_blocks(5)), Err(StoreError::Full));
    // Replacing a value by a larger one does not fit either.
    assert_eq!(store.put(b"k0", &value(9, 1200)), Err(StoreError::Full));
    assert_eq!(disk.writes(), writes, "nothing written");
    assert_eq!(disk.contents(), before);
    let mut model: Model = (0..5)
        .map(|i| (format!("k{i}").into_bytes(), two_blocks(i)))
        .collect();
    assert_eq!(dump(&mut store), model);
    // Same size replaces (a compaction), a delete (the log is full:
    // compaction too) makes room.
    assert_eq!(store.put(b"k0", &value(10, 600)).unwrap(), Put::Replaced);
    model.insert(b"k0".to_vec(), value(10, 600));
    assert!(store.delete(b"k1").unwrap());
    model.remove(&b"k1"[..]);
    assert_eq!(store.put(b"k5", &two_blocks(5)).unwrap(), Put::Created);
    model.insert(b"k5".to_vec(), two_blocks(5));
    assert_eq!(dump(&mut store), model);
    drop(store);
    assert_eq!(dump(&mut open(&disk)), model);
}

#[test]
fn after_an_io_error_the_store_goes_on() {
    let disk = FakeDisk::new(BS, 200);
    let mut store = open(&disk);
    store.put(b"a", b"1").unwrap();
    disk.set_fault(Some(Fault::IoError { at: 0 }));
    assert!(matches!(store.put(b"b", b"2"), Err(StoreError::Disk(_))));
    assert_eq!(store.get(b"b").unwrap(), None);
    store.put(b"c", b"3").unwrap();
    drop(store);
    let store = open(&disk);
    assert_eq!(store.keys().collect::<Vec<_>>(), vec![&b"a"[..], b"c"]);
}

#[test]
fn a_write_stored_but_unacknowledged_is_seen_after_the_failure() {
    // The store reloads after a failed write: it serves what a restart
    // would find.
    let disk = FakeDisk::new(BS, 200);
    let mut store = open(&disk);
    disk.set_fault(Some(Fault::Unacknowledged { at: 0 }));
    assert!(store.put(b"a", b"1").is_err());
    assert_eq!(store.get(b"a").unwrap().unwrap(), b"1");
}

#[test]
fn a_commit_that_failed_but_was_stored_is_followed() {
    // The superblock that commits a compaction reaches the device but its
    // write fails. The store must go on in the new region (what a restart
    // finds), not append to the old one, even though the next record
    // would fit there.
    let disk = FakeDisk::new(BS, 30); // regions of 14 blocks
    let mut store = open(&disk);
    let mut model = Model::new();
    for i in 0..13u64 {
        perform(
            &mut store,
            &mut model,
            &Op::Put(b"k".to_vec(), value(i, 10)),
        )
        .unwrap();
    }
    assert_eq!(store.log_blocks(), 13);
    disk.set_fault(Some(Fault::FailedButStored { at: 2 }));
    let big = Op::Put(b"big".to_vec(), value(99, 1000));
    assert!(perform(&mut store, &mut model, &big).is_err());
    apply(&mut model, &big);
    assert_eq!(dump(&mut store), model, "the committed change is served");
    perform(
        &mut store,
        &mut model,
        &Op::Put(b"small".to_vec(), value(100, 5)),
    )
    .unwrap();
    drop(store);
    assert_eq!(dump(&mut open(&disk)), model);
}

/// The faults to try on write `at`, of `len` bytes.
fn faults_for(at: u64, len: usize) -> Vec<Fault> {
    let blocks = len as u64 / BS;
    let mut faults = vec![
        Fault::CrashBefore { at },
        Fault::IoError { at },
        Fault::FailedButStored { at },
        Fault::Unacknowledged { at },
        Fault::Torn { at, keep: BS / 2 },
    ];
    let mut prefixes: Vec<u64> = if blocks <= 8 {
        (1..blocks).collect()
    } else {
        vec![1, 2, blocks / 2, blocks - 2, blocks - 1]
    };
    prefixes.dedup();
    for k in prefixes {
        faults.push(Fault::Torn { at, keep: k * BS });
        faults.push(Fault::Torn {
            at,
            keep: k * BS + 100,
        });
    }
    if blocks > 1 {
        for mask in [
            0x5555_5555_5555_5555,
            !0x5555_5555_5555_5555,
            1 << ((blocks - 1) % 64),
            !1,
        ] {
            faults.push(Fault::Scattered { at, mask });
        }
    }
    faults
}

#[test]
fn a_value_is_never_taken_for_records() {
    // A value of record images (key "ghost", epoch 1, sequence number 1)
    // placed so that, were the payload laid out without block tags, one
    // would start each of its blocks after the first; the write tears
    // with all its blocks stored but the first, a short record replaces
    // it, and the scan goes on after the short record, into the torn one.
    let mut image = Vec::new();
    kv::format::encode_record(
        &mut image,
        BS,
        1,
        1,
        kv::format::Kind::Put,
        b"ghost",
        b"boo",
    );
    let key = b"forged";
    let mut forged = vec![0x11; 512 - 32 - key.len()];
    while forged.len() + 512 <= MAX_VALUE {
        forged.extend_from_slice(&image);
    }
    let disk = FakeDisk::new(BS, 400);
    let mut store = open(&disk);
    disk.set_fault(Some(Fault::Scattered { at: 0, mask: !1 }));
    assert!(store.put(key, &forged).is_err());
    drop(store);
    disk.set_fault(None);
    let mut store = open(&disk);
    assert!(store.is_empty());
    store.put(b"x", b"short").unwrap();
    drop(store);
    let mut store = open(&disk);
    assert_eq!(store.keys().collect::<Vec<_>>(), vec![&b"x"[..]]);
    assert_eq!(store.get(b"ghost").unwrap(), None);
}

/// What a run up to a crash left.
struct Crashed {
    /// The changes the store acknowledged.
    acked: Model,
    /// The operation that failed, if any.
    in_flight: Option<Op>,
    /// Operations started.
    started: usize,
}

/// Runs `ops` on a new store on `disk`, until a write fails for lack of
/// power. An I/O error (which changes nothing) fails only its operation:
/// the store must then serve the acknowledged state, with or without the
/// failed change, and the run goes on.
fn run_until_crash(disk: &FakeDisk, ops: &[Op]) -> Crashed {
    let mut acked = Model::new();
    let Ok(mut store) = Store::open(disk.clone()) else {
        return Crashed {
            acked,
            in_flight: None,
            started: 0,
        };
    };
    for (i, op) in ops.iter().enumerate() {
        if let Err(error) = perform(&mut store, &mut acked, op) {
            if !disk.is_dead() {
                let now = dump(&mut store);
                let mut with = acked.clone();
                apply(&mut with, op);
                assert!(now == acked || now == with, "after {error}: {op:?}");
                acked = now;
                continue;
            }
            return Crashed {
                acked,
                in_flight: Some(op.clone()),
                started: i + 1,
            };
        }
    }
    Crashed {
        acked,
        in_flight: None,
        started: ops.len(),
    }
}

/// Crashes `ops` at every write of a clean run, with every fault of
/// [`faults_for`]; after each, restarts, checks, finishes the workload,
/// runs it again, and checks once more after another restart. Returns the
/// number of crashes tried.
fn crash_at_every_write(blocks: u64, ops: &[Op]) -> usize {
    let clean = FakeDisk::new(BS, blocks);
    let outcome = run_until_crash(&clean, ops);
    assert_eq!(outcome.started, ops.len());
    let writes = clean.write_log();
    let mut tried = 0;
    for (at, &(_, len)) in writes.iter().enumerate() {
        for fault in faults_for(at as u64, len) {
            tried += 1;
            let disk = FakeDisk::new(BS, blocks);
            disk.set_fault(Some(fault));
            let crashed = run_until_crash(&disk, ops);
            disk.set_fault(None);
            let what = format!("{fault:?} of write {at} ({len} bytes)");
            let mut store =
                Store::open(disk.clone()).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
            let found = dump(&mut store);
            let mut with = crashed.acked.clone();
            if let Some(op) = &crashed.in_flight {
                apply(&mut with, op);
            }
            assert!(
                found == crashed.acked || found == with,
                "{what}: in flight {:?}\nfound {:?}\nacked {:?}",
                crashed.in_flight,
                found
                    .keys()
                    .map(|k| String::from_utf8_lossy(k))
                    .collect::<Vec<_>>(),
                crashed
                    .acked
                    .keys()
                    .map(|k| String::from_utf8_lossy(k))
                    .collect::<Vec<_>>(),
            );
            // The log goes on: the rest of the workload, then all of it.
            let mut model = found;
            for op in ops[crashed.started..].iter().chain(ops) {
                perform(&mut store, &mut model, op).unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            assert_eq!(dump(&mut store), model, "{what}");
            drop(store);
            assert_eq!(
                dump(&mut open(&disk)),
                model,
                "{what}: after a second restart"
            );
        }
    }
    tried
}

#[test]
fn crashes_at_every_write_of_a_small_workload() {
    let tried = crash_at_every_write(200, &small_workload());
    assert!(tried > 150, "{tried}");
}

/// A workload on 6 keys with values of up to 8 blocks: on regions of 24
/// blocks it compacts often and is sometimes refused (507).
fn compacting_workload(seed: u64, n: u64) -> Vec<Op> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let key = format!("key{}", rng.below(6)).into_bytes();
            if rng.below(6) == 0 {
                Op::Delete(key)
            } else {
                Op::Put(key, value(seed * 1000 + i, rng.len_below(3500)))
            }
        })
        .collect()
}

#[test]
fn crashes_at_every_write_of_compactions() {
    let ops = compacting_workload(3, 60);
    // How often it compacts, and that it is refused sometimes.
    let disk = FakeDisk::new(BS, 50);
    let mut store = open(&disk);
    let mut model = Model::new();
    let refused = ops
        .iter()
        .filter(|op| !perform(&mut store, &mut model, op).unwrap())
        .count();
    let compactions = store.stats().compactions;
    assert!(compactions >= 5, "{compactions} compactions");
    assert!(refused >= 1, "no 507");
    let tried = crash_at_every_write(50, &ops);
    assert!(tried > 300, "{tried}");
}

#[test]
fn a_compaction_crashed_once_is_done_again_differently() {
    // A compaction for one change (a put of zz) is cut off while copying,
    // or after copying everything but before its superblock; after the
    // restart a compaction for another change (a delete of k0) writes
    // fewer records to the same region, ending where the first one had a
    // record with the next sequence number. Nothing of the first may show
    // up: each compaction has an epoch of its own.
    let faults = (1..=13)
        .map(|k| Fault::Torn {
            at: 1,
            keep: k * BS,
        })
        .chain([Fault::CrashBefore { at: 2 }, Fault::CrashBefore { at: 1 }]);
    for fault in faults {
        let disk = FakeDisk::new(BS, 30); // regions of 14 blocks
        let mut store = open(&disk);
        let mut model = Model::new();
        for (i, len) in [600usize, 100, 600, 100, 600].into_iter().enumerate() {
            let op = Op::Put(format!("k{i}").into_bytes(), value(i as u64, len));
            perform(&mut store, &mut model, &op).unwrap();
        }
        // Fill the log with replacements of k1: the next change compacts.
        let mut n = 0;
        while store.log_blocks() < store.region_blocks() {
            let op = Op::Put(b"k1".to_vec(), value(100 + n, 10));
            perform(&mut store, &mut model, &op).unwrap();
            n += 1;
        }
        // Write 0 is the superblock reserving the epoch, 1 the copy (one
        // batch: k0 k1 k2 k3 k4 zz at blocks 0 2 3 5 6 8), 2 the commit.
        disk.set_fault(Some(fault));
        assert!(store.put(b"zz", &value(50, 2000)).is_err());
        drop(store);
        disk.set_fault(None);
        let mut store = open(&disk);
        assert_eq!(dump(&mut store), model, "{fault:?}");
        // k1 k2 k3 k4 at blocks 0 1 3 4: the log ends at block 6, where
        // the cut-off copy has k4 with sequence number 4, then zz.
        perform(&mut store, &mut model, &Op::Delete(b"k0".to_vec())).unwrap();
        assert_eq!(store.log_blocks(), 6);
        drop(store);
        let mut store = open(&disk);
        assert_eq!(dump(&mut store), model, "{fault:?}");
        perform(
            &mut store,
            &mut model,
            &Op::Put(b"k9".to_vec(), value(9, 5)),
        )
        .unwrap();
        drop(store);
        assert_eq!(dump(&mut open(&disk)), model, "{fault:?}");
    }
}

#[test]
fn random_crashes() {
    for seed in 1..40u64 {
        let ops = compacting_workload(seed, 80);
        let mut rng = Rng(seed * 7919);
        let disk = FakeDisk::new(BS, 50);
        let mut model = Model::new();
        let mut start = 0;
        // Crash, restart and go on until the workload is done.
        while start < ops.len() {
            let at = rng.below(30);
            let fault = match rng.below(4) {
                0 => Fault::CrashBefore { at },
                1 => Fault::Unacknowledged { at },
                2 => Fault::Torn {
                    at,
                    keep: rng.below(3000),
                },
                _ => Fault::Scattered {
                    at,
                    mask: rng.next(),
                },
            };
            let mut store = open(&disk);
            let found = dump(&mut store);
            assert_eq!(found, model, "seed {seed}");
            disk.set_fault(Some(fault));
            let mut in_flight = None;
            for op in &ops[start..] {
                start += 1;
                if perform(&mut store, &mut model, op).is_err() {
                    in_flight = Some(op.clone());
                    break;
                }
            }
            drop(store);
            disk.set_fault(None);
            let found = dump(&mut open(&disk));
            let mut with = model.clone();
            if let Some(op) = &in_flight {
                apply(&mut with, op);
            }
            assert!(found == model || found == with, "seed {seed}");
            model = found;
        }
    }
}
