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
