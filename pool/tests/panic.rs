//! A panicking task fails alone, with its message and location; the worker and the
//! rest of the map carry on.

use dilly_pool::{Error, Executor, ProcessPool, TaskError};

#[dilly::func]
fn maybe_panic(x: u64) -> u64 {
    if x == 7 {
        panic!("boom at {x}");
    }
    x + 1
}

#[test]
fn panic_is_a_value_and_the_pool_keeps_serving() {
    let pool = ProcessPool::builder()
        .workers(2)
        .chunk_size(3)
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let f = dilly::func_of!(maybe_panic);
    match pool.map(&f, 0..20u64) {
        Err(Error::Task {
            index: 7,
            error: TaskError::Panicked { message, location },
        }) => {
            assert_eq!(message, "boom at 7");
            let location = location.expect("a location");
            assert!(location.contains("panic.rs"), "{location}");
        }
        other => panic!("expected a panic at index 7, got {other:?}"),
    }
    let results: Vec<_> = pool.imap(&f, 0..20u64).unwrap().collect();
    assert_eq!(results.len(), 20);
    for (x, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) => assert_eq!(v, x as u64 + 1),
            Err(TaskError::Panicked { .. }) => assert_eq!(x, 7),
            Err(other) => panic!("unexpected {other}"),
        }
    }
    // A panic does not cost a worker.
    assert_eq!(pool.worker_pids(), before);
    assert_eq!(pool.map(&f, [1u64, 2]).unwrap(), [2, 3]);
}
