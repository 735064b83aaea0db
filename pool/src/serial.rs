//! [`Serial`]: runs every task in the calling thread, one after the other — the
//! executor for debugging (breakpoints and backtraces work as usual).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use dilly::{ErasedFunc, RawFunc};

use crate::backend::{Items, Outcomes};
use crate::backend::{Job, Shape};
use crate::error::Result;
use crate::executor::Executor;
use crate::local::{prepare, run_local};

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
