//! The host end of the shared-memory network ring (§6.7), through the mock
//! tender: the net module offers the ring as it does on KVM, its real I/O
//! thread serves it over in-memory wires, and the test plays the guest,
//! writing entries into the mock's guest memory and ringing the doorbell.

use std::mem::{offset_of, size_of};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hvt_abi::hypercall::result;
use hvt_abi::ring::{Ring, RingCommit, RingEntry, OP_NET_READ, OP_NET_WRITE, RING_SIZE};
use tender_core::devices::frame::FrameBackend;
use tender_mock::{MockConfig, MockTender, WireConfig};
use vm_memory::{Bytes, VolatileSlice};

/// Where the test, as the guest, keeps its frames.
const BUFFERS_GPA: u64 = 0x20_0000;
/// The largest frame of a 1500-byte MTU: payload and Ethernet header.
const MAX_FRAME: usize = 1514;
/// The ring's slots, as its u32 indices count them.
const SLOTS: u32 = 1024;
const _: () = assert!(SLOTS as usize == RING_SIZE);

struct Guest {
    mock: MockTender,
    ring: u64,
    /// The guest's copies of the indices it owns.
    ent_tail: u32,
    com_head: u32,
    next_id: u32,
}

impl Guest {
    fn new() -> Guest {
        let mock = MockTender::with_config(&MockConfig {
            net_devices: &["a", "b"],
            wire: WireConfig::clean(),
            ring: true,
            ..MockConfig::default()
        })
        .unwrap();
        let ring = mock.ring_gpa().expect("the mock offers the ring");
        Guest {
            mock,
            ring,
            ent_tail: 0,
            com_head: 0,
            next_id: 0,
        }
    }

    fn load(&self, offset: usize) -> u32 {
        self.mock
            .ram()
            .reserved_slice(self.ring, size_of::<Ring>() as u64)
            .unwrap()
            .load(offset, Ordering::Acquire)
            .unwrap()
    }

    fn store(&self, offset: usize, value: u32) {
        self.mock
            .ram()
            .reserved_slice(self.ring, size_of::<Ring>() as u64)
            .unwrap()
            .store(value, offset, Ordering::Release)
            .unwrap()
    }

    /// Starts all indices at `start`, as if the ring had been in use for a
    /// while, so that the next entries wrap the 32-bit counters.
    fn start_indices_at(&mut self, start: u32) {
        for offset in [
            offset_of!(Ring, ent_head),
            offset_of!(Ring, com_tail),
            offset_of!(Ring, com_head),
            offset_of!(Ring, ent_tail),
        ] {
            self.store(offset, start);
        }
        self.ent_tail = start;
        self.com_head = start;
    }

    /// Waits (bounded) until `done` holds, failing the test otherwise.
    fn wait_until(&self, what: &str, mut done: impl FnMut(&Guest) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(self) {
            assert!(
                self.mock.fatal_errors().is_empty(),
                "{:?}",
                self.mock.fatal_errors()
            );
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::yield_now();
        }
    }

    /// Publishes one entry, waiting for a free slot first (the guest's
    /// flow control), and rings the doorbell if the host sleeps.
    fn submit(&mut self, operation: u32, handle: u32, data: u64, len: u32) -> u32 {
        let tail = self.ent_tail;
        self.wait_until("a free slot", |g| {
            tail.wrapping_sub(g.load(offset_of!(Ring, ent_head))) < SLOTS - 1
        });
        let id = self.next_id;
        self.next_id += 1;
        let entry = RingEntry {
            operation,
            handle,
            data,
            len,
            id,
            reserved: 0,
        };
        let slot = tail as usize % RING_SIZE;
        let gpa = self.ring + (offset_of!(Ring, entries) + slot * size_of::<RingEntry>()) as u64;
        self.mock.ram().write_obj(gpa, &entry).unwrap();
        self.ent_tail = tail.wrapping_add(1);
        self.store(offset_of!(Ring, ent_tail), self.ent_tail);
        if self.load(offset_of!(Ring, needs_kick)) != 0 {
            assert!(self.mock.kick_ring(), "no doorbell registered");
        }
        id
    }

