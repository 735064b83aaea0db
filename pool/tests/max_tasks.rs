//! `max_tasks_per_child`: workers are replaced after that many tasks.

use std::collections::BTreeSet;

use dilly_pool::{Executor, ProcessPool};

#[dilly::func]
fn pid(_x: u64) -> u32 {
    std::process::id()
}

#[test]
fn workers_are_replaced_after_max_tasks() {
    let pool = ProcessPool::builder()
        .workers(2)
        .max_tasks_per_child(5)
        .build()
        .unwrap();
    let pids = pool.map(&dilly::func_of!(pid), 0..40u64).unwrap();
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
    let pids = pool.map(&dilly::func_of!(pid), 0..12u64).unwrap();
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
    let f = dilly::func_of!(pid);
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
    let pids = pool.map(&dilly::func_of!(pid), 0..40u64).unwrap();
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert!(distinct.iter().all(|p| before.contains(p)));
    assert_eq!(pool.worker_pids(), before);
}
