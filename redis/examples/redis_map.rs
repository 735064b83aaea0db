//! The seed computation across machines: pathos's
//! `ProcessingPool().map(t.process_data, [1, 2, 3, 4], [5, 6, 7, 8])`, run by
//! worker hosts through Redis.
//!
//! With `redis-server` running, in one terminal (or on each worker machine):
//!
//! ```sh
//! cargo run --release -p dilly-redis --example redis_map -- worker
//! ```
//!
//! and in another:
//!
//! ```sh
//! cargo run --release -p dilly-redis --example redis_map -- submit
//! ```
//!
//! which prints `[5, 12, 21, 32]` last. Both read the Redis URL from
//! `DILLY_REDIS_URL` (default `redis://127.0.0.1:6379`), and the shared HMAC key,
//! if any, from `DILLY_REDIS_KEY`.

use std::iter::zip;

use dilly_pool::Executor;
use dilly_redis::{RedisPool, WorkerHost};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Transformer {
    name: String,
}

#[dilly::methods]
impl Transformer {
    fn process_data(&self, x: u64, y: u64) -> u64 {
        x * y
    }
}

const QUEUE: &str = "redis_map";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var("DILLY_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    match std::env::args().nth(1).as_deref() {
        Some("worker") => {
            eprintln!("serving queue `{QUEUE}` of {url} with 2 worker processes; Ctrl-C stops");
            WorkerHost::builder(url).queue(QUEUE).workers(2).serve()?;
        }
        Some("submit") => {
            let pool = RedisPool::builder(url).queue(QUEUE).build()?;
            let t = Transformer {
                name: "t".to_owned(),
            };
            let out = pool.starmap(
                &dilly::bind!(t.process_data),
                zip([1u64, 2, 3, 4], [5u64, 6, 7, 8]),
            )?;
            println!("{out:?}");
        }
        _ => {
            eprintln!("usage: redis_map worker | redis_map submit");
            std::process::exit(2);
        }
    }
    Ok(())
}
