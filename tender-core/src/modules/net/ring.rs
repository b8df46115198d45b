//! The shared-memory network ring (§3.1, §6.7): frames pass between the
//! guest and the devices' back-ends without a return to the tender.
//!
//! The ring lives in the net module's reservation at the top of guest
//! memory. It is offered only when the doorbell can be served in the host
//! kernel (an ioeventfd on port 0x600).
//!
//! Two consumers serve it, one at a time (the `consumer` lock):
//! * an I/O thread, which sleeps on the doorbell and, once woken, spins
//!   while there is work and for `IDLE_SPIN` after it, then sleeps again
//!   (it sets `needs_kick` first, so a guest rings only a sleeping thread);
//! * the vCPU thread, at each of the guest's exits (§12.8): what the guest
//!   queued before a yield goes out then, with no thread to wake. Guests
//!   that carry our note learn it from [`HOST_FEATURE_RING_EXIT_SERVICE`]:
//!   they leave writes for their next exit instead of ringing, and ask for a
//!   read with [`DOORBELL_SERVE_NOW`], which reaches the tender as a port
//!   exit and is served before the guest resumes. That costs one exit, as
//!   the NET_READ hypercall does, and no thread wake-up, which on a busy
//!   host can take a whole time slice. When such a read finds more frames
//!   waiting, or an exit finds a batch of writes, the vCPU thread wakes the
//!   I/O thread for the burst.
//!
//! Both reach guest memory through their own [`GuestRam`] handle: atomic
//! loads and stores for the indices, volatile copies for entries and
//! commits, and checked slices for the frames, as the hypercalls do.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hvt_abi::boot::{BootInfo, HOST_FEATURE_RING_EXIT_SERVICE, HOST_FEATURE_RING_IO};
use hvt_abi::hypercall::{result, RING_KICK_PIO_BASE};
use hvt_abi::ring::{
    Ring, RingCommit, RingEntry, COMMIT_DRAINED, DOORBELL_SERVE_NOW, ENTRY_AFTER_EXIT, OP_NET_READ,
    OP_NET_WRITE, RING_SIZE,
};
use vm_memory::{Bytes, VolatileSlice};
use vmm_sys_util::eventfd::{EventFd, EFD_CLOEXEC};

use super::Backends;
use crate::devices::frame::{is_peer_gone, FrameBackend, Readiness};
use crate::error::os_error_text;
use crate::error::{Error, FatalHandler, Result};
use crate::memory::{GuestRam, InvalidAccess};
use crate::module::{Reservation, SetupContext};
#[cfg(debug_assertions)]
use crate::sandbox::selftest_forbidden_call;
use crate::sandbox::{Allowlist, SeccompMode};
use crate::stats::Counter;
use crate::vm::Extension;

/// Size of the ring area at the top of guest memory.
pub const RING_AREA: u64 = 2 << 20;

/// How long the I/O thread keeps looking for work after its last entry
/// before it sleeps: longer than the guest's trip through a yield between
/// two batches of a burst (an exit, 70-150 us on a PVM host), so that a
/// burst keeps its thread. Light traffic never wakes the thread (the vCPU
/// serves it at exits), so only bursts pay for this spin.
const IDLE_SPIN: Duration = Duration::from_micros(300);

/// Writes found at one exit from which the vCPU thread wakes the I/O
/// thread for what follows (a bulk send).
const WRITE_BURST: u32 = 16;

/// In a batch of writes, `ent_head` moves every this many.
const PROGRESS_EVERY: u32 = 16;

const ENT_HEAD: usize = std::mem::offset_of!(Ring, ent_head);
const ENT_TAIL: usize = std::mem::offset_of!(Ring, ent_tail);
const COM_TAIL: usize = std::mem::offset_of!(Ring, com_tail);
const NEEDS_KICK: usize = std::mem::offset_of!(Ring, needs_kick);
const ENTRIES: usize = std::mem::offset_of!(Ring, entries);
const COMMITS: usize = std::mem::offset_of!(Ring, commits);

