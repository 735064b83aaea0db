//! `StartMethod::ForkServer`: workers forked from one spawned server, in a
//! multi-threaded test harness; `StartMethod::Fork` is refused here.

use dilly_pool::{Error, Executor, ProcessPool, StartMethod, TaskError, WorkerExit};

mod common;

use common::assert_fork_refused_beside_a_thread;

#[dilly::func]
fn pid_and_double(x: u64) -> (u32, u64) {
    if x == 1000 {
        std::process::abort();
    }
    (std::process::id(), x * 2)
}

#[test]
fn fork_server_workers_serve_and_crashes_are_reported() {
    let pool = ProcessPool::builder()
        .workers(2)
        .start_method(StartMethod::ForkServer)
        .max_tasks_per_child(10)
        .build()
        .unwrap();
    let f = dilly::func_of!(pid_and_double);
    let out = pool.map(&f, 0..50u64).unwrap();
    for (i, (pid, v)) in out.iter().enumerate() {
        assert_eq!(*v, i as u64 * 2);
        assert_ne!(*pid, std::process::id());
    }
    match pool.map(&f, [1, 1000u64, 2]) {
        Err(Error::Task {
            index: 1,
            error:
                TaskError::WorkerDied {
                    exit: WorkerExit::Signal(6),
                    ..
                },
        }) => {}
        other => panic!("expected WorkerDied(SIGABRT) at 1, got {other:?}"),
    }
    assert_eq!(pool.map(&f, [3u64]).unwrap()[0].1, 6);
}

#[test]
fn fork_is_refused_in_a_multi_threaded_process() {
    // The test harness runs tests on threads, and this one starts another.
    assert_fork_refused_beside_a_thread();
}
