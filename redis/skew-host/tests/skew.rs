//! A host of another build: a real second binary (`src/main.rs`) that
//! registers `skew::scale` with another signature and `skew::norm` over a
//! `Point` whose field has another type. Every task comes back at once as
//! `TaskError::Rejected` with the version-skew error, and nothing is retried.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Redis, exactly_once, wait_for};
use dilly_pool::TaskError;
use dilly_redis::RedisPool;
use serde::{Deserialize, Serialize};

/// The other build's `Point` has `y: u32`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Point {
    x: u64,
    y: u64,
}

/// The other build's `skew::scale` takes two `u64`s.
#[dilly::func(name = "skew::scale")]
fn scale(x: u64) -> u64 {
    x * 2
}

#[dilly::func(name = "skew::norm")]
fn norm(p: Point) -> u64 {
    p.x + p.y
}

/// The other build's host process, killed on drop.
struct OtherBuild(Child);

impl Drop for OtherBuild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kind(outcome: &Result<u64, TaskError>) -> &'static str {
    match outcome {
        Err(TaskError::Rejected { error }) if error.is_version_skew() => match error {
            dilly::Error::SignatureMismatch { .. } => "SignatureMismatch",
            dilly::Error::ShapeMismatch { .. } => "ShapeMismatch",
            _ => "another version skew",
        },
        _ => "not a version skew",
    }
}

#[test]
fn a_host_of_another_build_rejects_at_once_without_retrying() {
    let redis = Redis::start();
    let _host = OtherBuild(
        Command::new(env!("CARGO_BIN_EXE_dilly-redis-skew-host"))
            .env("DILLY_REDIS_URL", redis.url())
            .env("DILLY_SKEW_QUEUE", "skew")
            .env_remove("DILLY_REDIS_KEY")
            .stdout(Stdio::null())
            .spawn()
            .expect("the skew host binary starts"),
    );
    let pool = RedisPool::builder(redis.url())
        .queue("skew")
        .build()
        .unwrap();
    wait_for(
        Duration::from_secs(60),
        "the other build to register",
        || !pool.stats().unwrap().hosts.is_empty(),
    );
    let out = exactly_once(
        &pool,
        &dilly::func_of!(scale),
        (0..6u64).map(|x| (x,)).collect(),
        2,
    );
    for (i, r) in out.iter().enumerate() {
        assert_eq!(kind(r), "SignatureMismatch", "task {i}: {r:?}");
    }
    let points = (0..6u64).map(|x| (Point { x, y: x },)).collect();
    let out = exactly_once(&pool, &dilly::func_of!(norm), points, 2);
    for (i, r) in out.iter().enumerate() {
        assert_eq!(kind(r), "ShapeMismatch", "task {i}: {r:?}");
    }
    let stats = pool.stats().unwrap();
    assert_eq!(
        (
            stats.retried,
            stats.dead_lettered,
            stats.in_flight,
            stats.queued
        ),
        (0, 0, 0, 0)
    );
}
