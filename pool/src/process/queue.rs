//! The job queue: chunks of submitted items waiting for a worker, the jobs they
//! belong to, and the merging of small chunks of one job into one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dilly::RawFunc;

use crate::backend::{Items, Outcomes};
use crate::error::TaskError;
use crate::sync::lock;

use super::{PoolCore, State};

pub(super) struct Chunk {
    pub(super) job: u64,
    pub(super) first: u64,
    pub(super) items: Items,
    /// Must run alone (a suspect re-run after an ambiguous worker death): never
    /// merged with the chunks around it.
    pub(super) isolated: bool,
}

pub(super) struct JobInfo {
    pub(super) func: Arc<RawFunc>,
    pub(super) key: u64,
    /// Outcomes go to the job in batches (one message per chunk, or per read of
    /// the worker's socket), never empty ones.
    pub(super) sink: super::mailbox::Sink,
    /// Estimated time a worker spends per item of this job's function, in
    /// nanoseconds (0 until a chunk has completed), shared by the jobs of one
    /// function: how many small chunks may be merged into one, and whether a chunk
    /// may be pipelined behind one of them. So the jobs of an `apply` loop, one
    /// chunk each, are known fast or slow from the first ones.
    pub(super) item_nanos: Arc<AtomicU64>,
}

impl JobInfo {
    /// Most items a chunk of this job may hold after merging: as many as its
    /// workers are estimated to finish within `window`, the result window
    /// (`ProcessPoolBuilder::result_window`). A merged chunk then exposes no task to a second
    /// run after a crash that the window did not already expose (see
    /// `docs/decisions.md`), and a merge holds back at most that much work from an
    /// idle worker. One while nothing is known, or with a zero window.
    pub(super) fn merge_budget(&self, window: Duration) -> usize {
        match self.item_nanos.load(Ordering::Relaxed) {
            0 => 1,
            nanos => usize::try_from(window.as_nanos() / u128::from(nanos))
                .unwrap_or(usize::MAX)
                .max(1),
        }
    }

    /// How long a worker is estimated to take for `items` more items of this job;
    /// `None` while nothing is measured.
    pub(super) fn expected(&self, items: usize) -> Option<Duration> {
        match self.item_nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(
                nanos.saturating_mul(u64::try_from(items).unwrap_or(u64::MAX)),
            )),
        }
    }

    /// Folds the measured time per item of a completed chunk into the estimate.
    pub(super) fn observe(&self, per_item: Duration) {
        let new = u64::try_from(per_item.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let old = self.item_nanos.load(Ordering::Relaxed);
        let next = if old == 0 { new } else { old / 2 + new / 2 };
        self.item_nanos.store(next.max(1), Ordering::Relaxed);
    }

    pub(super) fn send(&self, outcomes: Outcomes) {
        if !outcomes.is_empty() {
            self.sink.send(outcomes);
        }
    }

    pub(super) fn send_error(&self, index: u64, error: TaskError) {
        let mut outcomes = Outcomes::new();
        outcomes.push_err(index, error);
        self.sink.send(outcomes);
    }
}

/// What a slot thread does next.
pub(super) enum Next {
    Chunk(Arc<JobInfo>, Chunk),
    /// Its worker was lost while a caller had it: start a new one.
    Relaunch,
    Stop,
}

pub(super) fn fail_chunk(job: &JobInfo, first: u64, len: usize, error: &TaskError) {
    let mut outcomes = Outcomes::new();
    outcomes.push_err_range(first, len, error.clone());
    job.send(outcomes);
}

/// Bytes an item takes in a `Run` frame.
pub(super) fn framed(item: &[u8]) -> usize {
    item.len() + 8
}

/// What a chunk does with a first item whose framed bytes alone exceed its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OverBudget {
    /// Takes it: a chunk of one item.
    TakeFirst,
    /// Takes nothing.
    TakeNothing,
}

/// How many of the first `items` fit a chunk: at most `cap` of them, none over
/// `limit`, and together at most `max_bytes` framed (see [`OverBudget`] for a first
/// item over it). Also their framed bytes.
pub(super) fn fitting(
    items: &Items,
    cap: usize,
    limit: usize,
    max_bytes: usize,
    first: OverBudget,
) -> (usize, usize) {
    let mut take = 0;
    let mut bytes = 0;
    for item in items.iter().take(cap) {
        let over = bytes + framed(item) > max_bytes;
        if item.len() > limit || (over && !(first == OverBudget::TakeFirst && take == 0)) {
            break;
        }
        bytes += framed(item);
        take += 1;
    }
    (take, bytes)
}

