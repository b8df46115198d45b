//! Time: a monotonic [`Instant`], wall-clock time, and the timer futures
//! [`sleep`], [`sleep_until`], [`timeout`] and [`interval`].
//!
//! Timers live in one ordered map keyed by (deadline, sequence number): the
//! earliest key is the deadline the scheduler yields until, and a dropped
//! timer removes its own key, so a cancelled sleep leaves nothing behind.

use alloc::collections::BTreeMap;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::ops::{Add, Sub};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
pub use core::time::Duration;

use crate::local::runtime_local;

/// A point on the monotonic clock (nanoseconds since the guest started).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    pub fn now() -> Instant {
        Instant(hvt_bindings::clock::monotonic_ns())
    }

    pub fn from_nanos(ns: u64) -> Instant {
        Instant(ns)
    }

    pub fn as_nanos(&self) -> u64 {
        self.0
    }

    /// Time since `earlier`, zero if `earlier` is later.
    pub fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(*self)
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(nanos(rhs)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// Wall-clock time since the UNIX epoch: from the tender's clock page
/// without an exit where it is offered (our tender, §12.7), else one
/// WALLTIME hypercall.
pub fn wall_clock() -> Duration {
    Duration::from_nanos(hvt_bindings::clock::wall_ns())
}

/// The longest the runtime spins on the TSC before a timer's deadline
/// instead of sleeping in the tender: it asks POLL to wake it this much
/// early at most, and spins the rest.
pub const MAX_SPIN: Duration = Duration::from_nanos(MAX_SPIN_NS);
const MAX_SPIN_NS: u64 = 100_000;

runtime_local! {
    /// How early to ask the tender to wake us: an estimate of how late a
    /// POLL timeout returns (exit, timer and scheduling), at most
    /// [`MAX_SPIN`]. A decaying maximum of the lateness seen.
    static WAKE_MARGIN: Cell<u64> = Cell::new(MAX_SPIN_NS / 2);
}

/// The margin the runtime currently asks POLL to wake early by.
pub fn wake_margin() -> Duration {
    Duration::from_nanos(WAKE_MARGIN.with(Cell::get))
}

/// Folds one measured lateness of a POLL timeout into the margin: up at
/// once, down by an eighth per sample.
fn learn_lateness(late_ns: u64) {
    WAKE_MARGIN.with(|m| {
        let decayed = m.get() - m.get() / 8;
        m.set(late_ns.max(decayed).min(MAX_SPIN_NS));
    });
}

/// Waits in the tender until a timer's `deadline` (monotonic ns) or device
/// readiness, and returns the ready set. On the guest, POLL is asked to
/// return [`wake_margin`] early and the rest of the wait is a spin on the
/// TSC (never more than [`MAX_SPIN`]), so that the timer fires on time
/// although a wake-up from POLL costs tens of microseconds. (On the host
/// the clock may be virtual, moving only in POLL: no spin there.)
///
/// `before_poll` runs just before the POLL, and only if there is one.
pub(crate) fn wait_until(deadline: u64, before_poll: impl FnOnce()) -> u64 {
    if cfg!(not(target_os = "none")) {
        before_poll();
        return hvt_bindings::poll::yield_until(deadline);
    }
    let margin = WAKE_MARGIN.with(Cell::get);
    let now = Instant::now().0;
    let asked = deadline.saturating_sub(margin);
    if asked > now {
        before_poll();
        let ready = hvt_bindings::poll::yield_until(asked);
        let woke = Instant::now().0;
        if ready != 0 {
            return ready;
        }
        if woke >= asked {
            learn_lateness(woke - asked);
        }
    }
    // Close to the deadline (within the margin, at most MAX_SPIN): spin.
    loop {
        let now = Instant::now().0;
        if now >= deadline || deadline - now > MAX_SPIN_NS {
            return 0;
        }
        core::hint::spin_loop();
    }
}

runtime_local! {
    static TIMERS: RefCell<BTreeMap<(u64, u64), Waker>> = RefCell::new(BTreeMap::new());
}
runtime_local! {
    static NEXT_TIMER: Cell<u64> = Cell::new(0);
}

/// The earliest pending deadline, in monotonic nanoseconds.
pub(crate) fn next_deadline() -> Option<u64> {
    TIMERS.with(|t| {
        t.borrow()
            .first_key_value()
            .map(|(&(deadline, _), _)| deadline)
    })
}

/// Wakes every timer whose deadline has passed, earliest first.
pub(crate) fn fire_due_timers() {
    let now = Instant::now().0;
    loop {
        let due = TIMERS.with(|t| {
            let mut timers = t.borrow_mut();
            match timers.first_key_value() {
                Some((&(deadline, _), _)) if deadline <= now => timers.pop_first(),
                _ => None,
            }
        });
        match due {
            // Woken outside the borrow: waking may run runtime code.
            Some((_, waker)) => waker.wake(),
            None => break,
        }
    }
}

/// Forgets every timer (a fresh runtime, for the host tests).
#[cfg(not(target_os = "none"))]
pub(crate) fn reset() {
    let timers = TIMERS.with(|t| core::mem::take(&mut *t.borrow_mut()));
    drop(timers);
}

/// Number of registered timers (for tests of cancellation).
pub fn pending_timers() -> usize {
    TIMERS.with(|t| t.borrow().len())
}

/// Completes at `deadline`.
pub struct Sleep {
    deadline: u64,
    key: Option<(u64, u64)>,
}

/// Completes at `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline: deadline.0,
        key: None,
    }
}

/// Completes after `duration`.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

impl Sleep {
    pub fn deadline(&self) -> Instant {
        Instant(self.deadline)
    }

    fn deregister(&mut self) {
        if let Some(key) = self.key.take() {
            let waker = TIMERS.with(|t| t.borrow_mut().remove(&key));
            drop(waker);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now().0 >= self.deadline {
            self.deregister();
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(key) => key,
            None => {
                let sequence = NEXT_TIMER.with(|n| {
                    let s = n.get();
                    n.set(s + 1);
                    s
                });
                let key = (self.deadline, sequence);
                self.key = Some(key);
                key
            }
        };
        // (Re-)register: fire_due_timers pops the entry when it wakes us.
        let previous = TIMERS.with(|t| t.borrow_mut().insert(key, cx.waker().clone()));
        drop(previous);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

/// The error of a [`timeout`] whose time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl core::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

/// Runs `future` for at most `duration`.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned (never moved out of the
        // pinned Timeout); `sleep` is Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(output) = future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Ticks every `period`, the first tick at once. A late tick does not
/// shift the schedule: missed ticks are delivered at once (as tokio's
/// default `Burst` behaviour).
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        next: Instant::now(),
        period,
    }
}

pub struct Interval {
    next: Instant,
    period: Duration,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        let at = self.next;
        sleep_until(at).await;
        self.next = at + self.period;
        at
    }

    pub fn period(&self) -> Duration {
        self.period
    }
}