/// How much work each side of the ring did, for `TENDER_STATS` (§12.8).
#[derive(Debug, Default)]
pub struct RingCounters {
    /// Entries the I/O thread served.
    pub thread_entries: Counter,
    /// Entries the vCPU thread served at exits.
    pub exit_entries: Counter,
    /// Doorbells the I/O thread woke up to (the guest's in-kernel kicks and
    /// the vCPU thread's wake-ups).
    pub doorbells: Counter,
    /// Wake-ups of the I/O thread by the vCPU thread.
    pub wakeups: Counter,
}

/// What both consumers share.
struct Shared {
    ram: GuestRam,
    gpa: u64,
    backends: Backends,
    stop: AtomicBool,
    doorbell: EventFd,
    /// Held while a consumer serves entries: one at a time, in order.
    consumer: Mutex<()>,
    counters: RingCounters,
    /// The guest carries our note: §12.8 is offered.
    exit_service: bool,
}

/// The ring, served by its I/O thread and by the vCPU thread at exits.
pub struct RingService {
    shared: Arc<Shared>,
    /// What the thread may call (its seccomp filter).
    allowlist: Allowlist,
    thread: Option<JoinHandle<()>>,
}

/// Offers the ring in `reservation` over `backends`, or `None` when the
/// hypervisor cannot serve the doorbell in its kernel or the host cannot
/// set the ring up: the guest then uses the hypercalls, as upstream falls
/// back to them.
pub fn offer(
    ctx: &mut SetupContext<'_>,
    reservation: Reservation,
    backends: &Backends,
) -> Option<RingService> {
    if !ctx.vm.has_extension(Extension::IoEventFd) {
        return None;
    }
    // The image may have put a segment over the ring area: make it ours
    // again, read/write and zeroed, before the thread looks at it (§6.7).
    // Only the ring itself is zeroed: the whole area would cost page faults.
    let end = reservation.gpa + reservation.size;
    ctx.ram
        .protect(reservation.gpa, end, libc::PROT_READ | libc::PROT_WRITE)
        .ok()?;
    ctx.ram
        .write_bytes(reservation.gpa, &vec![0u8; std::mem::size_of::<Ring>()])
        .ok()?;
    let doorbell = EventFd::new(EFD_CLOEXEC).ok()?;
    // A 32-bit data match on ring id 0 makes the registration 4 bytes long:
    // other access sizes still reach the tender, which refuses them, and
    // DOORBELL_SERVE_NOW reaches it as a port exit (§6.7, §12.8).
    ctx.vm
        .register_ioevent(&doorbell, RING_KICK_PIO_BASE, 0)
        .ok()?;
    RingService::start(
        ctx.ram.clone(),
        reservation.gpa,
        backends.clone(),
        doorbell,
        ctx.fatal.clone(),
        ctx.seccomp,
        ctx.extensions,
    )
    .ok()
}

/// What the I/O thread may call: reads of the doorbell, what the
/// back-ends call to move frames, the monotonic clock (its idle spin), and
/// what a Rust thread does when it ends (join, its signal stack, its exit).
fn thread_allowlist(doorbell: RawFd, backends: &Backends) -> Allowlist {
    let mut list = Allowlist::new("net-ring");
    for backend in backends.iter().flatten() {
        backend.allow_calls(&mut list);
    }
    list.allow_fds(libc::SYS_read, &[doorbell])
        .allow_values(
            libc::SYS_clock_gettime,
            &[u64::from(libc::CLOCK_MONOTONIC.unsigned_abs())],
        )
        .allow(libc::SYS_futex)
        .allow(libc::SYS_sigaltstack)
        .allow(libc::SYS_munmap)
        .allow_third_arg(
            libc::SYS_madvise,
            &[u64::from(libc::MADV_DONTNEED.unsigned_abs())],
        )
        .allow(libc::SYS_rt_sigprocmask)
        .allow(libc::SYS_exit);
    list
}

