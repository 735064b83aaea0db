//! [`AsyncResult`]: the handle `apply_async`, `map_async` and `starmap_async`
//! return.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use dilly::{Func, Mode};
use serde::de::DeserializeOwned;

use crate::backend::Job;
use crate::backend::Outcomes;
use crate::error::{Error, Result, TaskError};
use crate::map::{Decode, Placed, decode_outcome};
use crate::progress::Progress;
use crate::sync::lock;

/// The pending result of [`Executor::apply_async`](crate::Executor::apply_async)
/// (`T` is the function's result) or of
/// [`Executor::map_async`](crate::Executor::map_async) (`T` is the `Vec` of
/// results), like Python's `AsyncResult`: [`get`](AsyncResult::get) waits,
/// [`get_timeout`](AsyncResult::get_timeout) waits at most a while,
/// [`ready`](AsyncResult::ready) asks without waiting.
///
/// It is also a [`Future`] of the same `Result`: `.await` it in async code, on
/// any executor. The pool wakes the awaiting task when the outcomes arrive (the
/// thread that reads them from the worker wakes it), so no thread is blocked and
/// nothing polls on a timer while results are pending; a thousand pending
/// results cost a thousand small handles, not a thousand threads. On
/// [`Serial`](crate::Serial), which runs tasks when their results are asked for,
/// awaiting runs them in the awaiting thread.
///
/// Dropping the handle, or a future that awaits it, drops interest in the
/// result: its tasks not yet handed to a worker are cancelled and never run;
/// tasks already running (for a process pool, also those already sent to a
/// worker with the one it runs) run to the end, and their results are
/// discarded. The pool itself carries on.
///
/// ```
/// use dilly_pool::{Executor, ProcessPool};
///
/// #[dilly::func]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = ProcessPool::builder().workers(2).build()?;
/// let f = dilly::func_of!(square);
/// // Any executor; this one is `futures::executor::block_on`.
/// let (one, all) = futures_executor::block_on(async {
///     let one = pool.apply_async(&f, (3,))?;
///     let all = pool.map_async(&f, 1..=4u64)?;
///     Ok::<_, dilly_pool::Error>((one.await?, all.await?))
/// })?;
/// assert_eq!((one, all), (9, vec![1, 4, 9, 16]));
/// # Ok::<(), dilly_pool::Error>(())
/// ```
///
/// Python's `apply_async(f, args, callback=on_done, error_callback=on_error)`
/// is a handle awaited (or `get` on a thread of your own) followed by a `match`:
/// see "Callbacks" in the pool guide (`docs/pool.md`).
pub struct AsyncResult<T> {
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    /// `None` for a map over no items.
    job: Option<Box<dyn Job>>,
    pending: Box<dyn Pending<T> + Send>,
    /// The job stopped yielding outcomes before every task reported (the pool
    /// went away).
    broken: bool,
    /// Whether every task succeeded, recorded when the value is taken.
    taken: Option<bool>,
}

/// What a handle collects: the outcomes of its tasks, and the value they make.
trait Pending<T> {
    fn add(&mut self, batch: &Outcomes);
    /// Every task has reported.
    fn complete(&self) -> bool;
    /// No task failed (meaningful once complete).
    fn succeeded(&self) -> bool;
    /// The value, once complete; called at most once.
    fn take(&mut self) -> Result<T>;
}

/// One task's outcome, decoded when taken.
struct One<R> {
    decode: Decode<R>,
    outcome: Option<std::result::Result<Vec<u8>, TaskError>>,
}

impl<R> Pending<R> for One<R> {
    fn add(&mut self, batch: &Outcomes) {
        if let Some((_, outcome)) = batch.iter().next() {
            self.outcome = Some(outcome.map(<[u8]>::to_vec).map_err(TaskError::clone));
        }
    }

    fn complete(&self) -> bool {
        self.outcome.is_some()
    }

    fn succeeded(&self) -> bool {
        matches!(self.outcome, Some(Ok(_)))
    }

    fn take(&mut self) -> Result<R> {
        let outcome = self.outcome.take().ok_or(Error::Closed)?;
        decode_outcome(&self.decode, outcome.as_deref())
            .map_err(|error| Error::Task { index: 0, error })
    }
}

/// A map's results, decoded as they arrive (counted on its progress bar, if any,
/// as the handle takes them in).
struct Many<R> {
    decode: Decode<R>,
    /// Tasks submitted.
    n: u64,
    placed: Option<Placed<R>>,
    progress: Progress,
}

impl<R> Pending<Vec<R>> for Many<R> {
    fn add(&mut self, batch: &Outcomes) {
        if let Some(placed) = &mut self.placed {
            placed.add(&self.decode, batch);
            self.progress.inc_by(batch.len() as u64);
            if placed.received() >= self.n {
                self.progress.finish();
            }
        }
    }

