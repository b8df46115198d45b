//! The clock page (§12.7, ours): wall-clock time for unprivileged guests
//! without a WALLTIME exit.
//!
//! The tender publishes, at [`CLOCK_PAGE_BASE`], a line that maps the
//! guest's TSC to `CLOCK_REALTIME` (a reference point and a rate), under a
//! sequence counter. The vCPU thread keeps it current: before the guest
//! resumes from any exit, if [`MIN_REFRESH_INTERVAL_NS`] have passed since
//! the last refresh, it measures the line against the host clock. A guest
//! that waited in POLL reads a current clock as soon as it runs again, and
//! a host clock step is seen before the guest's next instruction after an
//! exit. No thread (it cost a tenth of a boot): while the guest runs
//! without exits the line follows the rate measured last (§12.7 gives the
//! bound).
//!
//! Between two refreshes the line follows the measured rate of
//! `CLOCK_REALTIME` against the TSC; at a refresh the tender keeps it
//! continuous and slews out the error it finds (at most [`MAX_SLEW_PPM`]),
//! so wall-clock readings do not go back. An error beyond [`JUMP_NS`] (a
//! host clock step) re-anchors the line (a jump, counted in `steps`).
//!
//! Offered only to guests that run at CPL 3 (those with our note, §12):
//! for every other guest this module writes nothing and offers nothing.

use std::sync::atomic::{fence, Ordering};

use hvt_abi::boot::{BootInfo, HOST_FEATURE_CLOCK_PAGE};
use hvt_abi::clock::{ClockPage, CLOCK_PAGE_VERSION};
use hvt_abi::layout::CLOCK_PAGE_BASE;
use vm_memory::Bytes;

use crate::error::{Error, Result};
use crate::memory::GuestRam;
use crate::module::{Module, SetupContext};
use crate::sandbox::Allowlist;
use crate::vm::Vcpu;

/// The horizon over which a refresh slews out the error it finds.
pub const REFRESH_PERIOD_NS: u64 = 1_000_000_000;
/// The least time between two refreshes (each one a clock read and a page
/// write, on an exit's way back to the guest).
pub const MIN_REFRESH_INTERVAL_NS: u64 = 10_000_000;
/// The largest rate correction a refresh applies to slew out an error.
pub const MAX_SLEW_PPM: i64 = 1000;
/// An error larger than this at a refresh re-anchors the line (a jump).
pub const JUMP_NS: i64 = 1_000_000;
/// A rate measured over less than this is too noisy to use.
const MIN_RATE_INTERVAL_NS: u64 = 100_000_000;

/// The host's time-stamp counter.
fn host_tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc is unprivileged and has no side effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

fn realtime_ns() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The largest shift up to 32 for which `(1e9 << shift) / freq` stays below
/// 2^31: half of `u32` is left for the slew and the measured rate.
pub fn base_scale(freq_hz: u64) -> (u32, u32) {
    let freq = u128::from(freq_hz.max(1));
    let mut shift = 32u32;
    loop {
        let mult = (1_000_000_000u128 << shift) / freq;
        if mult < 1 << 31 || shift == 0 {
            return (u32::try_from(mult).unwrap_or(u32::MAX >> 1), shift);
        }
        shift -= 1;
    }
}

/// Where the page's line goes next: the pure part of a refresh, so that it
/// can be tested without a clock or a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// What the guest reads (the `seq` field is the publisher's).
    pub page: ClockPage,
    /// The multiplier for the nominal TSC frequency (`cpu_cycle_freq`).
    pub base_mult: u32,
    /// The multiplier of the measured rate of `CLOCK_REALTIME`.
    pub rate_mult: u32,
    /// The last sample the rate was measured from: (guest TSC, wall ns).
    pub rate_from: (u64, u64),
}

impl Line {
    /// A line anchored at the sample (`tsc`, `wall_ns`), at the nominal rate.
    pub fn new(freq_hz: u64, tsc: u64, wall_ns: u64) -> Line {
        let (base_mult, shift) = base_scale(freq_hz);
        Line {
            page: ClockPage {
                seq: 0,
                version: CLOCK_PAGE_VERSION,
                tsc_ref: tsc,
                wall_ns_ref: wall_ns,
                mult: base_mult,
                shift,
                steps: 1,
            },
            base_mult,
            rate_mult: base_mult,
            rate_from: (tsc, wall_ns),
        }
    }

