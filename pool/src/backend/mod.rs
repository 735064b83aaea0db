//! The seam a backend implements: everything [`Executor`](crate::Executor)'s typed
//! methods need from a place that runs tasks, and nothing else.
//!
//! [`Executor::open`](crate::Executor::open) starts a [`Job`] for one function. The
//! typed methods encode argument tuples into [`Items`], submit them to the job in
//! chunks, and decode the [`Outcomes`] the job yields, each tagged with its task's
//! index. [`Shape`] tells the typed methods how to cut work into chunks.
//!
//! [`ProcessPool`](crate::ProcessPool), [`ThreadPool`](crate::ThreadPool) and
//! [`Serial`](crate::Serial) implement this seam, and so can a crate outside this one
//! (a broker-backed pool, say): none of them knows the others.
//!
//! # Writing a backend
//!
//! A backend's job promises three things:
//!
//! * every submitted item yields exactly one outcome, tagged with the index it was
//!   submitted under (`first + position`), in any order;
//! * [`Job::next`] waits at most its timeout and never returns an empty batch;
//! * dropping the job cancels what has not run.
//!
//! To make results awaitable (`AsyncResult` as a `Future`, `Imap` as a `Stream`)
//! without blocking the async executor's thread, a backend whose outcomes arrive
//! from other threads also implements [`Job::poll_next`]: an outcome [`channel`]
//! does both `next` and `poll_next` for it.
//!
//! A function arrives as a [`RawFunc`](dilly::RawFunc): its symbol, its signature
//! fingerprint and its captured state, already encoded. A backend that runs tasks in
//! this process prepares it with [`RawFunc::prepare`](dilly::RawFunc::prepare); one
//! that runs them elsewhere sends it (it is a serde value: [`dilly::to_bytes`]) with
//! the items, and brings back each result's bytes.
//!
//! The smallest correct backend runs each chunk at once, in the caller's thread:
//!
//! ```
//! use std::collections::VecDeque;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use dilly::{ErasedFunc, RawFunc};
//! use dilly_pool::backend::{Items, Job, Outcomes, Shape};
//! use dilly_pool::{Error, Executor, Result, TaskError};
//!
//! struct Eager;
//!
//! struct EagerJob {
//!     func: Arc<dyn ErasedFunc>,
//!     done: VecDeque<Outcomes>,
//! }
//!
//! impl Job for EagerJob {
//!     fn submit(&mut self, first: u64, items: Items) -> Result<()> {
//!         let mut outcomes = Outcomes::new();
//!         for (i, args) in items.iter().enumerate() {
//!             let result = self
//!                 .func
//!                 .call_bytes(args)
//!                 .map_err(|error| TaskError::Arguments { error });
//!             outcomes.push(first + i as u64, result);
//!         }
//!         if !outcomes.is_empty() {
//!             self.done.push_back(outcomes);
//!         }
//!         Ok(())
//!     }
//!
//!     fn next(&mut self, _timeout: Option<Duration>) -> Option<Outcomes> {
//!         self.done.pop_front()
//!     }
//! }
//!
//! impl Executor for Eager {
//!     fn open(&self, func: &RawFunc) -> Result<Box<dyn Job>> {
//!         let func = func.prepare().map_err(|error| Error::Task {
//!             index: 0,
//!             error: TaskError::Rejected { error },
//!         })?;
//!         Ok(Box::new(EagerJob { func, done: VecDeque::new() }))
//!     }
//!
//!     fn shape(&self) -> Shape {
//!         Shape { workers: 1, chunk_size: None, progress: false }
//!     }
//! }
//!
//! #[dilly::func]
//! fn double(x: u64) -> u64 {
//!     x * 2
//! }
//!
//! // Every typed method works on the new backend.
//! let f = dilly::func_of!(double);
//! assert_eq!(Eager.map(&f, 1..=3u64)?, [2, 4, 6]);
//! assert_eq!(Eager.apply(&f, (21,))?, 42);
//! # Ok::<(), dilly_pool::Error>(())
//! ```

use std::task::{Context, Poll};
use std::time::Duration;

mod batch;
mod channel;
#[cfg(test)]
pub(crate) mod recording;

pub use batch::{Items, Outcomes};
pub use channel::{OutcomeReceiver, OutcomeSender, channel};

use crate::error::Result;

/// A running call of one function on an executor: chunks of encoded argument
/// tuples go in as [`Items`], one outcome per item comes out, in batches
/// ([`Outcomes`]) in completion order.
///
/// This is the seam a backend implements (with [`Executor::open`](crate::Executor::open)); users call the
/// typed methods of [`Executor`](crate::Executor) instead. Dropping a job cancels its queued items.
pub trait Job: Send {
    /// Queues `items` (encoded argument tuples) as tasks `first`, `first + 1`, ….
    fn submit(&mut self, first: u64, items: Items) -> Result<()>;

    /// Queues consecutive chunks: the first as tasks `first`, `first + 1`, …, each
    /// next one right after the one before. The typed methods hand over chunks
    /// this way when they have several ready (small chunks especially); a
    /// backend whose queue costs a lock or a round trip per submission overrides
    /// it to pay that once. The default submits them one by one.
    fn submit_chunks(&mut self, first: u64, chunks: Vec<Items>) -> Result<()> {
        let mut next = first;
        for items in chunks {
            let len = items.len() as u64;
            self.submit(next, items)?;
            next += len;
        }
        Ok(())
    }

    /// The outcomes that arrived next (at least one): waits at most `timeout`
    /// (forever with `None`); `None` if nothing arrived in time. Every submitted
    /// item yields exactly one outcome.
    fn next(&mut self, timeout: Option<Duration>) -> Option<Outcomes>;

    /// The outcomes that arrived next, for an async caller: `Ready(Some)` with at
    /// least one outcome, `Ready(None)` if none will ever come (the backend went
    /// away), or `Pending` — and then the backend wakes the task of `cx` when
    /// outcomes arrive or the end comes, without a thread or a timer per
    /// waiting job. [`OutcomeReceiver::poll_recv`] does exactly this.
    ///
    /// The default waits in [`next`](Job::next), blocking the async executor's
    /// thread until outcomes come: right for a backend that runs tasks in the
    /// caller's thread when asked for outcomes (as [`Serial`](crate::Serial)
    /// does), wrong for one whose outcomes arrive from elsewhere, which overrides
    /// it.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcomes>> {
        let _ = cx;
        Poll::Ready(self.next(None))
    }
}

/// Settings that shape how the typed methods cut work into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Number of parallel workers.
    pub workers: usize,
    /// Items per chunk; `None` lets the pool choose.
    pub chunk_size: Option<usize>,
    /// Whether long maps draw a progress bar.
    pub progress: bool,
}
