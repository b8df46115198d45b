//! The store: a log of checksummed records on a [`Disk`], an in-memory
//! index rebuilt from it at open, and compaction into the other region
//! when the log is full. The format is in [`crate::format`].
//!
//! **Durability.** [`Store::put`] and [`Store::delete`] return `Ok` only
//! after the write that makes the change durable returned: the record's
//! (one write of whole blocks), or for a change that needed a compaction
//! the new superblock's.
//!
//! **Recovery.** [`Store::open`] takes the valid superblock slot with the
//! highest generation and scans its region's log from the start, record
//! by record, while each has the magic, the region's epoch, the next
//! sequence number, consistent tags and the right CRC. The first record
//! that does not is the end of the log: a torn or corrupt tail record is
//! dropped, and the next record is written over it with the same sequence
//! number. Nothing beyond the end can be taken for a record of the log:
//! what an earlier epoch left has another epoch, every epoch is used by at
//! most one compaction (the next epoch is reserved in a superblock before
//! any record of it is written), a client's bytes never start a block, and
//! within an epoch a sequence number is only ever written at one place.
//!
//! **Compaction.** When a record does not fit in the rest of the region,
//! the store reserves a new epoch (superblock generation g+1, same region),
//! copies the live records, with the change applied, to the start of the
//! other region under the new epoch (writes of up to [`BATCH`] bytes), and
//! then writes superblock g+2, which makes the other region current: a
//! crash before that write completes leaves the old region current and
//! intact, a crash after it the new one. When the live records with the
//! change do not fit in a region, the change is refused with
//! [`StoreError::Full`] and nothing is written.
//!
//! **Failed writes.** After any failed write the store reloads its state
//! from the device, so that what it serves is what a restart would find.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::disk::{Disk, DiskError};
use crate::format::{
    encode_record, record_blocks, to_usize, Head, Kind, Slot, Superblock, MAX_BLOCK_SIZE, MAX_KEY,
    MAX_VALUE, MIN_BLOCK_SIZE, MIN_REGION_BLOCKS, SUPER_BLOCKS,
};

/// Bytes read at once when scanning a log.
pub const WINDOW: usize = 1 << 20;
/// Bytes written at once when compacting.
pub const BATCH: usize = 1 << 20;

/// Why a device cannot be opened as a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The device's block size or capacity is unusable.
    Geometry(String),
    /// The device is blank but too small for two superblocks and two
    /// regions of two blocks.
    TooSmall,
    /// The device holds something else than a store.
    NotAStore,
    /// The device was a store, but neither superblock is valid.
    Damaged,
    /// A store made for another device (block size, capacity).
    Mismatch(String),
    /// The device is blank and read-only: it cannot be formatted.
    ReadOnlyBlank,
    /// The device failed.
    Disk(DiskError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Geometry(what) => write!(f, "unusable device: {what}"),
            OpenError::TooSmall => f.write_str("the device is too small for a store"),
            OpenError::NotAStore => {
                f.write_str("the device holds something else (neither blank nor a store)")
            }
            OpenError::Damaged => f.write_str("the store's superblocks are both damaged"),
            OpenError::Mismatch(what) => write!(f, "the store does not fit this device: {what}"),
            OpenError::ReadOnlyBlank => f.write_str("the device is blank and read-only"),
            OpenError::Disk(error) => error.fmt(f),
        }
    }
}

impl From<DiskError> for OpenError {
    fn from(error: DiskError) -> Self {
        OpenError::Disk(error)
    }
}

