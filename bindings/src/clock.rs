//! Clocks (§6.2): monotonic time from the TSC without exits; wall time from
//! the tender's clock page without exits where it is offered (§12.7), by
//! the WALLTIME hypercall elsewhere (upstream `solo5-hvt`).

use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

use hvt_abi::clock::{ClockPage, CLOCK_PAGE_VERSION};
use hvt_abi::hypercall::{nr, Walltime};

use crate::hypercall::hypercall;

/// TSC-to-nanoseconds conversion: `ns = (ticks * mult) >> shift`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscScale {
    pub mult: u32,
    pub shift: u32,
}

impl TscScale {
    /// The largest shift up to 32 for which `(1e9 << shift) / freq` fits in
    /// 32 bits, as Solo5 computes it.
    pub fn new(freq_hz: u64) -> TscScale {
        let freq = freq_hz.max(1) as u128;
        let mut shift = 32;
        loop {
            let mult = (1_000_000_000u128 << shift) / freq;
            if mult <= u32::MAX as u128 || shift == 0 {
                return TscScale {
                    mult: u32::try_from(mult).unwrap_or(u32::MAX),
                    shift,
                };
            }
            shift -= 1;
        }
    }

    // reason: the result is nanoseconds since boot, below 2^64 for 584 years;
    // past that, wrapping is intended. On the hot path (every clock read), so
    // no check.
    #[allow(clippy::cast_possible_truncation)]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        ((ticks as u128 * self.mult as u128) >> self.shift) as u64
    }
}

static MULT: AtomicU32 = AtomicU32::new(0);
static SHIFT: AtomicU32 = AtomicU32::new(0);
static TSC_BASE: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter (no exit on KVM).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is unprivileged (CR4.TSD is clear) and has no side effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

/// Sets up the monotonic clock from the TSC frequency in the boot info.
pub fn init(freq_hz: u64) {
    let scale = TscScale::new(freq_hz);
    MULT.store(scale.mult, Ordering::Relaxed);
    SHIFT.store(scale.shift, Ordering::Relaxed);
    TSC_BASE.store(rdtsc(), Ordering::Relaxed);
}

/// Nanoseconds since the bindings started (`solo5_clock_monotonic`).
#[cfg(not(target_os = "none"))]
pub fn monotonic_ns() -> u64 {
    crate::host::monotonic_ns()
}

/// Nanoseconds since the bindings started (`solo5_clock_monotonic`).
#[cfg(target_os = "none")]
pub fn monotonic_ns() -> u64 {
    let scale = TscScale {
        mult: MULT.load(Ordering::Relaxed),
        shift: SHIFT.load(Ordering::Relaxed),
    };
    scale.ticks_to_ns(rdtsc().wrapping_sub(TSC_BASE.load(Ordering::Relaxed)))
}

/// Set when the tender offered the clock page (§12.7). In .data, as what
/// `wall_ns` reads must be, before the memory check too.
#[cfg_attr(target_os = "none", link_section = ".data")]
static CLOCK_PAGE: AtomicBool = AtomicBool::new(false);

/// Uses the clock page if `host_features` offers it.
#[cfg(target_os = "none")]
pub fn init_wall(host_features: u32) {
    let offered = host_features & hvt_abi::boot::HOST_FEATURE_CLOCK_PAGE != 0;
    CLOCK_PAGE.store(offered, Ordering::Relaxed);
}

/// True when wall-clock reads come from the clock page, without an exit.
pub fn wall_from_page() -> bool {
    CLOCK_PAGE.load(Ordering::Relaxed)
}

/// Attempts of [`read_page`] before it gives up on a page being written
/// (a tender thread descheduled in the middle of an update).
pub const PAGE_TRIES: u32 = 10_000;

/// Reads the clock page at `page` as a seqlock reader, with `tsc` read
/// inside the consistent window. `None` if the page was never written, has
/// a layout we do not know, or stayed inconsistent for [`PAGE_TRIES`]
/// attempts: the caller falls back to WALLTIME.
///
/// # Safety
/// `page` must point at readable memory of a [`ClockPage`]'s size for the
/// duration of the call (another party may write it concurrently).
pub unsafe fn read_page(page: *const ClockPage, mut tsc: impl FnMut() -> u64) -> Option<u64> {
    // The fields are read with volatile loads since the tender changes
    // them under us.
    // SAFETY: `page` is readable, as the caller promises; `seq` is its
    // first field, aligned for a u32, and only ever loaded through this.
    let seq = unsafe { AtomicU32::from_ptr(core::ptr::addr_of!((*page).seq).cast_mut()) };
    for _ in 0..PAGE_TRIES {
        let before = seq.load(Ordering::Acquire);
        if before == 0 {
            return None;
        }
        if before & 1 == 1 {
            core::hint::spin_loop();
            continue;
        }
        // SAFETY: `page` is readable (the caller's promise); a torn copy
        // is caught by the second load of `seq`.
        let copy = unsafe { core::ptr::read_volatile(page) };
        let now = tsc();
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) == before {
            if copy.version != CLOCK_PAGE_VERSION {
                return None;
            }
            return Some(copy.wall_ns_at(now));
        }
    }
    None
}

