//! `map_async` and `starmap_async`: they return once the work is queued, and the
//! handle gives what `map` would have — results in input order, or the first
//! failure — on every executor.

use std::iter::zip;
use std::path::PathBuf;
use std::time::Duration;

use dilly_pool::{Error, Executor, ProcessPool, Serial, TaskError, ThreadPool};

mod common;

use common::*;

/// Waits until `gate` exists, then returns `x * 2`.
#[dilly::func]
fn double_after(x: u64, gate: PathBuf) -> u64 {
    while !gate.exists() {
        std::thread::sleep(Duration::from_millis(2));
    }
    x * 2
}

#[dilly::func]
fn checked_div(x: u64, y: u64) -> u64 {
    assert!(y != 0, "division of {x} by zero");
    x / y
}

fn gate_path(name: &str) -> PathBuf {
    let gate = std::env::temp_dir().join(format!(
        "dilly-pool-map-async-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&gate);
    gate
}

#[test]
fn map_async_returns_before_the_tasks_end_and_get_gives_the_results_in_order() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let gate = gate_path("order");
    let f = dilly::func_of!(double_after);
    let args = (0..20u64).map(|x| (x, gate.clone()));
    // No task can end before the gate exists, which is after these checks.
    let handle = pool.starmap_async(&f, args).unwrap();
    assert!(!handle.ready());
    assert_eq!(handle.successful(), None);
    match handle.get_timeout(Duration::from_millis(20)) {
        Err(Error::Timeout { .. }) => {}
        other => panic!("expected Timeout while the tasks wait, got {other:?}"),
    }
    std::fs::write(&gate, b"open").unwrap();
    // The handle is still good after a timeout.
    let out = handle.get_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(out, (0..20u64).map(|x| x * 2).collect::<Vec<_>>());
    assert!(handle.ready());
    assert_eq!(handle.successful(), Some(true));
    // Taken once.
    assert!(matches!(
        handle.get_timeout(Duration::ZERO),
        Err(Error::AlreadyTaken)
    ));
    let _ = std::fs::remove_file(&gate);
}

#[test]
fn a_failed_task_is_the_error_of_get_after_all_tasks_ended() {
    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(1)
        .build()
        .unwrap();
    let f = dilly::func_of!(checked_div);
    let handle = pool
        .starmap_async(&f, zip([10u64, 20, 30, 40], [2u64, 0, 3, 0]))
        .unwrap();
    match handle.get() {
        Err(Error::Task {
            index: 1,
            error: TaskError::Panicked { message, .. },
        }) => assert_eq!(message, "division of 20 by zero"),
        other => panic!("expected Panicked at index 1, got {other:?}"),
    }
    let handle = pool.starmap_async(&f, zip([10u64, 20], [2u64, 0])).unwrap();
    while !handle.ready() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(handle.successful(), Some(false));
    // The pool serves on.
    assert_eq!(
        pool.map(&dilly::func_of!(triple), [1u64, 2]).unwrap(),
        [3, 6]
    );
}

#[test]
fn every_executor_has_map_async() {
    fn check(exec: &impl Executor) {
        let f = dilly::func_of!(triple);
        let handle = exec.map_async(&f, 1..=5u64).unwrap();
        assert_eq!(handle.get().unwrap(), [3, 6, 9, 12, 15]);
        // No items: ready at once, an empty result.
        let empty = exec.map_async(&f, Vec::<u64>::new()).unwrap();
        assert!(empty.ready());
        assert_eq!(empty.successful(), Some(true));
        assert_eq!(empty.get().unwrap(), Vec::<u64>::new());
    }
    check(&ProcessPool::builder().workers(2).build().unwrap());
    // With a progress bar (drawn only on a terminal; here it must just not get in
    // the way).
    check(
        &ProcessPool::builder()
            .workers(2)
            .progress(true)
            .build()
            .unwrap(),
    );
    check(&ThreadPool::builder().workers(2).build().unwrap());
    check(&Serial::new());
}

#[test]
fn a_dropped_handle_leaves_the_pool_serving() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let gate = gate_path("drop");
    let f = dilly::func_of!(double_after);
    let handle = pool
        .starmap_async(&f, (0..50u64).map(|x| (x, gate.clone())))
        .unwrap();
    drop(handle);
    std::fs::write(&gate, b"open").unwrap();
    assert_eq!(pool.map(&dilly::func_of!(triple), [7u64]).unwrap(), [21]);
    let _ = std::fs::remove_file(&gate);
}
