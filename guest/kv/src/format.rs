//! The on-disk format (all integers little-endian; `docs/kv.md` has the
//! picture).
//!
//! ```text
//! block 0        superblock slot 0
//! block 1        superblock slot 1
//! block 2 ..     region 0: R blocks of log
//! block 2+R ..   region 1: R blocks of log      R = (blocks - 2) / 2
//! ```
//!
//! **Superblock** (one block, the rest zero). The current one is the valid
//! slot with the highest generation; generation `g` lives in slot `g % 2`,
//! so a new superblock never overwrites the current one.
//!
//! ```text
//!  0  8  magic "tkvSUPER"
//!  8  4  CRC-32 of bytes 12..72
//! 12  4  version (1)
//! 16  8  generation
//! 24  4  block size
//! 28  4  active region (0 or 1)
//! 32  8  capacity in bytes when formatted
//! 40  8  R, blocks per region
//! 48  8  epoch of the active region's log
//! 56  8  next epoch: every epoch ever used is below it
//! 64  8  zero
//! ```
//!
//! **Record**: whole blocks. The first block starts with a 32-byte header,
//! every later block with a 16-byte tag; the payload (key, then value)
//! fills the rest, and the last block is padded with zeros. No byte that a
//! client sent is ever at the start of a block, so a value that contains
//! a record image can never be taken for a record.
//!
//! ```text
//! first block                          later blocks
//!  0  4  magic "tkvR"                   0  4  magic "tkv+"
//!  4  4  CRC-32 (below)                 4  4  the record's CRC-32
//!  8  8  sequence number in the epoch   8  8  the record's sequence number
//! 16  8  epoch                         16 ..  payload
//! 24  1  kind: 1 put, 2 delete
//! 25  1  key length, 1..=255
//! 26  2  zero
//! 28  4  value length, 0..=65536 (0 for a delete)
//! 32 ..  payload
//! ```
//!
//! The CRC covers header bytes 8..32, the key and the value. A record is
//! valid at a position only with the expected magic, epoch and sequence
//! number, matching tags, lengths in range and the right CRC.

use alloc::vec::Vec;

use crate::crc32::Crc32;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 255;
/// Longest value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;

/// Smallest block size the store accepts.
pub const MIN_BLOCK_SIZE: u64 = 512;
/// Largest block size the store accepts.
pub const MAX_BLOCK_SIZE: u64 = 64 * 1024;
/// Blocks before the first region: the two superblock slots.
pub const SUPER_BLOCKS: u64 = 2;
/// Fewest blocks per region.
pub const MIN_REGION_BLOCKS: u64 = 2;

pub const SUPER_MAGIC: [u8; 8] = *b"tkvSUPER";
pub const VERSION: u32 = 1;
/// Bytes of a superblock covered by its CRC (from offset 12).
const SUPER_LEN: usize = 72;

pub const RECORD_MAGIC: [u8; 4] = *b"tkvR";
pub const TAG_MAGIC: [u8; 4] = *b"tkv+";
/// Header bytes in a record's first block.
pub const HEADER: usize = 32;
/// Tag bytes in a record's later blocks.
pub const TAG: usize = 16;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// A `u64` that indexes memory (block sizes, record lengths): they are
/// small by construction.
pub fn to_usize(value: u64) -> usize {
    usize::try_from(value).expect("a length that fits in memory")
}

/// The superblock's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    pub generation: u64,
    pub block_size: u64,
    pub active: u8,
    pub capacity: u64,
    pub region_blocks: u64,
    pub epoch: u64,
    pub next_epoch: u64,
}

/// What a superblock slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A valid superblock.
    Valid(Superblock),
    /// Zeros.
    Blank,
    /// Our magic, but not a valid superblock (a torn write, corruption).
    Damaged,
    /// Something else.
    Foreign,
}

impl Superblock {
    /// The slot (block) where this superblock goes.
    pub fn slot(&self) -> u64 {
        self.generation % 2
    }

    /// First block of region `region`.
    pub fn region_start(&self, region: u8) -> u64 {
        SUPER_BLOCKS + u64::from(region) * self.region_blocks
    }

