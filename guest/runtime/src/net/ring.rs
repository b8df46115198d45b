//! The guest side of the shared-memory network ring (§6.7), used instead of
//! the NET_READ/NET_WRITE hypercalls when the tender offers it
//! (`HOST_FEATURE_RING_IO`). Frames pass through the ring without a return
//! to the tender; the doorbell (an OUT to port 0x600) is served in the host
//! kernel by an ioeventfd, and only rung when the host's I/O thread sleeps.
//!
//! When our tender also offers §12.8 (`HOST_FEATURE_RING_EXIT_SERVICE`),
//! the tender serves the ring at each of the guest's exits too, so a
//! sleeping I/O thread is not woken for each frame:
//! * a write to a sleeping thread is left in the ring for the next exit (the
//!   executor's yield, at the latest after its current pass; see
//!   [`flush_lazy_writes`]), unless many are waiting, which wakes the thread;
//! * a read with the thread asleep rings `DOORBELL_SERVE_NOW`, which the
//!   tender serves before the guest resumes: one exit, as NET_READ costs,
//!   and no wake-up of a thread that a busy host may not run for a while.
//!   With the thread awake the guest waits for its commit at most
//!   [`COMMIT_WAIT_US`], then asks the same way;
//! * a commit may say the device is drained, which saves the read that
//!   would only have returned `AGAIN`;
//! * while the thread is awake and frames came in the last
//!   [`BUSY_POLL_US`], the executor reads again instead of yielding
//!   ([`busy_poll_set`]): a yield is an exit, a read the thread serves is
//!   not. A guest that received nothing for that long yields as before,
//!   and the thread then goes to sleep;
//! * before a yield with the thread asleep, the executor publishes a read
//!   marked `ENTRY_AFTER_EXIT` ([`post_read_before_yield`]): the tender
//!   serves it once the yield's wait is over, so the frame that ends the
//!   wait comes back with it, without the exit of another read.
//!
//! On upstream's tender (no §12.8) the client follows upstream's bindings
//! exactly.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::mem::offset_of;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use hvt_abi::boot::{HOST_FEATURE_RING_EXIT_SERVICE, HOST_FEATURE_RING_IO};
use hvt_abi::hypercall::{result, RING_KICK_PIO_BASE};
use hvt_abi::ring::{
    Ring, RingCommit, RingEntry, COMMIT_DRAINED, DOORBELL_SERVE_NOW, ENTRY_AFTER_EXIT, OP_NET_READ,
    OP_NET_WRITE, RING_BUF_SIZE, RING_SIZE,
};
use hvt_bindings::net::NetError;

use crate::local::runtime_local;
use hvt_bindings::abi as hvt_abi;

/// Entries the guest may have outstanding (one slot stays free).
// reason: RING_SIZE is 1024 (`HVT_RING_SIZE`), checked below.
#[allow(clippy::cast_possible_truncation)]
const MAX_OUTSTANDING: u32 = RING_SIZE as u32 - 1;
const _: () = assert!(RING_SIZE <= u32::MAX as usize);

/// Writes left for the next exit before the guest wakes the I/O thread
/// instead (§12.8): a bulk send is better served by the thread, in
/// parallel, than by the vCPU in one long exit.
const LAZY_WRITES: u32 = 32;

/// How long the guest waits for an awake I/O thread to commit its read
/// before it asks for the read in its own exit (§12.8): a thread that
/// runs answers in a few microseconds; one that does not (a busy host)
/// could take a whole time slice.
pub const COMMIT_WAIT_US: u64 = 50;

/// The id of a read published before a yield; other entries count up
/// below it.
const POSTED_READ_ID: u32 = u32::MAX;

/// A frame the ring read, and whether the tender said no other was waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    pub drained: bool,
}

/// How long after its last received frame the executor reads again
/// instead of yielding, while the host's I/O thread is awake (§12.8).
pub const BUSY_POLL_US: u64 = 200;

/// Busy polling yields at least this often all the same: the console, the
/// clock page and devices off the ring are served at yields.
pub const BUSY_POLL_MAX_US: u64 = 1000;

/// What the executor's hooks know of the ring, if §12.8 is offered.
#[derive(Clone, Copy)]
struct Offered {
    counters: RingCounters,
    /// The network handles that use the ring.
    handles: u64,
    /// TSC at the last frame received, if any.
    last_frame: Option<u64>,
    /// [`BUSY_POLL_US`] in TSC ticks.
    busy_poll_ticks: u64,
    /// [`BUSY_POLL_MAX_US`] in TSC ticks.
    busy_poll_max_ticks: u64,
    /// TSC at the end of the last yield.
    last_yield: u64,
    /// `ent_head` when the guest last rang the in-kernel doorbell.
    kicked_at: Option<u32>,
    /// What to subtract from a guest address to get the host's (see
    /// [`RingClient`]).
    gpa_offset: u64,
}

