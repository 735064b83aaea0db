//! `map` and `starmap` (streaming) and the submission of `map_async` over any
//! [`Executor`](crate::Executor), and how work is cut into chunks. The `imap`
//! iterators are in `imap.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dilly::{Func, Mode, RawFunc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Items, Job, Shape};
use crate::error::{Error, Result, TaskError};
use crate::progress::Progress;

/// The largest chunk the pool picks by itself.
pub(crate) const MAX_AUTO_CHUNK: usize = 4096;

/// Chunk size for `n` items on `workers` workers: about four chunks per worker, as
/// Python's `Pool.map` does, so a slow chunk does not leave the others idle.
pub(crate) fn auto_chunk(n: usize, workers: usize) -> usize {
    n.div_ceil(workers.max(1) * 4).clamp(1, MAX_AUTO_CHUNK)
}

/// Runs `func` on every argument tuple; results in input order.
///
/// It streams: arguments are encoded a chunk at a time, at most a window of
/// tasks ahead of the results ([`map_window`]), and each result goes into the output as soon as it and every one
/// before it are in. So its memory is the output, the window and the results
/// that came before an earlier one — not every argument encoded up front and a
/// slot per result. An argument that cannot be encoded fails the map when it is
/// reached: the tasks not yet started are cancelled, and those before it may have
/// run.
pub(crate) fn map<A, R, M>(
    shape: Shape,
    open: impl FnOnce(&RawFunc) -> Result<Box<dyn Job>>,
    func: &Func<A, R, M>,
    args: impl Iterator<Item = A>,
) -> Result<Vec<R>>
where
    A: Serialize + 'static,
    R: DeserializeOwned + 'static,
    M: Mode,
{
    let workers = shape.workers.max(1);
    let (low, high) = args.size_hint();
    let known = (Some(low) == high).then_some(low);
    let (mut chunk, adaptive) = match (shape.chunk_size, known) {
        (Some(c), _) => (c.max(1), false),
        (None, Some(n)) => (auto_chunk(n, workers), false),
        (None, None) => (1, true),
    };
    // Opened also for no items, so that a closed executor says so whatever the
    // input.
    let mut job = open(&func.raw())?;
    let progress = Progress::new(shape.progress, known.map(|n| n as u64));
    let decode = |bytes: &[u8]| func.decode_result(bytes);
    let mut placed = Placed::with_capacity(known.unwrap_or(low));
    let mut args = args.fuse();
    let mut input_done = false;
    let (mut submitted, mut received) = (0u64, 0u64);
    let started = Instant::now();
    let mut burst = Burst::default();
    loop {
        let window = map_window(workers, chunk);
        // `submitted` counts the tasks of the burst too: they are encoded and
        // go to the job before this thread waits.
        while !input_done && submitted - received < window {
            let items = encode_chunk(func, &mut args, submitted as usize, chunk, 0)?;
            input_done = items.len() < chunk;
            let len = items.len() as u64;
            if len > 0 {
                burst.add(submitted, items);
                submitted += len;
                if burst.is_full() {
                    burst.submit_to(&mut *job)?;
                }
            }
        }
        burst.submit_to(&mut *job)?;
        if input_done && received == submitted {
            break;
        }
        let Some(batch) = job.next(None) else {
            return Err(Error::Closed);
        };
        received += batch.len() as u64;
        placed.add(&decode, &batch);
        progress.inc_by(batch.len() as u64);
        if adaptive {
            chunk = adapted_chunk(chunk, started.elapsed(), workers, received);
        }
    }
    progress.finish();
    placed.finish(submitted)
}

/// Encoded chunks a streaming map (or an imap) holds back to submit together
/// ([`Job::submit_chunks`]): what it encodes to fill its window, handed over
/// whenever it holds [`Burst::BYTES`] of arguments, so that large ones start
/// early, and when the window is full.
///
/// Submitted one at a time between encodings, one-item chunks each took the
/// process pool's queue lock and woke its threads while they were taking chunks
/// off the queue; the contention (five times the context switches) doubled the
/// time of a map at chunk size 1 (`docs/benchmarks.md`).
#[derive(Default)]
pub(crate) struct Burst {
    first: u64,
    chunks: Vec<Items>,
    items: u64,
    bytes: usize,
}

impl Burst {
    const BYTES: usize = 256 << 10;

    /// Adds the chunk of tasks `first`, … (the one right after the burst's last).
    pub(crate) fn add(&mut self, first: u64, items: Items) {
        if self.chunks.is_empty() {
            self.first = first;
        }
        self.items += items.len() as u64;
        self.bytes += items.byte_len();
        self.chunks.push(items);
    }

