//! Target `ring`: the bytes are a guest's side of the shared-memory network
//! ring (§6.7). A tender with network devices `a` and `b` on one in-memory
//! wire offers the ring (the VM has the in-kernel doorbell) and its real
//! I/O thread serves it. Once that thread sleeps, the input's indices,
//! entries, memory and incoming frames are written, the doorbell rung, and
//! the thread left to consume everything or stop on a fatal error.
//!
//! Invariants: no panic; the thread finishes (no hang); without a fatal
//! error, every read entry is committed once, in order, with its id; and
//! nothing is written in the reserved area past the ring itself.
//!
//! The input (see [`ops`]): `ent_head: u32`, `count: u16` (`ent_tail` is
//! `ent_head + count % 1100`, or a raw `u32` that follows when `count` is
//! 0xf000 or more), `com_tail: u32`, `com_head: u32`, `entries: u8` (modulo
//! 65) entries of 32 bytes (a `struct hvt_ring_entry`) for the slots from
//! `ent_head` on, then operations until the input ends.

use std::mem::{offset_of, size_of};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hvt_abi::hypercall::RING_KICK_PIO_BASE;
use hvt_abi::manifest::{MftEntry, MFT_DEV_NET_BASIC};
use hvt_abi::ring::{Ring, RingCommit, RingEntry, ENTRY_AFTER_EXIT, OP_NET_READ, RING_SIZE};
use tender_core::devices::frame::FrameBackend;
use tender_core::devices::wire::{self, WireConfig};
use tender_core::lifecycle::ModuleSet;
use tender_core::manifest::Manifest;
use tender_core::modules::{self, net::ring::RING_AREA};
use vm_memory::{Bytes, VolatileSlice};

use crate::input::Reader;
use crate::rig::{self, Rig};

/// The operations after the entries, by their first byte (modulo 2).
pub mod ops {
    /// `gpa: u32` (modulo the guest's memory), `len: u8`, `len` bytes: the
    /// guest writes its memory (frames to send, buffers).
    pub const WRITE: u8 = 0;
    /// `len: u16` (modulo 2048), `len` bytes: a frame arrives for device
    /// `a` (handle 1).
    pub const FRAME: u8 = 1;
}

/// A `count` at or above this is followed by a raw `ent_tail`.
pub const RAW_TAIL: u16 = 0xf000;

/// How long the I/O thread may take over one input.
const DEADLINE: Duration = Duration::from_secs(10);

const ENT_TAIL: usize = offset_of!(Ring, ent_tail);
const COM_HEAD: usize = offset_of!(Ring, com_head);
const ENT_HEAD: usize = offset_of!(Ring, ent_head);
const COM_TAIL: usize = offset_of!(Ring, com_tail);
const NEEDS_KICK: usize = offset_of!(Ring, needs_kick);
const ENTRIES: usize = offset_of!(Ring, entries);
const COMMITS: usize = offset_of!(Ring, commits);

/// True when the ring's I/O thread sleeps in the kernel (on its doorbell).
fn ring_thread_sleeps() -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.flatten().any(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != "net-ring" {
            return false;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // "pid (comm) S ...": the state follows the last ')'.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('S'))
    })
}

fn slot(index: u32) -> usize {
    usize::try_from(index).expect("u32 fits usize") % RING_SIZE
}