impl Offered {
    /// Rings the in-kernel doorbell if the thread sleeps, once: while
    /// `ent_head` has not moved since the last ring, the thread has not run
    /// yet and its doorbell is still pending.
    fn wake_thread(&mut self) {
        let head = self.counters.ent_head().load(Ordering::Acquire);
        if self.counters.needs_kick() && self.kicked_at != Some(head) {
            kick(0);
            self.kicked_at = Some(head);
        }
    }
}

runtime_local! {
    /// The ring, if §12.8 is offered, for [`flush_lazy_writes`] and
    /// [`busy_poll_set`].
    static OFFERED: Cell<Option<Offered>> = Cell::new(None);
}

/// Changes what the hooks know of the ring; nothing without §12.8.
fn update_offered(change: impl FnOnce(&mut Offered)) {
    OFFERED.with(|offered| {
        if let Some(mut o) = offered.get() {
            change(&mut o);
            offered.set(Some(o));
        }
    });
}

/// The read published before a yield (§12.8), and its buffer.
struct Posted {
    /// Guest memory the host fills; as large as the largest frame of the
    /// ring's devices. In a guest, `storage`; in a host test, memory of the
    /// mock's.
    buffer: *mut u8,
    len: usize,
    storage: Vec<u8>,
    /// The largest frame of the ring's devices: the buffer grows to it
    /// before the next read is published.
    needed: usize,
    state: PostState,
}