    /// The tasks held: the first one's index, and how many.
    pub(crate) fn tasks(&self) -> (u64, u64) {
        (self.first, self.items)
    }

    /// Whether to hand the burst over now: it holds [`Burst::BYTES`] of arguments.
    pub(crate) fn is_full(&self) -> bool {
        self.bytes >= Burst::BYTES
    }

    /// Hands the chunks held to `job`, and is empty again.
    pub(crate) fn submit_to(&mut self, job: &mut dyn Job) -> Result<()> {
        if self.chunks.is_empty() {
            return Ok(());
        }
        self.items = 0;
        self.bytes = 0;
        job.submit_chunks(self.first, std::mem::take(&mut self.chunks))
    }
}

/// How many tasks a streaming map keeps submitted ahead of its results: two
/// chunks per worker and one more, and never fewer than two of the largest
/// automatic chunks per worker. Small chunks (a chunk size of 1) need the depth:
/// the pool merges queued chunks of fast tasks into one message, which a handful
/// in flight would leave it no room to do (a map of 20,000 one-item chunks ran
/// 50 times slower with five in flight). Encoded, that many `u64` arguments
/// take 128 KiB per worker.
pub(crate) fn map_window(workers: usize, chunk: usize) -> u64 {
    let chunks = (2 * workers + 1).saturating_mul(chunk);
    chunks.max(2 * workers * MAX_AUTO_CHUNK) as u64
}

/// A map's results as they arrive (a streaming `map`'s, and `map_async`'s): the
/// output in input order as far as every result is in, the results that came
/// before an earlier one, and the first failure.
pub(crate) struct Placed<R> {
    out: Vec<R>,
    /// Results ahead of the output, in runs of consecutive indices by the index
    /// of their first (results mostly come a chunk at a time, in order).
    ahead: BTreeMap<u64, Vec<R>>,
    /// The run the last result ahead went to (where the next one most likely
    /// goes too).
    last_run: Option<u64>,
    /// The failure of the lowest index so far; once there is one, results are
    /// only counted.
    failure: Option<(usize, TaskError)>,
    /// Outcomes taken in, results and failures.
    received: u64,
}

impl<R> Placed<R> {
    /// Room for `n` results.
    pub(crate) fn with_capacity(n: usize) -> Placed<R> {
        Placed {
            out: Vec::with_capacity(n),
            ahead: BTreeMap::new(),
            last_run: None,
            failure: None,
            received: 0,
        }
    }

    /// Takes in a batch of outcomes, decoding results with `decode`.
    pub(crate) fn add(
        &mut self,
        decode: &impl Fn(&[u8]) -> dilly::Result<R>,
        batch: &crate::backend::Outcomes,
    ) {
        self.received += batch.len() as u64;
        for (index, outcome) in batch.iter() {
            match decode_outcome(decode, outcome) {
                Ok(value) if self.failure.is_none() => self.place(index, value),
                Ok(_) => {}
                Err(error) => {
                    let index = index as usize;
                    if self.failure.as_ref().is_none_or(|(i, _)| index < *i) {
                        self.failure = Some((index, error));
                        // No result is returned now: free what is held.
                        self.ahead.clear();
                        self.last_run = None;
                    }
                }
            }
        }
    }

    fn place(&mut self, index: u64, value: R) {
        let next = self.out.len() as u64;
        if index == next {
            self.out.push(value);
            while let Some(run) = self.ahead.remove(&(self.out.len() as u64)) {
                if self.last_run == Some(self.out.len() as u64) {
                    self.last_run = None;
                }
                self.out.extend(run);
            }
            return;
        }
        if index < next {
            // Already placed: never happens (every index reports once).
            return;
        }
        let continues = |first: u64, run: &Vec<R>| first + run.len() as u64 == index;
        if let Some(first) = self.last_run
            && let Some(run) = self.ahead.get_mut(&first)
            && continues(first, run)
        {
            run.push(value);
            return;
        }
        if let Some((&first, run)) = self.ahead.range_mut(..index).next_back()
            && continues(first, run)
        {
            run.push(value);
            self.last_run = Some(first);
            return;
        }
        self.ahead.insert(index, vec![value]);
        self.last_run = Some(index);
    }

    /// How many outcomes were taken in.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Whether a task has failed so far.
    pub(crate) fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// The results in input order, or the first failure, once all `n` reported.
    pub(crate) fn finish(self, n: u64) -> Result<Vec<R>> {
        if let Some((index, error)) = self.failure {
            return Err(Error::Task { index, error });
        }
        if (self.out.len() as u64) < n {
            return Err(Error::Task {
                index: self.out.len(),
                error: TaskError::Terminated,
            });
        }
        Ok(self.out)
    }
}

