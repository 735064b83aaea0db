//! # dilly-redis — dilly-pool's API across machines, through Redis Streams
//!
//! [`RedisPool`] is a [`dilly_pool::Executor`]: `map`, `starmap`, `imap`,
//! `map_async`, `apply` and `apply_async` work on it as on a local
//! [`ProcessPool`](dilly_pool::ProcessPool), but the tasks run on **worker hosts**:
//! the same program, started on other machines, serving a queue with one call,
//! [`WorkerHost::builder(url).queue(name).processes(n).serve()`](WorkerHost::builder).
//! A host runs every chunk through a local `ProcessPool`, so a task that panics,
//! segfaults or runs past its timeout fails alone, as it would locally.
//!
//! ```no_run
//! use dilly_pool::Executor;
//! use dilly_redis::{RedisPool, WorkerHost};
//!
//! #[dilly::func]
//! fn square(x: u64) -> u64 {
//!     x * x
//! }
//!
//! let url = "redis://127.0.0.1:6379";
//! if std::env::args().any(|a| a == "worker") {
//!     // On each worker machine.
//!     WorkerHost::builder(url).queue("squares").processes(4).serve()?;
//! } else {
//!     // Anywhere.
//!     let pool = RedisPool::builder(url).queue("squares").build()?;
//!     assert_eq!(pool.map(&dilly::func_of!(square), 1..=4u64)?, [1, 4, 9, 16]);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## What is guaranteed
//!
//! * **Every task's outcome is delivered exactly once** to the caller, while hosts
//!   die, restart, or Redis restarts (with AOF on). Execution is at-least-once: a
//!   chunk whose host died is run again by another host after the visibility
//!   timeout, and the duplicates are dropped by task index.
//! * A chunk delivered more than `max_deliveries` times goes to the dead-letter
//!   stream; its tasks fail with [`TaskError::GivenUp`](dilly_pool::TaskError),
//!   and [`RedisPool::dead_letters`] / [`RedisPool::requeue_dead_letter`] find and
//!   re-run it.
//! * A host that lacks the function (unknown symbol, another signature or other
//!   data types: another build) answers with
//!   [`TaskError::Rejected`](dilly_pool::TaskError) at once, never retried.
//! * With a shared key ([`RedisPoolBuilder::key`], [`HostBuilder::key`] or the
//!   [`KEY_ENV`] environment variable), every entry carries an HMAC-SHA256 tag,
//!   checked before any byte is decoded; entries without a valid tag are refused,
//!   counted and logged, and task entries are moved to the dead-letter stream.
//!   Same-build function values need a key.
//! * A pool and hosts whose keys differ do not wait on each other:
//!   [`RedisPoolBuilder::build`] fails with [`Error::KeyMismatch`] when the
//!   queue's live hosts all have another key, and a chunk a host refuses for its
//!   tag fails its tasks with [`TaskError::GivenUp`](dilly_pool::TaskError).
//!
//! `docs/distributed.md` describes the key layout and how to size a deployment.

#![forbid(unsafe_code)]

mod conn;
mod entry;
mod error;
mod host;
mod keys;
mod pool;
mod stats;

pub use crate::error::{Error, Result};
pub use crate::host::{HostBuilder, HostHandle, WorkerHost};
pub use crate::pool::{KEY_ENV, RedisPool, RedisPoolBuilder};
pub use crate::stats::{DeadLetter, HostInfo, Stats};