impl Posted {
    fn buffer(&self) -> &[u8] {
        // SAFETY: `buffer` points at `len` bytes: `storage`, or the mock's
        // memory a test gave (`use_posted_buffer`).
        unsafe { core::slice::from_raw_parts(self.buffer, self.len) }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PostState {
    /// No read published.
    Idle,
    /// Published for this handle; its commit is the next one.
    Pending(u64),
    /// A frame of `len` bytes for `handle` waits in the buffer.
    Received(u64, Received),
}

runtime_local! {
    static POSTED: RefCell<Posted> = RefCell::new(Posted {
        buffer: core::ptr::null_mut(),
        len: 0,
        storage: Vec::new(),
        needed: 0,
        state: PostState::Idle,
    });
}

/// Publishes `entry` in the next slot of the ring of `counters` (which must
/// be free).
fn publish_entry(counters: RingCounters, entry: RingEntry) {
    let tail = counters.ent_tail().load(Ordering::Relaxed);
    // SAFETY: the slot at `tail` is the guest's until `ent_tail` moves.
    unsafe {
        core::ptr::addr_of_mut!((*counters.ring).entries[tail as usize % RING_SIZE])
            .write_volatile(entry);
    }
    counters
        .ent_tail()
        .store(tail.wrapping_add(1), Ordering::Release);
    fence(Ordering::SeqCst);
}

/// Takes the commit at `com_head` if the host published it.
fn take_commit(counters: RingCounters) -> Option<RingCommit> {
    let head = counters.com_head().load(Ordering::Relaxed);
    if counters.com_tail().load(Ordering::Acquire) == head {
        return None;
    }
    // SAFETY: the host published this commit before moving `com_tail`.
    let commit = unsafe {
        core::ptr::addr_of!((*counters.ring).commits[head as usize % RING_SIZE]).read_volatile()
    };
    counters
        .com_head()
        .store(head.wrapping_add(1), Ordering::Release);
    Some(commit)
}

/// The executor's hook just before it yields: with §12.8 and the host's
/// I/O thread asleep, publishes a read for the first ring device waited on
/// in `interest`, served by the tender once the yield's wait is over.
pub(crate) fn post_read_before_yield(interest: u64) {
    let Some(o) = OFFERED.with(Cell::get) else {
        return;
    };
    let handles = interest & o.handles;
    // An awake thread would answer AGAIN at once; a full ring has no room.
    if handles == 0 || !o.counters.needs_kick() || o.counters.unserved() >= MAX_OUTSTANDING {
        return;
    }
    POSTED.with(|posted| {
        let mut posted = posted.borrow_mut();
        if posted.state != PostState::Idle {
            return;
        }
        if posted.len < posted.needed {
            posted.storage = vec![0; posted.needed];
            posted.buffer = posted.storage.as_mut_ptr();
            posted.len = posted.needed;
        }
        if posted.len == 0 {
            return;
        }
        let handle = u64::from(handles.trailing_zeros());
        let entry = RingEntry {
            operation: OP_NET_READ,
            // Below 64: a bit of `handles`.
            handle: handles.trailing_zeros(),
            data: posted.buffer as u64 - o.gpa_offset,
            len: u32::try_from(posted.len).unwrap_or(u32::MAX),
            id: POSTED_READ_ID,
            reserved: ENTRY_AFTER_EXIT,
        };
        publish_entry(o.counters, entry);
        posted.state = PostState::Pending(handle);
    });
}

/// The executor's hook before it yields: the devices for which a read
/// published earlier brought a frame that nobody has read yet (then it
/// does not yield).
pub(crate) fn frames_waiting() -> u64 {
    collect_posted();
    POSTED.with(|posted| match posted.borrow().state {
        PostState::Received(handle, _) => 1 << handle,
        _ => 0,
    })
}

/// The executor's hook just after a yield: collects the read published
/// before it and adds its device to `ready_set` if it brought a frame.
pub(crate) fn after_yield(ready_set: u64) -> u64 {
    update_offered(|o| o.last_yield = ticks());
    collect_posted();
    POSTED.with(|posted| match posted.borrow().state {
        PostState::Received(handle, _) => ready_set | 1 << handle,
        _ => ready_set,
    })
}

/// Moves a published read's commit, if there, into [`POSTED`]; a read
/// that brought nothing is forgotten.
fn collect_posted() {
    let Some(o) = OFFERED.with(Cell::get) else {
        return;
    };
    POSTED.with(|posted| {
        let mut posted = posted.borrow_mut();
        let PostState::Pending(handle) = posted.state else {
            return;
        };
        let Some(commit) = take_commit(o.counters) else {
            return;
        };
        posted.state = match commit.ret {
            result::OK => {
                frame_received();
                PostState::Received(
                    handle,
                    Received {
                        len: (commit.len as usize).min(posted.len),
                        drained: commit.flags & COMMIT_DRAINED != 0,
                    },
                )
            }
            _ => PostState::Idle,
        };
    });
}

/// Hands the frame a published read brought for `handle` over to `buffer`.
/// Before that, a published read still pending is served (its commit comes
/// before any later read's).
fn take_posted(handle: u64, buffer: &mut [u8]) -> Option<Received> {
    let pending = POSTED.with(|p| matches!(p.borrow().state, PostState::Pending(_)));
    if pending {
        collect_posted();
        if POSTED.with(|p| matches!(p.borrow().state, PostState::Pending(_))) {
            // Served in this exit's resume stage, with what follows it.
            kick(DOORBELL_SERVE_NOW);
            collect_posted();
        }
    }
    POSTED.with(|posted| {
        let mut posted = posted.borrow_mut();
        match posted.state {
            PostState::Received(h, received) if h == handle => {
                let len = received.len.min(buffer.len());
                buffer[..len].copy_from_slice(&posted.buffer()[..len]);
                posted.state = PostState::Idle;
                Some(Received { len, ..received })
            }
            _ => None,
        }
    })
}

/// The counters of `struct hvt_ring`, shared with the host.
#[derive(Clone, Copy)]
struct RingCounters {
    ring: *mut Ring,
}

impl RingCounters {
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
    fn needs_kick(&self) -> bool {
        self.counter(offset_of!(Ring, needs_kick))
            .load(Ordering::Acquire)
            != 0
    }
    /// Entries published and not yet taken by the host.
    fn unserved(&self) -> u32 {
        self.ent_tail()
            .load(Ordering::Relaxed)
            .wrapping_sub(self.ent_head().load(Ordering::Acquire))
    }
}

/// The executor's hook before it runs another pass without yielding: writes
/// left for the next exit (§12.8) would wait for that pass, so wake the I/O
/// thread for them. Nothing to do without §12.8, or with an awake thread.
pub(crate) fn flush_lazy_writes() {
    update_offered(|o| {
        if o.counters.unserved() != 0 {
            o.wake_thread();
        }
    });
}

/// The executor's hook before it yields with nothing to run: of the
/// handles in `interest` (waited on), those to read again at once instead
/// of yielding. Empty unless §12.8 is offered, the host's I/O thread is
/// awake, and a frame came within [`BUSY_POLL_US`].
pub(crate) fn busy_poll_set(interest: u64) -> u64 {
    let now = ticks();
    OFFERED.with(|offered| match offered.get() {
        Some(o)
            if interest & o.handles != 0
                && !o.counters.needs_kick()
                && o.last_frame
                    .is_some_and(|at| now.wrapping_sub(at) < o.busy_poll_ticks)
                && now.wrapping_sub(o.last_yield) < o.busy_poll_max_ticks =>
        {
            interest & o.handles
        }
        _ => 0,
    })
}

/// Notes a frame received (for [`busy_poll_set`]).
fn frame_received() {
    update_offered(|o| o.last_frame = Some(ticks()));
}

/// Notes that network handle `handle`, whose frames are at most `frame`
/// bytes, uses the ring.
pub(crate) fn uses_ring(handle: u64, frame: usize) {
    if handle >= 64 || OFFERED.with(Cell::get).is_none() {
        return;
    }
    update_offered(|o| o.handles |= 1 << handle);
    POSTED.with(|posted| {
        let mut posted = posted.borrow_mut();
        posted.needed = posted.needed.max(frame);
    });
}

pub struct RingClient {
    counters: RingCounters,
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
    /// The tender offers §12.8.
    exit_service: bool,
    /// [`COMMIT_WAIT_US`] in TSC ticks.
    commit_wait_ticks: u64,
}

impl Drop for RingClient {
    fn drop(&mut self) {
        // A host test's ring goes with its mock; a guest's lives forever.
        OFFERED.with(|offered| offered.set(None));
    }
}

/// Watches the host's progress while the guest waits on it: the host is
/// stalled when `ent_head` has not moved for [`COMMIT_WAIT_US`]. A thread
/// that works through a long batch of writes ahead of the guest's read is
/// not stalled; one that does not run is.
struct Stall {
    head: u32,
    since: u64,
}

impl Stall {
    fn new(client: &RingClient) -> Stall {
        Stall {
            head: client.counters.ent_head().load(Ordering::Acquire),
            since: ticks(),
        }
    }

    fn stalled(&mut self, client: &RingClient) -> bool {
        let head = client.counters.ent_head().load(Ordering::Acquire);
        let now = ticks();
        if head != self.head {
            (self.head, self.since) = (head, now);
        }
        now.wrapping_sub(self.since) > client.commit_wait_ticks
    }
}

/// The TSC, the clock of the guest's short waits.
fn ticks() -> u64 {
    // SAFETY: `rdtsc` reads the time-stamp counter; our guests may run it at
    // CPL 3 (CR4.TSD is clear, §3.4), and so may a host test.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl RingClient {
    /// The ring, if the tender offers one.
    pub fn from_boot_info() -> Option<RingClient> {
        let info = hvt_bindings::boot::boot_info()?;
        if info.host_features & HOST_FEATURE_RING_IO == 0 || info.net_ring == 0 {
            return None;
        }
        let mut storage = vec![[0u8; RING_BUF_SIZE]; RING_SIZE].into_boxed_slice();
        Some(RingClient::new(
            info.net_ring as *mut Ring,
            storage.as_mut_ptr(),
            Some(storage),
            0,
            info.host_features,
            info.cpu_cycle_freq,
        ))
    }

    fn new(
        ring: *mut Ring,
        buffers: *mut [u8; RING_BUF_SIZE],
        storage: Option<Box<[[u8; RING_BUF_SIZE]]>>,
        gpa_offset: u64,
        host_features: u32,
        tsc_hz: u64,
    ) -> RingClient {
        let exit_service = host_features & HOST_FEATURE_RING_EXIT_SERVICE != 0;
        let counters = RingCounters { ring };
        OFFERED.with(|offered| {
            // Every device's client uses the same ring: keep the handles.
            let handles = offered.get().map_or(0, |o| o.handles);
            offered.set(exit_service.then_some(Offered {
                counters,
                handles,
                last_frame: None,
                busy_poll_ticks: tsc_hz / 1_000_000 * BUSY_POLL_US,
                busy_poll_max_ticks: tsc_hz / 1_000_000 * BUSY_POLL_MAX_US,
                last_yield: ticks(),
                kicked_at: None,
                gpa_offset,
            }))
        });
        RingClient {
            counters,
            buffers,
            _storage: storage,
            gpa_offset,
            next_id: 0,
            exit_service,
            commit_wait_ticks: tsc_hz / 1_000_000 * COMMIT_WAIT_US,
        }
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
        host_features: u32,
    ) -> RingClient {
        RingClient::new(
            ring,
            buffers,
            None,
            gpa_offset,
            host_features,
            1_000_000_000,
        )
    }

    /// The address the host knows `buffer` by.
    fn host_address(&self, buffer: *const u8) -> u64 {
        buffer as u64 - self.gpa_offset
    }

    /// Waits for a free slot. Without §12.8 it spins, as upstream's bindings
    /// do; with it, a ring that stays full is served in an exit of ours.
    fn wait_for_slot(&self) {
        let mut stall = Stall::new(self);
        while self.counters.unserved() >= MAX_OUTSTANDING {
            if self.exit_service && stall.stalled(self) {
                kick(DOORBELL_SERVE_NOW);
            }
            core::hint::spin_loop();
        }
    }

    /// Publishes `entry` in the next slot (which must be free).
    fn publish(&mut self, mut entry: RingEntry) {
        entry.id = self.next_id;
        // The reads published before a yield have an id of their own.
        self.next_id = self.next_id.wrapping_add(1) % POSTED_READ_ID;
        publish_entry(self.counters, entry);
    }

    /// Queues `frame` for sending; returns at once.
    pub fn write(&mut self, handle: u64, frame: &[u8]) -> Result<(), NetError> {
        if frame.len() > RING_BUF_SIZE {
            return hvt_bindings::net::write(handle, frame);
        }
        let handle = u32::try_from(handle).map_err(|_| NetError::Invalid)?;
        // Wait for the slot before reusing its buffer.
        self.wait_for_slot();
        let tail = self.counters.ent_tail().load(Ordering::Relaxed);
        // SAFETY: `buffers` holds RING_SIZE buffers (see the constructors);
        // this slot's is free: its entry was consumed (waited for above).
        let buffer = unsafe { &mut *self.buffers.add(tail as usize % RING_SIZE) };
        buffer[..frame.len()].copy_from_slice(frame);
        // reason: at most RING_BUF_SIZE (2048), checked above.
        #[allow(clippy::cast_possible_truncation)]
        let len = frame.len() as u32;
        self.publish(RingEntry {
            operation: OP_NET_WRITE,
            handle,
            data: self.host_address(buffer.as_ptr()),
            len,
            id: 0,
            reserved: 0,
        });
        if !self.exit_service {
            if self.counters.needs_kick() {
                kick(0);
            }
        } else if self.counters.unserved() >= LAZY_WRITES {
            update_offered(Offered::wake_thread);
        }
        Ok(())
    }

    /// Receives one frame into `buffer` (synchronous: waits for the commit).
    pub fn read(&mut self, handle: u64, buffer: &mut [u8]) -> Result<Received, NetError> {
        if self.exit_service {
            if let Some(received) = take_posted(handle, buffer) {
                return Ok(received);
            }
        }
        let entry = RingEntry {
            operation: OP_NET_READ,
            handle: u32::try_from(handle).map_err(|_| NetError::Invalid)?,
            data: self.host_address(buffer.as_ptr()),
            // A larger buffer offers the host 4 GiB - 1 of it.
            len: u32::try_from(buffer.len()).unwrap_or(u32::MAX),
            id: 0,
            reserved: 0,
        };
        self.wait_for_slot();
        self.publish(entry);
        let head = self.counters.com_head().load(Ordering::Relaxed);
        let committed = || self.counters.com_tail().load(Ordering::Acquire) != head;
        if self.exit_service {
            if self.counters.needs_kick() {
                kick(DOORBELL_SERVE_NOW);
            } else {
                let mut stall = Stall::new(self);
                while !committed() {
                    if stall.stalled(self) {
                        kick(DOORBELL_SERVE_NOW);
                        break;
                    }
                    core::hint::spin_loop();
                }
            }
        } else if self.counters.needs_kick() {
            kick(0);
        }
        while !committed() {
            core::hint::spin_loop();
        }
        // SAFETY: the host published this commit before moving `com_tail`.
        let commit: RingCommit = unsafe {
            core::ptr::addr_of!((*self.counters.ring).commits[head as usize % RING_SIZE])
                .read_volatile()
        };
        self.counters
            .com_head()
            .store(head.wrapping_add(1), Ordering::Release);
        match commit.ret {
            result::OK => {
                frame_received();
                Ok(Received {
                    len: (commit.len as usize).min(buffer.len()),
                    drained: commit.flags & COMMIT_DRAINED != 0,
                })
            }
            result::AGAIN => Err(NetError::Again),
            result::EINVAL => Err(NetError::Invalid),
            _ => Err(NetError::Unspecified),
        }
    }
}

/// Rings the doorbell: a 32-bit OUT of `value` to port 0x600 (0 is ring
/// id 0, upstream's kick).
fn kick(value: u32) {
    #[cfg(target_os = "none")]
    // SAFETY: the doorbell port; the tender registered an ioeventfd for it
    // before offering the ring, and serves other values itself (§12.8).
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") RING_KICK_PIO_BASE, in("eax") value, options(nostack, preserves_flags));
    }
    #[cfg(not(target_os = "none"))]
    hvt_bindings::host::port_write(RING_KICK_PIO_BASE, value);
}

/// The guest end of the ring against the real host end: a mock tender
/// offers the ring and serves it with the net module's I/O thread (and at
/// the guest's exits, §12.8) over an in-memory wire; the client's buffers
/// live in the mock's guest memory. Each test runs as one of our guests
/// (§12.8 offered) and as an upstream guest.
#[cfg(all(test, not(target_os = "none")))]
mod tests {
    use super::*;

    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use std::vec::Vec;

