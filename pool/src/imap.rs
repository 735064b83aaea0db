//! The streaming `imap` and `imap_unordered` iterators over any
//! [`Executor`](crate::Executor): input read lazily, a few chunks ahead of the
//! results, and further while results come back fast.

use std::collections::{BTreeMap, VecDeque};
use std::task::Poll;
use std::time::{Duration, Instant};

use dilly::{Func, Mode, RawFunc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Items, Job, Outcomes, Shape};
use crate::error::{Result, TaskError};
use crate::map::{
    Burst, Decode, MAX_AUTO_CHUNK, adapted_chunk, auto_chunk, decode_outcome, map_window,
};
use crate::progress::Progress;

/// How far ahead of the results an imap reads its input while results come back
/// fast: as many tasks as arrive in this time ([`Imap::read_ahead`]).
const READ_AHEAD: Duration = Duration::from_millis(20);

/// Encodes the next input item into the given batch; `None` when the input ends.
type Feed<'a> = Box<dyn FnMut(&mut Items) -> Option<dilly::Result<()>> + 'a>;

/// The iterator of [`Executor::imap`](crate::Executor::imap) (results in input order) and
/// [`Executor::imap_unordered`](crate::Executor::imap_unordered) (results as they finish): one `Result` per input
/// item, so partial results survive failures. The input is read lazily: two
/// chunks per worker and one more ahead of the results, and, while results come
/// back fast, as many tasks as arrive in about 20 ms (at most what a `map` keeps
/// in flight), so that tiny tasks at a small chunk size run at `map`'s pace.
/// Dropping it cancels the tasks not yet started.
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
    /// Tasks to keep submitted ahead of the results ([`Imap::read_ahead`]).
    window: u64,
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
            window: ((2 * shape.workers.max(1) + 1) * chunk) as u64,
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

    /// How many tasks to keep submitted ahead of the results: two chunks per
    /// worker and one more, and more while results come back fast: as many as
    /// were received in the last [`READ_AHEAD`] at the rate measured so far, up to
    /// what a `map` keeps ([`map_window`]). Tasks of a millisecond or more (or a
    /// caller slow to take results) keep the few chunks; tiny ones get the depth
    /// in which the pool can merge small chunks (at chunk size 1, a window of
    /// five tasks ran 20,000 tiny ones 60 times slower than `map`).
    fn read_ahead(&self) -> u64 {
        let base = ((2 * self.workers + 1) * self.chunk) as u64;
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.received == 0 || elapsed <= 0.0 {
            return base;
        }
        let rate = self.received as f64 / elapsed;
        let ahead = (rate * READ_AHEAD.as_secs_f64()) as u64;
        ahead.min(map_window(self.workers, self.chunk)).max(base)
    }

    /// Reads and submits input until enough work is queued, in bursts
    /// ([`Burst`]) like a `map`.
    fn top_up(&mut self) {
        let mut burst = Burst::default();
        while self.outstanding + burst.tasks().1 < self.window {
            let Some(input) = self.input.as_mut() else {
                break;
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
                burst.add(first, batch);
            }
            self.next_index += len;
            if let Some(error) = failed {
                // The chunks before it go first: its index comes after theirs.
                self.submit(&mut burst);
                let index = self.next_index;
                self.next_index += 1;
                self.store(index, Err(TaskError::Arguments { error }));
            }
            if exhausted {
                self.input = None;
            }
            if burst.is_full() {
                self.submit(&mut burst);
            }
        }
        self.submit(&mut burst);
    }

    /// Submits what `burst` holds; if the job refuses it, its tasks fail as
    /// terminated.
    fn submit(&mut self, burst: &mut Burst) {
        let (first, len) = burst.tasks();
        match burst.submit_to(&mut *self.job) {
            Ok(()) => self.outstanding += len,
            Err(_) => {
                for i in 0..len {
                    self.store(first + i, Err(TaskError::Terminated));
                }
            }
        }
    }

    /// Adapts the chunk size (for an input of unknown length) and the window to
    /// what was measured, once per batch of results.
    fn adapt(&mut self) {
        self.window = self.read_ahead();
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
        match self.poll_indexed(|job| Poll::Ready(job.next(None))) {
            Poll::Ready(next) => next,
            Poll::Pending => unreachable!("a blocking wait is never pending"),
        }
    }

    /// The next result, taking outcomes from the job with `wait`: a blocking
    /// wait for the iterator, [`Job::poll_next`] for the stream.
    fn poll_indexed(
        &mut self,
        mut wait: impl FnMut(&mut dyn Job) -> Poll<Option<Outcomes>>,
    ) -> Poll<Option<(u64, std::result::Result<R, TaskError>)>> {
        loop {
            self.top_up();
            if self.ordered {
                if let Some(result) = self.waiting.remove(&self.next_yield) {
                    let index = self.next_yield;
                    self.next_yield += 1;
                    self.progress.inc();
                    return Poll::Ready(Some((index, result)));
                }
            } else if let Some(pair) = self.arrived.pop_front() {
                self.progress.inc();
                return Poll::Ready(Some(pair));
            }
            if self.outstanding == 0 && self.input.is_none() {
                self.progress.finish();
                return Poll::Ready(None);
            }
            if self.outstanding == 0 {
                continue;
            }
            let Some(batch) = std::task::ready!(wait(&mut *self.job)) else {
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

/// An [`Imap`] (an iterator) or an `ImapStream` (a stream) that yields
/// `(input index, result)`.
#[derive(Debug)]
pub struct Indexed<I>(I);

impl<R> Iterator for Indexed<Imap<'_, R>> {
    type Item = (usize, std::result::Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_indexed().map(|(i, r)| (i as usize, r))
    }
}

/// The results of an [`Imap`] as a [`Stream`](futures_core::Stream), for async
/// code on any executor: [`Imap::into_stream`] (with the `stream` feature, on by
/// default). The pool wakes the polling task when results arrive; no thread is
/// blocked while they are pending. The input is read, and chunks submitted, as
/// for the iterator, from the task that polls. Dropping the stream cancels the
/// tasks not yet started, as dropping the iterator does.
///
/// [`indexed`](ImapStream::indexed) also yields each result's input position.
///
/// ```
/// use dilly_pool::{Executor, ProcessPool};
/// use futures_util::StreamExt;
///
/// #[dilly::func]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = ProcessPool::builder().workers(2).build()?;
/// let stream = pool.imap(&dilly::func_of!(square), 1..=4u64)?.into_stream();
/// let squares: Vec<u64> = futures_executor::block_on(stream.map(Result::unwrap).collect());
/// assert_eq!(squares, [1, 4, 9, 16]);
/// # Ok::<(), dilly_pool::Error>(())
/// ```
#[cfg(feature = "stream")]
pub struct ImapStream<'a, R>(Imap<'a, R>);

#[cfg(feature = "stream")]
impl<R> std::fmt::Debug for ImapStream<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ImapStream").field(&self.0).finish()
    }
}

