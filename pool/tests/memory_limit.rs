//! A task that allocates past the per-worker memory limit kills only its worker.

use dilly_pool::{Error, Executor, ProcessPool, TaskError, WorkerExit};

#[dilly::func]
fn allocate(mib: usize) -> usize {
    let v = vec![1u8; mib << 20];
    v.iter().map(|&b| b as usize).sum::<usize>() >> 20
}

#[test]
fn out_of_memory_fails_the_task_and_the_pool_goes_on() {
    let pool = ProcessPool::builder()
        .workers(1)
        .memory_limit(1 << 30)
        .build()
        .unwrap();
    let f = dilly::func_of!(allocate);
    assert_eq!(pool.map(&f, [16usize]).unwrap(), [16]);
    match pool.map(&f, [1, 4096usize, 2]) {
        Err(Error::Task {
            index: 1,
            error:
                TaskError::WorkerDied {
                    exit: WorkerExit::Signal(6),
                    memory_limited: true,
                    ..
                },
        }) => {}
        other => panic!("expected WorkerDied(SIGABRT) at 1, got {other:?}"),
    }
    assert_eq!(pool.map(&f, [8usize]).unwrap(), [8]);
}
