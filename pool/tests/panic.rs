//! A panicking task fails alone, with its message and location, and with the
//! worker's backtrace when `RUST_BACKTRACE` asks for one; the worker and the rest
//! of the map carry on.

use std::process::Command;

use dilly_pool::{Error, Executor, ProcessPool, TaskError};

/// Set in a child run of this test binary (see [`in_child`]).
const CHILD: &str = "DILLY_PANIC_TEST_CHILD";

// Never inlined, so that an optimized build keeps its frame on the worker's stack
// for the backtrace test to find.
#[dilly::func]
#[inline(never)]
fn maybe_panic(x: u64) -> u64 {
    if x == 7 {
        panic!("boom at {x}");
    }
    x + 1
}

#[test]
fn panic_is_a_value_and_the_pool_keeps_serving() {
    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(3)
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let f = dilly::func_of!(maybe_panic);
    match pool.map(&f, 0..20u64) {
        Err(Error::Task {
            index: 7,
            error: TaskError::Panicked {
                message, location, ..
            },
        }) => {
            assert_eq!(message, "boom at 7");
            let location = location.expect("a location");
            assert!(location.contains("panic.rs"), "{location}");
        }
        other => panic!("expected a panic at index 7, got {other:?}"),
    }
    let results: Vec<_> = pool.imap(&f, 0..20u64).unwrap().collect();
    assert_eq!(results.len(), 20);
    for (x, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(v, x as u64 + 1),
            Err(TaskError::Panicked { .. }) => assert_eq!(x, 7),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    // A panic does not cost a worker.
    assert_eq!(pool.worker_pids(), before);
    assert_eq!(pool.map(&f, [1u64, 2]).unwrap(), [2, 3]);
}

/// Runs the test `name` of this binary again, in a child process whose
/// environment (inherited by its pool's workers) has `RUST_BACKTRACE=value`, and
/// asserts that it passed. The variable is read once per process, so it cannot be
/// changed for a pool of this one.
fn in_child(name: &str, value: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1"])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", value)
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child run of {name} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "no test {name} ran:\n{stdout}");
}

/// The panic of task 7 of a one-item map on a fresh pool.
fn panic_of_seven() -> (String, Option<String>) {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    match pool.map(&dilly::func_of!(maybe_panic), [7u64]) {
        Err(Error::Task {
            error: error @ TaskError::Panicked { .. },
            ..
        }) => {
            let shown = error.to_string();
            let TaskError::Panicked { backtrace, .. } = error else {
                unreachable!()
            };
            (shown, backtrace)
        }
        other => panic!("expected a panic, got {other:?}"),
    }
}

#[test]
fn a_panic_carries_the_workers_backtrace_when_rust_backtrace_asks() {
    if std::env::var_os(CHILD).is_none() {
        return in_child(
            "a_panic_carries_the_workers_backtrace_when_rust_backtrace_asks",
            "1",
        );
    }
    let (shown, backtrace) = panic_of_seven();
    let backtrace = backtrace.expect("a backtrace");
    // The worker's stack: the task's own function is on it.
    assert!(backtrace.contains("maybe_panic"), "{backtrace}");
    assert!(shown.contains("worker backtrace:"), "{shown}");
    assert!(shown.contains("maybe_panic"), "{shown}");
}

#[test]
fn a_panic_carries_no_backtrace_when_none_is_asked_for() {
    if std::env::var_os(CHILD).is_none() {
        return in_child("a_panic_carries_no_backtrace_when_none_is_asked_for", "0");
    }
    let (shown, backtrace) = panic_of_seven();
    assert_eq!(backtrace, None);
    assert!(!shown.contains("backtrace"), "{shown}");
}
