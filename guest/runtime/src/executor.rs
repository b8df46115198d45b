//! A single-core async executor in the spirit of MirageOS's main loop on
//! Solo5: run the ready tasks, then sleep in the yield hypercall until the
//! earliest timer or until a device the tasks wait on is readable.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use crate::local::runtime_local;
use crate::{io, time};

type TaskFuture = Pin<Box<dyn Future<Output = ()>>>;

/// Identifies a task; the generation tells a reused slot from its old task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TaskId {
    index: usize,
    generation: u64,
}

/// The waker of one task: queues it at most once until it is polled.
struct TaskWaker {
    id: TaskId,
    queued: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            EXECUTOR.with(|e| e.ready.borrow_mut().push_back(self.id));
        }
    }
}

struct Slot {
    generation: u64,
    /// `None` while the task is being polled, or once it finished.
    future: Option<TaskFuture>,
    waker: Option<Arc<TaskWaker>>,
}

struct Executor {
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<usize>>,
    ready: RefCell<VecDeque<TaskId>>,
    live: Cell<usize>,
    next_generation: Cell<u64>,
}

impl Executor {
    const fn new() -> Self {
        Executor {
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
            ready: RefCell::new(VecDeque::new()),
            live: Cell::new(0),
            next_generation: Cell::new(1),
        }
    }

    fn insert(&self, future: TaskFuture) -> TaskId {
        let generation = self.next_generation.get();
        self.next_generation.set(generation + 1);
        let mut slots = self.slots.borrow_mut();
        let index = self.free.borrow_mut().pop().unwrap_or_else(|| {
            slots.push(Slot {
                generation: 0,
                future: None,
                waker: None,
            });
            slots.len() - 1
        });
        let id = TaskId { index, generation };
        let waker = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(true),
        });
        slots[index] = Slot {
            generation,
            future: Some(future),
            waker: Some(waker),
        };
        self.live.set(self.live.get() + 1);
        self.ready.borrow_mut().push_back(id);
        id
    }

    /// Frees the slot of `id` and returns its future (dropped by the caller
    /// outside any borrow: dropping a future may call into the runtime).
    fn remove(&self, id: TaskId) -> Option<TaskFuture> {
        let mut slots = self.slots.borrow_mut();
        let slot = slots
            .get_mut(id.index)
            .filter(|s| s.generation == id.generation)?;
        let future = slot.future.take();
        slot.waker = None;
        slot.generation = 0;
        self.free.borrow_mut().push(id.index);
        self.live.set(self.live.get() - 1);
        future
    }

    /// Polls each task that was ready when the pass began, once: a task
    /// that wakes itself runs again in the next pass, after the others.
    fn run_ready_pass(&self) {
        let count = self.ready.borrow().len();
        for _ in 0..count {
            let Some(id) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            let taken = {
                let mut slots = self.slots.borrow_mut();
                match slots.get_mut(id.index) {
                    Some(slot) if slot.generation == id.generation => {
                        let waker = slot.waker.clone().expect("live task has a waker");
                        waker.queued.store(false, Ordering::Release);
                        slot.future.take().map(|f| (f, waker))
                    }
                    _ => None,
                }
            };
            let Some((mut future, waker)) = taken else {
                continue;
            };
            let waker = Waker::from(waker);
            let mut cx = Context::from_waker(&waker);
            match future.as_mut().poll(&mut cx) {
                Poll::Ready(()) => {
                    drop(future);
                    drop(self.remove(id));
                }
                Poll::Pending => {
                    let mut slots = self.slots.borrow_mut();
                    match slots.get_mut(id.index) {
                        Some(slot) if slot.generation == id.generation => {
                            slot.future = Some(future)
                        }
                        // Aborted while it ran: drop it outside the borrow.
                        _ => {
                            drop(slots);
                            drop(future);
                        }
                    }
                }
            }
        }
    }

    fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }
}

runtime_local! {
    static EXECUTOR: Executor = Executor::new();
}

/// Drops every task and forgets every wake-up: a fresh executor. The tasks'
/// futures are dropped here, while the rest of the runtime is still usable
/// from their destructors.
#[cfg(not(target_os = "none"))]
pub(crate) fn reset() {
    let futures: Vec<TaskFuture> = EXECUTOR.with(|e| {
        e.ready.borrow_mut().clear();
        e.free.borrow_mut().clear();
        e.live.set(0);
        e.slots
            .borrow_mut()
            .drain(..)
            .filter_map(|slot| slot.future)
            .collect()
    });
    drop(futures);
}