#[cfg(feature = "stream")]
impl<'a, R> Imap<'a, R> {
    /// The same results as a [`Stream`](futures_core::Stream) ([`ImapStream`]).
    pub fn into_stream(self) -> ImapStream<'a, R> {
        ImapStream(self)
    }
}

#[cfg(feature = "stream")]
impl<'a, R> ImapStream<'a, R> {
    /// Yields `(input index, result)` pairs instead of bare results.
    pub fn indexed(self) -> Indexed<ImapStream<'a, R>> {
        Indexed(self)
    }
}

#[cfg(feature = "stream")]
impl<R> futures_core::Stream for ImapStream<'_, R> {
    type Item = std::result::Result<R, TaskError>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let imap = &mut self.get_mut().0;
        imap.poll_indexed(|job| job.poll_next(cx))
            .map(|next| next.map(|(_, r)| r))
    }
}

#[cfg(feature = "stream")]
impl<R> futures_core::Stream for Indexed<ImapStream<'_, R>> {
    type Item = (usize, std::result::Result<R, TaskError>);

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        let imap = &mut (self.get_mut().0).0;
        imap.poll_indexed(|job| job.poll_next(cx))
            .map(|next| next.map(|(i, r)| (i as usize, r)))
    }
}

// No field of an `Imap` points into the `Imap` itself, so moving one while it is
// pinned is sound.
impl<R> Unpin for Imap<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::recording::{Recording, Submissions};

    #[dilly::func]
    fn triple(x: u64) -> u64 {
        x * 3
    }

    #[test]
    fn a_fast_imap_reads_further_ahead_in_bursts() {
        let submissions = Submissions::default();
        let shape = Shape {
            workers: 2,
            chunk_size: Some(1),
            progress: false,
        };
        let f = dilly::func_of!(triple);
        let imap = Imap::new(
            shape,
            |raw: &RawFunc| Recording::open(raw, &submissions),
            &f,
            (0..50_000u64).map(|x| (x,)),
            true,
        )
        .unwrap();
        let out: Vec<u64> = imap.map(|r| r.unwrap()).collect();
        assert_eq!(out, (0..50_000).map(|x| x * 3).collect::<Vec<u64>>());

        let submissions = submissions.lock().unwrap();
        let mut next = 0;
        for (first, lens, _) in submissions.iter() {
            assert_eq!(*first, next, "chunks are handed over in input order");
            assert!(lens.iter().all(|&len| len == 1), "the chunk size is kept");
            next += lens.len() as u64;
        }
        // Before any result: two chunks per worker and one more, in one burst.
        // Once results come back fast (this backend runs a task in microseconds;
        // more than 250 a second is all it takes), the window grows, and what it
        // adds is handed over in bursts rather than a chunk at a time.
        assert_eq!(submissions[0].1.len(), 5);
        let largest = submissions.iter().map(|(_, lens, _)| lens.len()).max();
        assert!(largest > Some(5), "largest burst: {largest:?}");
    }
}
