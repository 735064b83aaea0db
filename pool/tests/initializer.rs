//! The initializer runs once in every worker before its first task; a failing one
//! is a typed error at build time. Spawned and forked workers (whose handshake
//! differs: see `worker::Handshake`) alike.

use std::sync::atomic::{AtomicU64, Ordering};

use dilly_pool::{Error, Executor, ProcessPool, StartMethod, TaskError};

const METHODS: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::ForkServer];

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

#[dilly::func]
fn dying_init() {
    std::process::abort();
}

#[test]
fn initializer_runs_once_in_each_worker() {
    for method in METHODS {
        let pool = ProcessPool::builder()
            .workers(2)
            .start_method(method)
            .max_tasks_per_child(3)
            .initializer(dilly::func_of!(configure))
            .build()
            .unwrap();
        let out = pool.map(&dilly::func_of!(configured), 0..20u64).unwrap();
        // 42, not 84: once per worker, including replacements (and never in a
        // fork server, whose value forked workers would inherit).
        assert!(out.iter().all(|&v| v == 42), "{method:?}: {out:?}");
    }
    assert_eq!(CONFIGURED.load(Ordering::SeqCst), 0, "never in the parent");
}

#[test]
fn failing_initializer_is_a_typed_error() {
    for method in METHODS {
        let result = ProcessPool::builder()
            .workers(2)
            .start_method(method)
            .initializer(dilly::func_of!(broken_init))
            .build();
        match result {
            Err(Error::Initializer {
                error: TaskError::Panicked { message, .. },
            }) => assert_eq!(message, "cannot open the model file"),
            other => panic!("{method:?}: expected Initializer(Panicked), got {other:?}"),
        }
    }
}

#[test]
fn a_worker_dying_in_the_initializer_is_a_typed_error() {
    for method in METHODS {
        let result = ProcessPool::builder()
            .workers(1)
            .start_method(method)
            .initializer(dilly::func_of!(dying_init))
            .build();
        match result {
            Err(Error::Initializer {
                error:
                    TaskError::WorkerDied {
                        exit: dilly_pool::WorkerExit::Signal(6),
                        ..
                    },
            }) => {}
            other => panic!("{method:?}: expected Initializer(WorkerDied(SIGABRT)), got {other:?}"),
        }
    }
}
