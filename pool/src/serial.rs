//! [`Serial`]: runs every task in the calling thread, one after the other — the
//! executor for debugging (breakpoints and backtraces work as usual).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use dilly::{ErasedFunc, RawFunc};

use crate::backend::{Items, Outcomes};
use crate::backend::{Job, Shape};
use crate::error::{Error, Result, TaskError};
use crate::executor::Executor;

/// Runs tasks in the calling thread, in order, when their results are asked for.
/// Same API and same failure values as [`ProcessPool`](crate::ProcessPool); arguments
/// and results still go through the codec, so what fails to travel fails here too.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial {
    _private: (),
}

impl Serial {
    /// The serial executor.
    pub fn new() -> Serial {
        Serial::default()
    }
}

/// Looks a function up and prepares it in this process.
pub(crate) fn prepare(func: &RawFunc) -> Result<Arc<dyn ErasedFunc>> {
    func.prepare().map_err(|error| Error::Task {
        index: 0,
        error: TaskError::Rejected { error },
    })
}

/// Runs one task in this thread, catching a panic.
pub(crate) fn run_local(
    func: &dyn ErasedFunc,
    args: &[u8],
) -> std::result::Result<Vec<u8>, TaskError> {
    match panic::catch_unwind(AssertUnwindSafe(|| func.call_bytes(args))) {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error @ dilly::Error::Encode { .. })) => Err(TaskError::Unserializable { error }),
        Ok(Err(error)) => Err(TaskError::Arguments { error }),
        Err(payload) => Err(TaskError::Panicked {
            message: crate::worker::panic_message(payload.as_ref()),
            location: None,
        }),
    }
}

struct SerialJob {
    func: Arc<dyn ErasedFunc>,
    /// Submitted chunks: the index of each one's first item, and its items.
    queue: VecDeque<(u64, Items)>,
    /// Items of the front chunk already run.
    done: usize,
}

impl Job for SerialJob {
    fn submit(&mut self, first: u64, items: Items) -> Result<()> {
        if !items.is_empty() {
            self.queue.push_back((first, items));
        }
        Ok(())
    }

    // One task per call, so that `imap` over `Serial` runs lazily.
    fn next(&mut self, _timeout: Option<Duration>) -> Option<Outcomes> {
        let (first, items) = self.queue.front()?;
        let index = first + self.done as u64;
        let args = items.get(self.done)?;
        let mut outcomes = Outcomes::new();
        outcomes.push(index, run_local(&*self.func, args));
        self.done += 1;
        if self.done == items.len() {
            self.queue.pop_front();
            self.done = 0;
        }
        Some(outcomes)
    }
}

impl Executor for Serial {
    fn open(&self, func: &RawFunc) -> Result<Box<dyn Job>> {
        Ok(Box::new(SerialJob {
            func: prepare(func)?,
            queue: VecDeque::new(),
            done: 0,
        }))
    }

    fn shape(&self) -> Shape {
        Shape {
            workers: 1,
            chunk_size: Some(1),
            progress: false,
        }
    }
}
