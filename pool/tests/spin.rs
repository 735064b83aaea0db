//! `ProcessPoolBuilder::spin`: with the spin off and with a spin far longer than any test, every
//! result, failure, timeout and death is reported as without it. A spin that missed a
//! result, an end of stream or a worker's death would hang these tests (the long
//! window is an hour), and one that took bytes from the socket would corrupt results.

use std::time::Duration;

use dilly_pool::{Error, Executor, ProcessPool, StartMethod, TaskError, WorkerExit};

mod common;

use common::*;

/// Longer than any test may take.
const FOREVER: Duration = Duration::from_secs(3600);

fn is_task_error(result: Result<u64, Error>, expected: fn(&TaskError) -> bool) -> bool {
    matches!(result, Err(Error::Task { index: 0, ref error }) if expected(error))
}

/// Results, a panic, a worker's exit and (if the pool has a timeout) a timed-out
/// task, each followed by calls that must still work.
fn exercise(pool: &ProcessPool, timeout: bool) {
    let f = dilly::func_of!(act);
    for round in 0..3u64 {
        for x in 10..55u64 {
            assert_eq!(pool.apply(&f, (x + round,)).unwrap(), (x + round) * 10);
        }
        let handle = pool.apply_async(&f, (7,)).unwrap();
        assert_eq!(handle.get().unwrap(), 70);
        let expected: Vec<u64> = (0..500u64).map(|x| (x + 10) * 10).collect();
        assert_eq!(pool.map(&f, 10..510u64).unwrap(), expected);
        let r = pool.apply(&f, (1,));
        assert!(
            is_task_error(r, |e| matches!(e, TaskError::Panicked { .. })),
            "a panic"
        );
        assert_eq!(pool.apply(&f, (8,)).unwrap(), 80);
        let r = pool.apply(&f, (3,));
        assert!(
            is_task_error(r, |e| matches!(
                e,
                TaskError::WorkerDied {
                    exit: WorkerExit::Code(3),
                    ..
                }
            )),
            "an exit"
        );
        assert_eq!(pool.apply(&f, (9,)).unwrap(), 90);
        if timeout {
            let r = pool.apply(&f, (4,));
            assert!(
                is_task_error(r, |e| matches!(e, TaskError::TimedOut { .. })),
                "a timeout"
            );
            assert_eq!(pool.apply(&f, (6,)).unwrap(), 60);
        }
    }
}

#[test]
fn without_a_spin_everything_is_reported() {
    let pool = ProcessPool::builder()
        .workers(2)
        .spin(Duration::ZERO)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    exercise(&pool, true);
}

#[test]
fn a_long_spin_still_honours_task_timeouts() {
    let pool = ProcessPool::builder()
        .workers(1)
        .spin(FOREVER)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    exercise(&pool, true);
}

/// Without a timeout, a caller spins for as long as the hour lasts unless the
/// result or the worker's end stops it.
#[test]
fn a_long_spin_sees_results_and_deaths() {
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = ProcessPool::builder()
            .workers(1)
            .start_method(method)
            .spin(FOREVER)
            .build()
            .unwrap();
        exercise(&pool, false);

        // kill -9 while the caller spins for the result.
        let path =
            std::env::temp_dir().join(format!("dilly-pool-spin-{}-{method:?}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let pool = &pool;
        std::thread::scope(|s| {
            let call = s.spawn(|| pool.apply(&dilly::func_of!(announce_and_wait), (path.clone(),)));
            let pid = loop {
                if let Ok(Ok(pid)) = std::fs::read_to_string(&path).map(|t| t.parse::<u32>()) {
                    break pid;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let _ = std::fs::remove_file(&path);
            let status = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            assert_killed(call.join().unwrap(), pid);
        });
        assert_eq!(pool.apply(&dilly::func_of!(act), (7,)).unwrap(), 70);
    }
}
