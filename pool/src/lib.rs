//! # dilly-pool — process pools for dilly function values
//!
//! Python's `pathos.ProcessingPool().map(t.process_data, [1, 2, 3, 4], [5, 6, 7, 8])`,
//! in Rust: a bound method, a closure or a nested function becomes a
//! [`dilly::Func`] value, and a [`ProcessPool`] runs it in worker processes.
//!
//! ```
//! use std::iter::zip;
//! use dilly_pool::{Executor, ProcessPool};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Transformer;
//!
//! #[dilly::methods]
//! impl Transformer {
//!     fn process_data(&self, x: u64, y: u64) -> u64 {
//!         x * y
//!     }
//! }
//!
//! let t = Transformer;
//! let pool = ProcessPool::new()?;
//! let out = pool.starmap(&dilly::bind!(t.process_data), zip([1, 2, 3, 4], [5, 6, 7, 8]))?;
//! assert_eq!(out, [5, 12, 21, 32]);
//! # Ok::<(), dilly_pool::Error>(())
//! ```
//!
//! ## Workers are this program, started again
//!
//! With [`StartMethod::Spawn`] (the default) a worker is this program's executable
//! (`/proc/self/exe` on Linux, `std::env::current_exe()` elsewhere) executed again
//! with a marker in its environment. A pre-main hook in this crate
//! sees the marker and serves tasks *before* `main` — or the test harness, or
//! criterion — runs, so `main` never runs twice and there is nothing to set up in
//! binaries, examples, `cargo test` integration tests and benches alike. (Without
//! the default `auto-worker` feature, call [`serve_if_worker`] first thing in
//! `main`. That is also required with the core's `inventory` collector, whose
//! registrations are themselves pre-main constructors that may run after the hook;
//! the default `linkme` collector is plain static data and needs nothing.) The worker checks that its registry of functions is the parent's.
//! [`StartMethod::ForkServer`] forks workers from one spawned server;
//! [`StartMethod::Fork`] from a server forked off this process.
//!
//! ## The API, by Python's names
//!
//! [`Executor`] holds `map`, `starmap`, `map_async`, `starmap_async`, `imap`,
//! `imap_unordered`, `istarmap`, `apply` and `apply_async`; [`ProcessPool`] adds
//! `close`, `join` and `terminate`. The [`ThreadPool`] and [`Serial`] executors have
//! the same API, for debugging. [`backend`] is the seam they implement, and a new
//! backend would.
//!
//! | Python | dilly-pool |
//! |---|---|
//! | `Pool(processes=2, initializer=f, maxtasksperchild=n)` | `ProcessPool::builder().workers(2).initializer(func_of!(f)).max_tasks_per_child(n).build()?` |
//! | `get_context("forkserver").Pool()` | `.start_method(StartMethod::ForkServer)` |
//! | `pool.map(f, xs, chunksize=c)` | `.chunk_size(c)`, then `pool.map(&func_of!(f), xs)?` |
//! | `pool.starmap(f, zip(xs, ys))`, pathos `pool.map(f, xs, ys)` | `pool.starmap(&f, zip(xs, ys))?` |
//! | `pool.imap(f, xs)` / `pool.imap_unordered(f, xs)` | `pool.imap(&f, xs)?` / `pool.imap_unordered(&f, xs)?` (one `Result` per item) |
//! | `pool.apply(f, (a, b))` | `pool.apply(&f, (a, b))?` |
//! | `r = pool.apply_async(f, args); r.get(timeout=t); r.ready()` | `let r = pool.apply_async(&f, args)?; r.get_timeout(t); r.ready()` |
//! | `r = pool.map_async(f, xs); r.get()`, pathos `pool.amap(f, xs).get()` | `pool.map_async(&f, xs)?.get()?` (also `starmap_async`) |
//! | `pool.close(); pool.join()` / `pool.terminate()` | `pool.close(); pool.join()?` / `pool.terminate()` |
//! | `concurrent.futures.ProcessPoolExecutor().submit(f, x).result()` | `pool.apply_async(&f, (x,))?.get()` |
//! | `ThreadPool` / `multiprocessing.dummy` | [`ThreadPool`], [`Serial`] |
//!
//! ## Failures are values
//!
//! A task that panics, whose worker dies (abort, segfault, `exit`, out of memory)
//! or that runs past the timeout fails alone, as a [`TaskError`]; dead workers are
//! replaced in the background and the pool keeps serving. A worker killed from
//! outside (`kill -9`) before it reported its task as running may instead have that
//! task run again on another worker; [`ProcessPoolBuilder::result_window`] with
//! `Duration::ZERO` makes every task run at most once. `map` returns the first
//! failure as [`Error::Task`]; `imap` yields one `Result` per item. Nothing hangs:
//! a worker stopped in the middle of a task (`SIGSTOP`) fails it with
//! [`TaskError::WorkerStopped`], dropping a pool stops idle workers and kills busy
//! ones, and workers and fork servers die with the pool's process, even one killed
//! with `kill -9`.