    fn complete(&self) -> bool {
        self.placed.as_ref().is_none_or(|p| p.received() >= self.n)
    }

    fn succeeded(&self) -> bool {
        self.placed.as_ref().is_none_or(|p| !p.failed())
    }

    fn take(&mut self) -> Result<Vec<R>> {
        self.placed.take().ok_or(Error::Closed)?.finish(self.n)
    }
}

impl<T> AsyncResult<T> {
    /// The handle of a one-task job.
    pub(crate) fn one<A: serde::Serialize + 'static, M: Mode>(
        job: Box<dyn Job>,
        func: Func<A, T, M>,
    ) -> AsyncResult<T>
    where
        T: DeserializeOwned + 'static,
    {
        AsyncResult::with(
            Some(job),
            Box::new(One {
                decode: Box::new(move |bytes| func.decode_result(bytes)),
                outcome: None,
            }),
        )
    }

    fn with(job: Option<Box<dyn Job>>, pending: Box<dyn Pending<T> + Send>) -> AsyncResult<T> {
        AsyncResult {
            inner: Mutex::new(Inner {
                job,
                pending,
                broken: false,
                taken: None,
            }),
        }
    }

    /// Waits for the result.
    pub fn get(self) -> Result<T> {
        let mut inner = lock(&self.inner);
        inner.wait(None);
        inner.take(Duration::ZERO)
    }

    /// Waits at most `timeout` for the result. On [`Error::Timeout`] the handle is
    /// still good: call it again later. After a result was returned, later calls
    /// return [`Error::AlreadyTaken`]; if the pool went away before the result
    /// came, [`Error::Closed`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        let mut inner = lock(&self.inner);
        inner.wait(Some(timeout));
        inner.take(timeout)
    }

    /// Whether the result is there (a `get` would not wait).
    pub fn ready(&self) -> bool {
        let mut inner = lock(&self.inner);
        inner.wait(Some(Duration::ZERO));
        inner.taken.is_some() || inner.broken || inner.pending.complete()
    }

    /// Whether every task finished without error; `None` while some still run.
    pub fn successful(&self) -> Option<bool> {
        let mut inner = lock(&self.inner);
        inner.wait(Some(Duration::ZERO));
        if inner.broken {
            return Some(false);
        }
        inner
            .taken
            .or_else(|| inner.pending.complete().then(|| inner.pending.succeeded()))
    }
}

/// Woken by the pool when the outcomes arrive
/// ([`Job::poll_next`](crate::backend::Job::poll_next)); ready with what
/// [`get`](AsyncResult::get) would return.
impl<T> Future for AsyncResult<T> {
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        while inner.taken.is_none() && !inner.broken && !inner.pending.complete() {
            let Some(job) = inner.job.as_mut() else { break };
            match job.poll_next(cx) {
                Poll::Ready(Some(batch)) => inner.pending.add(&batch),
                Poll::Ready(None) => inner.broken = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(inner.take(Duration::ZERO))
    }
}

impl<R: DeserializeOwned + Send + 'static> AsyncResult<Vec<R>> {
    /// The handle of a map's job of `n` tasks (`None`: no tasks), with a progress
    /// bar if `progress`.
    pub(crate) fn many<A: serde::Serialize + 'static, M: Mode>(
        submitted: Option<(Box<dyn Job>, usize)>,
        func: Func<A, R, M>,
        progress: bool,
    ) -> AsyncResult<Vec<R>> {
        let (job, n) = match submitted {
            Some((job, n)) => (Some(job), n),
            None => (None, 0),
        };
        AsyncResult::with(
            job,
            Box::new(Many {
                decode: Box::new(move |bytes| func.decode_result(bytes)),
                n: n as u64,
                placed: Some(Placed::with_capacity(n)),
                progress: Progress::new(progress && n > 0, Some(n as u64)),
            }),
        )
    }
}

impl<T> Inner<T> {
    /// Takes in outcomes until every task has reported, or `timeout` passed.
    fn wait(&mut self, timeout: Option<Duration>) {
        let deadline = timeout.map(|t| Instant::now() + t);
        while self.taken.is_none() && !self.broken && !self.pending.complete() {
            let Some(job) = self.job.as_mut() else { return };
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match job.next(left) {
                Some(batch) => self.pending.add(&batch),
                // Without a deadline, only a job that can no longer deliver stops.
                None if deadline.is_none() => self.broken = true,
                None => return,
            }
        }
    }

    fn take(&mut self, waited: Duration) -> Result<T> {
        if self.taken.is_some() {
            return Err(Error::AlreadyTaken);
        }
        if self.broken {
            return Err(Error::Closed);
        }
        if !self.pending.complete() {
            return Err(Error::Timeout { waited });
        }
        self.taken = Some(self.pending.succeeded());
        self.pending.take()
    }
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult").finish_non_exhaustive()
    }
}