/// Target duration of one chunk when the pool picks the chunk size by itself.
const CHUNK_TARGET: Duration = Duration::from_millis(20);

/// The chunk size for a map of unknown length, from what it measured so far: one
/// chunk per worker takes about [`CHUNK_TARGET`], growing at most twofold per
/// step so that a burst of fast items does not commit a huge chunk to one worker.
pub(crate) fn adapted_chunk(
    chunk: usize,
    elapsed: Duration,
    workers: usize,
    received: u64,
) -> usize {
    if received == 0 {
        return chunk;
    }
    let per_item = elapsed.as_secs_f64() * workers as f64 / received as f64;
    let ideal = if per_item > 0.0 {
        CHUNK_TARGET.as_secs_f64() / per_item
    } else {
        MAX_AUTO_CHUNK as f64
    };
    (ideal as usize).clamp(1, (chunk * 2).min(MAX_AUTO_CHUNK))
}

/// Encodes every argument tuple and submits them all as one job, cut into chunks
/// (`map_async`, `starmap_async`): the job and its number of tasks, or `None` for
/// no arguments.
pub(crate) fn submit<A, R, M>(
    shape: Shape,
    open: impl FnOnce(&RawFunc) -> Result<Box<dyn Job>>,
    func: &Func<A, R, M>,
    args: impl Iterator<Item = A>,
) -> Result<Option<(Box<dyn Job>, usize)>>
where
    A: Serialize + 'static,
    R: DeserializeOwned + 'static,
    M: Mode,
{
    // Every argument is encoded before any task runs: one that cannot be encoded
    // fails the map without side effects. Choosing the chunk size needs the number
    // of items; an iterator that does not tell it exactly is collected first.
    let (low, high) = args.size_hint();
    let chunks = match (shape.chunk_size, high == Some(low)) {
        (Some(chunk), _) => encode_chunks(func, args, chunk.max(1))?,
        (None, true) => encode_chunks(func, args, auto_chunk(low, shape.workers))?,
        (None, false) => {
            let args: Vec<A> = args.collect();
            let chunk = auto_chunk(args.len(), shape.workers);
            encode_chunks(func, args.into_iter(), chunk)?
        }
    };
    // Opened also for no items, so that a closed executor says so whatever the
    // input.
    let mut job = open(&func.raw())?;
    let n: usize = chunks.iter().map(Items::len).sum();
    if n == 0 {
        return Ok(None);
    }
    job.submit_chunks(0, chunks)?;
    Ok(Some((job, n)))
}

/// Encodes the argument tuples straight into chunks of `chunk` items.
fn encode_chunks<A, R, M>(
    func: &Func<A, R, M>,
    mut args: impl Iterator<Item = A>,
    chunk: usize,
) -> Result<Vec<Items>>
where
    A: Serialize,
    R: DeserializeOwned,
    M: Mode,
{
    let mut chunks = Vec::new();
    let mut first = 0;
    // The next chunk is likely about as large as the one before.
    let mut bytes = 0;
    loop {
        let items = encode_chunk(func, &mut args, first, chunk, bytes)?;
        let last = items.len() < chunk;
        if !items.is_empty() {
            first += items.len();
            bytes = items.byte_len();
            chunks.push(items);
        }
        if last {
            return Ok(chunks);
        }
    }
}

/// Encodes the next `chunk` argument tuples of `args` (fewer where it ends) into
/// one chunk whose first task has index `first`, with room for `bytes` of
/// arguments.
fn encode_chunk<A, R, M>(
    func: &Func<A, R, M>,
    args: &mut impl Iterator<Item = A>,
    first: usize,
    chunk: usize,
    bytes: usize,
) -> Result<Items>
where
    A: Serialize,
    R: DeserializeOwned,
    M: Mode,
{
    // A chunk size far above the number of items must not reserve for it.
    let mut items = Items::with_capacity(chunk.min(MAX_AUTO_CHUNK), bytes);
    while items.len() < chunk {
        let Some(a) = args.next() else {
            break;
        };
        let index = first + items.len();
        items
            .push_with(|out| func.encode_args_into(&a, out))
            .map_err(|error| Error::Encode { index, error })?;
    }
    Ok(items)
}

/// Decodes a task's result bytes into its typed result.
pub(crate) type Decode<R> = Box<dyn Fn(&[u8]) -> dilly::Result<R> + Send + Sync>;

