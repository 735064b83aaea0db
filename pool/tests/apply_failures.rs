//! `apply` runs a task on a worker borrowed by the calling thread: every failure -
//! panic, segfault, exit, timeout, kill -9, terminate - must still fail only that call,
//! under Spawn and ForkServer, with and without `max_tasks_per_child`, and concurrent
//! callers must each get their own result.

use dilly_pool::{Error, Executor, ProcessPool, StartMethod, TaskError, WorkerExit};
use std::time::Duration;

mod common;

use common::*;

fn run(method: StartMethod) {
    run_with(method, None)
}

/// `max_tasks` also makes workers retire (and their successors start early) in
/// the middle of all this.
fn run_with(method: StartMethod, max_tasks: Option<usize>) {
    let mut builder = ProcessPool::builder()
        .workers(2)
        .start_method(method)
        .task_timeout(Duration::from_millis(500));
    if let Some(max) = max_tasks {
        builder = builder.max_tasks_per_child(max);
    }
    let pool = builder.build().unwrap();
    let f = dilly::func_of!(act);
    for round in 0..3 {
        assert_eq!(pool.apply(&f, (7,)).unwrap(), 70);
        assert!(matches!(
            pool.apply(&f, (1,)),
            Err(Error::Task {
                index: 0,
                error: TaskError::Panicked { .. }
            })
        ));
        assert_eq!(pool.apply(&f, (8,)).unwrap(), 80);
        let e = pool.apply(&f, (2,));
        assert!(
            matches!(
                e,
                Err(Error::Task {
                    error: TaskError::WorkerDied {
                        exit: WorkerExit::Signal(11),
                        ..
                    },
                    ..
                })
            ),
            "{e:?}"
        );
        let e = pool.apply(&f, (3,));
        assert!(
            matches!(
                e,
                Err(Error::Task {
                    error: TaskError::WorkerDied {
                        exit: WorkerExit::Code(3),
                        ..
                    },
                    ..
                })
            ),
            "{e:?}"
        );
        let e = pool.apply(&f, (4,));
        assert!(
            matches!(
                e,
                Err(Error::Task {
                    error: TaskError::TimedOut { .. },
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(pool.apply(&f, (9,)).unwrap(), 90);
        eprintln!("round {round} ok");
    }
    // kill -9 from another thread while an apply runs inline.
    let pool2 = ProcessPool::builder()
        .workers(1)
        .start_method(method)
        .build()
        .unwrap();
    let pool2 = &pool2;
    let f2 = &f;
    std::thread::scope(|s| {
        let h = s.spawn(move || pool2.apply(f2, (5,)));
        std::thread::sleep(Duration::from_millis(300));
        for pid in pool2.worker_pids() {
            unsafe { libc_kill(pid as i32, 9) };
        }
        let e = h.join().unwrap();
        assert!(
            matches!(
                e,
                Err(Error::Task {
                    error: TaskError::WorkerDied {
                        exit: WorkerExit::Signal(9),
                        ..
                    },
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(pool2.apply(f2, (6,)).unwrap(), 60);
        // terminate while an apply runs inline
        let h = s.spawn(move || pool2.apply(f2, (4,)));
        std::thread::sleep(Duration::from_millis(200));
        pool2.terminate();
        let e = h.join().unwrap();
        assert!(
            matches!(
                e,
                Err(Error::Task {
                    error: TaskError::Terminated,
                    ..
                })
            ),
            "{e:?}"
        );
    });
    // many threads applying concurrently
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let pool = &pool;
            let f = &f;
            s.spawn(move || {
                for i in 0..200u64 {
                    let x = 10 + t * 1000 + i;
                    assert_eq!(pool.apply(f, (x,)).unwrap(), x * 10);
                }
            });
        }
    });
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn spawn() {
    run(StartMethod::Spawn)
}
#[test]
fn forkserver() {
    run(StartMethod::ForkServer)
}
#[test]
fn spawn_with_a_task_budget() {
    run_with(StartMethod::Spawn, Some(3))
}
#[test]
fn forkserver_with_a_task_budget() {
    run_with(StartMethod::ForkServer, Some(3))
}
