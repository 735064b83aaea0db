//! A function the worker does not know (stale or foreign sender), and a worker
//! whose whole registry differs (the executable was rebuilt).

use dilly::{Fingerprint, RawFunc, SymbolId};
use dilly_pool::backend::Items;
use dilly_pool::{Error, Executor, ProcessPool, TaskError};

mod common;

use common::*;

#[test]
fn unknown_symbol_is_rejected_by_the_worker() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let ghost_id = SymbolId::of("some_other_build::ghost");
    let ghost = RawFunc::Registered {
        id: ghost_id,
        fingerprint: Fingerprint::of("fn(u64) -> u64"),
        shape: Fingerprint::of("no shape"),
        state: Vec::new(),
    };
    let mut job = pool.open(&ghost).unwrap();
    job.submit(0, [[1u8], [2]].into_iter().collect()).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let batch = job.next(None).expect("outcomes");
        for (index, outcome) in batch.iter() {
            match outcome {
                Err(TaskError::Rejected {
                    error: error @ dilly::Error::UnknownSymbol { .. },
                }) => {
                    assert!(error.is_version_skew());
                    assert!(
                        matches!(error, dilly::Error::UnknownSymbol { id, .. } if *id == ghost_id)
                    );
                }
                other => panic!("expected Rejected(UnknownSymbol), got {other:?}"),
            }
            seen.push(index);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [0, 1]);
    drop(job);
    assert_eq!(
        pool.map(&dilly::func_of!(triple), [1u64, 2]).unwrap(),
        [3, 6]
    );
}

#[test]
fn signature_mismatch_is_rejected_by_the_worker() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let f = dilly::func_of!(triple);
    let skewed = RawFunc::Registered {
        id: f.id(),
        fingerprint: Fingerprint::of("fn(u32) -> u32"),
        shape: f.shape(),
        state: Vec::new(),
    };
    let mut job = pool.open(&skewed).unwrap();
    job.submit(0, Items::from_iter([[1u8]])).unwrap();
    let batch = job.next(None).expect("outcomes");
    match batch.iter().collect::<Vec<_>>()[..] {
        [
            (
                0,
                Err(TaskError::Rejected {
                    error: dilly::Error::SignatureMismatch { .. },
                }),
            ),
        ] => {}
        ref other => panic!("expected Rejected(SignatureMismatch), got {other:?}"),
    }
}

#[test]
fn shape_mismatch_is_rejected_by_the_worker() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let f = dilly::func_of!(triple);
    let skewed = RawFunc::Registered {
        id: f.id(),
        fingerprint: f.fingerprint(),
        shape: Fingerprint::of("a sender whose data types differ"),
        state: Vec::new(),
    };
    let mut job = pool.open(&skewed).unwrap();
    job.submit(0, Items::from_iter([[1u8]])).unwrap();
    let batch = job.next(None).expect("outcomes");
    match batch.iter().collect::<Vec<_>>()[..] {
        [
            (
                0,
                Err(TaskError::Rejected {
                    error: error @ dilly::Error::ShapeMismatch { .. },
                }),
            ),
        ] => assert!(error.is_version_skew()),
        ref other => panic!("expected Rejected(ShapeMismatch), got {other:?}"),
    }
}

#[test]
fn a_worker_with_another_registry_is_refused_at_start() {
    let result = ProcessPool::builder()
        .workers(1)
        .env(dilly_pool::__test::FAKE_REGISTRY_SKEW, "1")
        .build();
    match result {
        Err(Error::RegistryMismatch { parent, worker }) => {
            assert_eq!(parent, dilly::registry::fingerprint());
            assert_ne!(parent, worker);
        }
        other => panic!("expected RegistryMismatch, got {other:?}"),
    }
}
