//! The host side of the shared-memory network ring (§6.7): an I/O thread
//! that takes the guest's entries, writes and reads the taps, and publishes
//! commits. The guest rings the doorbell (port 0x600, an ioeventfd served in
//! the kernel, no exit to this process) only when the thread has said it is
//! going to sleep.

use std::os::fd::RawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use hvt_abi::hypercall::result;
use hvt_abi::ring::{Ring, RingCommit, RingEntry, OP_NET_READ, OP_NET_WRITE, RING_SIZE};
use vmm_sys_util::eventfd::EventFd;

use crate::error::{Error, Result};
use crate::vstate::memory::{check_protection, check_range, Protected};

/// Iterations the thread spins looking for work before it sleeps.
const SPIN_BEFORE_SLEEP: u32 = 4096;

/// Size of the ring area at the top of guest memory.
pub const RING_AREA: u64 = 2 << 20;

/// Where the thread finds guest memory. Raw addresses: the mapping outlives
/// the thread (the thread is joined before the memory is unmapped).
struct GuestView {
    host_base: usize,
    /// Guest-visible size: buffers must lie below it (§5).
    visible_size: u64,
    /// Ranges the host mapping does not let the thread read or write.
    protected: Vec<Protected>,
    ring: usize,
}

// SAFETY: the addresses point into guest memory, which stays mapped until
// the thread is joined (RingService::stop, also run on drop).
unsafe impl Send for GuestView {}