pub fn ring(data: &[u8]) {
    let mut r = Reader::new(data);
    // Our guest (§12.8 offered) or an upstream one (§6.7 exactly).
    let ours = r.u8() & 1 == 0;
    let (a, b) = wire::pair(WireConfig::clean(), ["a", "b"]);
    let (a, b): (Arc<dyn FrameBackend>, Arc<dyn FrameBackend>) = (Arc::new(a), Arc::new(b));
    let host = rig::host(&[("a", a), ("b", b.clone())], &[]);
    let manifest = Manifest {
        entries: vec![
            MftEntry::RESERVED_FIRST,
            MftEntry::new("a", MFT_DEV_NET_BASIC),
            MftEntry::new("b", MFT_DEV_NET_BASIC),
        ],
    };
    let options: Vec<String> = ["--mem=4", "--net:a=a", "--net:b=b"]
        .map(String::from)
        .to_vec();
    let mut rig = Rig::build(
        ModuleSet::new(modules::all(host)),
        manifest,
        &options,
        true,
        ours,
    )
    .expect("the fixed devices attach");
    let gpa = rig.info.net_ring;
    let visible = rig.ram.visible_size();
    assert!(
        gpa >= visible,
        "the ring is offered outside the guest's memory"
    );
    let ring = rig
        .ram
        .reserved_slice(gpa, size_of::<Ring>() as u64)
        .expect("the ring is in reserved memory");
    let load = |offset: usize| {
        ring.load::<u32>(offset, Ordering::Acquire)
            .expect("a ring index")
    };
    let store = |offset: usize, value: u32| {
        ring.store(value, offset, Ordering::Release)
            .expect("a ring index");
    };

    // Until the thread sleeps, it may look at the indices at any moment: a
    // ring written then would be read half-written, differently each run.
    let start = Instant::now();
    while load(NEEDS_KICK) == 0 || !ring_thread_sleeps() {
        assert!(start.elapsed() < DEADLINE, "the ring thread never sleeps");
        std::thread::yield_now();
    }

    let head = r.u32();
    let count = r.u16();
    let tail = if count >= RAW_TAIL {
        r.u32()
    } else {
        head.wrapping_add(u32::from(count % 1100))
    };
    let com_tail = r.u32();
    let com_head = r.u32();
    let mut reads = Vec::new();
    let outstanding = tail.wrapping_sub(head);
    for i in 0..u32::from(r.u8() % 65) {
        let entry = RingEntry {
            operation: r.u32(),
            handle: r.u32(),
            data: r.u64(),
            len: r.u32(),
            id: r.u32(),
            reserved: r.u64(),
        };
        if entry.operation == OP_NET_READ && i < outstanding {
            reads.push(entry.id);
        }
        let offset = ENTRIES + slot(head.wrapping_add(i)) * size_of::<RingEntry>();
        ring.write_obj(entry, offset).expect("an entry slot");
    }
    while !r.is_empty() {
        if r.u8() % 2 == ops::WRITE {
            let at = u64::from(r.u32()) % visible;
            let len = usize::from(r.u8());
            let bytes = r.bytes(len);
            let room = usize::try_from(visible - at).unwrap_or(usize::MAX);
            rig.ram
                .write_bytes(at, &bytes[..bytes.len().min(room)])
                .expect("a write inside guest memory");
        } else {
            let len = usize::from(r.u16() % 2048);
            let mut frame = r.bytes(len).to_vec();
            let _ = b.send(&VolatileSlice::from(&mut frame[..]));
        }
    }
    // The indices last, the doorbell once the ring is complete.
    store(COM_TAIL, com_tail);
    store(COM_HEAD, com_head);
    store(ENT_HEAD, head);
    store(ENT_TAIL, tail);
    assert!(
        rig.vm.port_write(RING_KICK_PIO_BASE, 0),
        "the ring has a doorbell"
    );

    // A read marked ENTRY_AFTER_EXIT waits for the guest's next exit
    // (§12.8): when the thread has stopped at one, play that exit, as the
    // vCPU thread serves it (both consumers then run, under their lock).
    let stopped_at_exit_read = |head: u32| {
        let entry: RingEntry = ring
            .read_obj(ENTRIES + slot(head) * size_of::<RingEntry>())
            .expect("an entry slot");
        ours && entry.operation == OP_NET_READ && entry.reserved & ENTRY_AFTER_EXIT != 0
    };
    let mut exit_refused = None;
    let start = Instant::now();
    while load(ENT_HEAD) != tail && rig.fatal_errors().is_empty() && exit_refused.is_none() {
        assert!(
            start.elapsed() < DEADLINE,
            "the ring thread did not finish: ent_head={} ent_tail={tail}",
            load(ENT_HEAD)
        );
        if stopped_at_exit_read(load(ENT_HEAD)) && load(NEEDS_KICK) != 0 && ring_thread_sleeps() {
            let exit = rig
                .modules
                .guest_exit()
                .and_then(|()| rig.modules.guest_resume());
            exit_refused = exit.err();
        }
        std::thread::yield_now();
    }

    if rig.fatal_errors().is_empty() && exit_refused.is_none() {
        assert!(
            outstanding as usize <= RING_SIZE,
            "corrupt indices accepted"
        );
        let committed = load(COM_TAIL).wrapping_sub(com_tail);
        assert_eq!(committed as usize, reads.len(), "one commit per read entry");
        for (j, id) in (0u32..).zip(&reads) {
            let offset = COMMITS + slot(com_tail.wrapping_add(j)) * size_of::<RingCommit>();
            let commit: RingCommit = ring.read_obj(offset).expect("a commit slot");
            assert_eq!(commit.id, *id, "commit {j} out of order");
            if !ours {
                // Upstream's commits: the last word stays 0 (§6.7).
                assert_eq!(commit.flags, 0, "commit {j} of an upstream guest has flags");
            }
        }
    }

    // Nothing past the ring in its reserved area is anybody's to write.
    assert_untouched(&rig, gpa + size_of::<Ring>() as u64, gpa + RING_AREA);
}

/// Asserts that `[start, end)` of the reserved memory is all zeros. Pages
/// the process never touched are not resident (mincore): they are zero
/// without being read, which would cost a page fault each.
fn assert_untouched(rig: &Rig, start: u64, end: u64) {
    const PAGE: u64 = 4096;
    let area = rig
        .ram
        .reserved_slice(start, end - start)
        .expect("the ring's reserved area");
    let (base, _) = rig.ram.host_mapping();
    let first = start / PAGE * PAGE;
    let pages = usize::try_from((end - first).div_ceil(PAGE)).expect("a few pages");
    let mut resident = vec![0u8; pages];
    // SAFETY: `first..end` lies inside the guest memory mapping (the
    // reserved slice above is), `first` is page-aligned, and `resident` has
    // one byte per page of the range; mincore only writes that vector.
    let rc = unsafe {
        libc::mincore(
            base.add(usize::try_from(first).expect("an offset")).cast(),
            usize::try_from(end - first).expect("a length"),
            resident.as_mut_ptr(),
        )
    };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    let mut chunk = vec![0u8; 4096];
    for (page, _) in (0u64..).zip(&resident).filter(|(_, r)| **r & 1 != 0) {
        let from = (first + page * PAGE).max(start);
        let to = (first + (page + 1) * PAGE).min(end);
        let offset = usize::try_from(from - start).expect("an offset");
        let len = usize::try_from(to - from).expect("a length");
        let n = area
            .subslice(offset, len)
            .expect("inside the area")
            .copy_to(&mut chunk[..len]);
        assert!(
            chunk[..n].iter().all(|&byte| byte == 0),
            "a write past the ring, at 0x{from:x}"
        );
    }
}
