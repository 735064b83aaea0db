//! A backend for unit tests of the typed methods: it runs each chunk at once, in
//! the caller's thread, and records how chunks were handed to it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dilly::{ErasedFunc, RawFunc};

use super::{Items, Job, Outcomes};
use crate::error::{Result, TaskError};

/// Each submission's first index, chunk lengths and bytes.
pub(crate) type Submissions = Arc<Mutex<Vec<(u64, Vec<usize>, usize)>>>;

pub(crate) struct Recording {
    func: Arc<dyn ErasedFunc>,
    done: VecDeque<Outcomes>,
    submissions: Submissions,
}

impl Recording {
    /// A job for `raw` that records into `submissions`.
    pub(crate) fn open(raw: &RawFunc, submissions: &Submissions) -> Result<Box<dyn Job>> {
        Ok(Box::new(Recording {
            func: raw.prepare().expect("a registered function"),
            done: VecDeque::new(),
            submissions: Arc::clone(submissions),
        }))
    }
}

impl Job for Recording {
    fn submit(&mut self, first: u64, items: Items) -> Result<()> {
        self.submit_chunks(first, vec![items])
    }

    fn submit_chunks(&mut self, first: u64, chunks: Vec<Items>) -> Result<()> {
        let lens = chunks.iter().map(Items::len).collect();
        let bytes = chunks.iter().map(Items::byte_len).sum();
        self.submissions
            .lock()
            .expect("not poisoned")
            .push((first, lens, bytes));
        let mut index = first;
        for items in chunks {
            let mut outcomes = Outcomes::new();
            for args in items.iter() {
                let result = self
                    .func
                    .call_bytes(args)
                    .map_err(|error| TaskError::Arguments { error });
                outcomes.push(index, result);
                index += 1;
            }
            self.done.push_back(outcomes);
        }
        Ok(())
    }

    fn next(&mut self, _timeout: Option<Duration>) -> Option<Outcomes> {
        self.done.pop_front()
    }
}
