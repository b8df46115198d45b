//! The application on the host, against the in-process mock tender: its
//! console is captured and its clock is virtual (a sleep returns at once,
//! at exactly its deadline).

use hvt_runtime::testing::{run, virtual_now_ns};

#[test]
fn greets_and_waits_for_its_tasks() {
    let outcome = run("hi", myapp::app);
    assert_eq!(outcome.code, 0, "{outcome:?}");
    assert_eq!(
        outcome.console,
        "Hello from myapp! Command line: 'hi'\n\
         a task slept 30 ms\n\
         a task slept 10 ms\n\
         Solo5: solo5_exit(0) called\n"
    );
}

#[test]
fn the_tasks_sleep_at_the_same_time() {
    let outcome = run("--solo5:quiet", |args| async move {
        myapp::app(args).await?;
        assert_eq!(virtual_now_ns(), 30_000_000);
        Ok::<(), &str>(())
    });
    assert_eq!(outcome.code, 0, "{outcome:?}");
}

#[test]
fn an_error_exits_1() {
    let outcome = run("hi --fail", myapp::app);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert!(outcome.console.contains("Error: asked to fail\n"));
    assert!(outcome.console.ends_with("Solo5: solo5_exit(1) called\n"));
}