impl RingService {
    /// Starts serving the ring at `gpa` (in a reserved area of `ram`).
    /// `backends[handle]` is the back-end of each network handle; `doorbell`
    /// is the eventfd registered for port 0x600; `fatal` ends the tender
    /// when the guest breaks the ring or a device fails; `exit_service`:
    /// the guest carries our note, §12.8 is offered.
    pub fn start(
        ram: GuestRam,
        gpa: u64,
        backends: Backends,
        doorbell: EventFd,
        fatal: FatalHandler,
        seccomp: SeccompMode,
        exit_service: bool,
    ) -> Result<RingService> {
        // Fail here, not in the thread, if the area is not reserved memory.
        ram.reserved_slice(gpa, std::mem::size_of::<Ring>() as u64)?;
        let allowlist = thread_allowlist(doorbell.as_raw_fd(), &backends);
        let filter = allowlist.compile(seccomp)?;
        let shared = Arc::new(Shared {
            ram,
            gpa,
            backends,
            stop: AtomicBool::new(false),
            doorbell,
            consumer: Mutex::new(()),
            counters: RingCounters::default(),
            exit_service,
        });
        let io = shared.clone();
        let thread = std::thread::Builder::new()
            .name("net-ring".into())
            .spawn(move || {
                // Confined before it looks at anything the guest wrote.
                if let Err(error) = filter.apply() {
                    fatal(error);
                    return;
                }
                #[cfg(debug_assertions)]
                selftest_forbidden_call("net-ring");
                if let Err(error) = io.serve_in_thread() {
                    fatal(error);
                }
            })
            .map_err(|e| Error::Device(format!("Could not start the network ring thread: {e}")))?;
        Ok(RingService {
            shared,
            allowlist,
            thread: Some(thread),
        })
    }

    /// The doorbell's descriptor (the vCPU thread writes it to wake the
    /// I/O thread).
    pub fn doorbell_fd(&self) -> RawFd {
        self.shared.doorbell.as_raw_fd()
    }

    /// What the thread may call.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// What each side served so far.
    pub fn counters(&self) -> &RingCounters {
        &self.shared.counters
    }

    /// Whether §12.8 is offered to this guest.
    pub fn exit_service(&self) -> bool {
        self.shared.exit_service
    }

    /// Tells the guest where the ring is (§4.1), and §12.8 if offered.
    pub fn describe(&self, info: &mut BootInfo) {
        info.host_features |= HOST_FEATURE_RING_IO;
        if self.exit_service() {
            info.host_features |= HOST_FEATURE_RING_EXIT_SERVICE;
        }
        info.net_ring = self.shared.gpa;
    }

    /// Rings the doorbell, as the guest's OUT to port 0x600 does.
    pub fn kick(&self) {
        let _ = self.shared.doorbell.write(1);
    }

    /// At a guest exit, on the vCPU thread, before the exit is served:
    /// serves what the guest queued (writes before a yield; a read, when it
    /// rang [`DOORBELL_SERVE_NOW`]), up to a read marked
    /// [`ENTRY_AFTER_EXIT`].
    ///
    /// Skipped while the I/O thread holds the ring: it is serving these
    /// entries, and an exit should not wait for its batch.
    pub fn serve_at_exit(&self) -> Result<()> {
        let shared = &*self.shared;
        let ring = shared.view()?;
        if ring.idle() {
            return Ok(());
        }
        let served = {
            let Some(_consumer) = shared.try_lock_consumer() else {
                return Ok(());
            };
            shared.serve_pending(&ring, shared.exit_service, true)?
        };
        self.after_vcpu_pass(&ring, &served);
        Ok(())
    }

