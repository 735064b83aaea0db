//! [`AsyncResult`]: the handle `apply_async` returns.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use dilly::{Func, Mode};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result, TaskError};
use crate::pool::Job;
use crate::start::lock;

type Decode<R> = Box<dyn Fn(&[u8]) -> dilly::Result<R> + Send + Sync>;

/// The pending result of [`Executor::apply_async`](crate::Executor::apply_async),
/// like Python's `AsyncResult`: [`get`](AsyncResult::get) waits,
/// [`get_timeout`](AsyncResult::get_timeout) waits at most a while,
/// [`ready`](AsyncResult::ready) asks without waiting. Dropping it cancels the task
/// if it has not started.
pub struct AsyncResult<R> {
    inner: Mutex<Inner>,
    decode: Decode<R>,
}

struct Inner {
    job: Box<dyn Job>,
    outcome: Option<std::result::Result<Vec<u8>, TaskError>>,
    taken: bool,
    /// Whether the task succeeded, once its outcome arrived.
    succeeded: Option<bool>,
}

impl<R: DeserializeOwned + 'static> AsyncResult<R> {
    pub(crate) fn new<A: serde::Serialize + 'static, M: Mode>(
        job: Box<dyn Job>,
        func: Func<A, R, M>,
    ) -> AsyncResult<R> {
        AsyncResult {
            inner: Mutex::new(Inner {
                job,
                outcome: None,
                taken: false,
                succeeded: None,
            }),
            decode: Box::new(move |bytes| func.decode_result(bytes)),
        }
    }
}

impl<R> AsyncResult<R> {
    /// Waits for the result.
    pub fn get(self) -> Result<R> {
        let mut inner = lock(&self.inner);
        inner.wait(None);
        self.take(&mut inner, Duration::ZERO)
    }

    /// Waits at most `timeout` for the result. On [`Error::Timeout`] the handle is
    /// still good: call it again later. After a result was returned, later calls
    /// return [`Error::Closed`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<R> {
        let mut inner = lock(&self.inner);
        inner.wait(Some(timeout));
        self.take(&mut inner, timeout)
    }

    /// Whether the result is there (a `get` would not wait).
    pub fn ready(&self) -> bool {
        let mut inner = lock(&self.inner);
        inner.wait(Some(Duration::ZERO));
        inner.succeeded.is_some()
    }

    /// Whether the task finished without error; `None` while it runs.
    pub fn successful(&self) -> Option<bool> {
        let mut inner = lock(&self.inner);
        inner.wait(Some(Duration::ZERO));
        inner.succeeded
    }

    fn take(&self, inner: &mut Inner, waited: Duration) -> Result<R> {
        if inner.taken {
            return Err(Error::Closed);
        }
        match inner.outcome.take() {
            None => Err(Error::Timeout { waited }),
            Some(outcome) => {
                inner.taken = true;
                outcome
                    .and_then(|bytes| {
                        (self.decode)(&bytes).map_err(|error| TaskError::Unserializable { error })
                    })
                    .map_err(|error| Error::Task { index: 0, error })
            }
        }
    }
}

impl Inner {
    fn wait(&mut self, timeout: Option<Duration>) {
        if self.outcome.is_some() || self.taken {
            return;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        // A one-task job: its one outcome.
        if let Some((_, outcome)) = self.job.next(left).as_ref().and_then(|o| o.iter().next()) {
            self.succeeded = Some(outcome.is_ok());
            self.outcome = Some(outcome.map(<[u8]>::to_vec).map_err(TaskError::clone));
        }
    }
}

impl<R> std::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult").finish_non_exhaustive()
    }
}
