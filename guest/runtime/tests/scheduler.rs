//! The executor and timers, run on the host against the mock tender: the
//! virtual clock jumps to each deadline, so these run instantly and the
//! times they assert are exact.

use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;

use hvt_bindings::abi::hypercall::exit;
use hvt_runtime::io;
use hvt_runtime::sync::channel::channel;
use hvt_runtime::testing::{run, virtual_now_ns, Outcome};
use hvt_runtime::time::{
    interval, pending_timers, sleep, sleep_until, timeout, Duration, Elapsed, Instant,
};
use hvt_runtime::{live_tasks, println, spawn, yield_now};

const MS: u64 = 1_000_000;

fn ok(outcome: &Outcome) {
    assert_eq!(outcome.code, 0, "{outcome:?}");
}

#[test]
fn main_returning_ok_exits_0_and_err_exits_1() {
    let outcome = run("", |_| async { Ok::<(), &str>(()) });
    assert_eq!(outcome.code, 0);
    assert!(
        outcome.console.contains("Solo5: solo5_exit(0) called"),
        "{}",
        outcome.console
    );
    let outcome = run("", |_| async { Err("disk on fire") });
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.console.contains("Error: disk on fire\n"),
        "{}",
        outcome.console
    );
}

#[test]
fn arguments_reach_main_without_log_options() {
    let outcome = run("--solo5:quiet one --two=2", |args| async move {
        assert_eq!(args.as_str(), "one --two=2");
        assert_eq!(args.value("--two"), Some("2"));
        println!("args ok");
        Ok::<(), &str>(())
    });
    ok(&outcome);
    assert_eq!(outcome.console, "args ok\n", "quiet hides the Solo5 lines");
}

