//! Waiting for devices: a task awaits [`readable`] with a device handle; the
//! scheduler includes that handle's interest in its yield, and the ready set
//! the tender returns wakes the task.

use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::local::runtime_local;

/// A ready set has one bit per manifest handle, so handles are below 64.
pub const MAX_HANDLES: usize = 64;

runtime_local! {
    /// Tasks waiting on each handle.
    static WAITERS: RefCell<Vec<(usize, Waker)>> = RefCell::new(Vec::new());
}
runtime_local! {
    /// Handles reported ready and not yet consumed by a waiter.
    static READY: Cell<u64> = Cell::new(0);
}

/// The handles some task is waiting on, as a ready-set mask.
pub(crate) fn interest() -> u64 {
    WAITERS.with(|w| {
        w.borrow()
            .iter()
            .fold(0, |mask, (handle, _)| mask | 1 << handle)
    })
}

/// Records `ready_set` from the tender and wakes the tasks waiting on it.
pub(crate) fn wake(ready_set: u64) {
    if ready_set == 0 {
        return;
    }
    READY.with(|r| r.set(r.get() | ready_set));
    let woken: Vec<Waker> = WAITERS.with(|w| {
        let mut waiters = w.borrow_mut();
        let mut woken = Vec::new();
        waiters.retain(|(handle, waker)| {
            let ready = ready_set & (1 << handle) != 0;
            if ready {
                woken.push(waker.clone());
            }
            !ready
        });
        woken
    });
    woken.into_iter().for_each(Waker::wake);
}

/// Forgets every waiter and readiness (a fresh runtime, for the host tests).
#[cfg(not(target_os = "none"))]
pub(crate) fn reset() {
    let waiters = WAITERS.with(|w| core::mem::take(&mut *w.borrow_mut()));
    drop(waiters);
    READY.with(|r| r.set(0));
}

/// Completes when the tender reports device `handle` readable.
pub fn readable(handle: usize) -> Readable {
    assert!(handle < MAX_HANDLES, "device handle {handle} out of range");
    Readable {
        handle,
        registered: None,
    }
}

pub struct Readable {
    handle: usize,
    /// The waker this wait put in the waiter list, to take it out on drop.
    registered: Option<Waker>,
}

impl Readable {
    fn deregister(&mut self) {
        let Some(mine) = self.registered.take() else {
            return;
        };
        let handle = self.handle;
        let removed: Vec<(usize, Waker)> = WAITERS.with(|w| {
            let mut waiters = w.borrow_mut();
            let mut removed = Vec::new();
            let mut i = 0;
            while i < waiters.len() {
                if waiters[i].0 == handle && waiters[i].1.will_wake(&mine) {
                    removed.push(waiters.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            removed
        });
        // Dropped outside the borrow: dropping a waker may run runtime code.
        drop(removed);
    }
}

impl Future for Readable {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let bit = 1u64 << self.handle;
        if READY.with(|r| r.get() & bit != 0) {
            READY.with(|r| r.set(r.get() & !bit));
            self.deregister();
            return Poll::Ready(());
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let still_waiting = WAITERS.with(|w| {
                w.borrow()
                    .iter()
                    .any(|(h, waker)| *h == self.handle && waker.will_wake(cx.waker()))
            });
            if still_waiting {
                return Poll::Pending;
            }
        }
        self.deregister();
        let waker = cx.waker().clone();
        WAITERS.with(|w| w.borrow_mut().push((self.handle, waker.clone())));
        self.registered = Some(waker);
        Poll::Pending
    }
}

impl Drop for Readable {
    fn drop(&mut self) {
        // A cancelled wait must not keep the device in the interest set.
        self.deregister();
    }
}