/// Appends to `chunk` the items of the chunks queued right behind it that continue
/// it (same job, next indices, not isolated), while it holds fewer than `budget`
/// items and `max_bytes` of arguments (`bytes` so far), and no item exceeds
/// `limit`. Small chunks of fast tasks thus travel and report as one.
pub(super) fn merge_following(
    queue: &mut VecDeque<Chunk>,
    chunk: &mut Chunk,
    budget: usize,
    limit: usize,
    max_bytes: usize,
    mut bytes: usize,
) {
    while chunk.items.len() < budget {
        let Some(next) = queue.front_mut() else {
            return;
        };
        let end = chunk.first + chunk.items.len() as u64;
        if next.job != chunk.job || next.isolated || next.first != end {
            return;
        }
        let room = budget - chunk.items.len();
        let (take, taken_bytes) = fitting(
            &next.items,
            room,
            limit,
            max_bytes - bytes,
            OverBudget::TakeNothing,
        );
        bytes += taken_bytes;
        if take == next.items.len() {
            let next = queue.pop_front().expect("the front chunk");
            chunk.items.append(next.items);
        } else {
            let rest = next.items.split_off(take);
            let taken = std::mem::replace(&mut next.items, rest);
            next.first += take as u64;
            chunk.items.append(taken);
            return;
        }
    }
}

impl PoolCore {
    /// Takes the next chunk off the queue for `slot`, at most `capacity` items and at most
    /// `max_bytes` of arguments (see [`OverBudget`] for a first item over it; with
    /// `TakeNothing` the chunk stays queued and this returns `None`). Items that
    /// alone exceed the frame limit fail here. Called with the state locked.
    pub(super) fn take(
        &self,
        state: &mut State,
        slot: usize,
        capacity: Option<usize>,
        max_bytes: usize,
        first: OverBudget,
    ) -> Option<(Arc<JobInfo>, Chunk)> {
        let limit = usize::try_from(self.launcher.config().max_frame).unwrap_or(usize::MAX);
        loop {
            let mut chunk = state.queue.pop_front()?;
            let Some(job) = state.jobs.get(&chunk.job).cloned() else {
                continue;
            };
            // Arguments that can never travel fail at the front of the chunk.
            while let Some(len) = chunk.items.get(0).map(<[u8]>::len).filter(|&l| l > limit) {
                chunk.items = chunk.items.split_off(1);
                let error = TaskError::Arguments {
                    error: dilly::Error::TooLarge {
                        what: "arguments".into(),
                        len: len as u64,
                        limit,
                        setting: "ProcessPoolBuilder::max_len".into(),
                    },
                };
                job.send_error(chunk.first, error);
                chunk.first += 1;
            }
            if chunk.items.is_empty() {
                continue;
            }
            let cap = capacity.unwrap_or(usize::MAX).max(1);
            let (take, bytes) = fitting(&chunk.items, cap, limit, max_bytes, first);
            if take == 0 {
                state.queue.push_front(chunk);
                return None;
            }
            if take < chunk.items.len() {
                let rest = chunk.items.split_off(take);
                state.queue.push_front(Chunk {
                    job: chunk.job,
                    first: chunk.first + take as u64,
                    items: rest,
                    isolated: chunk.isolated,
                });
            } else if !chunk.isolated {
                let budget = job
                    .merge_budget(self.launcher.config().result_window)
                    .min(cap);
                merge_following(
                    &mut state.queue,
                    &mut chunk,
                    budget,
                    limit,
                    max_bytes,
                    bytes,
                );
            }
            state.in_flight[slot] += 1;
            return Some((job, chunk));
        }
    }

    /// Marks a chunk resolved (all outcomes sent, or its rest requeued).
    pub(super) fn chunk_done(&self, slot: usize) {
        let mut state = lock(&self.state);
        state.in_flight[slot] = state.in_flight[slot].saturating_sub(1);
    }

    /// Puts unfinished items back at the front of the queue (or fails them if the
    /// pool is terminating).
    pub(super) fn requeue(&self, job: &JobInfo, chunk_job: u64, first: u64, items: Items) {
        if items.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        if state.terminated {
            drop(state);
            fail_chunk(job, first, items.len(), &TaskError::Terminated);
            return;
        }
        if state.jobs.contains_key(&chunk_job) {
            state.queue.push_front(Chunk {
                job: chunk_job,
                first,
                items,
                isolated: false,
            });
            self.work.notify_one();
        }
    }

