//! A worker host of another build, for this crate's `tests/skew.rs`: it registers, under the
//! names the test binary uses, one function with another signature and one with
//! the same signature over a data type whose field has another type. Started by
//! the test through `CARGO_BIN_EXE_dilly-redis-skew-host`; it serves the queue
//! named by `DILLY_SKEW_QUEUE` on the Redis at `DILLY_REDIS_URL` until killed.

use serde::{Deserialize, Serialize};

/// The test binary's `Point` has `y: u64`.
#[derive(Debug, Serialize, Deserialize)]
struct Point {
    x: u64,
    y: u32,
}

/// The test binary's `skew::scale` takes one `u64`.
#[dilly::func(name = "skew::scale")]
fn scale(x: u64, by: u64) -> u64 {
    x * by
}

/// The same signature as the test binary's `skew::norm`; `Point` differs.
#[dilly::func(name = "skew::norm")]
fn norm(p: Point) -> u64 {
    p.x + u64::from(p.y)
}

fn main() -> Result<(), dilly_redis::Error> {
    let var = |k: &str| {
        std::env::var(k).map_err(|_| dilly_redis::Error::Config(format!("{k} is not set")))
    };
    dilly_redis::WorkerHost::builder(var("DILLY_REDIS_URL")?)
        .queue(var("DILLY_SKEW_QUEUE")?)
        .workers(1)
        .serve()
}
