//! The guest side of the shared-memory network ring (§6.7), used instead of
//! the NET_READ/NET_WRITE hypercalls when the tender offers it
//! (`HOST_FEATURE_RING_IO`). Frames pass through the ring without a VM exit;
//! the doorbell (an OUT to port 0x600) is served in the host kernel by an
//! ioeventfd, and only rung when the host's I/O thread sleeps.

use alloc::boxed::Box;
use alloc::vec;
use core::mem::offset_of;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use hvt_abi::boot::HOST_FEATURE_RING_IO;
use hvt_abi::hypercall::{result, RING_KICK_PIO_BASE};
use hvt_abi::ring::{
    Ring, RingCommit, RingEntry, OP_NET_READ, OP_NET_WRITE, RING_BUF_SIZE, RING_SIZE,
};
use hvt_bindings::net::NetError;

use hvt_bindings::abi as hvt_abi;

/// Entries the guest may have outstanding (one slot stays free).
// reason: RING_SIZE is 1024 (`HVT_RING_SIZE`), checked below.
#[allow(clippy::cast_possible_truncation)]
const MAX_OUTSTANDING: u32 = RING_SIZE as u32 - 1;
const _: () = assert!(RING_SIZE <= u32::MAX as usize);

pub struct RingClient {
    ring: *mut Ring,
    /// One transmit buffer per slot (`RING_SIZE` of them), so callers may
    /// reuse their frames.
    buffers: *mut [u8; RING_BUF_SIZE],
    /// The heap storage of `buffers`, in a guest.
    _storage: Option<Box<[[u8; RING_BUF_SIZE]]>>,
    /// What to subtract from a buffer's address to get the address the host
    /// knows it by: 0 in a guest, where addresses are guest-physical; the
    /// mock's host address of its GPA 0 in a host test.
    gpa_offset: u64,
    next_id: u32,
}

impl RingClient {
    /// The ring, if the tender offers one.
    pub fn from_boot_info() -> Option<RingClient> {
        let info = hvt_bindings::boot::boot_info()?;
        if info.host_features & HOST_FEATURE_RING_IO == 0 || info.net_ring == 0 {
            return None;
        }
        let mut storage = vec![[0u8; RING_BUF_SIZE]; RING_SIZE].into_boxed_slice();
        Some(RingClient {
            ring: info.net_ring as *mut Ring,
            buffers: storage.as_mut_ptr(),
            _storage: Some(storage),
            gpa_offset: 0,
            next_id: 0,
        })
    }

    /// A client of the ring at `ring` whose transmit buffers are the
    /// `RING_SIZE` buffers at `buffers`, where the host knows each address
    /// `a` as `a - gpa_offset`: a host test's view of a mock tender's memory.
    ///
    /// # Safety
    /// `ring` and the buffers must stay valid, and be used by nobody else,
    /// for the life of the client; so must every buffer passed to
    /// [`RingClient::read`], and all of them must lie in the memory the
    /// offset translates.
    #[cfg(all(test, not(target_os = "none")))]
    unsafe fn in_memory(
        ring: *mut Ring,
        buffers: *mut [u8; RING_BUF_SIZE],
        gpa_offset: u64,
    ) -> RingClient {
        RingClient {
            ring,
            buffers,
            _storage: None,
            gpa_offset,
            next_id: 0,
        }
    }

    /// The address the host knows `buffer` by.
    fn host_address(&self, buffer: *const u8) -> u64 {
        buffer as u64 - self.gpa_offset
    }

