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
