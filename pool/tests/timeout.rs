//! A task past the per-task timeout: its worker is killed and replaced.

use std::time::Duration;

use dilly_pool::{Error, Executor, ProcessPool, TaskError};

#[dilly::func]
fn sleepy(x: u64) -> u64 {
    if x == 1 {
        // Far past the timeout; returns (and fails the test) only if nothing killed it.
        std::thread::sleep(Duration::from_secs(120));
    }
    x
}

#[test]
fn timed_out_task_fails_and_the_pool_keeps_serving() {
    let pool = ProcessPool::builder()
        .workers(2)
        // Several tasks per chunk: the slow one sits between fast ones.
        .chunk_size(3)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let f = dilly::func_of!(sleepy);
    match pool.map(&f, 0..6u64) {
        Err(Error::Task {
            index: 1,
            error: TaskError::TimedOut { after, pid },
        }) => {
            assert_eq!(after, Duration::from_millis(300));
            assert!(before.contains(&pid));
            assert!(!pool.worker_pids().contains(&pid));
        }
        other => panic!("expected TimedOut at 1, got {other:?}"),
    }
    let results: Vec<_> = pool.imap(&f, 0..6u64).unwrap().collect();
    for (x, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(v, x as u64),
            Err(TaskError::TimedOut { .. }) => assert_eq!(x, 1),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(pool.map(&f, [0u64, 2, 3]).unwrap(), [0, 2, 3]);
}
