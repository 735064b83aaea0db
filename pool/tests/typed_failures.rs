//! A failure in a worker process reaches the caller as the typed error the worker
//! met, fields and all: failures travel as `TaskError` values in dilly's codec.

use dilly::RawFunc;
use dilly_pool::backend::Items;
use dilly_pool::{Executor, ProcessPool, TaskError};

mod common;

use common::*;

#[test]
fn arguments_that_do_not_decode_in_the_worker_are_the_codecs_typed_error() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let f = dilly::func_of!(triple);
    let mut job = pool.open(&f.raw()).unwrap();
    let mut items = Items::new();
    // A `(u64,)` whose varint announces a `u64` (marker 253) and then ends.
    items.push(&[253, 1]);
    items.push(&f.encode_args(&(14,)).unwrap());
    job.submit(0, items).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let batch = job.next(None).expect("outcomes");
        for (index, outcome) in batch.iter() {
            match (index, outcome) {
                (0, Err(TaskError::Arguments { error })) => {
                    assert!(error.is_bad_input(), "{error:?}");
                    assert!(
                        !error.to_string().contains("malformed arguments: "),
                        "the worker's error is not wrapped again: {error}"
                    );
                }
                (1, Ok(bytes)) => assert_eq!(f.decode_result(bytes).unwrap(), 42),
                other => panic!("unexpected outcome {other:?}"),
            }
            seen.push(index);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1]);
}

#[test]
fn a_signature_mismatch_keeps_the_workers_text() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let f = dilly::func_of!(triple);
    let skewed = RawFunc::Registered {
        id: f.id(),
        fingerprint: dilly::Fingerprint::of("fn(u32) -> u32"),
        shape: f.shape(),
        state: Vec::new(),
    };
    let mut job = pool.open(&skewed).unwrap();
    job.submit(0, [[1u8]].into_iter().collect()).unwrap();
    let batch = job.next(None).expect("an outcome");
    let (index, outcome) = batch.iter().next().expect("one outcome");
    assert_eq!(index, 0);
    match outcome {
        Err(TaskError::Rejected {
            error:
                dilly::Error::SignatureMismatch {
                    name,
                    expected,
                    found,
                    ..
                },
        }) => {
            assert_eq!(name, f.name());
            assert_eq!(expected, f.entry().signature());
            assert_eq!(*found, dilly::Fingerprint::of("fn(u32) -> u32"));
        }
        other => panic!("expected Rejected(SignatureMismatch), got {other:?}"),
    }
}
