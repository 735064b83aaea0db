//! A result whose `Serialize` fails on the worker.

use dilly_pool::{Error, Executor, ProcessPool, TaskError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that refuses to be serialized when it holds an odd number.
#[derive(Debug, PartialEq)]
struct Picky(u64);

impl Serialize for Picky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 2 == 1 {
            return Err(serde::ser::Error::custom("odd values cannot travel"));
        }
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(Picky)
    }
}

#[dilly::func]
fn picky(x: u64) -> Picky {
    Picky(x)
}

#[test]
fn unserializable_result_is_a_typed_error() {
    let pool = ProcessPool::builder().workers(2).build().unwrap();
    let f = dilly::func_of!(picky);
    match pool.map(&f, [0u64, 2, 3, 4]) {
        Err(Error::Task {
            index: 2,
            error:
                TaskError::Unserializable {
                    error: dilly::Error::Encode { what, detail },
                },
        }) if what == "result" => assert!(detail.contains("odd values cannot travel"), "{detail}"),
        other => panic!("expected Unserializable at 2, got {other:?}"),
    }
    assert_eq!(
        pool.map(&f, [0u64, 2]).unwrap(),
        [Picky(0), Picky(2)],
        "the pool still serves"
    );
}

#[dilly::func]
fn halve(x: Picky) -> u64 {
    x.0 / 2
}

#[test]
fn arguments_that_cannot_be_written_fail_before_sending_named_once() {
    let pool = ProcessPool::builder().workers(1).build().unwrap();
    let f = dilly::func_of!(halve);
    let err = pool.map(&f, [Picky(2), Picky(3)]).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, Error::Encode { index: 1, error: dilly::Error::Encode { what, .. } } if what == "arguments"),
        "{err:?}"
    );
    assert_eq!(
        text,
        "cannot send task 1: cannot encode arguments: odd values cannot travel"
    );
}
