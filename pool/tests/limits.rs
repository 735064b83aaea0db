//! Frame limits: big chunks are split, oversized arguments and results fail alone.

use dilly_pool::{Error, Executor, ProcessPool, TaskError};

#[dilly::func]
fn echo_len(v: Vec<u8>) -> usize {
    v.len()
}

#[dilly::func]
fn blow_up(n: usize) -> Vec<u8> {
    vec![7; n]
}

#[test]
fn oversized_items_fail_alone_and_big_chunks_are_split() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(50)
        .max_len(4096)
        .build()
        .unwrap();
    // 50 items of 1000 bytes: one chunk, several frames.
    let out = pool
        .map(&dilly::func_of!(echo_len), vec![vec![1u8; 1000]; 50])
        .unwrap();
    assert_eq!(out, vec![1000; 50]);
    match pool.map(
        &dilly::func_of!(echo_len),
        [vec![0u8; 10], vec![0u8; 10_000], vec![0u8; 3]],
    ) {
        Err(Error::Task {
            index: 1,
            error:
                TaskError::Arguments {
                    error: error @ dilly::Error::TooLarge { .. },
                },
        }) => assert!(
            error
                .to_string()
                .contains("raise it with `ProcessPoolBuilder::max_len`"),
            "the hint names the pool's setting: {error}"
        ),
        other => panic!("expected Arguments(TooLarge) at 1, got {other:?}"),
    }
    match pool.map(&dilly::func_of!(blow_up), [10usize, 100_000, 20]) {
        Err(Error::Task {
            index: 1,
            error: TaskError::Unserializable { error },
        }) => assert!(
            error.to_string().contains("frame limit")
                && error.to_string().contains("`ProcessPoolBuilder::max_len`"),
            "{error}"
        ),
        other => panic!("expected Unserializable at 1, got {other:?}"),
    }
    assert_eq!(
        pool.map(&dilly::func_of!(blow_up), [3usize]).unwrap(),
        [vec![7; 3]]
    );
}

#[dilly::func]
fn reversed(mut v: Vec<u8>) -> Vec<u8> {
    v.reverse();
    v
}

/// Items and results of 64 KiB or more skip the frame buffers on both sides; mixed
/// with small ones in one chunk, every byte must still arrive, in order.
#[test]
fn large_items_and_results_travel_whole_among_small_ones() {
    let pool = ProcessPool::builder()
        .workers(1)
        .chunk_size(6)
        .build()
        .unwrap();
    let pattern = |len: usize, seed: u8| -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    let items = vec![
        pattern(3, 1),
        pattern(200_000, 2),
        pattern(0, 3),
        pattern(65_536, 4),
        pattern(70_000, 5),
        pattern(10, 6),
    ];
    let expected: Vec<Vec<u8>> = items
        .iter()
        .map(|v| v.iter().rev().copied().collect())
        .collect();
    assert_eq!(
        pool.map(&dilly::func_of!(reversed), items.clone()).unwrap(),
        expected
    );
    let streamed: Vec<Vec<u8>> = pool
        .imap(&dilly::func_of!(reversed), items)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(streamed, expected);
}
