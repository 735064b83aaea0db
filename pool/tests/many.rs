//! 100,000 tiny tasks all come back: in order from `map`, complete from
//! `imap_unordered`.

use dilly_pool::{Executor, ProcessPool};

mod common;

use common::*;

const N: u64 = 100_000;

#[test]
fn map_returns_every_result_in_order() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let out = pool.map(&dilly::func_of!(double), 0..N).unwrap();
    assert_eq!(out.len(), N as usize);
    for (i, v) in out.iter().enumerate() {
        assert_eq!(*v, i as u64 * 2);
    }
}

#[test]
fn imap_unordered_returns_every_result_once() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let mut seen = vec![false; N as usize];
    let mut count = 0;
    for (i, r) in pool
        .imap_unordered(&dilly::func_of!(double), 0..N)
        .unwrap()
        .indexed()
    {
        assert_eq!(r.unwrap(), i as u64 * 2);
        assert!(!seen[i], "index {i} came back twice");
        seen[i] = true;
        count += 1;
    }
    assert_eq!(count, N);
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn lazy_imap_of_unknown_length_returns_every_result_in_order() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let input = (0..N).filter(|x| x % 3 != 1);
    let expected: Vec<u64> = input.clone().map(|x| x * 2).collect();
    let out: Vec<u64> = pool
        .imap(&dilly::func_of!(double), input)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(out, expected);
}

/// Sleeps 20 ms: a task slow enough that an imap keeps its short read-ahead.
#[dilly::func]
fn nap(x: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(20));
    x
}

#[test]
fn imap_of_slow_tasks_reads_only_a_few_chunks_ahead() {
    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(1)
        .build()
        .unwrap();
    let read = std::sync::atomic::AtomicU64::new(0);
    let input = (0..200u64).inspect(|_| {
        read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let mut results = pool.imap(&dilly::func_of!(nap), input).unwrap();
    for expected in 0..6 {
        assert_eq!(results.next().unwrap().unwrap(), expected);
    }
    // Two chunks per worker and one more (five here) ahead of what was taken,
    // and the few results that came in with the last: at 100 tasks a second,
    // the window has no reason to grow.
    let read = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(read <= 6 + 10, "{read} of 200 inputs read after 6 results");
}