/// The running I/O thread.
pub struct RingService {
    stop: Arc<AtomicBool>,
    doorbell: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl RingService {
    /// Starts serving the ring at `ring_gpa`. `taps[handle]` is the tap of
    /// each network handle. `doorbell` is the eventfd registered for port
    /// 0x600.
    pub fn start(
        host_base: *mut u8,
        visible_size: u64,
        protected: Vec<Protected>,
        ring_gpa: u64,
        taps: Vec<Option<RawFd>>,
        doorbell: EventFd,
    ) -> Result<RingService> {
        let view = GuestView {
            host_base: host_base as usize,
            visible_size,
            protected,
            ring: host_base as usize + ring_gpa as usize,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let doorbell = Arc::new(doorbell);
        let (thread_stop, thread_doorbell) = (stop.clone(), doorbell.clone());
        let thread = std::thread::Builder::new()
            .name("net-ring".into())
            .spawn(move || serve(view, &taps, &thread_stop, &thread_doorbell))
            .map_err(|e| Error::new(format!("Could not start the network ring thread: {e}")))?;
        Ok(RingService {
            stop,
            doorbell,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it (the HALT hook of upstream).
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = self.doorbell.write(1);
            let _ = thread.join();
        }
    }
}

impl Drop for RingService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ends the tender from the I/O thread, as upstream's `errx` does.
fn fatal(message: String) -> ! {
    eprintln!("tender: {message}");
    std::process::exit(crate::error::TENDER_ERROR_EXIT)
}

fn counter(view: &GuestView, offset: usize) -> &AtomicU32 {
    // SAFETY: `offset` names one of the ring's u32 counters, naturally
    // aligned, inside guest memory that stays mapped (see GuestView).
    unsafe { AtomicU32::from_ptr((view.ring + offset) as *mut u32) }
}

const ENT_HEAD: usize = std::mem::offset_of!(Ring, ent_head);
const ENT_TAIL: usize = std::mem::offset_of!(Ring, ent_tail);
const COM_TAIL: usize = std::mem::offset_of!(Ring, com_tail);
const NEEDS_KICK: usize = std::mem::offset_of!(Ring, needs_kick);
const ENTRIES: usize = std::mem::offset_of!(Ring, entries);
const COMMITS: usize = std::mem::offset_of!(Ring, commits);

/// A validated host pointer to guest buffer `[gpa, gpa + len)`, which the
/// thread reads (or writes, if `write`).
fn buffer(view: &GuestView, gpa: u64, len: u32, write: bool) -> *mut u8 {
    let checked = check_range(gpa, u64::from(len), view.visible_size)
        .and_then(|()| check_protection(&view.protected, gpa, u64::from(len), write));
    if let Err(access) = checked {
        fatal(format!("net ring: {access}"));
    }
    (view.host_base + gpa as usize) as *mut u8
}

fn serve(view: GuestView, taps: &[Option<RawFd>], stop: &AtomicBool, doorbell: &EventFd) {
    let tap = |handle: u32| taps.get(handle as usize).copied().flatten();
    loop {
        // Wait for entries: spin a little, then sleep on the doorbell.
        let mut spins = 0;
        while counter(&view, ENT_HEAD).load(Ordering::Relaxed)
            == counter(&view, ENT_TAIL).load(Ordering::Acquire)
        {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if spins < SPIN_BEFORE_SLEEP {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            counter(&view, NEEDS_KICK).store(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if counter(&view, ENT_HEAD).load(Ordering::Relaxed)
                == counter(&view, ENT_TAIL).load(Ordering::Acquire)
                && !stop.load(Ordering::Relaxed)
            {
                let _ = doorbell.read();
            }
            counter(&view, NEEDS_KICK).store(0, Ordering::SeqCst);
            spins = 0;
        }
        let tail = counter(&view, ENT_TAIL).load(Ordering::Acquire);
        let mut head = counter(&view, ENT_HEAD).load(Ordering::Relaxed);
        // A guest never has more entries outstanding than the ring holds:
        // anything else is a corrupt ring, not 2^32 entries of work.
        if tail.wrapping_sub(head) > RING_SIZE as u32 {
            fatal(format!(
                "net ring: invalid indices ent_head={head}, ent_tail={tail}"
            ));
        }
        while head != tail {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let slot = head as usize % RING_SIZE;
            // SAFETY: the slot lies inside the ring; the guest does not
            // touch it until `ent_head` moves past it.
            let entry: RingEntry = unsafe {
                ((view.ring + ENTRIES + slot * std::mem::size_of::<RingEntry>())
                    as *const RingEntry)
                    .read_volatile()
            };
            match entry.operation {
                OP_NET_WRITE => {
                    if let Some(fd) = tap(entry.handle) {
                        let data = buffer(&view, entry.data, entry.len, false);
                        // SAFETY: `data..data+len` was validated above.
                        let n = unsafe { libc::write(fd, data.cast(), entry.len as usize) };
                        if n < 0 {
                            fatal(format!(
                                "Fatal error when writing to the network (ring): {}",
                                std::io::Error::last_os_error()
                            ));
                        }
                        if n != entry.len as isize {
                            fatal(format!(
                                "Fatal error when writing to the network (ring): wrote only {n} out of {} bytes",
                                entry.len
                            ));
                        }
                    }
                    // Writes to an invalid handle are dropped silently.
                }
                OP_NET_READ => {
                    // Reads are synchronous for the guest: publish the write
                    // progress first, then the commit.
                    counter(&view, ENT_HEAD).store(head, Ordering::Release);
                    let (ret, len) = match tap(entry.handle) {
                        None => (result::EINVAL, 0),
                        Some(fd) => {
                            let data = buffer(&view, entry.data, entry.len, true);
                            // SAFETY: `data..data+len` was validated above.
                            let n = unsafe { libc::read(fd, data.cast(), entry.len as usize) };
                            if n > 0 {
                                (result::OK, n as u32)
                            } else if n == 0
                                || std::io::Error::last_os_error().raw_os_error()
                                    == Some(libc::EAGAIN)
                            {
                                (result::AGAIN, 0)
                            } else {
                                (result::EINVAL, 0)
                            }
                        }
                    };
                    let com_tail = counter(&view, COM_TAIL).load(Ordering::Relaxed);
                    let commit = RingCommit {
                        id: entry.id,
                        ret,
                        len,
                        reserved: 0,
                    };
                    let commit_slot = com_tail as usize % RING_SIZE;
                    // SAFETY: the commit slot lies inside the ring and is the
                    // host's until `com_tail` moves past it.
                    unsafe {
                        ((view.ring + COMMITS + commit_slot * std::mem::size_of::<RingCommit>())
                            as *mut RingCommit)
                            .write_volatile(commit);
                    }
                    counter(&view, COM_TAIL).store(com_tail.wrapping_add(1), Ordering::Release);
                }
                // Unknown operations are skipped.
                _ => {}
            }
            head = head.wrapping_add(1);
        }
        // One release per batch of entries.
        counter(&view, ENT_HEAD).store(head, Ordering::Release);
    }
}