    use tender_mock::{FrameBackend, MockConfig, MockTender, VolatileSlice};

    /// Where the client's transmit buffers and the read buffer lie, in the
    /// mock's guest memory (16 MiB).
    const TX_GPA: u64 = 0x20_0000;
    const RX_GPA: u64 = 0x60_0000;
    /// The largest frame of a 1500-byte MTU, Ethernet header included.
    const MAX_FRAME: usize = 1514;

    /// Both kinds of guest: ours (§12.8 offered) and upstream's.
    const GUESTS: [bool; 2] = [false, true];

    /// A client on a fresh mock installed on this thread, and the host
    /// address of the read buffer. `upstream`: the mock plays a guest
    /// without our note.
    fn client(upstream: bool) -> (RingClient, *mut u8) {
        let mock = MockTender::with_config(&MockConfig {
            net_devices: &["a", "b"],
            ring: true,
            upstream_guest: upstream,
            ..MockConfig::default()
        })
        .unwrap();
        let (base, _) = mock.ram().host_mapping();
        let gpa = mock.ring_gpa().expect("the ring is offered");
        let features = mock.boot_info().host_features;
        assert_eq!(
            features & HOST_FEATURE_RING_EXIT_SERVICE == 0,
            upstream,
            "§12.8 is offered to our guests only"
        );
        let offset = base as u64;
        tender_mock::install(mock);
        hvt_bindings::host::set_port_writer(tender_mock::port_write);
        hvt_bindings::host::set_transport(tender_mock::hypercall);
        let at = |gpa: u64| (offset + gpa) as *mut u8;
        // SAFETY: the ring and the buffers lie in the mock's memory, which
        // lives (installed on this thread) until the test uninstalls it.
        let client =
            unsafe { RingClient::in_memory(at(gpa).cast(), at(TX_GPA).cast(), offset, features) };
        (client, at(RX_GPA))
    }

