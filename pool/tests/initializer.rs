//! The initializer runs once in every worker before its first task; a failing one
//! is a typed error at build time.

use std::sync::atomic::{AtomicU64, Ordering};

use dilly_pool::{Error, Executor, ProcessPool, TaskError};

static CONFIGURED: AtomicU64 = AtomicU64::new(0);

#[dilly::func]
fn configure() {
    CONFIGURED.fetch_add(42, Ordering::SeqCst);
}

#[dilly::func]
fn configured(_x: u64) -> u64 {
    CONFIGURED.load(Ordering::SeqCst)
}

#[dilly::func]
fn broken_init() {
    panic!("cannot open the model file");
}

#[test]
fn initializer_runs_once_in_each_worker() {
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_child(3)
        .initializer(dilly::func_of!(configure))
        .build()
        .unwrap();
    let out = pool.map(&dilly::func_of!(configured), 0..20u64).unwrap();
    // 42, not 84: once per worker, including replacements.
    assert!(out.iter().all(|&v| v == 42), "{out:?}");
    assert_eq!(CONFIGURED.load(Ordering::SeqCst), 0, "never in the parent");
}

#[test]
fn failing_initializer_is_a_typed_error() {
    let result = ProcessPool::builder()
        .workers(2)
        .initializer(dilly::func_of!(broken_init))
        .build();
    match result {
        Err(Error::Initializer {
            error: TaskError::Panicked { message, .. },
        }) => assert_eq!(message, "cannot open the model file"),
        other => panic!("expected Initializer(Panicked), got {other:?}"),
    }
}