    /// The ring counter at byte `offset` of `struct hvt_ring`.
    fn counter(&self, offset: usize) -> &'static AtomicU32 {
        // SAFETY: the ring lives in guest memory for the life of the guest;
        // `offset` names one of its naturally aligned u32 counters, shared
        // with the host.
        unsafe { AtomicU32::from_ptr(self.ring.cast::<u8>().add(offset).cast()) }
    }
    fn ent_tail(&self) -> &'static AtomicU32 {
        self.counter(offset_of!(Ring, ent_tail))
    }
    fn ent_head(&self) -> &'static AtomicU32 {
        self.counter(offset_of!(Ring, ent_head))
    }
    fn com_head(&self) -> &'static AtomicU32 {
        self.counter(offset_of!(Ring, com_head))
    }
    fn com_tail(&self) -> &'static AtomicU32 {
        self.counter(offset_of!(Ring, com_tail))
    }
    fn needs_kick(&self) -> &'static AtomicU32 {
        self.counter(offset_of!(Ring, needs_kick))
    }

    /// Publishes `entry` in the next slot and rings the doorbell if the
    /// host's I/O thread went to sleep.
    fn submit(&mut self, mut entry: RingEntry) {
        while self
            .ent_tail()
            .load(Ordering::Relaxed)
            .wrapping_sub(self.ent_head().load(Ordering::Acquire))
            >= MAX_OUTSTANDING
        {
            core::hint::spin_loop();
        }
        let tail = self.ent_tail().load(Ordering::Relaxed);
        entry.id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        // SAFETY: the slot at `tail` is the guest's until `ent_tail` moves.
        unsafe {
            core::ptr::addr_of_mut!((*self.ring).entries[tail as usize % RING_SIZE])
                .write_volatile(entry);
        }
        self.ent_tail()
            .store(tail.wrapping_add(1), Ordering::Release);
        fence(Ordering::SeqCst);
        if self.needs_kick().load(Ordering::Acquire) != 0 {
            kick();
        }
    }

    /// Queues `frame` for sending; returns at once.
    pub fn write(&mut self, handle: u64, frame: &[u8]) -> Result<(), NetError> {
        if frame.len() > RING_BUF_SIZE {
            return hvt_bindings::net::write(handle, frame);
        }
        let handle = u32::try_from(handle).map_err(|_| NetError::Invalid)?;
        let tail = self.ent_tail().load(Ordering::Relaxed);
        // Wait for the slot before reusing its buffer.
        while tail.wrapping_sub(self.ent_head().load(Ordering::Acquire)) >= MAX_OUTSTANDING {
            core::hint::spin_loop();
        }
        // SAFETY: `buffers` holds RING_SIZE buffers (see the constructors);
        // this slot's is free: its entry was consumed (waited for above).
        let buffer = unsafe { &mut *self.buffers.add(tail as usize % RING_SIZE) };
        buffer[..frame.len()].copy_from_slice(frame);
        // reason: at most RING_BUF_SIZE (2048), checked above.
        #[allow(clippy::cast_possible_truncation)]
        let len = frame.len() as u32;
        let entry = RingEntry {
            operation: OP_NET_WRITE,
            handle,
            data: self.host_address(buffer.as_ptr()),
            len,
            id: 0,
            reserved: 0,
        };
        self.submit(entry);
        Ok(())
    }

    /// Receives one frame into `buffer` (synchronous: waits for the commit).
    pub fn read(&mut self, handle: u64, buffer: &mut [u8]) -> Result<usize, NetError> {
        let entry = RingEntry {
            operation: OP_NET_READ,
            handle: u32::try_from(handle).map_err(|_| NetError::Invalid)?,
            data: self.host_address(buffer.as_ptr()),
            // A larger buffer offers the host 4 GiB - 1 of it.
            len: u32::try_from(buffer.len()).unwrap_or(u32::MAX),
            id: 0,
            reserved: 0,
        };
        self.submit(entry);
        let head = self.com_head().load(Ordering::Relaxed);
        while self.com_tail().load(Ordering::Acquire) == head {
            core::hint::spin_loop();
        }
        // SAFETY: the host published this commit before moving `com_tail`.
        let commit: RingCommit = unsafe {
            core::ptr::addr_of!((*self.ring).commits[head as usize % RING_SIZE]).read_volatile()
        };
        self.com_head()
            .store(head.wrapping_add(1), Ordering::Release);
        match commit.ret {
            result::OK => Ok((commit.len as usize).min(buffer.len())),
            result::AGAIN => Err(NetError::Again),
            result::EINVAL => Err(NetError::Invalid),
            _ => Err(NetError::Unspecified),
        }
    }
}

/// Rings the doorbell: a 32-bit OUT of ring id 0 to port 0x600.
fn kick() {
    #[cfg(target_os = "none")]
    // SAFETY: the doorbell port; the tender registered an ioeventfd for it
    // before offering the ring.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") RING_KICK_PIO_BASE, in("eax") 0u32, options(nostack, preserves_flags));
    }
    #[cfg(not(target_os = "none"))]
    hvt_bindings::host::port_write(RING_KICK_PIO_BASE, 0);
}