    /// After an exit was served, before the guest resumes: serves a read
    /// marked [`ENTRY_AFTER_EXIT`] that waited for it (§12.8).
    pub fn serve_at_resume(&self) -> Result<()> {
        if !self.exit_service() {
            return Ok(());
        }
        let shared = &*self.shared;
        let ring = shared.view()?;
        if !shared.waits_for_exit(&ring, ring.load(ENT_HEAD, Ordering::Acquire)) {
            return Ok(());
        }
        let served = {
            let _consumer = shared.lock_consumer();
            shared.serve_pending(&ring, true, false)?
        };
        self.after_vcpu_pass(&ring, &served);
        Ok(())
    }

    /// Counts a pass of the vCPU thread and wakes the I/O thread for a
    /// burst.
    fn after_vcpu_pass(&self, ring: &RingView<'_>, served: &Served) {
        let shared = &*self.shared;
        shared.counters.exit_entries.add(u64::from(served.entries));
        // A burst: let the thread take what follows, without exits (not
        // when a read waits for the guest's exit: the thread cannot pass
        // it).
        let burst = (served.frames_left || served.writes >= WRITE_BURST) && !served.deferred;
        if burst && ring.load(NEEDS_KICK, Ordering::Acquire) != 0 {
            // Said before the thread runs: the guest waits for an awake
            // thread instead of asking this one for each frame while the
            // thread wakes up. The thread sets it again before it sleeps,
            // and the doorbell written after it cannot be missed.
            ring.store(NEEDS_KICK, 0, Ordering::SeqCst);
            shared.counters.wakeups.add(1);
            self.kick();
        }
    }

    /// Whether `port`/`size`/`value` is the doorbell of §12.8.
    pub fn is_serve_now(&self, port: u16, size: u8, value: u32) -> bool {
        self.exit_service()
            && port == RING_KICK_PIO_BASE
            && size == 4
            && value == DOORBELL_SERVE_NOW
    }

    /// Stops the thread and waits for it (the HALT hook of upstream).
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.shared.stop.store(true, Ordering::SeqCst);
            self.kick();
            let _ = thread.join();
        }
    }
}

impl Drop for RingService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The ring's counters and slots, in one consumer's view of guest memory.
struct RingView<'a>(VolatileSlice<'a>);

impl RingView<'_> {
    fn load(&self, offset: usize, order: Ordering) -> u32 {
        // The offsets are those of `struct hvt_ring`, inside the slice, and
        // naturally aligned: these accesses cannot fail.
        self.0.load(offset, order).unwrap_or_default()
    }

    fn store(&self, offset: usize, value: u32, order: Ordering) {
        let _ = self.0.store(value, offset, order);
    }

    fn entry(&self, slot: usize) -> RingEntry {
        let offset = ENTRIES + slot * std::mem::size_of::<RingEntry>();
        self.0.read_obj(offset).unwrap_or_default()
    }

    fn set_commit(&self, slot: usize, commit: RingCommit) {
        let offset = COMMITS + slot * std::mem::size_of::<RingCommit>();
        let _ = self.0.write_obj(commit, offset);
    }

    fn idle(&self) -> bool {
        self.load(ENT_HEAD, Ordering::Acquire) == self.load(ENT_TAIL, Ordering::Acquire)
    }
}

/// What one consumer's pass over the ring did.
#[derive(Default)]
struct Served {
    entries: u32,
    writes: u32,
    /// A read was served and its device still had frames waiting.
    frames_left: bool,
    /// The pass stopped at a read that waits for the guest's exit.
    deferred: bool,
}

/// A ring entry named guest memory it may not (§5).
fn ring_access(access: InvalidAccess) -> Error {
    Error::GuestAccess {
        by: "net ring".into(),
        access,
    }
}

