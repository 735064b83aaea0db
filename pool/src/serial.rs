//! [`Serial`]: runs every task in the calling thread, one after the other — the
//! executor for debugging (breakpoints and backtraces work as usual).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use dilly::{ErasedFunc, RawFunc};

use crate::error::{Error, Result, TaskError};
use crate::pool::{Executor, Job, Outcome, Shape};

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
    queue: VecDeque<(u64, Vec<u8>)>,
}

impl Job for SerialJob {
    fn submit(&mut self, first: u64, items: Vec<Vec<u8>>) -> Result<()> {
        self.queue.extend(
            items
                .into_iter()
                .enumerate()
                .map(|(i, a)| (first + i as u64, a)),
        );
        Ok(())
    }

    fn next(&mut self, _timeout: Option<Duration>) -> Option<Outcome> {
        let (index, args) = self.queue.pop_front()?;
        Some((index, run_local(&*self.func, &args)))
    }
}

impl Executor for Serial {
    fn open(&self, func: &RawFunc) -> Result<Box<dyn Job>> {
        Ok(Box::new(SerialJob {
            func: prepare(func)?,
            queue: VecDeque::new(),
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