/// Wall-clock time by the WALLTIME hypercall (one exit).
pub fn walltime_hypercall_ns() -> u64 {
    let mut arg = Walltime::default();
    // SAFETY: a WALLTIME argument struct on our stack.
    unsafe { hypercall(nr::WALLTIME, &mut arg) };
    arg.nsecs
}

/// Nanoseconds since the UNIX epoch (`solo5_clock_wall`): from the clock
/// page without an exit where the tender offers it, else one hypercall.
pub fn wall_ns() -> u64 {
    #[cfg(target_os = "none")]
    if wall_from_page() {
        let page = hvt_abi::layout::CLOCK_PAGE_BASE as *const ClockPage;
        // SAFETY: the tender offered the page, which it keeps mapped
        // (read-only) at this address for the life of the guest.
        if let Some(ns) = unsafe { read_page(page, rdtsc) } {
            return ns;
        }
    }
    walltime_hypercall_ns()
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::UnsafeCell;

    fn page(seq: u32) -> UnsafeCell<ClockPage> {
        UnsafeCell::new(ClockPage {
            seq,
            version: CLOCK_PAGE_VERSION,
            tsc_ref: 1_000,
            wall_ns_ref: 1_000_000,
            mult: 1 << 31, // 2 ticks per ns
            shift: 32,
            steps: 1,
        })
    }

    #[test]
    fn a_consistent_page_gives_the_line_at_the_tsc() {
        let p = page(2);
        // SAFETY: a live page of ours.
        assert_eq!(unsafe { read_page(p.get(), || 3_000) }, Some(1_001_000));
        let fresh = page(0);
        // SAFETY: as above.
        let never = unsafe { read_page(fresh.get(), || 3_000) };
        assert_eq!(never, None, "never written");
        let other = page(2);
        // SAFETY: our own page, not shared.
        unsafe { (*other.get()).version = 2 };
        // SAFETY: as above.
        let unknown = unsafe { read_page(other.get(), || 3_000) };
        assert_eq!(unknown, None, "unknown layout");
    }

    #[test]
    fn a_page_rewritten_during_the_read_is_read_again() {
        // The "tender" publishes a new offset (the host clock was stepped
        // by +1 s) while the guest is between its two reads of `seq`.
        let p = page(2);
        let mut calls = 0;
        let ptr = p.get();
        // SAFETY: single-threaded test; the closure plays the writer.
        let ns = unsafe {
            read_page(ptr, || {
                calls += 1;
                if calls == 1 {
                    (*ptr).seq = 3;
                    (*ptr).wall_ns_ref += 1_000_000_000;
                    (*ptr).seq = 4;
                }
                3_000
            })
        };
        assert_eq!(calls, 2, "the first, torn, read was retried");
        assert_eq!(ns, Some(1_001_001_000), "the new offset counts");
    }

    #[test]
    fn a_page_that_stays_odd_falls_back() {
        let p = page(7);
        let mut calls = 0;
        // SAFETY: a live page of ours.
        let ns = unsafe {
            read_page(p.get(), || {
                calls += 1;
                0
            })
        };
        assert_eq!(ns, None);
        assert_eq!(calls, 0, "nothing is computed from a page being written");
    }

    #[test]
    fn scale_converts_one_second_of_ticks() {
        for freq in [1_000_000u64, 2_445_402_000, 3_000_000_000, 1_000_000_000] {
            let scale = TscScale::new(freq);
            let ns = scale.ticks_to_ns(freq);
            assert!(
                (999_999_000..=1_000_000_000).contains(&ns),
                "{freq} Hz gave {ns} ns"
            );
        }
        // 2^32 does not fit in 32 bits, so 1 GHz takes the next shift down.
        assert_eq!(TscScale::new(1_000_000_000).shift, 31);
        assert_eq!(TscScale::new(2_000_000_000).shift, 32);
    }
}
