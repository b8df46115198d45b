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
    /// One transmit buffer per slot, so callers may reuse their frames.
    buffers: Box<[[u8; RING_BUF_SIZE]]>,
    next_id: u32,
}

impl RingClient {
    /// The ring, if the tender offers one.
    pub fn from_boot_info() -> Option<RingClient> {
        let info = hvt_bindings::boot::boot_info()?;
        if info.host_features & HOST_FEATURE_RING_IO == 0 || info.net_ring == 0 {
            return None;
        }
        Some(RingClient {
            ring: info.net_ring as *mut Ring,
            buffers: vec![[0u8; RING_BUF_SIZE]; RING_SIZE].into_boxed_slice(),
            next_id: 0,
        })
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
        let buffer = &mut self.buffers[tail as usize % RING_SIZE];
        buffer[..frame.len()].copy_from_slice(frame);
        // reason: at most RING_BUF_SIZE (2048), checked above.
        #[allow(clippy::cast_possible_truncation)]
        let len = frame.len() as u32;
        let entry = RingEntry {
            operation: OP_NET_WRITE,
            handle,
            data: buffer.as_ptr() as u64,
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
            data: buffer.as_mut_ptr() as u64,
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
    let _ = RING_KICK_PIO_BASE;
}
