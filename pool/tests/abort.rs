//! A worker that aborts mid-chunk fails only the task it held; the rest of the
//! chunk runs on its replacement.

use dilly_pool::{Error, Executor, ProcessPool, TaskError, WorkerExit};

#[dilly::func]
fn maybe_abort(x: u64) -> u64 {
    if x == 3 {
        std::process::abort();
    }
    x * 10
}

#[test]
fn abort_fails_one_task_and_the_worker_is_replaced() {
    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(4)
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let f = dilly::func_of!(maybe_abort);
    match pool.map(&f, 0..16u64) {
        Err(Error::Task {
            index: 3,
            error:
                TaskError::WorkerDied {
                    exit: WorkerExit::Signal(6),
                    pid,
                    ..
                },
        }) => {
            // The blamed worker is gone. (Not necessarily an original one: the task
            // may have been re-run alone, on a replacement, to find the culprit.)
            assert!(!pool.worker_pids().contains(&pid), "{pid} still serves");
        }
        other => panic!("expected WorkerDied(SIGABRT) at 3, got {other:?}"),
    }
    let results: Vec<_> = pool.imap(&f, 0..16u64).unwrap().collect();
    let failed: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(failed, [3]);
    for (x, r) in results.iter().enumerate().filter(|(x, _)| *x != 3) {
        assert_eq!(r.as_ref().unwrap(), &(x as u64 * 10));
    }
    assert_ne!(pool.worker_pids(), before, "dead workers were replaced");
    assert_eq!(pool.map(&f, [1u64, 2]).unwrap(), [10, 20]);
}

/// Waits (task 1) until its worker has reported it running, then finishes; task 2
/// aborts at once, while task 1's result would still sit in the worker's buffer.
#[dilly::func]
fn busy_then_abort(x: u64) -> u64 {
    match x {
        1 => dilly_pool::__test::wait_until_busy(),
        2 => std::process::abort(),
        _ => {}
    }
    x * 10
}

#[test]
fn a_task_reported_busy_is_not_blamed_for_the_next_tasks_death() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(4)
        .build()
        .unwrap();
    let f = dilly::func_of!(busy_then_abort);
    let results: Vec<_> = pool.imap(&f, 0..4u64).unwrap().collect();
    assert_eq!(results[0].as_ref().ok(), Some(&0));
    assert_eq!(results[1].as_ref().ok(), Some(&10), "{results:?}");
    assert!(
        matches!(
            results[2],
            Err(TaskError::WorkerDied {
                exit: WorkerExit::Signal(6),
                ..
            })
        ),
        "{results:?}"
    );
    assert_eq!(results[3].as_ref().ok(), Some(&30));
}
