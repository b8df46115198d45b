//! The clock page (§12.7, ours): what an unprivileged guest needs to compute
//! `CLOCK_REALTIME` from its TSC without a WALLTIME exit.
//!
//! The tender writes it under a sequence counter, as a seqlock: `seq` is
//! odd while it writes. A reader reads `seq` (retrying while odd), the
//! other fields and the TSC, then `seq` again, and retries if it changed.

/// `struct tender_clock_page` at [`crate::layout::CLOCK_PAGE_BASE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockPage {
    /// Sequence counter: odd while the tender writes the page, even when it
    /// is consistent. 0 means never written.
    pub seq: u32,
    /// Layout version, [`CLOCK_PAGE_VERSION`]; a guest that does not know
    /// the version falls back to WALLTIME.
    pub version: u32,
    /// The guest's TSC at the reference point.
    pub tsc_ref: u64,
    /// `CLOCK_REALTIME` at `tsc_ref`, in nanoseconds since the UNIX epoch.
    pub wall_ns_ref: u64,
    /// TSC ticks to nanoseconds after the reference: `(ticks * mult) >> shift`.
    pub mult: u32,
    pub shift: u32,
    /// How many times the tender re-anchored the page to the host clock
    /// with a jump (at start, and when the host clock was stepped or the
    /// page had drifted too far to be slewed back).
    pub steps: u64,
}

/// The layout described here.
pub const CLOCK_PAGE_VERSION: u32 = 1;

impl ClockPage {
    /// Wall-clock nanoseconds at guest TSC `tsc` by this page's line. A TSC
    /// before the reference reads as the reference; a shift of 128 or more
    /// adds nothing (a page the tender never writes that way).
    pub fn wall_ns_at(&self, tsc: u64) -> u64 {
        let ticks = u128::from(tsc.saturating_sub(self.tsc_ref));
        let ns = (ticks * u128::from(self.mult))
            .checked_shr(self.shift)
            .unwrap_or(0);
        self.wall_ns_ref
            .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

crate::assert_layout!(ClockPage, size = 40,
    seq @ 0, version @ 4, tsc_ref @ 8, wall_ns_ref @ 16, mult @ 24, shift @ 28, steps @ 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_starts_at_the_reference_and_never_goes_back() {
        let page = ClockPage {
            seq: 2,
            version: CLOCK_PAGE_VERSION,
            tsc_ref: 1_000,
            wall_ns_ref: 5_000_000_000,
            mult: 1 << 31, // 2 ticks per ns
            shift: 32,
            steps: 1,
        };
        assert_eq!(page.wall_ns_at(1_000), 5_000_000_000);
        assert_eq!(page.wall_ns_at(3_000), 5_000_001_000);
        assert_eq!(page.wall_ns_at(0), 5_000_000_000, "before the reference");
        let odd = ClockPage { shift: 200, ..page };
        assert_eq!(odd.wall_ns_at(3_000), 5_000_000_000);
        let huge = ClockPage {
            wall_ns_ref: u64::MAX - 1,
            ..page
        };
        assert_eq!(huge.wall_ns_at(u64::MAX), u64::MAX);
    }
}
