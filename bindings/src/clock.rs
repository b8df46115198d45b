//! Clocks (§6.2): monotonic time from the TSC without exits, wall time by
//! hypercall.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

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

/// Nanoseconds since the UNIX epoch (`solo5_clock_wall`), one hypercall.
pub fn wall_ns() -> u64 {
    let mut arg = Walltime::default();
    // SAFETY: a WALLTIME argument struct on our stack.
    unsafe { hypercall(nr::WALLTIME, &mut arg) };
    arg.nsecs
}

#[cfg(test)]
mod tests {
    use super::*;

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