/// A task's outcome as its typed result: the result decoded, or the failure.
pub(crate) fn decode_outcome<R>(
    decode: &impl Fn(&[u8]) -> dilly::Result<R>,
    outcome: std::result::Result<&[u8], &TaskError>,
) -> std::result::Result<R, TaskError> {
    match outcome {
        Ok(bytes) => decode(bytes).map_err(|error| TaskError::Unserializable { error }),
        Err(error) => Err(error.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::recording::{Recording, Submissions};

    #[test]
    fn auto_chunk_gives_each_worker_about_four_chunks() {
        assert_eq!(auto_chunk(0, 2), 1);
        assert_eq!(auto_chunk(4, 2), 1);
        assert_eq!(auto_chunk(80, 2), 10);
        assert_eq!(auto_chunk(100_000, 2), MAX_AUTO_CHUNK);
        assert_eq!(auto_chunk(10, 0), 3);
    }

    fn batch(indices: impl IntoIterator<Item = u64>) -> crate::backend::Outcomes {
        let mut outcomes = crate::backend::Outcomes::new();
        for i in indices {
            outcomes.push_ok(i, &i.to_le_bytes());
        }
        outcomes
    }

    fn decode(bytes: &[u8]) -> dilly::Result<u64> {
        Ok(u64::from_le_bytes(bytes.try_into().unwrap()))
    }

    #[test]
    fn results_out_of_order_are_placed_once_everything_before_them_is_in() {
        let mut placed = Placed::with_capacity(12);
        // Chunks of four from three workers, finishing in any order, some in
        // pieces.
        for indices in [8..10, 4..8, 10..12, 1..4, 0..1] {
            placed.add(&decode, &batch(indices));
        }
        assert!(placed.ahead.is_empty());
        assert_eq!(placed.finish(12).unwrap(), (0..12).collect::<Vec<u64>>());

        // Ahead of the output, consecutive results share a run.
        let mut placed = Placed::with_capacity(0);
        placed.add(&decode, &batch([5, 6, 7, 2, 3, 9]));
        let runs: Vec<(u64, usize)> = placed.ahead.iter().map(|(k, v)| (*k, v.len())).collect();
        assert_eq!(runs, [(2, 2), (5, 3), (9, 1)]);
        placed.add(&decode, &batch([4, 8, 0, 1]));
        assert_eq!(placed.out, (0..10).collect::<Vec<u64>>());
        assert!(placed.ahead.is_empty());
        // A result missing at the end is reported, not skipped.
        assert!(matches!(
            placed.finish(11),
            Err(Error::Task {
                index: 10,
                error: TaskError::Terminated
            })
        ));
    }

    #[test]
    fn the_lowest_failure_wins_and_frees_the_results_held() {
        let mut placed = Placed::with_capacity(8);
        placed.add(&decode, &batch([4, 5, 6]));
        let mut failures = crate::backend::Outcomes::new();
        failures.push_err(5, TaskError::Terminated);
        failures.push_err(3, TaskError::Terminated);
        failures.push_err(7, TaskError::Terminated);
        placed.add(&decode, &failures);
        assert!(placed.ahead.is_empty());
        placed.add(&decode, &batch([0, 1, 2]));
        match placed.finish(8) {
            Err(Error::Task { index: 3, .. }) => {}
            other => panic!("expected the failure of task 3, got {other:?}"),
        }
    }

    #[dilly::func]
    fn payload_len(payload: Vec<u8>) -> usize {
        payload.len()
    }

    #[test]
    fn a_streaming_map_hands_chunks_over_in_bursts_of_bounded_bytes() {
        let submissions = Submissions::default();
        let open = |raw: &RawFunc| Recording::open(raw, &submissions);
        let shape = Shape {
            workers: 2,
            chunk_size: Some(1),
            progress: false,
        };
        // 40 KB each: six stay under a burst's 256 KiB, the seventh fills it.
        let sizes: Vec<usize> = (0..50).map(|i| 40_000 + i).collect();
        let payloads = sizes.iter().map(|&n| (vec![7u8; n],));
        let f = dilly::func_of!(payload_len);
        assert_eq!(map(shape, open, &f, payloads).unwrap(), sizes);

        let submissions = submissions.lock().unwrap();
        let mut next = 0;
        for (first, lens, bytes) in submissions.iter() {
            assert_eq!(*first, next, "chunks are handed over in input order");
            assert!(lens.iter().all(|&len| len == 1), "the chunk size is kept");
            assert!(
                *bytes < Burst::BYTES + 40_100,
                "a burst stops at the first chunk that fills it: {bytes} bytes"
            );
            next += lens.len() as u64;
        }
        assert_eq!(next, 50);
        // The window (all 50 here) goes out in bursts of seven, not one by one.
        let bursts: Vec<usize> = submissions.iter().map(|(_, lens, _)| lens.len()).collect();
        assert_eq!(bursts, [7, 7, 7, 7, 7, 7, 7, 1]);
    }
}