/// Why an operation failed. Only [`StoreError::Disk`] and
/// [`StoreError::Broken`] may have changed anything (see [`Store`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// An empty key, or one longer than [`MAX_KEY`] bytes.
    BadKey,
    /// A value longer than [`MAX_VALUE`] bytes.
    ValueTooLarge,
    /// The live data with this change would not fit in a region.
    Full,
    /// The device is read-only.
    ReadOnly,
    /// A record on the device failed its checks.
    Corrupt,
    /// The device failed; the store reloaded its state from it.
    Disk(DiskError),
    /// Reloading after a failed write failed too: the store serves nothing
    /// until it is opened again.
    Broken,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::BadKey => write!(f, "a key has 1 to {MAX_KEY} bytes"),
            StoreError::ValueTooLarge => write!(f, "a value has at most {MAX_VALUE} bytes"),
            StoreError::Full => f.write_str("the live data would not fit"),
            StoreError::ReadOnly => f.write_str("the device is read-only"),
            StoreError::Corrupt => f.write_str("a record on the device is corrupt"),
            StoreError::Disk(error) => error.fmt(f),
            StoreError::Broken => f.write_str("the store failed and must be reopened"),
        }
    }
}

impl From<DiskError> for StoreError {
    fn from(error: DiskError) -> Self {
        StoreError::Disk(error)
    }
}

/// What a successful put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The key was new.
    Created,
    /// The key had a value, now replaced.
    Replaced,
}

/// Where a live record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    /// First block, within the region.
    block: u64,
    blocks: u64,
    seq: u64,
    value_len: usize,
}

/// Blocks of a region, read a window at a time.
struct Window {
    buffer: Vec<u8>,
    /// Region block of `buffer[0]`, and blocks held.
    start: u64,
    held: u64,
    /// The region: first device block and length in blocks.
    base: u64,
    blocks: u64,
    block_size: u64,
}

impl Window {
    fn new(base: u64, blocks: u64, block_size: u64) -> Window {
        Window {
            buffer: Vec::new(),
            start: 0,
            held: 0,
            base,
            blocks,
            block_size,
        }
    }

    /// Blocks `at..at + n` of the region (within it).
    fn get<D: Disk>(&mut self, disk: &mut D, at: u64, n: u64) -> Result<&[u8], DiskError> {
        let bs = self.block_size;
        if at < self.start || at + n > self.start + self.held {
            let want = n.max(WINDOW as u64 / bs).min(self.blocks - at);
            self.buffer.resize(to_usize(want * bs), 0);
            disk.read((self.base + at) * bs, &mut self.buffer)?;
            self.start = at;
            self.held = want;
        }
        let from = to_usize((at - self.start) * bs);
        Ok(&self.buffer[from..from + to_usize(n * bs)])
    }
}

/// What the store counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Whether this open formatted a blank device.
    pub formatted: bool,
    /// Records in the log found by the last recovery.
    pub recovered: u64,
    /// Compactions since the store was opened.
    pub compactions: u64,
}

/// A key-value store on `D`.
pub struct Store<D: Disk> {
    disk: D,
    block_size: u64,
    sb: Superblock,
    /// First device block of the active region.
    region_start: u64,
    /// Blocks of the log used (the next record goes there).
    tail: u64,
    next_seq: u64,
    index: BTreeMap<Vec<u8>, Loc>,
    /// Blocks and value bytes of the live records.
    live_blocks: u64,
    value_bytes: u64,
    stats: Stats,
    broken: bool,
}

impl<D: Disk> fmt::Debug for Store<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("superblock", &self.sb)
            .field("tail", &self.tail)
            .field("next_seq", &self.next_seq)
            .field("keys", &self.index.len())
            .field("live_blocks", &self.live_blocks)
            .field("broken", &self.broken)
            .finish()
    }
}

/// Whether `key` can be a key.
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY
}

/// Reads both superblock slots; returns what each holds.
fn read_slots<D: Disk>(disk: &mut D, block_size: u64) -> Result<[Slot; 2], DiskError> {
    let bs = to_usize(block_size);
    let mut blocks = alloc::vec![0u8; 2 * bs];
    disk.read(0, &mut blocks)?;
    let mut slots = [Slot::Blank; 2];
    for (i, slot) in slots.iter_mut().enumerate() {
        *slot = match Superblock::decode(&blocks[i * bs..(i + 1) * bs]) {
            // A superblock is only valid in its own slot.
            Slot::Valid(sb) if to_usize(sb.slot()) != i => Slot::Damaged,
            other => other,
        };
    }
    Ok(slots)
}