    /// Takes the sample (`tsc`, `wall_ns`) into account: re-anchors if the
    /// host clock was `stepped` or the line is more than [`JUMP_NS`] off;
    /// otherwise keeps the line continuous at `tsc` and sets its rate to
    /// the measured one, corrected to meet the host clock one period on.
    pub fn refresh(&mut self, tsc: u64, wall_ns: u64, stepped: bool) {
        let shift = self.page.shift;
        let clamp = |mult: i128| {
            let base = i128::from(self.base_mult);
            let bound = base * i128::from(MAX_SLEW_PPM) * 2 / 1_000_000;
            u32::try_from(mult.clamp(base - bound, base + bound)).unwrap_or(self.base_mult)
        };
        let line_ns = self.page.wall_ns_at(tsc);
        let error = i128::from(wall_ns) - i128::from(line_ns);
        if stepped || error.abs() > i128::from(JUMP_NS) || tsc < self.page.tsc_ref {
            self.page.tsc_ref = tsc;
            self.page.wall_ns_ref = wall_ns;
            self.page.mult = self.rate_mult;
            self.page.steps = self.page.steps.wrapping_add(1);
            self.rate_from = (tsc, wall_ns);
            return;
        }
        // The measured rate, over the time since the last jump or measure.
        let (from_tsc, from_ns) = self.rate_from;
        let span_ns = wall_ns.saturating_sub(from_ns);
        let span_ticks = tsc.saturating_sub(from_tsc);
        if span_ns >= MIN_RATE_INTERVAL_NS && span_ticks > 0 {
            let rate = (i128::from(span_ns) << shift) / i128::from(span_ticks);
            self.rate_mult = clamp(rate);
        }
        // Continuous at `tsc`; the error is slewed out over one period.
        let correction = i128::from(self.rate_mult) * error / i128::from(REFRESH_PERIOD_NS);
        self.page.tsc_ref = tsc;
        self.page.wall_ns_ref = line_ns;
        self.page.mult = clamp(i128::from(self.rate_mult) + correction);
    }
}

/// Publishes pages at [`CLOCK_PAGE_BASE`] as a seqlock writer.
pub struct Publisher {
    ram: GuestRam,
    seq: u32,
}

impl Publisher {
    pub fn new(ram: GuestRam) -> Result<Publisher> {
        ram.tender_slice(CLOCK_PAGE_BASE, std::mem::size_of::<ClockPage>() as u64)?;
        Ok(Publisher { ram, seq: 0 })
    }

    /// Writes `page` (its `seq` ignored): `seq` odd, the fields, `seq` even.
    pub fn publish(&mut self, page: &ClockPage) -> Result<()> {
        let slice = self
            .ram
            .tender_slice(CLOCK_PAGE_BASE, std::mem::size_of::<ClockPage>() as u64)?;
        let store = |value: u32, order| {
            slice
                .store(value, 0, order)
                .map_err(|e| Error::Memory(format!("clock page: {e}")))
        };
        self.seq = self.seq.wrapping_add(1) | 1;
        store(self.seq, Ordering::Relaxed)?;
        // The odd count is visible before any field changes.
        fence(Ordering::Release);
        let fields = ClockPage {
            seq: self.seq,
            ..*page
        };
        slice
            .write_obj(fields, 0)
            .map_err(|e| Error::Memory(format!("clock page: {e}")))?;
        self.seq = self.seq.wrapping_add(1);
        store(self.seq, Ordering::Release)
    }
}

/// One sample of (guest TSC, `CLOCK_REALTIME`): the host TSC read on both
/// sides of the clock read, the narrowest bracket of a few tries, plus the
/// guest's TSC offset.
fn sample(tsc_offset: u64) -> (u64, u64) {
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..4 {
        let before = host_tsc();
        let wall = realtime_ns();
        let after = host_tsc();
        let width = after.wrapping_sub(before);
        if width < best.0 {
            best = (width, before.wrapping_add(width / 2), wall);
        }
    }
    (best.1.wrapping_add(tsc_offset), best.2)
}