    /// The block image of this superblock, `block_size` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut block = alloc::vec![0u8; to_usize(self.block_size)];
        block[0..8].copy_from_slice(&SUPER_MAGIC);
        block[12..16].copy_from_slice(&VERSION.to_le_bytes());
        block[16..24].copy_from_slice(&self.generation.to_le_bytes());
        let block_size = u32::try_from(self.block_size).expect("block size checked at open");
        block[24..28].copy_from_slice(&block_size.to_le_bytes());
        block[28..32].copy_from_slice(&u32::from(self.active).to_le_bytes());
        block[32..40].copy_from_slice(&self.capacity.to_le_bytes());
        block[40..48].copy_from_slice(&self.region_blocks.to_le_bytes());
        block[48..56].copy_from_slice(&self.epoch.to_le_bytes());
        block[56..64].copy_from_slice(&self.next_epoch.to_le_bytes());
        let crc = crate::crc32::crc32(&block[12..SUPER_LEN]);
        block[8..12].copy_from_slice(&crc.to_le_bytes());
        block
    }

    /// What the slot `block` holds.
    pub fn decode(block: &[u8]) -> Slot {
        if block.iter().all(|&b| b == 0) {
            return Slot::Blank;
        }
        if block.len() < SUPER_LEN || block[0..8] != SUPER_MAGIC {
            return Slot::Foreign;
        }
        let crc = crate::crc32::crc32(&block[12..SUPER_LEN]);
        if crc != u32_at(block, 8) || u32_at(block, 12) != VERSION {
            return Slot::Damaged;
        }
        let active = match u32_at(block, 28) {
            0 => 0,
            1 => 1,
            _ => return Slot::Damaged,
        };
        let sb = Superblock {
            generation: u64_at(block, 16),
            block_size: u64::from(u32_at(block, 24)),
            active,
            capacity: u64_at(block, 32),
            region_blocks: u64_at(block, 40),
            epoch: u64_at(block, 48),
            next_epoch: u64_at(block, 56),
        };
        if sb.epoch >= sb.next_epoch || !sb.block_size.is_power_of_two() {
            return Slot::Damaged;
        }
        Slot::Valid(sb)
    }
}

/// What a record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Put = 1,
    Delete = 2,
}

/// Blocks taken by a record whose key and value are `payload` bytes.
pub fn record_blocks(block_size: u64, payload: usize) -> u64 {
    let first = to_usize(block_size) - HEADER;
    if payload <= first {
        1
    } else {
        let later = to_usize(block_size) - TAG;
        1 + (payload - first).div_ceil(later) as u64
    }
}

/// Appends the blocks of a record to `out`.
pub fn encode_record(
    out: &mut Vec<u8>,
    block_size: u64,
    epoch: u64,
    seq: u64,
    kind: Kind,
    key: &[u8],
    value: &[u8],
) {
    assert!(!key.is_empty() && key.len() <= MAX_KEY && value.len() <= MAX_VALUE);
    let bs = to_usize(block_size);
    let blocks = to_usize(record_blocks(block_size, key.len() + value.len()));
    let start = out.len();
    out.resize(start + blocks * bs, 0);
    let record = &mut out[start..];
    record[0..4].copy_from_slice(&RECORD_MAGIC);
    record[8..16].copy_from_slice(&seq.to_le_bytes());
    record[16..24].copy_from_slice(&epoch.to_le_bytes());
    record[24] = kind as u8;
    // Both fit: checked above.
    record[25] = u8::try_from(key.len()).unwrap_or(u8::MAX);
    let value_len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    record[28..32].copy_from_slice(&value_len.to_le_bytes());
    let mut crc = Crc32::new();
    crc.update(&record[8..HEADER]);
    crc.update(key);
    crc.update(value);
    let crc = crc.finish().to_le_bytes();
    record[4..8].copy_from_slice(&crc);
    // The payload, block by block.
    let mut payload = key.iter().chain(value.iter()).copied();
    for (i, block) in record.chunks_mut(bs).enumerate() {
        let at = if i == 0 {
            HEADER
        } else {
            block[0..4].copy_from_slice(&TAG_MAGIC);
            block[4..8].copy_from_slice(&crc);
            block[8..16].copy_from_slice(&seq.to_le_bytes());
            TAG
        };
        for (slot, byte) in block[at..].iter_mut().zip(&mut payload) {
            *slot = byte;
        }
    }
}

/// A record's first block, checked against what is expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub kind: Kind,
    pub key_len: usize,
    pub value_len: usize,
    pub crc: u32,
    /// Blocks of the whole record.
    pub blocks: u64,
}

impl Head {
    /// The head of the record of `epoch` and sequence number `seq` whose
    /// first block is `block`, if it is one.
    pub fn parse(block: &[u8], block_size: u64, epoch: u64, seq: u64) -> Option<Head> {
        if block[0..4] != RECORD_MAGIC || u64_at(block, 8) != seq || u64_at(block, 16) != epoch {
            return None;
        }
        let kind = match block[24] {
            1 => Kind::Put,
            2 => Kind::Delete,
            _ => return None,
        };
        let key_len = usize::from(block[25]);
        let value_len = to_usize(u64::from(u32_at(block, 28)));
        if key_len == 0
            || block[26..28] != [0, 0]
            || value_len > MAX_VALUE
            || (kind == Kind::Delete && value_len != 0)
        {
            return None;
        }
        Some(Head {
            kind,
            key_len,
            value_len,
            crc: u32_at(block, 4),
            blocks: record_blocks(block_size, key_len + value_len),
        })
    }