/// The current superblock: the valid one with the highest generation.
fn current(slots: &[Slot; 2]) -> Option<Superblock> {
    slots
        .iter()
        .filter_map(|s| match s {
            Slot::Valid(sb) => Some(*sb),
            _ => None,
        })
        .max_by_key(|sb| sb.generation)
}

/// The block size of a store made with another block size than the
/// device's `block_size`, if the device holds one: a valid superblock at
/// slot 0 or 1 for that size.
fn probe_block_sizes<D: Disk>(disk: &mut D, block_size: u64) -> Result<Option<u64>, DiskError> {
    let wanted = (2 * MAX_BLOCK_SIZE).min(disk.capacity());
    let mut start = alloc::vec![0u8; to_usize(wanted.div_ceil(block_size) * block_size)];
    disk.read(0, &mut start)?;
    let mut other = MIN_BLOCK_SIZE;
    while other <= MAX_BLOCK_SIZE {
        if other != block_size {
            for slot in 0..2 {
                let at = to_usize(slot * other);
                let end = to_usize((slot + 1) * other).min(start.len());
                if at >= end {
                    continue;
                }
                if let Slot::Valid(sb) = Superblock::decode(&start[at..end]) {
                    if sb.block_size == other && sb.slot() == slot {
                        return Ok(Some(other));
                    }
                }
            }
        }
        other *= 2;
    }
    Ok(None)
}

/// Whether blocks `from..` of the device are all zero.
fn zero_from<D: Disk>(disk: &mut D, block_size: u64, from: u64) -> Result<bool, DiskError> {
    let blocks = disk.capacity() / block_size;
    let per_read = (WINDOW as u64 / block_size).max(1);
    let mut buffer = Vec::new();
    let mut at = from;
    while at < blocks {
        let n = per_read.min(blocks - at);
        buffer.resize(to_usize(n * block_size), 0);
        disk.read(at * block_size, &mut buffer)?;
        if buffer.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n;
    }
    Ok(true)
}