/// The guest TSC minus the host TSC, from the narrowest of a few brackets
/// of a guest TSC read.
fn measure_tsc_offset(vcpu: &dyn Vcpu) -> Result<u64> {
    let mut best: Option<(u64, u64)> = None;
    // Each read is a vCPU ioctl, which costs tens of microseconds at boot
    // on a PVM host: two, the narrower wins.
    for _ in 0..2 {
        let before = host_tsc();
        let guest = vcpu.guest_tsc()?;
        let after = host_tsc();
        let width = after.wrapping_sub(before);
        let host = before.wrapping_add(width / 2);
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, guest.wrapping_sub(host)));
        }
    }
    Ok(best.map(|(_, offset)| offset).unwrap_or(0))
}

/// The page being kept current.
struct Refresh {
    publisher: Publisher,
    line: Line,
    tsc_offset: u64,
    /// Host TSC at the last refresh.
    last: u64,
    /// [`MIN_REFRESH_INTERVAL_NS`] in host TSC ticks.
    interval: u64,
}

/// The module: decides whether the page is offered, writes the first page
/// before the guest runs, and refreshes it before the guest resumes.
#[derive(Default)]
pub struct Clock {
    /// Guest TSC minus host TSC, when the guest gets the page.
    tsc_offset: Option<u64>,
    ram: Option<GuestRam>,
    freq_hz: std::cell::Cell<u64>,
    refresh: Option<Refresh>,
}

impl Clock {
    pub fn new() -> Clock {
        Clock::default()
    }

    fn start(&mut self) -> Result<()> {
        let (Some(tsc_offset), Some(ram)) = (self.tsc_offset, self.ram.take()) else {
            return Ok(());
        };
        let freq = self.freq_hz.get();
        let mut publisher = Publisher::new(ram)?;
        let (tsc, wall) = sample(tsc_offset);
        let line = Line::new(freq, tsc, wall);
        publisher.publish(&line.page)?;
        let interval = u128::from(freq) * u128::from(MIN_REFRESH_INTERVAL_NS) / 1_000_000_000;
        self.refresh = Some(Refresh {
            publisher,
            line,
            tsc_offset,
            last: host_tsc(),
            interval: u64::try_from(interval).unwrap_or(u64::MAX),
        });
        Ok(())
    }
}

