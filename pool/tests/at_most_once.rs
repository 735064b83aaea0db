//! `ProcessPoolBuilder::result_window(Duration::ZERO)`: every result is sent when its task
//! ends, so a worker's death is blamed on the task it ran without re-running any
//! task — each runs at most once. Every run is noted in a file to count them.

use std::io::Write;
use std::time::Duration;

use dilly_pool::{Error, Executor, ProcessPool};

mod common;

use common::*;

const FATAL: u64 = 5;

/// One file per test process (the workers' parent) and per test.
fn runs_log(test_process: u32, test: u64) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("dilly-pool-at-most-once-{test_process}-{test}.log"))
}

#[dilly::func]
fn noted(test: u64, x: u64) -> u64 {
    let log = runs_log(std::os::unix::process::parent_id(), test);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(file, "{x}");
    }
    if x == FATAL {
        std::process::abort();
    }
    x * 2
}

/// Runs 0..16 in chunks of 8 with the fatal task among them; returns how often each
/// task ran.
fn run_counts(pool: &ProcessPool, test: u64) -> Vec<usize> {
    let log = runs_log(std::process::id(), test);
    let _ = std::fs::remove_file(&log);
    let f = dilly::func_of!(noted);
    let results: Vec<_> = pool
        .istarmap(&f, (0..16u64).map(|x| (test, x)))
        .unwrap()
        .collect();
    assert_eq!(results.len(), 16);
    assert_only_fatal_aborted(&results, FATAL);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let mut counts = vec![0; 16];
    for line in text.lines() {
        counts[line.parse::<usize>().unwrap()] += 1;
    }
    counts
}

#[test]
fn without_a_result_window_every_task_runs_exactly_once() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(8)
        .result_window(Duration::ZERO)
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(run_counts(&pool, 0), vec![1; 16]);
    }
    // The pool still serves after the deaths.
    match pool.starmap(&dilly::func_of!(noted), [(9, 1u64), (9, FATAL)]) {
        Err(Error::Task { index: 1, .. }) => {}
        other => panic!("expected task 1 to fail, got {other:?}"),
    }
    let _ = std::fs::remove_file(runs_log(std::process::id(), 9));
}

#[test]
fn with_the_default_window_a_task_runs_at_most_twice() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(8)
        .build()
        .unwrap();
    let counts = run_counts(&pool, 1);
    // Fast tasks leave their results buffered: the death is ambiguous (almost
    // always: unless the worker was reported busy on the fatal task), so the rest
    // of the chunk runs again one by one and the fatal task usually runs twice. No
    // task runs more often than that.
    assert!(counts.iter().all(|&c| (1..=2).contains(&c)), "{counts:?}");
}