impl<D: Disk> Store<D> {
    /// Opens the store on `disk`: recovers it, or formats the device if it
    /// is blank (all zeros). Refuses a device that holds anything else.
    pub fn open(mut disk: D) -> Result<Store<D>, OpenError> {
        let block_size = disk.block_size();
        let capacity = disk.capacity();
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) || !block_size.is_power_of_two()
        {
            return Err(OpenError::Geometry(alloc::format!(
                "block size {block_size} (a power of two from {MIN_BLOCK_SIZE} to {MAX_BLOCK_SIZE} is needed)"
            )));
        }
        if !capacity.is_multiple_of(block_size) {
            return Err(OpenError::Geometry(alloc::format!(
                "capacity {capacity} is not a multiple of the block size {block_size}"
            )));
        }
        let blocks = capacity / block_size;
        if blocks < SUPER_BLOCKS + 2 * MIN_REGION_BLOCKS {
            return Err(OpenError::TooSmall);
        }
        let slots = read_slots(&mut disk, block_size)?;
        let mut formatted = false;
        let sb = match current(&slots) {
            Some(sb) => {
                check_geometry(&sb, block_size, capacity)?;
                sb
            }
            None => {
                if let Some(found) = probe_block_sizes(&mut disk, block_size)? {
                    return Err(OpenError::Mismatch(alloc::format!(
                        "made with {found}-byte blocks, the device has {block_size}-byte blocks"
                    )));
                }
                // Blank, or a format that did not complete: it writes only
                // the superblock of generation 1, so slot 0 and blocks 2..
                // are zero and slot 1 holds nothing but bytes of that
                // superblock (any part of it may be missing).
                let sb = Superblock {
                    generation: 1,
                    block_size,
                    active: 0,
                    capacity,
                    region_blocks: (blocks - SUPER_BLOCKS) / 2,
                    epoch: 1,
                    next_epoch: 2,
                };
                let image = sb.encode();
                let bs = to_usize(block_size);
                let mut start = alloc::vec![0u8; 2 * bs];
                disk.read(0, &mut start)?;
                let (slot0, slot1) = start.split_at(bs);
                let part_of_format = slot0.iter().all(|&b| b == 0)
                    && slot1.iter().zip(&image).all(|(&b, &i)| b == 0 || b == i);
                let rest_zero = zero_from(&mut disk, block_size, SUPER_BLOCKS)?;
                if !part_of_format || !rest_zero {
                    let ours = slots.contains(&Slot::Damaged) && !slots.contains(&Slot::Foreign);
                    return Err(if ours && !rest_zero {
                        OpenError::Damaged
                    } else {
                        OpenError::NotAStore
                    });
                }
                if disk.read_only() {
                    return Err(OpenError::ReadOnlyBlank);
                }
                disk.write(sb.slot() * block_size, &image)?;
                formatted = true;
                sb
            }
        };
        let mut store = Store {
            disk,
            block_size,
            sb,
            region_start: sb.region_start(sb.active),
            tail: 0,
            next_seq: 0,
            index: BTreeMap::new(),
            live_blocks: 0,
            value_bytes: 0,
            stats: Stats {
                formatted,
                ..Stats::default()
            },
            broken: false,
        };
        store.recover()?;
        Ok(store)
    }

    /// Rebuilds the index from the active region's log.
    fn recover(&mut self) -> Result<(), DiskError> {
        self.index.clear();
        self.live_blocks = 0;
        self.value_bytes = 0;
        let (bs, epoch, limit) = (self.block_size, self.sb.epoch, self.sb.region_blocks);
        let mut window = Window::new(self.region_start, limit, bs);
        let (mut at, mut seq) = (0, 0);
        while at < limit {
            let first = window.get(&mut self.disk, at, 1)?;
            let Some(head) = Head::parse(first, bs, epoch, seq) else {
                break;
            };
            if at + head.blocks > limit {
                break;
            }
            let record = window.get(&mut self.disk, at, head.blocks)?;
            let Some((key, value)) = head.verify(record, bs, seq) else {
                break;
            };
            match head.kind {
                Kind::Put => {
                    let loc = Loc {
                        block: at,
                        blocks: head.blocks,
                        seq,
                        value_len: value.len(),
                    };
                    self.index_put(key, loc);
                }
                Kind::Delete => self.index_remove(&key),
            }
            at += head.blocks;
            seq += 1;
        }
        self.tail = at;
        self.next_seq = seq;
        self.stats.recovered = seq;
        Ok(())
    }

    /// Makes the state what a restart would find (after a failed write).
    fn reload(&mut self) {
        let reloaded = read_slots(&mut self.disk, self.block_size)
            .ok()
            .and_then(|slots| current(&slots))
            .filter(|sb| check_geometry(sb, self.block_size, self.disk.capacity()).is_ok());
        match reloaded {
            Some(sb) => {
                self.sb = sb;
                self.region_start = sb.region_start(sb.active);
                self.broken = self.recover().is_err();
            }
            None => self.broken = true,
        }
    }

    fn index_put(&mut self, key: Vec<u8>, loc: Loc) {
        if let Some(old) = self.index.insert(key, loc) {
            self.live_blocks -= old.blocks;
            self.value_bytes -= old.value_len as u64;
        }
        self.live_blocks += loc.blocks;
        self.value_bytes += loc.value_len as u64;
    }

    fn index_remove(&mut self, key: &[u8]) {
        if let Some(old) = self.index.remove(key) {
            self.live_blocks -= old.blocks;
            self.value_bytes -= old.value_len as u64;
        }
    }

    fn writable(&self, key: &[u8]) -> Result<(), StoreError> {
        if self.broken {
            return Err(StoreError::Broken);
        }
        if !valid_key(key) {
            return Err(StoreError::BadKey);
        }
        if self.disk.read_only() {
            return Err(StoreError::ReadOnly);
        }
        Ok(())
    }

    /// The value of `key`, read from the device and checked.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.broken {
            return Err(StoreError::Broken);
        }
        let Some(loc) = self.index.get(key).copied() else {
            return Ok(None);
        };
        let bs = self.block_size;
        let mut record = alloc::vec![0u8; to_usize(loc.blocks * bs)];
        self.disk
            .read((self.region_start + loc.block) * bs, &mut record)?;
        let head = Head::parse(&record[..to_usize(bs)], bs, self.sb.epoch, loc.seq)
            .filter(|h| h.kind == Kind::Put && h.blocks == loc.blocks)
            .ok_or(StoreError::Corrupt)?;
        match head.verify(&record, bs, loc.seq) {
            Some((k, value)) if k == key => Ok(Some(value)),
            _ => Err(StoreError::Corrupt),
        }
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.index.contains_key(key)
    }

    /// Sets the value of `key`; returns after the change is on the device.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<Put, StoreError> {
        self.writable(key)?;
        if value.len() > MAX_VALUE {
            return Err(StoreError::ValueTooLarge);
        }
        let blocks = record_blocks(self.block_size, key.len() + value.len());
        let old = self.index.get(key).copied();
        if self.tail + blocks <= self.sb.region_blocks {
            self.append(Kind::Put, key, value)?;
        } else {
            let live = self.live_blocks - old.map_or(0, |l| l.blocks) + blocks;
            if live > self.sb.region_blocks {
                return Err(StoreError::Full);
            }
            self.compact(key, Some(value))?;
        }
        Ok(if old.is_some() {
            Put::Replaced
        } else {
            Put::Created
        })
    }

    /// Removes `key`; `Ok(false)` if it had no value (nothing written).
    /// Returns after the change is on the device.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        self.writable(key)?;
        if !self.index.contains_key(key) {
            return Ok(false);
        }
        if self.tail < self.sb.region_blocks {
            self.append(Kind::Delete, key, &[])?;
        } else {
            self.compact(key, None)?;
        }
        Ok(true)
    }

    /// Writes one record at the tail of the log.
    fn append(&mut self, kind: Kind, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let bs = self.block_size;
        let blocks = record_blocks(bs, key.len() + value.len());
        let mut record = Vec::with_capacity(to_usize(blocks * bs));
        encode_record(
            &mut record,
            bs,
            self.sb.epoch,
            self.next_seq,
            kind,
            key,
            value,
        );
        if let Err(error) = self
            .disk
            .write((self.region_start + self.tail) * bs, &record)
        {
            self.reload();
            return Err(StoreError::Disk(error));
        }
        match kind {
            Kind::Put => {
                let loc = Loc {
                    block: self.tail,
                    blocks,
                    seq: self.next_seq,
                    value_len: value.len(),
                };
                self.index_put(key.to_vec(), loc);
            }
            Kind::Delete => self.index_remove(key),
        }
        self.tail += blocks;
        self.next_seq += 1;
        Ok(())
    }

    /// Compacts the log into the other region, with `key` set to `value`
    /// (`None`: removed).
    fn compact(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        let result = self.try_compact(key, value);
        if result.is_err() {
            self.reload();
        }
        result
    }

    fn try_compact(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        let bs = self.block_size;
        let old = self.sb;
        let epoch = old.next_epoch;
        // 1. Reserve the new epoch: no record of it exists anywhere yet.
        let intent = Superblock {
            generation: old.generation + 1,
            next_epoch: epoch + 1,
            ..old
        };
        self.write_superblock(&intent)?;
        self.sb = intent;

        // 2. The live records, in log order, to the other region.
        let target = 1 - old.active;
        let target_start = intent.region_start(target);
        let mut live: Vec<(&Vec<u8>, Loc)> = self
            .index
            .iter()
            .filter(|(k, _)| k.as_slice() != key)
            .map(|(k, loc)| (k, *loc))
            .collect();
        live.sort_by_key(|(_, loc)| loc.block);
        let mut window = Window::new(self.region_start, old.region_blocks, bs);
        let mut index = BTreeMap::new();
        let mut batch: Vec<u8> = Vec::new();
        let (mut at, mut batch_at, mut seq) = (0u64, 0u64, 0u64);
        let mut add =
            |batch: &mut Vec<u8>, index: &mut BTreeMap<Vec<u8>, Loc>, k: &[u8], v: &[u8]| {
                let blocks = record_blocks(bs, k.len() + v.len());
                encode_record(batch, bs, epoch, seq, Kind::Put, k, v);
                index.insert(
                    k.to_vec(),
                    Loc {
                        block: at,
                        blocks,
                        seq,
                        value_len: v.len(),
                    },
                );
                at += blocks;
                seq += 1;
            };
        for (k, loc) in live {
            let record = window.get(&mut self.disk, loc.block, loc.blocks)?;
            let head = Head::parse(&record[..to_usize(bs)], bs, old.epoch, loc.seq)
                .filter(|h| h.kind == Kind::Put && h.blocks == loc.blocks)
                .ok_or(StoreError::Corrupt)?;
            let (record_key, v) = head
                .verify(record, bs, loc.seq)
                .filter(|(rk, _)| rk == k)
                .ok_or(StoreError::Corrupt)?;
            add(&mut batch, &mut index, &record_key, &v);
            if batch.len() >= BATCH {
                self.disk.write((target_start + batch_at) * bs, &batch)?;
                batch_at += (batch.len() as u64) / bs;
                batch.clear();
            }
        }
        if let Some(v) = value {
            add(&mut batch, &mut index, key, v);
        }
        let (tail, next_seq) = (at, seq);
        if !batch.is_empty() {
            self.disk.write((target_start + batch_at) * bs, &batch)?;
        }

        // 3. The commit: the other region becomes current.
        let new = Superblock {
            generation: intent.generation + 1,
            active: target,
            epoch,
            next_epoch: epoch + 1,
            ..intent
        };
        self.write_superblock(&new)?;
        self.sb = new;
        self.region_start = target_start;
        self.tail = tail;
        self.next_seq = next_seq;
        self.live_blocks = index.values().map(|l| l.blocks).sum();
        self.value_bytes = index.values().map(|l| l.value_len as u64).sum();
        self.index = index;
        self.stats.compactions += 1;
        Ok(())
    }

    fn write_superblock(&mut self, sb: &Superblock) -> Result<(), DiskError> {
        self.disk.write(sb.slot() * self.block_size, &sb.encode())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store has no key.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.index.keys().map(|k| k.as_slice())
    }

    /// Bytes of all values.
    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }

    /// Blocks of the live records.
    pub fn live_blocks(&self) -> u64 {
        self.live_blocks
    }

    /// Blocks of the log in use (live records and garbage).
    pub fn log_blocks(&self) -> u64 {
        self.tail
    }

    /// Blocks per region: the most the log holds.
    pub fn region_blocks(&self) -> u64 {
        self.sb.region_blocks
    }

    /// Bytes per block.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// The current superblock.
    pub fn superblock(&self) -> Superblock {
        self.sb
    }

    /// What the store counted.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the store failed and must be opened again.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Whether the device refuses writes.
    pub fn is_read_only(&self) -> bool {
        self.disk.read_only()
    }

    /// The device, given back.
    pub fn into_disk(self) -> D {
        self.disk
    }
}

/// Checks that the store of `sb` fits a device of `block_size` and
/// `capacity`.
fn check_geometry(sb: &Superblock, block_size: u64, capacity: u64) -> Result<(), OpenError> {
    if sb.block_size != block_size {
        return Err(OpenError::Mismatch(alloc::format!(
            "made with {}-byte blocks, the device has {block_size}-byte blocks",
            sb.block_size
        )));
    }
    if sb.capacity > capacity {
        return Err(OpenError::Mismatch(alloc::format!(
            "made for {} bytes, the device has {capacity}",
            sb.capacity
        )));
    }
    let fits = sb
        .region_blocks
        .checked_mul(2)
        .and_then(|r| r.checked_add(SUPER_BLOCKS))
        .is_some_and(|end| end <= sb.capacity / block_size);
    if sb.region_blocks < MIN_REGION_BLOCKS || !fits {
        return Err(OpenError::Damaged);
    }
    Ok(())
}
