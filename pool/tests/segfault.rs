//! A segfaulting task and a task that calls `std::process::exit` fail alone.

use dilly_pool::{Error, Executor, ProcessPool, TaskError, WorkerExit};

#[dilly::func]
fn crash(x: u64) -> u64 {
    if x == 2 {
        // SAFETY: none — this is the crash under test.
        unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
    }
    if x == 5 {
        std::process::exit(3);
    }
    x
}

#[test]
fn segfault_and_exit_fail_their_tasks_only() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let f = dilly::func_of!(crash);
    let results: Vec<_> = pool.imap(&f, 0..8u64).unwrap().collect();
    for (x, r) in results.into_iter().enumerate() {
        match (x, r) {
            (
                2,
                Err(TaskError::WorkerDied {
                    exit: WorkerExit::Signal(11),
                    ..
                }),
            ) => {}
            (
                5,
                Err(TaskError::WorkerDied {
                    exit: WorkerExit::Code(3),
                    ..
                }),
            ) => {}
            (x, Ok(v)) if x != 2 && x != 5 => assert_eq!(v, x as u64),
            (x, other) => panic!("task {x}: unexpected {other:?}"),
        }
    }
    assert!(matches!(
        pool.map(&f, [2u64]),
        Err(Error::Task {
            index: 0,
            error: TaskError::WorkerDied {
                exit: WorkerExit::Signal(11),
                ..
            }
        })
    ));
    assert_eq!(pool.map(&f, [0u64, 1, 3]).unwrap(), [0, 1, 3]);
}
