//! The serde data-model table of `tests/serde_model.rs` through Redis: every case
//! is the argument, the captured state and the result of a task that a real
//! worker host runs, and its entries pass through a real `redis-server`.

mod common;

#[path = "../../tests/serde_cases/mod.rs"]
#[macro_use]
mod serde_cases;

use std::fmt::Debug;

use common::{Host, Redis};
use dilly::{Func, closure};
use dilly_pool::Executor;
use dilly_redis::RedisPool;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[test]
fn host_entry() {
    common::host_entry();
}

/// Sends `value` through the queue as argument and captured state, and checks
/// the result the host sends back.
fn run<T>(
    name: &'static str,
    value: T,
    pool: &RedisPool,
    make: impl Fn(T) -> Func<(T,), (bool, T)>,
) -> &'static str
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Clone + Send + 'static,
{
    let f = make(value.clone());
    let out = pool
        .map(&f, [value.clone(), value.clone()])
        .unwrap_or_else(|e| panic!("{name}: redis map: {e}"));
    assert_eq!(out, [(true, value.clone()), (true, value)], "{name}");
    name
}

macro_rules! case {
    ($pool:expr, $name:literal, $ty:ty, $value:expr) => {
        run::<$ty>($name, $value, $pool, |v: $ty| {
            closure!([v: $ty] move |x: $ty| (x == v, v.clone()))
        })
    };
}

#[test]
fn every_case_travels_through_redis() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "serde-model");
    let pool = RedisPool::builder(redis.url())
        .queue("serde-model")
        .build()
        .unwrap();
    let done = serde_cases!(case, &pool);
    assert!(done.len() >= 45, "{} cases ran", done.len());
}

/// Refuses to be written when it holds zero.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct NonZero(u8);

impl Serialize for NonZero {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 0 {
            return Err(serde::ser::Error::custom("zero is never sent"));
        }
        s.serialize_u8(self.0)
    }
}

/// How often `part` occurs in `text`.
fn count(text: &str, part: &str) -> usize {
    text.matches(part).count()
}

#[test]
fn failures_through_redis_name_their_cause_once() {
    let redis = Redis::start();
    let _host = Host::start(&redis.url(), "serde-failures");
    let pool = RedisPool::builder(redis.url())
        .queue("serde-failures")
        .build()
        .unwrap();

    // Arguments the host's worker refuses (the validation `try_from` does).
    let check = closure!(|e: serde_cases::Email| e.0.len());
    let err = pool
        .map(&check, [serde_cases::Email("not-an-address".into())])
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not-an-address is not an email address"),
        "{text}"
    );
    assert_eq!(
        count(&text, "the task's arguments do not travel"),
        1,
        "{text}"
    );
    assert_eq!(count(&text, "malformed arguments"), 1, "{text}");
    assert!(!text.contains("transit"), "{text}");

    // A result the host's worker cannot write.
    let make = closure!(|n: u8| NonZero(n));
    assert_eq!(pool.map(&make, [4u8]).unwrap(), [NonZero(4)]);
    let err = pool.map(&make, [0u8]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("zero is never sent"), "{text}");
    assert_eq!(
        count(&text, "the task's result does not travel"),
        1,
        "{text}"
    );
    assert_eq!(count(&text, "encode"), 1, "{text}");
    assert!(!text.contains("transit"), "{text}");

    // Arguments this side cannot write.
    let take = closure!(|n: NonZero| n.0);
    let err = pool.map(&take, [NonZero(0)]).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("zero is never sent"), "{text}");
    assert_eq!(count(&text, "encode"), 1, "{text}");
    assert!(!text.contains("transit"), "{text}");
}