/// The guest end of the ring against the real host end: a mock tender
/// offers the ring and serves it with the net module's I/O thread over an
/// in-memory wire; the client's buffers live in the mock's guest memory.
#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    use std::vec::Vec;

    use tender_mock::{FrameBackend, MockConfig, MockTender, VolatileSlice};

    /// Where the client's transmit buffers and the read buffer lie, in the
    /// mock's guest memory (16 MiB).
    const TX_GPA: u64 = 0x20_0000;
    const RX_GPA: u64 = 0x60_0000;
    /// The largest frame of a 1500-byte MTU, Ethernet header included.
    const MAX_FRAME: usize = 1514;

    /// A client on a fresh mock installed on this thread, and the host
    /// address of the read buffer.
    fn client() -> (RingClient, *mut u8) {
        let mock = MockTender::with_config(&MockConfig {
            net_devices: &["a", "b"],
            ring: true,
            ..MockConfig::default()
        })
        .unwrap();
        let (base, _) = mock.ram().host_mapping();
        let gpa = mock.ring_gpa().expect("the ring is offered");
        let offset = base as u64;
        tender_mock::install(mock);
        hvt_bindings::host::set_port_writer(tender_mock::port_write);
        let at = |gpa: u64| (offset + gpa) as *mut u8;
        // SAFETY: the ring and the buffers lie in the mock's memory, which
        // lives (installed on this thread) until the test uninstalls it.
        let client = unsafe { RingClient::in_memory(at(gpa).cast(), at(TX_GPA).cast(), offset) };
        (client, at(RX_GPA))
    }

    fn frame(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + seed).to_le_bytes()[0]).collect()
    }

    /// The next frame at the wire end of device `handle`, waiting for the
    /// ring thread to deliver it.
    fn delivered(handle: usize) -> Vec<u8> {
        let mut buffer = vec![0u8; 65536];
        for _ in 0..1_000_000 {
            let got = tender_mock::with(|m| {
                let port = m.wire_port(handle).unwrap();
                port.receive(&mut VolatileSlice::from(&mut buffer[..])).ok()
            });
            if let Some(n) = got {
                buffer.truncate(n);
                return buffer;
            }
            std::thread::yield_now();
        }
        panic!("no frame arrived");
    }

    fn send_to(handle: usize, frame: &[u8]) {
        tender_mock::with(|m| {
            let port = m.wire_port(handle).unwrap();
            let mut copy = frame.to_vec();
            port.send(&VolatileSlice::from(&mut copy[..])).unwrap();
        });
    }

    #[test]
    fn writes_of_every_size_wrap_the_ring_and_arrive_in_order() {
        let (mut client, _) = client();
        // 1514 frames through 1024 slots: indices and buffers wrap, and the
        // client waits whenever the ring is full.
        for len in 1..=MAX_FRAME {
            client.write(1, &frame(len, len)).unwrap();
        }
        for len in 1..=MAX_FRAME {
            assert_eq!(delivered(2), frame(len, len), "frame of {len} bytes");
        }
        assert!(tender_mock::with(|m| m.fatal_errors().is_empty()));
        tender_mock::uninstall();
    }

    #[test]
    fn reads_return_frames_of_every_size_then_again() {
        let (mut client, rx) = client();
        // SAFETY: the read buffer lies in the installed mock's memory.
        let buffer = unsafe { core::slice::from_raw_parts_mut(rx, RING_BUF_SIZE) };
        for len in (1..=MAX_FRAME).step_by(11).chain([MAX_FRAME]) {
            let sent = frame(len, 5);
            send_to(2, &sent);
            assert_eq!(client.read(1, buffer), Ok(len));
            assert_eq!(&buffer[..len], &sent[..]);
        }
        assert_eq!(client.read(1, buffer), Err(NetError::Again));
        assert_eq!(client.read(7, buffer), Err(NetError::Invalid));
        // Reads and writes interleave over one ring.
        for round in 0..2_000 {
            client.write(1, &frame(60, round)).unwrap();
            send_to(2, &frame(42, round));
            assert_eq!(client.read(1, buffer), Ok(42), "round {round}");
            assert_eq!(&buffer[..42], &frame(42, round)[..]);
        }
        for round in 0..2_000 {
            assert_eq!(delivered(2), frame(60, round));
        }
        tender_mock::uninstall();
    }
}