/// Whether `device` has a frame waiting (a poll that does not wait).
fn frame_waiting(device: &dyn FrameBackend) -> bool {
    match device.readiness() {
        Readiness::Queue { waiting, .. } => waiting > 0,
        Readiness::Fd(fd) => {
            let mut pollfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // The system call itself, not libc's wrapper, which may use
            // ppoll: the vCPU thread's filter allows poll with a zero
            // timeout only.
            // SAFETY: one valid pollfd, a zero timeout: nothing is kept.
            let ready = unsafe { libc::syscall(libc::SYS_poll, &mut pollfd, 1, 0) };
            ready > 0 && pollfd.revents & libc::POLLIN != 0
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn view(&self) -> Result<RingView<'_>> {
        Ok(RingView(self.ram.reserved_slice(
            self.gpa,
            std::mem::size_of::<Ring>() as u64,
        )?))
    }

    fn lock_consumer(&self) -> std::sync::MutexGuard<'_, ()> {
        // The lock guards no data: a consumer that panicked left the ring
        // as consistent as the indices say.
        self.consumer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The consumer lock if nobody holds it.
    fn try_lock_consumer(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        match self.consumer.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The I/O thread: serves the ring until stopped; an error is fatal to
    /// the tender.
    fn serve_in_thread(&self) -> Result<()> {
        let ring = self.view()?;
        loop {
            // Entries may be left when stopped: another consumer failed on
            // one, or the guest halted with entries published.
            if self.stopping() {
                return Ok(());
            }
            // Wait for entries: spin while recently busy, then sleep on the
            // doorbell (after saying so in `needs_kick`).
            let mut last_work = Instant::now();
            let mut spins = 0u32;
            while self.nothing_to_serve(&ring) {
                if self.stopping() {
                    return Ok(());
                }
                spins = spins.wrapping_add(1);
                if !spins.is_multiple_of(64) || last_work.elapsed() < IDLE_SPIN {
                    std::hint::spin_loop();
                    continue;
                }
                ring.store(NEEDS_KICK, 1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if self.nothing_to_serve(&ring) && !self.stopping() {
                    if let Ok(kicks) = self.doorbell.read() {
                        self.counters.doorbells.add(kicks);
                    }
                }
                ring.store(NEEDS_KICK, 0, Ordering::SeqCst);
                last_work = Instant::now();
            }
            let served = {
                let _consumer = self.lock_consumer();
                self.serve_pending(&ring, false, true)?
            };
            self.counters.thread_entries.add(u64::from(served.entries));
        }
    }

    /// Whether the entry at `head` is a read the guest asked to be served
    /// after its next exit (§12.8), and the last one published: the vCPU
    /// thread serves it once that exit is served. An entry published after
    /// it means the guest went on without that exit: it is served then, in
    /// order, like any read.
    fn waits_for_exit(&self, ring: &RingView<'_>, head: u32) -> bool {
        if !self.exit_service || ring.load(ENT_TAIL, Ordering::Acquire) != head.wrapping_add(1) {
            return false;
        }
        let entry = ring.entry(head as usize % RING_SIZE);
        entry.operation == OP_NET_READ && entry.reserved & ENTRY_AFTER_EXIT != 0
    }

    /// No entry for the I/O thread: none, or the next one waits for the
    /// guest's exit.
    fn nothing_to_serve(&self, ring: &RingView<'_>) -> bool {
        ring.idle() || self.waits_for_exit(ring, ring.load(ENT_HEAD, Ordering::Relaxed))
    }

    /// Serves the entries published so far, in order. `hint`: read commits
    /// say whether the device is drained (§12.8). `defer`: stop at a read
    /// marked [`ENTRY_AFTER_EXIT`]. The caller holds the consumer lock.
    fn serve_pending(&self, ring: &RingView<'_>, hint: bool, defer: bool) -> Result<Served> {
        let mut served = Served::default();
        let tail = ring.load(ENT_TAIL, Ordering::Acquire);
        let mut head = ring.load(ENT_HEAD, Ordering::Relaxed);
        // A guest never has more entries outstanding than the ring holds:
        // anything else is a corrupt ring, not 2^32 entries of work.
        if tail.wrapping_sub(head) as usize > RING_SIZE {
            return Err(Error::Guest(format!(
                "net ring: invalid indices ent_head={head}, ent_tail={tail}"
            )));
        }
        while head != tail {
            if self.stopping() {
                break;
            }
            if defer && self.waits_for_exit(ring, head) {
                served.deferred = true;
                break;
            }
            // The slot is the host's until `ent_head` moves past it.
            let entry = ring.entry(head as usize % RING_SIZE);
            match entry.operation {
                OP_NET_WRITE => {
                    self.write(&entry)?;
                    served.writes += 1;
                    // Progress the guest can see during a long batch: a
                    // guest waiting behind it knows the host is not stalled.
                    if served.writes.is_multiple_of(PROGRESS_EVERY) {
                        ring.store(ENT_HEAD, head.wrapping_add(1), Ordering::Release);
                    }
                }
                OP_NET_READ => {
                    // Reads are synchronous for the guest: publish the
                    // write progress first, then the commit.
                    ring.store(ENT_HEAD, head, Ordering::Release);
                    let (mut commit, device) = self.read(&entry)?;
                    if commit.ret == result::OK {
                        if let Some(device) = device.filter(|_| hint) {
                            if frame_waiting(device) {
                                served.frames_left = true;
                            } else {
                                commit.flags |= COMMIT_DRAINED;
                            }
                        }
                    }
                    let com_tail = ring.load(COM_TAIL, Ordering::Relaxed);
                    ring.set_commit(com_tail as usize % RING_SIZE, commit);
                    ring.store(COM_TAIL, com_tail.wrapping_add(1), Ordering::Release);
                }
                // Unknown operations are skipped.
                _ => {}
            }
            head = head.wrapping_add(1);
            served.entries += 1;
        }
        // One release per batch of entries.
        ring.store(ENT_HEAD, head, Ordering::Release);
        Ok(served)
    }

    fn backend(&self, handle: u32) -> Option<&dyn FrameBackend> {
        self.backends.get(handle as usize)?.as_deref()
    }

    /// OP_NET_WRITE: sends the frame; a write to an invalid handle is
    /// dropped silently.
    fn write(&self, entry: &RingEntry) -> Result<()> {
        let Some(device) = self.backend(entry.handle) else {
            return Ok(());
        };
        let frame = self
            .ram
            .slice(entry.data, u64::from(entry.len))
            .map_err(ring_access)?;
        match device.send(&frame) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(n) => Err(Error::Device(format!(
                "Fatal error when writing to {} (ring): wrote only {n} out of {} bytes",
                device.name(),
                entry.len
            ))),
            Err(e) => Err(Error::Device(format!(
                "Fatal error when writing to {} (ring): {}",
                device.name(),
                os_error_text(&e)
            ))),
        }
    }

    /// OP_NET_READ: receives one frame into the guest's buffer; the commit,
    /// and the device it read if there is one.
    fn read(&self, entry: &RingEntry) -> Result<(RingCommit, Option<&dyn FrameBackend>)> {
        let device = self.backend(entry.handle);
        let (ret, len) = match device {
            None => (result::EINVAL, 0),
            Some(device) => {
                let mut buffer = self
                    .ram
                    .slice_mut(entry.data, u64::from(entry.len))
                    .map_err(ring_access)?;
                match device.receive(&mut buffer) {
                    // At most the buffer's length, which is a u32.
                    Ok(n) if n > 0 => (result::OK, u32::try_from(n).unwrap_or(entry.len)),
                    Ok(_) => (result::AGAIN, 0),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        (result::AGAIN, 0)
                    }
                    // No frame will ever come: as a failed write, the end.
                    Err(e) if is_peer_gone(&e) => {
                        return Err(Error::Device(format!(
                            "Fatal error when reading from {} (ring): {}",
                            device.name(),
                            os_error_text(&e)
                        )))
                    }
                    Err(_) => (result::EINVAL, 0),
                }
            }
        };
        let commit = RingCommit {
            id: entry.id,
            ret,
            len,
            flags: 0,
        };
        Ok((commit, device))
    }
}