impl Module for Clock {
    fn name(&self) -> &'static str {
        "clock"
    }

    fn initial_vcpu(&mut self, vcpu: &mut dyn Vcpu, _ram: &GuestRam) -> Result<()> {
        // Only a guest that runs at CPL 3 carries our note (§12): every
        // other guest sees nothing of this module.
        if vcpu.special_registers()?.cs.dpl != 3 {
            return Ok(());
        }
        self.tsc_offset = Some(measure_tsc_offset(vcpu)?);
        Ok(())
    }

    fn setup(&mut self, ctx: &mut SetupContext<'_>) -> Result<()> {
        if self.tsc_offset.is_some() {
            // Last module: nobody changes the layout after this clone.
            self.ram = Some(ctx.ram.clone());
        }
        Ok(())
    }

    fn boot_info(&self, info: &mut BootInfo) {
        if self.tsc_offset.is_some() {
            self.freq_hz.set(info.cpu_cycle_freq);
            info.host_features |= HOST_FEATURE_CLOCK_PAGE;
        }
    }

    fn before_first_run(&mut self, _vcpu: &mut dyn Vcpu) -> Result<()> {
        self.start()
    }

    fn guest_resume(&mut self) -> Result<()> {
        let Some(refresh) = self.refresh.as_mut() else {
            return Ok(());
        };
        let now = host_tsc();
        if now.wrapping_sub(refresh.last) < refresh.interval {
            return Ok(());
        }
        let (tsc, wall) = sample(refresh.tsc_offset);
        refresh.line.refresh(tsc, wall, false);
        refresh.last = now;
        refresh.publisher.publish(&refresh.line.page)
    }

    fn vcpu_rules(&self, vcpu: &mut Allowlist) {
        // A refresh reads CLOCK_REALTIME, through the vDSO or, on hosts
        // whose clock source it cannot read, the system call.
        if self.refresh.is_some() {
            vcpu.allow_values(
                libc::SYS_clock_gettime,
                &[u64::from(libc::CLOCK_REALTIME.unsigned_abs())],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FREQ: u64 = 2_445_402_000;

    fn ticks(ns: u64) -> u64 {
        u64::try_from(u128::from(ns) * u128::from(FREQ) / 1_000_000_000).unwrap()
    }

    #[test]
    fn the_base_scale_leaves_room_for_the_slew() {
        for freq in [1_000_000, 1_000_000_000, FREQ, 4_000_000_000] {
            let (mult, shift) = base_scale(freq);
            assert!(mult < 1 << 31, "{freq}: {mult}");
            assert!(mult >= 1 << 30 || shift == 32, "{freq}: {mult} << {shift}");
            let one_s = ClockPage {
                mult,
                shift,
                ..ClockPage::default()
            }
            .wall_ns_at(freq);
            assert!(
                (999_999_000..=1_000_000_000).contains(&one_s),
                "{freq}: {one_s}"
            );
        }
    }

    #[test]
    fn a_step_of_the_host_clock_moves_what_the_guest_computes() {
        let start = 1_700_000_000_000_000_000;
        let mut line = Line::new(FREQ, 1_000, start);
        assert_eq!(
            line.page.wall_ns_at(1_000 + ticks(500_000)),
            start + 500_000 - 1
        );
        // The host clock is set back by an hour, 1 ms later.
        let at = 1_000 + ticks(1_000_000);
        line.refresh(at, start + 1_000_000 - 3_600_000_000_000, true);
        assert_eq!(line.page.steps, 2);
        assert_eq!(
            line.page.wall_ns_at(at),
            start + 1_000_000 - 3_600_000_000_000
        );
        // A step the timer missed is still a jump, by its size.
        let later = at + ticks(10_000_000);
        line.refresh(later, start + 5_000_000_000, false);
        assert_eq!(line.page.steps, 3);
        assert_eq!(line.page.wall_ns_at(later), start + 5_000_000_000);
    }

    #[test]
    fn small_errors_are_slewed_out_without_going_back() {
        // The host clock runs 100 ppm fast against the nominal TSC rate.
        let start = 1_700_000_000_000_000_000u64;
        let host = |ns: u64| start + ns + ns / 10_000;
        let mut line = Line::new(FREQ, 0, start);
        // At the nominal rate the line is 100 us behind after one period.
        let first = ticks(REFRESH_PERIOD_NS);
        assert!(host(REFRESH_PERIOD_NS) - line.page.wall_ns_at(first) > 99_000);
        let mut last = 0;
        let mut error_after = Vec::new();
        for period in 1..=10u64 {
            let ns = period * REFRESH_PERIOD_NS;
            // Readings up to the refresh never go back.
            for step in 0..10 {
                let t = ticks(ns - REFRESH_PERIOD_NS + step * REFRESH_PERIOD_NS / 10);
                let read = line.page.wall_ns_at(t);
                assert!(read >= last, "period {period} step {step}: {read} < {last}");
                last = read;
            }
            let tsc = ticks(ns);
            let before = line.page.wall_ns_at(tsc);
            line.refresh(tsc, host(ns), false);
            assert_eq!(
                line.page.wall_ns_at(tsc),
                before,
                "continuous at the refresh"
            );
            assert_eq!(line.page.steps, 1, "no jump");
            let next = ns + REFRESH_PERIOD_NS;
            error_after.push(line.page.wall_ns_at(ticks(next)).abs_diff(host(next)));
        }
        // The line learns the rate at the first refresh: one period on,
        // the error is rounding.
        assert!(error_after.iter().all(|&e| e < 1_000), "{error_after:?}");
    }

    #[test]
    fn the_publisher_writes_a_consistent_page_with_an_even_count() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let mut publisher = Publisher::new(ram.clone()).unwrap();
        let line = Line::new(FREQ, 42, 7);
        for round in 1..=3u32 {
            publisher.publish(&line.page).unwrap();
            let mut bytes = [0u8; std::mem::size_of::<ClockPage>()];
            ram.read_bytes(CLOCK_PAGE_BASE, &mut bytes).unwrap();
            let seq = u32::from_le_bytes(bytes[..4].try_into().unwrap());
            assert_eq!(seq, round * 2);
            let tsc_ref = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
            let wall = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
            assert_eq!((tsc_ref, wall), (42, 7));
        }
    }
}