    /// Makes the buffer of reads published before a yield `len` bytes at
    /// `at`, in the mock's memory (a guest's heap is guest memory).
    fn use_posted_buffer(at: *mut u8, len: usize) {
        POSTED.with(|p| {
            let mut p = p.borrow_mut();
            p.storage = Vec::new();
            p.buffer = at;
            p.len = len;
            p.needed = len;
            p.state = PostState::Idle;
        });
    }

    /// The read buffer at `rx`.
    fn rx_buffer(rx: *mut u8) -> &'static mut [u8] {
        // SAFETY: the read buffer lies in the installed mock's memory.
        unsafe { core::slice::from_raw_parts_mut(rx, RING_BUF_SIZE) }
    }

    fn frame(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + seed).to_le_bytes()[0]).collect()
    }

    /// The next frame at the wire end of device `handle`, if one is there.
    fn arrived(handle: usize) -> Option<Vec<u8>> {
        let mut buffer = vec![0u8; 65536];
        let n = tender_mock::with(|m| {
            let port = m.wire_port(handle).unwrap();
            port.receive(&mut VolatileSlice::from(&mut buffer[..])).ok()
        })?;
        buffer.truncate(n);
        Some(buffer)
    }

    /// The next frame at the wire end of device `handle`, waiting for the
    /// ring thread to deliver it.
    fn delivered(handle: usize) -> Vec<u8> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(frame) = arrived(handle) {
                return frame;
            }
            std::thread::yield_now();
        }
        let ring = OFFERED.with(Cell::get).map(|o| {
            (
                o.counters.ent_head().load(Ordering::SeqCst),
                o.counters.ent_tail().load(Ordering::SeqCst),
                o.counters.needs_kick(),
                o.kicked_at,
            )
        });
        panic!(
            "no frame arrived; (ent_head, ent_tail, needs_kick, kicked_at) {ring:?}; fatal {:?}",
            tender_mock::with(|m| m.fatal_errors())
        );
    }

    fn send_to(handle: usize, frame: &[u8]) {
        tender_mock::with(|m| {
            let port = m.wire_port(handle).unwrap();
            let mut copy = frame.to_vec();
            port.send(&VolatileSlice::from(&mut copy[..])).unwrap();
        });
    }

    /// Waits until the I/O thread sleeps on its doorbell.
    fn thread_asleep(client: &RingClient) {
        let start = Instant::now();
        while !client.counters.needs_kick() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the thread never slept"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn no_fatal_errors() {
        assert_eq!(
            tender_mock::with(|m| m.fatal_errors()),
            Vec::<std::string::String>::new()
        );
    }

    #[test]
    fn writes_of_every_size_wrap_the_ring_and_arrive_in_order() {
        for upstream in GUESTS {
            let (mut client, _) = client(upstream);
            // 1514 frames through 1024 slots: indices and buffers wrap, and
            // the client waits whenever the ring is full.
            for len in 1..=MAX_FRAME {
                client.write(1, &frame(len, len)).unwrap();
            }
            // Left for the next exit, if the thread slept: the executor's.
            flush_lazy_writes();
            for len in 1..=MAX_FRAME {
                assert_eq!(delivered(2), frame(len, len), "frame of {len} bytes");
            }
            no_fatal_errors();
            tender_mock::uninstall();
        }
    }

    #[test]
    fn reads_return_frames_of_every_size_then_again() {
        for upstream in GUESTS {
            let (mut client, rx) = client(upstream);
            let buffer = rx_buffer(rx);
            for len in (1..=MAX_FRAME).step_by(11).chain([MAX_FRAME]) {
                let sent = frame(len, 5);
                send_to(2, &sent);
                assert_eq!(client.read(1, buffer).map(|r| r.len), Ok(len));
                assert_eq!(&buffer[..len], &sent[..]);
            }
            assert_eq!(client.read(1, buffer), Err(NetError::Again));
            assert_eq!(client.read(7, buffer), Err(NetError::Invalid));
            // Reads and writes interleave over one ring.
            for round in 0..2_000 {
                client.write(1, &frame(60, round)).unwrap();
                send_to(2, &frame(42, round));
                assert_eq!(
                    client.read(1, buffer).map(|r| r.len),
                    Ok(42),
                    "round {round}"
                );
                assert_eq!(&buffer[..42], &frame(42, round)[..]);
            }
            flush_lazy_writes();
            for round in 0..2_000 {
                assert_eq!(delivered(2), frame(60, round));
            }
            no_fatal_errors();
            tender_mock::uninstall();
        }
    }

    #[test]
    fn a_read_says_whether_the_device_is_drained_only_to_our_guests() {
        for upstream in GUESTS {
            let (mut client, rx) = client(upstream);
            let buffer = rx_buffer(rx);
            // With the thread asleep, our guest's read is served in its own
            // exit, which looks at the device after the read.
            thread_asleep(&client);
            send_to(2, &frame(100, 1));
            send_to(2, &frame(101, 2));
            let first = client.read(1, buffer).unwrap();
            assert_eq!((first.len, first.drained), (100, false));
            thread_asleep(&client);
            let last = client.read(1, buffer).unwrap();
            assert_eq!(last.len, 101);
            assert_eq!(last.drained, !upstream, "upstream commits carry no flags");
            assert_eq!(client.read(1, buffer), Err(NetError::Again));
            tender_mock::uninstall();
        }
    }

    #[test]
    fn our_guests_writes_wait_for_their_next_exit_instead_of_a_kick() {
        let (mut client, _) = client(false);
        thread_asleep(&client);
        client.write(1, &frame(64, 1)).unwrap();
        client.write(1, &frame(65, 2)).unwrap();
        // Nobody was woken: the frames wait in the ring...
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(arrived(2), None);
        // ...until the guest's next exit, which sends them before it is
        // served (no waiting here: the exit itself delivered them).
        let _ = hvt_bindings::clock::wall_ns();
        assert_eq!(arrived(2), Some(frame(64, 1)));
        assert_eq!(arrived(2), Some(frame(65, 2)));
        // The executor, before a pass without a yield, wakes the thread.
        thread_asleep(&client);
        client.write(1, &frame(66, 3)).unwrap();
        flush_lazy_writes();
        assert_eq!(delivered(2), frame(66, 3));
        // A burst of writes wakes the thread without an exit.
        thread_asleep(&client);
        for round in 0..LAZY_WRITES as usize {
            client.write(1, &frame(70, round)).unwrap();
        }
        for round in 0..LAZY_WRITES as usize {
            assert_eq!(delivered(2), frame(70, round));
        }
        no_fatal_errors();
        tender_mock::uninstall();
    }

    #[test]
    fn ring_and_hypercall_writes_of_our_guests_keep_their_order() {
        let (mut client, _) = client(false);
        // Frames too large for a ring buffer go by NET_WRITE; the exit of
        // that hypercall first sends what the ring holds.
        let big = |seed| frame(RING_BUF_SIZE + 100, seed);
        for round in 0..50 {
            if round % 10 == 0 {
                thread_asleep(&client);
            }
            client.write(1, &frame(60, round)).unwrap();
            client.write(1, &big(round)).unwrap();
        }
        flush_lazy_writes();
        for round in 0..50 {
            assert_eq!(delivered(2), frame(60, round), "round {round}");
            assert_eq!(delivered(2), big(round), "round {round}");
        }
        no_fatal_errors();
        tender_mock::uninstall();
    }

    #[test]
    fn busy_polling_needs_frames_just_received_and_an_awake_thread() {
        for upstream in GUESTS {
            let (mut client, rx) = client(upstream);
            let buffer = rx_buffer(rx);
            uses_ring(1, MAX_FRAME);
            // A window no preemption of this test's thread can outlast, as
            // long as the thread is awake; the mock's TSC rate is nominal.
            update_offered(|o| {
                o.busy_poll_ticks = u64::MAX / 2;
                o.busy_poll_max_ticks = u64::MAX / 2;
            });
            let interest = 1 << 1 | 1 << 5;
            assert_eq!(busy_poll_set(interest), 0, "no frame received yet");
            // A thread that slept again before the check (this test's
            // thread preempted for 300 us) proves nothing: a few tries.
            let mut seen = Vec::new();
            for round in 0..10 {
                thread_asleep(&client);
                send_to(2, &frame(80, round));
                send_to(2, &frame(81, round));
                // Served in the guest's exit, which found another frame
                // waiting and woke the thread: a burst.
                assert_eq!(client.read(1, buffer).map(|r| r.len), Ok(80));
                let busy = busy_poll_set(interest);
                let awake = !client.counters.needs_kick();
                assert_eq!(client.read(1, buffer).map(|r| r.len), Ok(81));
                seen.push(busy);
                if awake {
                    break;
                }
            }
            let expected = if upstream { 0 } else { 1 << 1 };
            assert!(
                seen.iter().all(|&busy| busy == 0 || busy == expected),
                "only the ring's handle: {seen:?}"
            );
            assert_eq!(
                *seen.last().unwrap(),
                expected,
                "busy polling with §12.8 and an awake thread only: {seen:?}"
            );
            // Nothing more came: once the thread sleeps, the guest yields.
            thread_asleep(&client);
            assert_eq!(busy_poll_set(interest), 0);
            tender_mock::uninstall();
        }
    }

    #[test]
    fn a_read_published_before_a_yield_brings_the_frame_that_ends_it() {
        for upstream in GUESTS {
            let (mut client, rx) = client(upstream);
            let buffer = rx_buffer(rx);
            // SAFETY: RX_GPA + 64 KiB is in the mock's 16 MiB.
            use_posted_buffer(unsafe { rx.add(65536) }, MAX_FRAME);
            uses_ring(1, MAX_FRAME);
            let waiting_on = 1 << 1 | 1 << 5;
            thread_asleep(&client);
            post_read_before_yield(waiting_on);
            // A frame arrives while the guest waits; the yield's exit ends.
            send_to(2, &frame(77, 1));
            let _ = hvt_bindings::clock::walltime_hypercall_ns();
            let ready = after_yield(0);
            if upstream {
                assert_eq!(ready, 0, "nothing published without §12.8");
            } else {
                assert_eq!(ready, 1 << 1, "the published read brought a frame");
            }
            // Either way the device reads the frame; ours without an exit.
            let received = client.read(1, buffer).unwrap();
            assert_eq!(received.len, 77);
            assert_eq!(&buffer[..77], &frame(77, 1)[..]);
            // A published read that finds nothing is forgotten; reads go on.
            thread_asleep(&client);
            post_read_before_yield(waiting_on);
            let _ = hvt_bindings::clock::walltime_hypercall_ns();
            assert_eq!(after_yield(0), 0);
            send_to(2, &frame(78, 2));
            assert_eq!(client.read(1, buffer).map(|r| r.len), Ok(78));
            // Still pending when the device reads (no exit in between): the
            // read asks for both, in order.
            thread_asleep(&client);
            post_read_before_yield(waiting_on);
            send_to(2, &frame(79, 3));
            send_to(2, &frame(80, 4));
            assert_eq!(client.read(1, buffer).map(|r| r.len), Ok(79));
            assert_eq!(client.read(1, buffer).map(|r| r.len), Ok(80));
            assert_eq!(client.read(1, buffer), Err(NetError::Again));
            // Published, then the guest goes on without the yield: the read
            // holds nothing back and is served in order before what follows.
            thread_asleep(&client);
            post_read_before_yield(waiting_on);
            send_to(2, &frame(81, 5));
            client.write(1, &frame(90, 6)).unwrap();
            flush_lazy_writes();
            assert_eq!(delivered(2), frame(90, 6));
            if !upstream {
                assert_eq!(
                    frames_waiting(),
                    1 << 1,
                    "the published read took the frame"
                );
            }
            assert_eq!(client.read(1, buffer).map(|r| r.len), Ok(81));
            assert_eq!(&buffer[..81], &frame(81, 5)[..]);
            no_fatal_errors();
            tender_mock::uninstall();
        }
    }

    #[test]
    fn the_serve_now_doorbell_is_ours_only() {
        for upstream in GUESTS {
            let (_client, _) = client(upstream);
            let served =
                tender_mock::with(|m| m.port_write(RING_KICK_PIO_BASE, DOORBELL_SERVE_NOW));
            if upstream {
                assert_eq!(served.unwrap_err(), "Invalid guest port access: port=0x600");
            } else {
                assert!(served.is_ok());
            }
            tender_mock::uninstall();
        }
    }

    #[test]
    fn a_stalled_host_makes_a_full_ring_wait_and_loses_nothing() {
        for upstream in GUESTS {
            let (mut client, _) = client(upstream);
            let port: Arc<tender_mock::WirePort> =
                tender_mock::with(|m| m.shared_wire_port(1).unwrap());
            port.stall_sends(true);
            let release = {
                let port = port.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(200));
                    port.stall_sends(false);
                })
            };
            // More frames than the ring holds: the guest waits for room.
            let start = Instant::now();
            let count = RING_SIZE + 200;
            for round in 0..count {
                client.write(1, &frame(90, round)).unwrap();
            }
            assert!(
                start.elapsed() >= Duration::from_millis(150),
                "the writes did not wait for the stalled host"
            );
            release.join().unwrap();
            flush_lazy_writes();
            for round in 0..count {
                assert_eq!(delivered(2), frame(90, round), "frame {round}");
            }
            no_fatal_errors();
            tender_mock::uninstall();
        }
    }
}