    /// Checks the whole record `record` (this head's blocks) and returns
    /// its key and value.
    pub fn verify(&self, record: &[u8], block_size: u64, seq: u64) -> Option<(Vec<u8>, Vec<u8>)> {
        let bs = to_usize(block_size);
        if record.len() != to_usize(self.blocks) * bs {
            return None;
        }
        let mut payload = Vec::with_capacity(self.key_len + self.value_len);
        let total = self.key_len + self.value_len;
        for (i, block) in record.chunks(bs).enumerate() {
            let at = if i == 0 {
                HEADER
            } else {
                if block[0..4] != TAG_MAGIC
                    || u32_at(block, 4) != self.crc
                    || u64_at(block, 8) != seq
                {
                    return None;
                }
                TAG
            };
            let take = (total - payload.len()).min(bs - at);
            payload.extend_from_slice(&block[at..at + take]);
        }
        let mut crc = Crc32::new();
        crc.update(&record[8..HEADER]);
        crc.update(&payload);
        if crc.finish() != self.crc {
            return None;
        }
        let value = payload.split_off(self.key_len);
        Some((payload, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblocks_round_trip_and_damage_is_seen() {
        let sb = Superblock {
            generation: 7,
            block_size: 512,
            active: 1,
            capacity: 1 << 20,
            region_blocks: 1023,
            epoch: 3,
            next_epoch: 4,
        };
        let block = sb.encode();
        assert_eq!(block.len(), 512);
        assert_eq!(Superblock::decode(&block), Slot::Valid(sb));
        assert_eq!(sb.slot(), 1);
        assert_eq!(sb.region_start(1), 2 + 1023);
        for i in 8..SUPER_LEN {
            let mut bad = block.clone();
            bad[i] ^= 0x10;
            assert_eq!(Superblock::decode(&bad), Slot::Damaged, "byte {i}");
        }
        assert_eq!(Superblock::decode(&[0u8; 512]), Slot::Blank);
        let mut foreign = [0u8; 512];
        foreign[510] = 0x55;
        assert_eq!(Superblock::decode(&foreign), Slot::Foreign);
    }

    #[test]
    fn records_round_trip_at_every_size() {
        for bs in [512u64, 4096] {
            for value_len in [0, 1, 200, 479, 480, 481, 975, 976, 977, 5000, MAX_VALUE] {
                let key = b"some key";
                let value: Vec<u8> = (0..value_len)
                    .map(|i| u8::try_from(i % 251).unwrap())
                    .collect();
                let mut out = Vec::new();
                encode_record(&mut out, bs, 5, 9, Kind::Put, key, &value);
                let blocks = record_blocks(bs, key.len() + value_len);
                assert_eq!(out.len() as u64, blocks * bs);
                let head = Head::parse(&out[..to_usize(bs)], bs, 5, 9).expect("head");
                assert_eq!(head.blocks, blocks);
                let (k, v) = head.verify(&out, bs, 9).expect("valid");
                assert_eq!((&k[..], &v[..]), (&key[..], &value[..]));
                // The wrong place in the log: another epoch or number.
                assert!(Head::parse(&out[..to_usize(bs)], bs, 6, 9).is_none());
                assert!(Head::parse(&out[..to_usize(bs)], bs, 5, 10).is_none());
                // Any flipped byte of a multi-block record is caught.
                for at in (0..out.len()).step_by(97) {
                    let mut bad = out.clone();
                    bad[at] ^= 1;
                    let ok = Head::parse(&bad[..to_usize(bs)], bs, 5, 9)
                        .and_then(|h| h.verify(&bad, bs, 9).map(|kv| (h, kv)));
                    let last = out.len() - to_usize(bs);
                    let total = key.len() + value_len;
                    let payload_end = if blocks == 1 {
                        HEADER + total
                    } else {
                        let first = to_usize(bs) - HEADER;
                        TAG + (total - first) - (to_usize(blocks) - 2) * (to_usize(bs) - TAG)
                    };
                    let padding = at >= last + payload_end;
                    if !padding {
                        assert!(ok.is_none(), "bs {bs} len {value_len}: flip at {at} unseen");
                    }
                }
            }
        }
    }

    #[test]
    fn block_counts() {
        assert_eq!(record_blocks(512, 1), 1);
        assert_eq!(record_blocks(512, 480), 1);
        assert_eq!(record_blocks(512, 481), 2);
        assert_eq!(record_blocks(512, 480 + 496), 2);
        assert_eq!(record_blocks(512, 480 + 497), 3);
        assert_eq!(record_blocks(512, MAX_KEY + MAX_VALUE), 133);
        assert_eq!(record_blocks(4096, MAX_KEY + MAX_VALUE), 17);
    }
}
