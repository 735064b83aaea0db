//! With chunk size 1, the pool merges the small chunks of fast tasks (up to about
//! one result window of work): results still come back complete and in order, and
//! a worker that dies inside a merged chunk still fails exactly the task it held.

use dilly_pool::{Error, Executor, ProcessPool};

mod common;

use common::*;

const ITEMS: u64 = 20_000;
const FATAL: u64 = 15_000;

#[dilly::func]
fn double_or_abort(x: u64) -> u64 {
    if x == FATAL {
        RunLog::note(&RunLog::path(
            "chunk-merge",
            std::os::unix::process::parent_id(),
        ));
        std::process::abort();
    }
    x * 2
}

fn chunk_size_one() -> ProcessPool {
    ProcessPool::builder()
        .workers(2)
        .chunk_size(1)
        .build()
        .unwrap()
}

#[test]
fn many_one_item_chunks_come_back_complete_and_in_order() {
    let pool = chunk_size_one();
    let f = dilly::func_of!(double);
    let expected: Vec<u64> = (0..ITEMS).map(|x| x * 2).collect();
    assert_eq!(pool.map(&f, 0..ITEMS).unwrap(), expected);
    let mut unordered: Vec<u64> = pool
        .imap_unordered(&f, 0..ITEMS)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    unordered.sort_unstable();
    assert_eq!(unordered, expected);
}

#[test]
fn a_death_inside_merged_chunks_fails_exactly_its_task() {
    let log = RunLog::new("chunk-merge", std::process::id());
    let pool = chunk_size_one();
    let f = dilly::func_of!(double_or_abort);
    let results: Vec<_> = pool.imap(&f, 0..ITEMS).unwrap().collect();
    assert_eq!(results.len() as u64, ITEMS);
    // Once inside a merged chunk (ambiguous: it is re-run alone), once alone.
    let runs = log.runs();
    assert!(
        (1..=2).contains(&runs),
        "the fatal task ran {runs} times: a suspect re-run must not be merged again"
    );
    assert_only_fatal_aborted(&results, FATAL);
    match pool.map(&f, 0..ITEMS) {
        Err(Error::Task { index, .. }) => assert_eq!(index as u64, FATAL),
        other => panic!("expected the task {FATAL} to fail, got {other:?}"),
    }
    assert_eq!(pool.map(&f, [1u64, 2]).unwrap(), [2, 4]);
}
