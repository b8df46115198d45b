//! The shared-memory network ring (§3.1, §6.7): an I/O thread that takes
//! the guest's entries, sends and receives frames through the devices'
//! back-ends, and publishes commits, so that frames pass without a VM exit.
//!
//! The ring lives in the net module's reservation at the top of guest
//! memory. It is offered only when the doorbell can be served in the host
//! kernel (an ioeventfd on port 0x600): the guest rings it only when the
//! thread has said it is going to sleep, and that costs no exit either.
//!
//! The thread reaches guest memory through its own [`GuestRam`] handle:
//! atomic loads and stores for the indices, volatile copies for entries and
//! commits, and checked slices for the frames, as the hypercalls do.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use hvt_abi::boot::{BootInfo, HOST_FEATURE_RING_IO};
use hvt_abi::hypercall::{result, RING_KICK_PIO_BASE};
use hvt_abi::ring::{Ring, RingCommit, RingEntry, OP_NET_READ, OP_NET_WRITE, RING_SIZE};
use vm_memory::{Bytes, VolatileSlice};
use vmm_sys_util::eventfd::{EventFd, EFD_CLOEXEC};

use super::Backends;
use crate::devices::frame::Readiness;
use crate::devices::tap::error_text;
use crate::error::{Error, FatalHandler, Result};
use crate::memory::{GuestRam, InvalidAccess};
use crate::module::{Reservation, SetupContext};
#[cfg(debug_assertions)]
use crate::sandbox::selftest_forbidden_call;
use crate::sandbox::{Allowlist, SeccompMode};
use crate::vm::Extension;

/// Size of the ring area at the top of guest memory.
pub const RING_AREA: u64 = 2 << 20;

/// Iterations the thread spins looking for work before it sleeps.
const SPIN_BEFORE_SLEEP: u32 = 4096;

const ENT_HEAD: usize = std::mem::offset_of!(Ring, ent_head);
const ENT_TAIL: usize = std::mem::offset_of!(Ring, ent_tail);
const COM_TAIL: usize = std::mem::offset_of!(Ring, com_tail);
const NEEDS_KICK: usize = std::mem::offset_of!(Ring, needs_kick);
const ENTRIES: usize = std::mem::offset_of!(Ring, entries);
const COMMITS: usize = std::mem::offset_of!(Ring, commits);

/// The running I/O thread.
pub struct RingService {
    gpa: u64,
    /// What the thread may call (its seccomp filter).
    allowlist: Allowlist,
    stop: Arc<AtomicBool>,
    doorbell: Arc<EventFd>,
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
    // other access sizes still reach the tender, which refuses them (§6.7).
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
    )
    .ok()
}

/// What the I/O thread may call: reads of the doorbell and the taps,
/// writes of the taps, and what a Rust thread does when it ends (join,
/// its signal stack, its exit).
fn thread_allowlist(doorbell: RawFd, backends: &Backends) -> Allowlist {
    let taps: Vec<RawFd> = backends
        .iter()
        .flatten()
        .filter_map(|b| match b.readiness() {
            Readiness::Fd(fd) => Some(fd),
            Readiness::Queue { .. } => None,
        })
        .collect();
    let mut list = Allowlist::new("net-ring");
    list.allow_fds(libc::SYS_read, &[doorbell])
        .allow_fds(libc::SYS_read, &taps)
        .allow_fds(libc::SYS_write, &taps)
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
    /// when the guest breaks the ring or a device fails.
    pub fn start(
        ram: GuestRam,
        gpa: u64,
        backends: Backends,
        doorbell: EventFd,
        fatal: FatalHandler,
        seccomp: SeccompMode,
    ) -> Result<RingService> {
        // Fail here, not in the thread, if the area is not reserved memory.
        ram.reserved_slice(gpa, std::mem::size_of::<Ring>() as u64)?;
        let allowlist = thread_allowlist(doorbell.as_raw_fd(), &backends);
        let filter = allowlist.compile(seccomp)?;
        let stop = Arc::new(AtomicBool::new(false));
        let doorbell = Arc::new(doorbell);
        let (thread_stop, thread_doorbell) = (stop.clone(), doorbell.clone());
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
                let io = RingIo {
                    ram: &ram,
                    backends: &backends,
                    stop: &thread_stop,
                    doorbell: &thread_doorbell,
                };
                if let Err(error) = io.serve(gpa) {
                    fatal(error);
                }
            })
            .map_err(|e| Error::Device(format!("Could not start the network ring thread: {e}")))?;
        Ok(RingService {
            gpa,
            allowlist,
            stop,
            doorbell,
            thread: Some(thread),
        })
    }

    /// The doorbell's descriptor (the halt hook writes it to wake the
    /// thread).
    pub fn doorbell_fd(&self) -> RawFd {
        self.doorbell.as_raw_fd()
    }

    /// What the thread may call.
    pub fn allowlist(&self) -> &Allowlist {
        &self.allowlist
    }

    /// Tells the guest where the ring is (§4.1).
    pub fn describe(&self, info: &mut BootInfo) {
        info.host_features |= HOST_FEATURE_RING_IO;
        info.net_ring = self.gpa;
    }

    /// Rings the doorbell, as the guest's OUT to port 0x600 does.
    pub fn kick(&self) {
        let _ = self.doorbell.write(1);
    }

    /// Stops the thread and waits for it (the HALT hook of upstream).
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
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

