//! The streaming `imap` and `imap_unordered` iterators over any
//! [`Executor`](crate::Executor): input read lazily a few chunks ahead of the
//! results.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use dilly::{Func, Mode, RawFunc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Items, Job, Shape};
use crate::error::{Result, TaskError};
use crate::map::{Decode, MAX_AUTO_CHUNK, adapted_chunk, auto_chunk, decode_outcome};
use crate::progress::Progress;

/// Encodes the next input item into the given batch; `None` when the input ends.
type Feed<'a> = Box<dyn FnMut(&mut Items) -> Option<dilly::Result<()>> + 'a>;

/// The iterator of [`Executor::imap`](crate::Executor::imap) (results in input order) and
/// [`Executor::imap_unordered`](crate::Executor::imap_unordered) (results as they finish): one `Result` per input
/// item, so partial results survive failures. The input is read lazily, a few
/// chunks ahead of the results. Dropping it cancels the tasks not yet started.
///
/// [`indexed`](Imap::indexed) also yields each result's input position.
pub struct Imap<'a, R> {
    job: Box<dyn Job>,
    input: Option<Feed<'a>>,
    decode: Decode<R>,
    ordered: bool,
    /// Results waiting to be yielded, by index (ordered mode).
    waiting: BTreeMap<u64, std::result::Result<R, TaskError>>,
    /// Results waiting to be yielded, in arrival order (unordered mode).
    arrived: VecDeque<(u64, std::result::Result<R, TaskError>)>,
    next_yield: u64,
    next_index: u64,
    outstanding: u64,
    received: u64,
    chunk: usize,
    adaptive: bool,
    workers: usize,
    started: Instant,
    progress: Progress,
}

impl<'a, R: DeserializeOwned + 'static> Imap<'a, R> {
    pub(crate) fn new<A, M>(
        shape: Shape,
        open: impl FnOnce(&RawFunc) -> Result<Box<dyn Job>>,
        func: &Func<A, R, M>,
        args: impl Iterator<Item = A> + 'a,
        ordered: bool,
    ) -> Result<Imap<'a, R>>
    where
        A: Serialize + 'static,
        M: Mode,
    {
        let (low, high) = args.size_hint();
        let known = (Some(low) == high).then_some(low);
        let (chunk, adaptive) = match (shape.chunk_size, known) {
            (Some(c), _) => (c.max(1), false),
            (None, Some(n)) => (auto_chunk(n, shape.workers), false),
            (None, None) => (1, true),
        };
        let job = open(&func.raw())?;
        let enc = func.clone();
        let dec = func.clone();
        let mut args = args;
        let feed: Feed<'a> = Box::new(move |items: &mut Items| {
            let a = args.next()?;
            Some(items.push_with(|out| enc.encode_args_into(&a, out)))
        });
        Ok(Imap {
            job,
            input: Some(feed),
            decode: Box::new(move |bytes| dec.decode_result(bytes)),
            ordered,
            waiting: BTreeMap::new(),
            arrived: VecDeque::new(),
            next_yield: 0,
            next_index: 0,
            outstanding: 0,
            received: 0,
            chunk,
            adaptive,
            workers: shape.workers.max(1),
            started: Instant::now(),
            progress: Progress::new(shape.progress, known.map(|n| n as u64)),
        })
    }
}

impl<R> Imap<'_, R> {
    /// Yields `(input index, result)` pairs instead of bare results.
    pub fn indexed(self) -> Indexed<Self> {
        Indexed(self)
    }

    fn store(&mut self, index: u64, result: std::result::Result<R, TaskError>) {
        if self.ordered {
            self.waiting.insert(index, result);
        } else {
            self.arrived.push_back((index, result));
        }
    }

    /// Reads and submits input until enough work is queued.
    fn top_up(&mut self) {
        let window = (self.workers * self.chunk * 2 + self.chunk) as u64;
        while self.outstanding < window {
            let Some(input) = self.input.as_mut() else {
                return;
            };
            let mut batch = Items::with_capacity(self.chunk.min(MAX_AUTO_CHUNK), 0);
            let first = self.next_index;
            let mut exhausted = false;
            let mut failed = None;
            while batch.len() < self.chunk {
                match input(&mut batch) {
                    None => {
                        exhausted = true;
                        break;
                    }
                    Some(Ok(())) => {}
                    Some(Err(error)) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            let len = batch.len() as u64;
            if len > 0 {
                match self.job.submit(first, batch) {
                    Ok(()) => self.outstanding += len,
                    Err(_) => {
                        for i in 0..len {
                            self.store(first + i, Err(TaskError::Terminated));
                        }
                    }
                }
            }
            self.next_index += len;
            if let Some(error) = failed {
                let index = self.next_index;
                self.next_index += 1;
                self.store(index, Err(TaskError::Arguments { error }));
            }
            if exhausted {
                self.input = None;
            }
        }
    }

    fn adapt(&mut self) {
        if self.adaptive {
            self.chunk = adapted_chunk(
                self.chunk,
                self.started.elapsed(),
                self.workers,
                self.received,
            );
        }
    }

    fn next_indexed(&mut self) -> Option<(u64, std::result::Result<R, TaskError>)> {
        loop {
            self.top_up();
            if self.ordered {
                if let Some(result) = self.waiting.remove(&self.next_yield) {
                    let index = self.next_yield;
                    self.next_yield += 1;
                    self.progress.inc();
                    return Some((index, result));
                }
            } else if let Some(pair) = self.arrived.pop_front() {
                self.progress.inc();
                return Some(pair);
            }
            if self.outstanding == 0 && self.input.is_none() {
                self.progress.finish();
                return None;
            }
            if self.outstanding == 0 {
                continue;
            }
            let Some(batch) = self.job.next(None) else {
                // The executor dropped the job: fail what is left instead of hanging.
                self.outstanding = 0;
                self.input = None;
                for i in self.next_yield..self.next_index {
                    if self.ordered && !self.waiting.contains_key(&i) {
                        self.waiting.insert(i, Err(TaskError::Terminated));
                    }
                }
                continue;
            };
            for (index, outcome) in batch.iter() {
                self.outstanding -= 1;
                self.received += 1;
                let result = decode_outcome(&self.decode, outcome);
                self.store(index, result);
            }
            self.adapt();
        }
    }
}

impl<R> Iterator for Imap<'_, R> {
    type Item = std::result::Result<R, TaskError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_indexed().map(|(_, r)| r)
    }
}

impl<R> std::fmt::Debug for Imap<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("ordered", &self.ordered)
            .field("submitted", &self.next_index)
            .field("outstanding", &self.outstanding)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

/// An [`Imap`] that yields `(input index, result)`.
#[derive(Debug)]
pub struct Indexed<I>(I);

impl<R> Iterator for Indexed<Imap<'_, R>> {
    type Item = (usize, std::result::Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_indexed().map(|(i, r)| (i as usize, r))
    }
}