    /// Waits for the next commit and consumes it.
    fn commit(&mut self) -> RingCommit {
        let head = self.com_head;
        self.wait_until("a commit", |g| g.load(offset_of!(Ring, com_tail)) != head);
        let slot = head as usize % RING_SIZE;
        let gpa = self.ring + (offset_of!(Ring, commits) + slot * size_of::<RingCommit>()) as u64;
        let mut bytes = [0u8; size_of::<RingCommit>()];
        self.mock.ram().read_bytes(gpa, &mut bytes).unwrap();
        self.com_head = head.wrapping_add(1);
        self.store(offset_of!(Ring, com_head), self.com_head);
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        RingCommit {
            id: word(0),
            ret: i32::from_le_bytes(bytes[4..8].try_into().unwrap()),
            len: word(8),
            flags: word(12),
        }
    }

    /// The frame waiting at the wire end of device `handle`, if any.
    fn take_frame(&self, handle: usize) -> Option<Vec<u8>> {
        let mut buffer = vec![0u8; 65536];
        let port = self.mock.wire_port(handle).unwrap();
        let n = port
            .receive(&mut VolatileSlice::from(&mut buffer[..]))
            .ok()?;
        buffer.truncate(n);
        Some(buffer)
    }
}

/// A frame of `len` bytes whose contents say which frame it is.
fn frame(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + seed).to_le_bytes()[0]).collect()
}

#[test]
fn frames_of_every_size_go_out_in_order_and_wrap_the_ring() {
    let mut guest = Guest::new();
    // 1514 frames: more than the ring's 1024 slots, so slots are reused.
    for len in 1..=MAX_FRAME {
        let data = BUFFERS_GPA + (len % 64 * 2048) as u64;
        // The slot's buffer is free once the host consumed its entry: the
        // guest keeps 64 buffers and waits for the host to fall behind less.
        let tail = guest.ent_tail;
        guest.wait_until("the host to catch up", |g| {
            tail.wrapping_sub(g.load(offset_of!(Ring, ent_head))) < 63
        });
        guest
            .mock
            .ram()
            .write_bytes(data, &frame(len, len))
            .unwrap();
        guest.submit(OP_NET_WRITE, 1, data, u32::try_from(len).unwrap());
    }
    let tail = guest.ent_tail;
    guest.wait_until("every entry", |g| {
        g.load(offset_of!(Ring, ent_head)) == tail
    });
    for len in 1..=MAX_FRAME {
        assert_eq!(guest.take_frame(2), Some(frame(len, len)), "frame {len}");
    }
    assert_eq!(guest.take_frame(2), None);
    // Writes are not committed.
    assert_eq!(guest.load(offset_of!(Ring, com_tail)), 0);
}

#[test]
fn reads_commit_frames_of_every_size_and_again_when_none_waits() {
    let mut guest = Guest::new();
    let buffer = BUFFERS_GPA;
    for len in (1..=MAX_FRAME).step_by(7).chain([MAX_FRAME]) {
        let sent = frame(len, 3);
        let port = guest.mock.wire_port(2).unwrap();
        port.send(&VolatileSlice::from(&mut sent.clone()[..]))
            .unwrap();
        let id = guest.submit(OP_NET_READ, 1, buffer, u32::try_from(MAX_FRAME).unwrap());
        let commit = guest.commit();
        assert_eq!(
            (commit.id, commit.ret, commit.len),
            (id, result::OK, u32::try_from(len).unwrap())
        );
        let mut got = vec![0u8; len];
        guest.mock.ram().read_bytes(buffer, &mut got).unwrap();
        assert_eq!(got, sent, "frame of {len} bytes");
    }
    let id = guest.submit(OP_NET_READ, 1, buffer, u32::try_from(MAX_FRAME).unwrap());
    let commit = guest.commit();
    assert_eq!((commit.id, commit.ret, commit.len), (id, result::AGAIN, 0));
    // A handle with no device is EINVAL; a frame longer than the buffer is
    // cut to it, as a tap cuts it.
    let id = guest.submit(OP_NET_READ, 9, buffer, 64);
    assert_eq!(guest.commit().ret, result::EINVAL, "entry {id}");
    let port = guest.mock.wire_port(2).unwrap();
    port.send(&VolatileSlice::from(&mut frame(100, 1)[..]))
        .unwrap();
    guest.submit(OP_NET_READ, 1, buffer, 10);
    let commit = guest.commit();
    assert_eq!((commit.ret, commit.len), (result::OK, 10));
}

