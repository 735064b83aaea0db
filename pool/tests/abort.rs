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