/// Number of tasks spawned and not yet finished or aborted.
pub fn live_tasks() -> usize {
    EXECUTOR.with(|e| e.live.get())
}

struct JoinState<T> {
    result: RefCell<Option<T>>,
    finished: Cell<bool>,
    joiner: RefCell<Option<Waker>>,
}

/// Owns the result of a spawned task. Awaiting it gives the task's output;
/// dropping it detaches the task, which keeps running.
pub struct JoinHandle<T> {
    id: TaskId,
    state: Rc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    /// True once the task has run to completion.
    pub fn is_finished(&self) -> bool {
        self.state.finished.get()
    }

    /// Cancels the task: its future is dropped (with every timer and wait
    /// it holds) and it never runs again.
    pub fn abort(self) {
        let future = EXECUTOR.with(|e| e.remove(self.id));
        drop(future);
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(value) = self.state.result.borrow_mut().take() {
            return Poll::Ready(value);
        }
        assert!(
            !self.state.finished.get(),
            "JoinHandle polled after it returned its output"
        );
        *self.state.joiner.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Starts `future` as a new task.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let state = Rc::new(JoinState {
        result: RefCell::new(None),
        finished: Cell::new(false),
        joiner: RefCell::new(None),
    });
    let task_state = state.clone();
    let task = async move {
        let output = future.await;
        *task_state.result.borrow_mut() = Some(output);
        task_state.finished.set(true);
        let joiner = task_state.joiner.borrow_mut().take();
        if let Some(waker) = joiner {
            waker.wake();
        }
    };
    let id = EXECUTOR.with(|e| e.insert(Box::pin(task)));
    JoinHandle { id, state }
}

/// Lets the other ready tasks run before this one continues.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Runs `main` and every task it spawns until `main` completes; tasks still
/// running then are abandoned, as when a process exits.
pub fn block_on<F>(main: F) -> F::Output
where
    F: Future + 'static,
    F::Output: 'static,
{
    let handle = spawn(main);
    loop {
        EXECUTOR.with(Executor::run_ready_pass);
        if handle.is_finished() {
            return handle
                .state
                .result
                .borrow_mut()
                .take()
                .expect("main's output");
        }
        crate::memory::check_stack();
        time::fire_due_timers();
        let has_ready = EXECUTOR.with(Executor::has_ready);
        let interest = io::interest();
        // Frames are coming in and the host's I/O thread serves the ring:
        // read again rather than pay an exit to ask or wait (§12.8).
        let busy = crate::net::ring::busy_poll_set(interest);
        if busy != 0 && (!has_ready || busy == interest) {
            io::wake(busy);
            continue;
        }
        if has_ready && interest == 0 {
            // Nothing to learn from the tender: keep running tasks, but do
            // not leave frames in the ring for the next exit (§12.8).
            crate::net::ring::flush_lazy_writes();
            continue;
        }
        let deadline = if has_ready {
            Some(0)
        } else {
            time::next_deadline()
        };
        if deadline.is_none() && interest == 0 {
            panic!("deadlock: every task waits, and no timer or device can wake one");
        }
        // A frame a read published before an earlier yield brought, not
        // yet handed over: no yield, the device reads it (§12.8).
        let waiting = crate::net::ring::frames_waiting();
        if waiting != 0 {
            io::wake(waiting);
            continue;
        }
        // Output first, so that the yield is the next exit: a read
        // published for it is served when its wait ends, and the frame that
        // ends the wait comes back with it (§12.8).
        hvt_bindings::console::flush();
        let post = || crate::net::ring::post_read_before_yield(interest);
        let ready_set = match deadline {
            // A timer: sleep in the tender until just before it, then spin.
            Some(deadline) if deadline != 0 => time::wait_until(deadline, post),
            _ => {
                post();
                hvt_bindings::poll::yield_until(deadline.unwrap_or(u64::MAX))
            }
        };
        let ready_set = crate::net::ring::after_yield(ready_set);
        io::wake(ready_set);
        time::fire_due_timers();
    }
}
