//! The pool's everyday API against real worker processes.

use std::iter::zip;
use std::time::Duration;

use dilly_pool::{Error, Executor, ProcessPool, Serial, TaskError, ThreadPool};
use serde::{Deserialize, Serialize};

mod common;

use common::*;

#[dilly::func]
fn mul(x: u64, y: u64) -> u64 {
    x * y
}

#[dilly::func]
fn slow_echo(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    x
}

#[derive(Serialize, Deserialize)]
struct Transformer {
    factor: u64,
}

#[dilly::methods]
impl Transformer {
    fn process_data(&self, x: u64, y: u64) -> u64 {
        x * y * self.factor
    }
}

fn pool() -> ProcessPool {
    ProcessPool::builder().workers(2).build().unwrap()
}

#[test]
fn map_and_starmap_return_results_in_order() {
    let pool = pool();
    let out = pool.map(&dilly::func_of!(double), 0..100u64).unwrap();
    assert_eq!(out, (0..100).map(|x| x * 2).collect::<Vec<_>>());
    let out = pool
        .starmap(&dilly::func_of!(mul), zip([1u64, 2, 3, 4], [5u64, 6, 7, 8]))
        .unwrap();
    assert_eq!(out, [5, 12, 21, 32]);
    assert!(
        pool.map(&dilly::func_of!(double), Vec::<u64>::new())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn tasks_run_in_other_processes() {
    let pool = pool();
    let pids = pool.map(&dilly::func_of!(worker_pid), 0..20u64).unwrap();
    assert!(pids.iter().all(|&p| p != std::process::id()));
    let workers = pool.worker_pids();
    assert_eq!(workers.len(), 2);
    assert!(
        pids.iter().all(|p| workers.contains(p)),
        "{pids:?} vs {workers:?}"
    );
}

#[test]
fn bound_methods_and_closures_travel_with_their_state() {
    let pool = pool();
    let t = Transformer { factor: 10 };
    let out = pool
        .starmap(&dilly::bind!(t.process_data), zip([1u64, 2], [3u64, 4]))
        .unwrap();
    assert_eq!(out, [30, 80]);
    let offset = 1000u64;
    let add = dilly::closure!([offset: u64] move |x: u64| x + offset);
    assert_eq!(pool.map(&add, [1u64, 2]).unwrap(), [1001, 1002]);
}

#[test]
fn imap_streams_in_order_and_unordered_streams_everything() {
    let pool = pool();
    let f = dilly::func_of!(double);
    // A lazy input of unknown length: the chunk size adapts.
    let input = (0..500u64).filter(|x| x % 5 != 0);
    let out: Vec<u64> = pool
        .imap(&f, input.clone())
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(out, input.clone().map(|x| x * 2).collect::<Vec<_>>());
    let mut seen: Vec<(usize, u64)> = pool
        .imap_unordered(&f, input.clone())
        .unwrap()
        .indexed()
        .map(|(i, r)| (i, r.unwrap()))
        .collect();
    seen.sort_unstable();
    let expected: Vec<(usize, u64)> = input.map(|x| x * 2).enumerate().collect();
    assert_eq!(seen, expected);
}

#[test]
fn imap_can_be_dropped_early() {
    let pool = pool();
    let f = dilly::func_of!(double);
    let first: Vec<u64> = pool
        .imap(&f, 0..1_000_000u64)
        .unwrap()
        .take(3)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(first, [0, 2, 4]);
    // The pool still serves after the iterator's remaining tasks were cancelled.
    assert_eq!(pool.map(&f, [21u64]).unwrap(), [42]);
}

#[test]
fn apply_and_apply_async() {
    let pool = pool();
    assert_eq!(pool.apply(&dilly::func_of!(mul), (6, 7)).unwrap(), 42);
    let handle = pool.apply_async(&dilly::func_of!(slow_echo), (5,)).unwrap();
    // Either not ready yet or ready: both are fine; get() must then deliver.
    let _ = handle.ready();
    assert_eq!(handle.get().unwrap(), 5);

    let handle = pool.apply_async(&dilly::func_of!(slow_echo), (9,)).unwrap();
    loop {
        match handle.get_timeout(Duration::from_millis(10)) {
            Ok(v) => {
                assert_eq!(v, 9);
                break;
            }
            Err(Error::Timeout { .. }) => continue,
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert!(handle.ready());
    assert!(matches!(
        handle.get_timeout(Duration::ZERO),
        Err(Error::AlreadyTaken)
    ));
}

#[test]
fn close_join_and_terminate() {
    let pool = pool();
    let f = dilly::func_of!(double);
    let pending = pool.apply_async(&f, (4,)).unwrap();
    pool.close();
    assert!(matches!(pool.map(&f, [1u64]), Err(Error::Closed)));
    // An empty map is refused the same way: the pool is closed, whatever the input.
    assert!(matches!(
        pool.map(&f, Vec::<u64>::new()),
        Err(Error::Closed)
    ));
    assert!(matches!(
        pool.map_async(&f, Vec::<u64>::new()),
        Err(Error::Closed)
    ));
    pool.join().unwrap();
    assert_eq!(
        pending.get().unwrap(),
        8,
        "queued work completes after close"
    );

    let pool2 = ProcessPool::builder().workers(1).build().unwrap();
    assert!(matches!(pool2.join(), Err(Error::NotClosed)));
    let slow = pool2
        .apply_async(&dilly::func_of!(slow_echo), (1,))
        .unwrap();
    let queued = pool2
        .apply_async(&dilly::func_of!(slow_echo), (2,))
        .unwrap();
    pool2.terminate();
    for handle in [slow, queued] {
        match handle.get() {
            Ok(v) => assert!(v == 1 || v == 2),
            Err(Error::Task {
                error: TaskError::Terminated,
                ..
            }) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
}

#[test]
fn dropping_a_busy_pool_does_not_hang() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let _handle = pool.apply_async(&dilly::func_of!(slow_echo), (1,)).unwrap();
    drop(pool);
}

#[test]
fn thread_pool_and_serial_have_the_same_api() {
    let f = dilly::func_of!(double);
    let threads = ThreadPool::builder().workers(2).build().unwrap();
    assert_eq!(
        threads.map(&f, 0..10u64).unwrap(),
        (0..10).map(|x| x * 2).collect::<Vec<_>>()
    );
    assert_eq!(threads.apply(&dilly::func_of!(mul), (3, 4)).unwrap(), 12);
    let serial = Serial::new();
    assert_eq!(
        serial.map(&f, 0..10u64).unwrap(),
        (0..10).map(|x| x * 2).collect::<Vec<_>>()
    );
    let out: Vec<u64> = serial
        .imap(&f, 0..3u64)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(out, [0, 2, 4]);
}

#[test]
fn thread_pools_are_built_like_process_pools() {
    let pool = ThreadPool::builder()
        .workers(3)
        .chunk_size(4)
        .progress(false)
        .build()
        .unwrap();
    assert_eq!(
        pool.shape(),
        dilly_pool::backend::Shape {
            workers: 3,
            chunk_size: Some(4),
            progress: false
        }
    );
    assert_eq!(pool.map(&dilly::func_of!(double), 0..9u64).unwrap()[8], 16);
    assert!(ThreadPool::new().unwrap().shape().workers >= 1);
    assert!(matches!(
        ThreadPool::builder().workers(0).build(),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        ThreadPool::builder().chunk_size(0).build(),
        Err(Error::Config(_))
    ));
}

/// Generic code runs on any executor.
fn sum_doubled(exec: &impl Executor) -> u64 {
    exec.map(&dilly::func_of!(double), 1..=10u64)
        .unwrap()
        .iter()
        .sum()
}

#[test]
fn executors_are_interchangeable() {
    assert_eq!(sum_doubled(&pool()), 110);
    assert_eq!(
        sum_doubled(&ThreadPool::builder().workers(2).build().unwrap()),
        110
    );
    assert_eq!(sum_doubled(&Serial::new()), 110);
}

#[dilly::func]
fn fail_on_three(x: u64) -> u64 {
    assert_ne!(x, 3, "three is not allowed");
    x
}

#[test]
fn thread_pool_and_serial_report_panics_as_values() {
    let f = dilly::func_of!(fail_on_three);
    for result in [
        ThreadPool::builder()
            .workers(2)
            .build()
            .unwrap()
            .map(&f, 0..6u64),
        Serial::new().map(&f, 0..6u64),
    ] {
        match result {
            Err(Error::Task {
                index: 3,
                error: TaskError::Panicked { message, .. },
            }) => assert!(message.contains("three is not allowed"), "{message}"),
            other => panic!("expected Panicked at 3, got {other:?}"),
        }
    }
}

#[test]
fn same_build_values_and_progress_bars_work() {
    let pool = ProcessPool::builder()
        .workers(2)
        .progress(true)
        .build()
        .unwrap();
    let f: dilly::Func<(u64,), u64, dilly::SameBuild> = dilly::func_of!(double).into();
    assert_eq!(pool.map(&f, 0..1000u64).unwrap()[999], 1998);
    let out: Vec<u64> = pool
        .imap(&f, 0..10u64)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(out[9], 18);
}

#[test]
fn one_pool_serves_several_threads_at_once() {
    let pool = pool();
    let f = dilly::func_of!(double);
    let g = dilly::func_of!(mul);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (pool, f, g) = (&pool, &f, &g);
                s.spawn(move || {
                    for round in 0..20u64 {
                        let base = t * 1000 + round * 10;
                        let out = pool.map(f, base..base + 10).unwrap();
                        assert_eq!(out, (base..base + 10).map(|x| x * 2).collect::<Vec<_>>());
                        assert_eq!(pool.apply(g, (t, round)).unwrap(), t * round);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

/// Sleeps `ms` milliseconds, then returns them.
#[dilly::func]
fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

#[test]
fn a_quick_task_does_not_wait_behind_a_slow_one_while_a_worker_is_idle() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let f = dilly::func_of!(sleep_ms);
    // Both workers up and idle.
    assert_eq!(pool.map(&f, [0u64, 0]).unwrap(), [0, 0]);
    for round in 0..4 {
        let slow = pool.apply_async(&f, (1_000,)).unwrap();
        let quick = pool.apply_async(&f, (1,)).unwrap();
        assert_eq!(quick.get().unwrap(), 1);
        // A hang detector, not a timing test: the quick task ran on the idle
        // worker, not queued behind the slow one on its worker.
        assert!(
            !slow.ready(),
            "round {round}: the quick task came back only after the slow one"
        );
        assert_eq!(slow.get().unwrap(), 1_000);
    }
}