#[test]
fn indices_wrap_around_two_to_the_thirty_two() {
    let mut guest = Guest::new();
    guest.start_indices_at(u32::MAX - 20);
    for round in 0..50 {
        let sent = frame(60, round);
        let port = guest.mock.wire_port(2).unwrap();
        port.send(&VolatileSlice::from(&mut sent.clone()[..]))
            .unwrap();
        guest.submit(OP_NET_READ, 1, BUFFERS_GPA, 2048);
        let commit = guest.commit();
        assert_eq!((commit.ret, commit.len), (result::OK, 60), "round {round}");
        guest.mock.ram().write_bytes(BUFFERS_GPA, &sent).unwrap();
        guest.submit(OP_NET_WRITE, 1, BUFFERS_GPA, 60);
    }
    let tail = guest.ent_tail;
    guest.wait_until("every entry", |g| {
        g.load(offset_of!(Ring, ent_head)) == tail
    });
    assert_eq!(tail, (u32::MAX - 20).wrapping_add(100));
    for round in 0..50 {
        assert_eq!(guest.take_frame(2), Some(frame(60, round)));
    }
}

#[test]
fn a_full_ring_is_served_whole() {
    let mut guest = Guest::new();
    // Every slot but one filled before the host is told (the guest's limit).
    let data = BUFFERS_GPA;
    guest.mock.ram().write_bytes(data, &frame(64, 0)).unwrap();
    for _ in 0..RING_SIZE - 1 {
        guest.submit(OP_NET_WRITE, 1, data, 64);
    }
    let tail = guest.ent_tail;
    guest.wait_until("every entry", |g| {
        g.load(offset_of!(Ring, ent_head)) == tail
    });
    let mut received = 0;
    while guest.take_frame(2).is_some() {
        received += 1;
    }
    assert_eq!(received, RING_SIZE - 1);
}

#[test]
fn corrupt_indices_are_fatal_and_stop_the_thread() {
    let guest = Guest::new();
    // More entries outstanding than the ring holds.
    guest.store(offset_of!(Ring, ent_tail), SLOTS + 1);
    guest.mock.kick_ring();
    let deadline = Instant::now() + Duration::from_secs(10);
    while guest.mock.fatal_errors().is_empty() {
        assert!(Instant::now() < deadline, "no fatal error");
        std::thread::yield_now();
    }
    assert_eq!(
        guest.mock.fatal_errors(),
        ["net ring: invalid indices ent_head=0, ent_tail=1025"]
    );
}

#[test]
fn a_buffer_outside_guest_memory_is_fatal() {
    let mut guest = Guest::new();
    let visible = guest.mock.ram().visible_size();
    // The ring area itself is not the guest's to name.
    guest.submit(OP_NET_WRITE, 1, visible + 4096, 64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while guest.mock.fatal_errors().is_empty() {
        assert!(Instant::now() < deadline, "no fatal error");
        std::thread::yield_now();
    }
    assert_eq!(
        guest.mock.fatal_errors(),
        [format!(
            "net ring: Invalid guest access: gpa=0x{:x}, sz=64",
            visible + 4096
        )]
    );
}

#[test]
fn without_the_ring_the_boot_info_offers_none() {
    let mock = MockTender::with_config(&MockConfig {
        net_devices: &["a", "b"],
        ..MockConfig::default()
    })
    .unwrap();
    assert_eq!(mock.ring_gpa(), None);
    assert_eq!(mock.boot_info().host_features, 0);
    assert!(!mock.kick_ring());
    assert_eq!(mock.ram().visible_size(), 16 << 20);
}