    /// Puts items back at the front of the queue one per chunk, in order.
    pub(super) fn requeue_singly(&self, job: &JobInfo, chunk_job: u64, first: u64, items: Items) {
        let mut state = lock(&self.state);
        if state.terminated || !state.jobs.contains_key(&chunk_job) {
            drop(state);
            fail_chunk(job, first, items.len(), &TaskError::Terminated);
            return;
        }
        for (i, item) in items.iter().enumerate().rev() {
            state.queue.push_front(Chunk {
                job: chunk_job,
                first: first + i as u64,
                items: Items::from_iter([item]),
                isolated: true,
            });
        }
        self.work.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(job: u64, first: u64, len: usize, isolated: bool) -> Chunk {
        Chunk {
            job,
            first,
            items: (0..len).map(|i| [(first + i as u64) as u8]).collect(),
            isolated,
        }
    }

    fn bytes(items: &Items) -> Vec<Vec<u8>> {
        items.iter().map(<[u8]>::to_vec).collect()
    }

    fn firsts(queue: &VecDeque<Chunk>) -> Vec<(u64, u64, usize)> {
        queue
            .iter()
            .map(|c| (c.job, c.first, c.items.len()))
            .collect()
    }

    #[test]
    fn merging_takes_the_continuing_chunks_of_the_same_job_up_to_the_budget() {
        let mut head = chunk(1, 0, 1, false);
        let mut queue: VecDeque<Chunk> = (1..6).map(|i| chunk(1, i, 1, false)).collect();
        merge_following(&mut queue, &mut head, 4, usize::MAX, usize::MAX, 9);
        assert_eq!(bytes(&head.items), [[0], [1], [2], [3]]);
        assert_eq!(firsts(&queue), [(1, 4, 1), (1, 5, 1)]);
    }

    #[test]
    fn merging_splits_a_chunk_that_does_not_fit_and_renumbers_its_rest() {
        let mut head = chunk(1, 0, 2, false);
        let mut queue = VecDeque::from([chunk(1, 2, 5, false)]);
        merge_following(&mut queue, &mut head, 4, usize::MAX, usize::MAX, 18);
        assert_eq!(bytes(&head.items), [[0], [1], [2], [3]]);
        assert_eq!(firsts(&queue), [(1, 4, 3)]);
        assert_eq!(bytes(&queue[0].items), [[4], [5], [6]]);
    }

    #[test]
    fn merging_stops_at_another_job_an_isolated_chunk_or_a_gap() {
        for next in [
            chunk(2, 1, 1, false),
            chunk(1, 1, 1, true),
            chunk(1, 7, 1, false),
        ] {
            let mut head = chunk(1, 0, 1, false);
            let mut queue = VecDeque::from([next]);
            merge_following(&mut queue, &mut head, 100, usize::MAX, usize::MAX, 9);
            assert_eq!(head.items.len(), 1);
            assert_eq!(queue.len(), 1);
        }
    }

    #[test]
    fn merging_respects_the_byte_bound_and_the_item_limit() {
        // Each one-byte item takes 9 bytes in a frame: 27 bytes fit three.
        let mut head = chunk(1, 0, 1, false);
        let mut queue = VecDeque::from([chunk(1, 1, 5, false)]);
        merge_following(&mut queue, &mut head, 100, usize::MAX, 27, 9);
        assert_eq!(head.items.len(), 3);
        assert_eq!(firsts(&queue), [(1, 3, 3)]);

        // An item over the frame limit is left for `take` to fail on its own.
        let mut head = chunk(1, 0, 1, false);
        let mut big = chunk(1, 1, 1, false);
        big.items.push(&[0; 10]);
        let mut queue = VecDeque::from([big]);
        merge_following(&mut queue, &mut head, 100, 5, usize::MAX, 9);
        assert_eq!(head.items.len(), 2);
        assert_eq!(firsts(&queue), [(1, 2, 1)]);
    }

    #[test]
    fn the_merge_budget_follows_the_measured_time_per_item() {
        let (sink, _rx) = crate::process::mailbox::mailbox();
        let job = JobInfo {
            func: Arc::new(dilly::func_of!(tests_noop).raw()),
            key: 1,
            sink,
            item_nanos: Arc::new(AtomicU64::new(0)),
        };
        let window = Duration::from_millis(1);
        assert_eq!(job.merge_budget(window), 1, "nothing measured: no merging");
        job.observe(Duration::from_micros(1));
        assert_eq!(job.merge_budget(window), 1000);
        assert_eq!(job.merge_budget(Duration::ZERO), 1, "no window: no merging");
        job.observe(Duration::from_micros(3));
        assert_eq!(job.merge_budget(window), 500, "the estimate averages");
        job.observe(window * 4);
        assert_eq!(job.merge_budget(window), 1, "slow tasks are not merged");
    }

    #[dilly::func]
    fn tests_noop(x: u64) -> u64 {
        x
    }
}