/// What the I/O thread works with.
struct RingIo<'a> {
    ram: &'a GuestRam,
    backends: &'a Backends,
    stop: &'a AtomicBool,
    doorbell: &'a EventFd,
}

/// The ring's counters and slots, in the thread's view of guest memory.
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
        self.load(ENT_HEAD, Ordering::Relaxed) == self.load(ENT_TAIL, Ordering::Acquire)
    }
}

/// A ring entry named guest memory it may not (§5).
fn ring_access(access: InvalidAccess) -> Error {
    Error::GuestAccess {
        by: "net ring".into(),
        access,
    }
}

impl RingIo<'_> {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Serves the ring until stopped; an error is fatal to the tender.
    fn serve(&self, gpa: u64) -> Result<()> {
        let ring = RingView(
            self.ram
                .reserved_slice(gpa, std::mem::size_of::<Ring>() as u64)?,
        );
        loop {
            // Wait for entries: spin a little, then sleep on the doorbell.
            let mut spins = 0;
            while ring.idle() {
                if self.stopping() {
                    return Ok(());
                }
                if spins < SPIN_BEFORE_SLEEP {
                    spins += 1;
                    std::hint::spin_loop();
                    continue;
                }
                ring.store(NEEDS_KICK, 1, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if ring.idle() && !self.stopping() {
                    let _ = self.doorbell.read();
                }
                ring.store(NEEDS_KICK, 0, Ordering::SeqCst);
                spins = 0;
            }
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
                    return Ok(());
                }
                // The slot is the host's until `ent_head` moves past it.
                let entry = ring.entry(head as usize % RING_SIZE);
                match entry.operation {
                    OP_NET_WRITE => self.write(&entry)?,
                    OP_NET_READ => {
                        // Reads are synchronous for the guest: publish the
                        // write progress first, then the commit.
                        ring.store(ENT_HEAD, head, Ordering::Release);
                        let commit = self.read(&entry)?;
                        let com_tail = ring.load(COM_TAIL, Ordering::Relaxed);
                        ring.set_commit(com_tail as usize % RING_SIZE, commit);
                        ring.store(COM_TAIL, com_tail.wrapping_add(1), Ordering::Release);
                    }
                    // Unknown operations are skipped.
                    _ => {}
                }
                head = head.wrapping_add(1);
            }
            // One release per batch of entries.
            ring.store(ENT_HEAD, head, Ordering::Release);
        }
    }

    fn backend(&self, handle: u32) -> Option<&dyn crate::devices::frame::FrameBackend> {
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
                "Fatal error when writing to the network (ring): wrote only {n} out of {} bytes",
                entry.len
            ))),
            Err(e) => Err(Error::Device(format!(
                "Fatal error when writing to the network (ring): {}",
                error_text(&e)
            ))),
        }
    }

    /// OP_NET_READ: receives one frame into the guest's buffer.
    fn read(&self, entry: &RingEntry) -> Result<RingCommit> {
        let (ret, len) = match self.backend(entry.handle) {
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
                    Err(_) => (result::EINVAL, 0),
                }
            }
        };
        Ok(RingCommit {
            id: entry.id,
            ret,
            len,
            reserved: 0,
        })
    }
}
