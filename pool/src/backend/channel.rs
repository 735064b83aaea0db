//! Where a job's outcomes wait for its caller: a mailbox the pool's threads put
//! batches in and the job takes them from.
//!
//! In place of a channel, for its size: every outstanding `apply_async` handle
//! holds one, and a standard channel allocates a block of 31 slots on its first
//! message (about 2.5 KB with its padded counters), where this holds the first
//! batch inline — the only one a one-task job ever gets.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::backend::Outcomes;
use crate::sync::lock;

struct Shared {
    state: Mutex<State>,
    arrived: Condvar,
}

#[derive(Default)]
struct State {
    /// The oldest batch waiting, if any (kept inline).
    first: Option<Outcomes>,
    /// The batches after it.
    rest: VecDeque<Outcomes>,
    /// The sink was dropped: no more batches come.
    closed: bool,
    /// The job sleeps on `arrived` (a notification is a system call, made only
    /// then).
    waiting: bool,
}

impl State {
    fn take(&mut self) -> Option<Outcomes> {
        self.first.take().or_else(|| self.rest.pop_front())
    }
}

/// A new mailbox: the pool's end, and the job's.
pub(crate) fn mailbox() -> (Sink, Mailbox) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        arrived: Condvar::new(),
    });
    (Sink(Arc::clone(&shared)), Mailbox(shared))
}

/// The pool's end: puts batches in. Dropped, it tells the job none will come.
pub(crate) struct Sink(Arc<Shared>);

impl Sink {
    pub(crate) fn send(&self, batch: Outcomes) {
        let mut state = lock(&self.0.state);
        if state.first.is_none() && state.rest.is_empty() {
            state.first = Some(batch);
        } else {
            state.rest.push_back(batch);
        }
        if state.waiting {
            self.0.arrived.notify_one();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.closed = true;
        if state.waiting {
            self.0.arrived.notify_one();
        }
    }
}

/// The job's end: takes batches out, in the order they were put in.
pub(crate) struct Mailbox(Arc<Shared>);

impl Mailbox {
    /// The next batch, if one is there.
    pub(crate) fn try_recv(&self) -> Option<Outcomes> {
        lock(&self.0.state).take()
    }

    /// The next batch, waiting at most `timeout` (for ever with `None`) for one;
    /// `None` if none came in time, or none will come.
    pub(crate) fn recv(&self, timeout: Option<Duration>) -> Option<Outcomes> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = lock(&self.0.state);
        loop {
            if let Some(batch) = state.take() {
                return Some(batch);
            }
            if state.closed {
                return None;
            }
            state.waiting = true;
            state = match deadline {
                None => self
                    .0
                    .arrived
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.waiting = false;
                        return None;
                    }
                    self.0
                        .arrived
                        .wait_timeout(state, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            state.waiting = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(index: u64) -> Outcomes {
        let mut outcomes = Outcomes::new();
        outcomes.push_ok(index, &[index as u8]);
        outcomes
    }

    fn first_index(batch: &Outcomes) -> u64 {
        batch.iter().next().unwrap().0
    }

    #[test]
    fn batches_come_out_in_order_and_the_end_is_told() {
        let (sink, mailbox) = mailbox();
        assert!(mailbox.try_recv().is_none());
        assert!(mailbox.recv(Some(Duration::from_millis(1))).is_none());
        for i in 0..3 {
            sink.send(batch(i));
        }
        for i in 0..3 {
            assert_eq!(first_index(&mailbox.recv(None).unwrap()), i);
        }
        sink.send(batch(3));
        drop(sink);
        // What was sent before the end still comes out.
        assert_eq!(first_index(&mailbox.try_recv().unwrap()), 3);
        assert!(mailbox.recv(None).is_none());
    }

    #[test]
    fn a_waiting_job_wakes_for_a_batch_and_for_the_end() {
        let (sink, mailbox) = mailbox();
        let waiter = std::thread::spawn(move || {
            let got = mailbox.recv(None).map(|b| first_index(&b));
            (got, mailbox.recv(None).is_none())
        });
        std::thread::sleep(Duration::from_millis(20));
        sink.send(batch(7));
        std::thread::sleep(Duration::from_millis(20));
        drop(sink);
        assert_eq!(waiter.join().unwrap(), (Some(7), true));
    }
}