#[test]
fn ready_tasks_take_turns() {
    let outcome = run("", |_| async {
        let order = Rc::new(RefCell::new(Vec::new()));
        let workers: Vec<_> = (0..3)
            .map(|id| {
                let order = order.clone();
                spawn(async move {
                    for _ in 0..100 {
                        order.borrow_mut().push(id);
                        yield_now().await;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await;
        }
        let order = order.borrow();
        assert_eq!(order.len(), 300);
        // Round robin: every window of three steps has each task once.
        for window in order.chunks(3) {
            let mut ids = window.to_vec();
            ids.sort();
            assert_eq!(ids, [0, 1, 2], "order {:?}", &order[..12]);
        }
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn timers_fire_in_deadline_order_at_exact_virtual_times() {
    let outcome = run("", |_| async {
        let fired = Rc::new(RefCell::new(Vec::new()));
        let tasks: Vec<_> = [300u64, 100, 200, 100]
            .into_iter()
            .enumerate()
            .map(|(i, ms)| {
                let fired = fired.clone();
                spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    fired.borrow_mut().push((i, virtual_now_ns()));
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        assert_eq!(
            *fired.borrow(),
            [(1, 100 * MS), (3, 100 * MS), (2, 200 * MS), (0, 300 * MS)]
        );
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn sleep_until_a_past_instant_returns_at_once() {
    let outcome = run("", |_| async {
        sleep(Duration::from_millis(10)).await;
        let before = virtual_now_ns();
        sleep_until(Instant::from_nanos(1)).await;
        sleep(Duration::ZERO).await;
        assert_eq!(virtual_now_ns(), before);
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn interval_ticks_on_schedule() {
    let outcome = run("", |_| async {
        let mut ticks = interval(Duration::from_millis(250));
        let mut times = Vec::new();
        for _ in 0..4 {
            times.push(ticks.tick().await.as_nanos());
        }
        assert_eq!(times, [0, 250 * MS, 500 * MS, 750 * MS]);
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn timeout_cancels_the_slow_future_and_its_timer() {
    let outcome = run("", |_| async {
        let result = timeout(Duration::from_millis(50), sleep(Duration::from_secs(3600))).await;
        assert_eq!(result, Err(Elapsed));
        assert_eq!(
            virtual_now_ns(),
            50 * MS,
            "the guest did not wait for the hour"
        );
        assert_eq!(pending_timers(), 0, "the hour-long timer was removed");
        let fast = timeout(Duration::from_millis(50), async { 7 }).await;
        assert_eq!(fast, Ok(7));
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn aborted_tasks_are_dropped_with_their_timers() {
    let outcome = run("", |_| async {
        let dropped = Rc::new(RefCell::new(false));
        struct Flag(Rc<RefCell<bool>>);
        impl Drop for Flag {
            fn drop(&mut self) {
                *self.0.borrow_mut() = true;
            }
        }
        let flag = Flag(dropped.clone());
        let handle = spawn(async move {
            let _flag = flag;
            sleep(Duration::from_secs(10)).await;
            panic!("an aborted task ran to its end");
        });
        yield_now().await; // let it start and register its timer
        assert_eq!(pending_timers(), 1);
        let before = live_tasks();
        handle.abort();
        assert!(*dropped.borrow(), "the task's state was dropped");
        assert_eq!(pending_timers(), 0);
        assert_eq!(live_tasks(), before - 1);
        sleep(Duration::from_millis(1)).await;
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn a_detached_task_keeps_running() {
    let outcome = run("", |_| async {
        let (tx, mut rx) = channel();
        drop(spawn(async move {
            sleep(Duration::from_millis(5)).await;
            tx.send(42).unwrap();
        }));
        assert_eq!(rx.recv().await, Some(42));
        assert_eq!(rx.recv().await, None, "the sender is gone");
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn join_handles_return_outputs() {
    let outcome = run("", |_| async {
        let handles: Vec<_> = (0..50u64)
            .map(|i| {
                spawn(async move {
                    sleep(Duration::from_millis(50 - i)).await;
                    i * i
                })
            })
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await;
        }
        assert_eq!(sum, (0..50u64).map(|i| i * i).sum::<u64>());
        assert_eq!(live_tasks(), 1, "only main is left");
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn a_panic_in_a_task_ends_the_guest_with_255() {
    let outcome = run("", |_| async {
        spawn(async {
            sleep(Duration::from_millis(1)).await;
            panic!("task {} blew up", 7);
        });
        sleep(Duration::from_secs(1)).await;
        Ok::<(), &str>(())
    });
    assert_eq!(outcome.code, exit::ABORT);
    assert_eq!(outcome.error.as_deref(), Some("task 7 blew up"));
}

#[test]
fn waiting_with_nothing_to_wake_is_a_reported_deadlock() {
    let outcome = run("", |_| async {
        let (_tx, mut rx) = channel::<u8>();
        rx.recv().await;
        Ok::<(), &str>(())
    });
    assert_eq!(outcome.code, exit::ABORT);
    assert!(outcome.error.unwrap().starts_with("deadlock"));
}

#[test]
fn device_readiness_wakes_the_waiting_task() {
    let outcome = run("", |_| async {
        tender_mock::with(|m| m.clock().schedule_ready(2, 40 * MS));
        let ticker = spawn(async {
            sleep(Duration::from_millis(100)).await;
        });
        io::readable(2).await;
        assert_eq!(
            virtual_now_ns(),
            40 * MS,
            "woken by the device, not a timer"
        );
        ticker.await;
        assert_eq!(virtual_now_ns(), 100 * MS);
        Ok::<(), &str>(())
    });
    ok(&outcome);
}

#[test]
fn log_records_honour_the_level() {
    let outcome = run("--solo5:warn", |_| async {
        hvt_runtime::log::info!("hidden");
        hvt_runtime::log::warn!("shown {}", 1);
        hvt_runtime::log::error!("shown {}", 2);
        Ok::<(), &str>(())
    });
    ok(&outcome);
    assert_eq!(outcome.console, "[WARN] shown 1\n[ERROR] shown 2\n");
}

#[test]
fn many_tasks_run_to_completion() {
    let outcome = run("", |_| async {
        let (tx, mut rx) = channel();
        for i in 0..10_000u64 {
            let tx = tx.clone();
            spawn(async move {
                sleep(Duration::from_micros(i % 97)).await;
                yield_now().await;
                tx.send(i).unwrap();
            });
        }
        drop(tx);
        let mut total = 0;
        let mut count = 0;
        while let Some(i) = rx.recv().await {
            total += i;
            count += 1;
        }
        assert_eq!((count, total), (10_000, (0..10_000u64).sum::<u64>()));
        Ok::<(), &str>(())
    });
    ok(&outcome);
}
