//! `max_tasks_per_child`: workers are replaced after that many tasks.

use std::collections::BTreeSet;

use std::time::{Duration, Instant};

use dilly_pool::{Executor, ProcessPool, StartMethod};

mod common;

use common::*;

#[test]
fn workers_are_replaced_after_max_tasks() {
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_child(5)
        .build()
        .unwrap();
    let pids = pool.map(&dilly::func_of!(worker_pid), 0..40u64).unwrap();
    // Each worker ran at most 5 tasks, so at least 8 processes served them.
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert!(distinct.len() >= 8, "{distinct:?}");
    for p in &distinct {
        assert!(pids.iter().filter(|q| *q == p).count() <= 5);
    }
    // Even with large chunks, a worker never exceeds its budget.
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(12)
        .max_tasks_per_child(4)
        .build()
        .unwrap();
    let pids = pool.map(&dilly::func_of!(worker_pid), 0..12u64).unwrap();
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{pids:?}");
}

#[test]
fn apply_keeps_the_budget_too() {
    // Sequential calls run on an idle worker from the calling thread: the budget
    // is counted there as on the slot thread.
    let pool = ProcessPool::builder()
        .workers(1)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let f = dilly::func_of!(worker_pid);
    let pids: Vec<u32> = (0..30u64).map(|x| pool.apply(&f, (x,)).unwrap()).collect();
    // One worker at a time, three tasks each, in order.
    for (n, run) in pids.chunks(3).enumerate() {
        assert!(run.iter().all(|p| *p == run[0]), "run {n}: {pids:?}");
    }
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 10, "{pids:?}");
    // Maps and calls mixed on two workers: nobody exceeds the budget.
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_child(3)
        .build()
        .unwrap();
    let mut all = Vec::new();
    for x in 0..10u64 {
        all.push(pool.apply(&f, (x,)).unwrap());
        all.extend(pool.map(&f, [x, x + 1]).unwrap());
    }
    let distinct: BTreeSet<u32> = all.iter().copied().collect();
    for p in &distinct {
        assert!(all.iter().filter(|q| *q == p).count() <= 3, "{all:?}");
    }
}

#[test]
fn without_the_option_workers_stay() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let before = pool.worker_pids();
    let pids = pool.map(&dilly::func_of!(worker_pid), 0..40u64).unwrap();
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert!(distinct.iter().all(|p| before.contains(p)));
    assert_eq!(pool.worker_pids(), before);
}

/// Whether process `pid` has ended (gone, or a zombie not yet reaped).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

#[test]
fn a_retired_worker_ends_while_the_pool_lives_on() {
    // Its process must not linger until the pool is dropped (the worker leaves by
    // itself once its last results are out: see the worker's unit tests).
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let pool = ProcessPool::builder()
            .workers(1)
            .start_method(method)
            .chunk_size(2)
            .max_tasks_per_child(2)
            .build()
            .unwrap();
        let f = dilly::func_of!(worker_pid);
        let first = pool.map(&f, [0u64, 1]).unwrap();
        assert_eq!(first[0], first[1], "{method:?}: one chunk, one worker");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ended(first[0]) {
            assert!(
                Instant::now() < deadline,
                "{method:?}: retired worker {} still runs",
                first[0]
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Its successor serves the next tasks.
        let second = pool.map(&f, [2u64, 3]).unwrap();
        assert_ne!(second[0], first[0], "{method:?}");
    }
}
