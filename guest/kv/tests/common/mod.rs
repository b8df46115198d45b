//! Shared by the tests: workloads of operations, the model they are
//! checked against, and a small seeded generator.
#![allow(dead_code)]

use std::collections::BTreeMap;

use kv::disk::Disk;
use kv::format::{encode_record, Kind};
use kv::store::{Put, Store, StoreError};

/// An operation of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

impl Op {
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put(k, _) | Op::Delete(k) => k,
        }
    }
}

/// What the store should hold.
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

pub fn apply(model: &mut Model, op: &Op) {
    match op {
        Op::Put(k, v) => {
            model.insert(k.clone(), v.clone());
        }
        Op::Delete(k) => {
            model.remove(k);
        }
    }
}

/// Carries out `op`, checking what the store says against `model` (which
/// is updated when the store says the change is done). A refusal for lack
/// of space changes nothing and is `Ok(false)`.
pub fn perform<D: Disk>(
    store: &mut Store<D>,
    model: &mut Model,
    op: &Op,
) -> Result<bool, StoreError> {
    let existed = model.contains_key(op.key());
    match op {
        Op::Put(k, v) => match store.put(k, v) {
            Ok(put) => {
                let expected = if existed { Put::Replaced } else { Put::Created };
                assert_eq!(put, expected, "put {:?}", String::from_utf8_lossy(k));
            }
            Err(StoreError::Full) => return Ok(false),
            Err(e) => return Err(e),
        },
        Op::Delete(k) => {
            let found = store.delete(k)?;
            assert_eq!(found, existed, "delete {:?}", String::from_utf8_lossy(k));
        }
    }
    apply(model, op);
    Ok(true)
}

/// Everything the store holds, every value read back from the device.
pub fn dump<D: Disk>(store: &mut Store<D>) -> Model {
    let keys: Vec<Vec<u8>> = store.keys().map(|k| k.to_vec()).collect();
    keys.into_iter()
        .map(|k| {
            let v = store
                .get(&k)
                .unwrap_or_else(|e| panic!("get {:?}: {e}", String::from_utf8_lossy(&k)))
                .expect("a listed key has a value");
            (k, v)
        })
        .collect()
}

/// A seeded xorshift generator: runs are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A length below `n`.
    pub fn len_below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

/// A value of `len` bytes that differs for every `tag`.
pub fn value(tag: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    rng.bytes(len)
}

/// A value made of valid record images (for key `ghost`, in epochs 1 to
/// 3, sequence numbers 0 to 15) of 512-byte blocks: were a client's bytes
/// ever taken for a record, `ghost` would appear.
pub fn forged_records() -> Vec<u8> {
    let mut out = Vec::new();
    for epoch in 1..=3 {
        for seq in 0..16 {
            encode_record(&mut out, 512, epoch, seq, Kind::Put, b"ghost", b"boo");
        }
    }
    out.truncate(kv::format::MAX_VALUE);
    out
}

/// A small workload: new keys, replaced values, deletes (one of a key that
/// is not there), values of 0 bytes to several blocks, binary keys and a
/// value of forged records.
pub fn small_workload() -> Vec<Op> {
    let mut ops = Vec::new();
    let key = |i: u64| format!("key-{i}").into_bytes();
    for (i, len) in (0..).zip([0, 1, 100, 479, 480, 481, 1500, 3000]) {
        ops.push(Op::Put(key(i), value(i, len)));
    }
    ops.push(Op::Put(key(2), value(100, 2000)));
    ops.push(Op::Delete(key(3)));
    ops.push(Op::Delete(b"never-there".to_vec()));
    ops.push(Op::Put(vec![0, 255, b'/', b'%', 10], value(101, 50)));
    ops.push(Op::Put(
        b"forged".to_vec(),
        forged_records()[..5000].to_vec(),
    ));
    ops.push(Op::Put(key(3), value(102, 700)));
    ops.push(Op::Put(key(0), value(103, 10)));
    ops.push(Op::Delete(key(7)));
    ops.push(Op::Put(vec![b'k'; 255], value(104, 1024)));
    ops.push(Op::Put(key(1), Vec::new()));
    ops.push(Op::Delete(b"forged".to_vec()));
    ops.push(Op::Put(key(9), value(105, 5)));
    ops
}