#![deny(unsafe_code)]

pub mod backend;
mod error;
mod executor;
mod handle;
mod imap;
mod local;
mod map;
mod process;
mod progress;
mod protocol;
mod serial;
mod sync;
mod sys;
mod thread;
mod worker;

pub use crate::error::{Error, Result, TaskError, WorkerExit};
pub use crate::executor::{Executor, FuncValue, UnaryFunc, WithChunkSize};
pub use crate::handle::AsyncResult;
#[cfg(feature = "stream")]
pub use crate::imap::ImapStream;
pub use crate::imap::{Imap, Indexed};
pub use crate::process::{ProcessPool, ProcessPoolBuilder, StartMethod};

/// The old name of [`ProcessPoolBuilder`], kept for one release.
#[deprecated(
    since = "0.1.0",
    note = "renamed to `ProcessPoolBuilder`, after what it builds"
)]
pub type Builder = ProcessPoolBuilder;
pub use crate::serial::Serial;
pub use crate::thread::{ThreadPool, ThreadPoolBuilder};
pub use crate::worker::serve_if_worker;

pub mod prelude {
    //! What pool code needs, in one import: `use dilly_pool::prelude::*;` brings
    //! the executors, their builders and the [`Executor`] trait whose methods
    //! (`map`, `starmap`, `imap`, `apply`, …) they all share, so a forgotten trait
    //! import is not the first compile error.
    //!
    //! ```
    //! use dilly_pool::prelude::*;
    //!
    //! #[dilly::func]
    //! fn double(x: u64) -> u64 {
    //!     x * 2
    //! }
    //!
    //! let pool = ThreadPool::builder().workers(2).build()?;
    //! assert_eq!(pool.map(&dilly::func_of!(double), [1, 2, 3])?, [2, 4, 6]);
    //! # Ok::<(), dilly_pool::Error>(())
    //! ```

    pub use crate::{
        AsyncResult, Executor, FuncValue, ProcessPool, ProcessPoolBuilder, Serial, StartMethod,
        TaskError, ThreadPool, ThreadPoolBuilder, UnaryFunc,
    };
}

#[doc(hidden)]
pub mod __fuzz {
    //! The fuzzer's way in; not public API.

    /// Reads `stream` as the parent and a worker read their sockets, decoding every
    /// frame with a payload limit of `limit` bytes; returns the frames read whole.
    /// Errors are expected: only a panic, an abort or an allocation beyond the
    /// bytes given is a failure.
    pub fn read_stream(stream: &[u8], limit: u64) -> usize {
        crate::protocol::read_stream(stream, limit)
    }
}

#[doc(hidden)]
pub mod __test {
    //! Test aids; not public API.

    /// A worker started with this variable set to `1` in its environment reports
    /// a registry that differs from its real one, as a stale binary would.
    pub const FAKE_REGISTRY_SKEW: &str = crate::worker::FAKE_SKEW;

    /// In a task on a pool worker: blocks until the worker has reported this task
    /// as the one running, so that killing the worker now blames exactly this task.
    pub fn wait_until_busy() {
        crate::worker::wait_until_busy();
    }
}
