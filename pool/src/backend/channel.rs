//! Where a job's outcomes wait for its caller: a channel the backend's threads put
//! batches in and the job takes them from, waking whoever waits — a thread blocked
//! in [`OutcomeReceiver::recv`], or an async task that was told
//! [`Poll::Pending`] by [`OutcomeReceiver::poll_recv`].
//!
//! In place of a standard channel, for its size and for that waker: every
//! outstanding `apply_async` handle holds one, and a standard channel allocates a
//! block of 31 slots on its first message (about 2.5 KB with its padded counters),
//! where this holds the first batch inline — the only one a one-task job ever
//! gets.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
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
    /// Senders alive; at zero no more batches come.
    senders: usize,
    /// The receiver was dropped: batches sent now are handed back.
    abandoned: bool,
    /// A thread sleeps on `arrived` (a notification is a system call, made only
    /// then).
    waiting: bool,
    /// The task to wake for the next batch, or for the end.
    waker: Option<Waker>,
}

impl State {
    fn take(&mut self) -> Option<Outcomes> {
        self.first.take().or_else(|| self.rest.pop_front())
    }

    fn closed(&self) -> bool {
        self.senders == 0
    }
}

/// A new outcome channel: the sending end for the backend's threads, and the
/// receiving end for the job, whose [`Job::next`](crate::backend::Job::next) and
/// [`Job::poll_next`](crate::backend::Job::poll_next) become
/// [`recv`](OutcomeReceiver::recv) and [`poll_recv`](OutcomeReceiver::poll_recv).
pub fn channel() -> (OutcomeSender, OutcomeReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            senders: 1,
            ..State::default()
        }),
        arrived: Condvar::new(),
    });
    (OutcomeSender(Arc::clone(&shared)), OutcomeReceiver(shared))
}

/// The backend's end of an outcome [`channel`]: puts batches in, and wakes the
/// receiver. Clones send to the same receiver; when the last one is dropped the
/// receiver is told that no more batches come.
pub struct OutcomeSender(Arc<Shared>);

impl OutcomeSender {
    /// Puts a batch in, after those sent before it, and wakes the receiver if it
    /// waits. If the receiver was dropped (nobody wants these outcomes any more),
    /// the batch comes back as the error, as with a standard channel.
    pub fn send(&self, batch: Outcomes) -> Result<(), Outcomes> {
        let waker = {
            let mut state = lock(&self.0.state);
            if state.abandoned {
                return Err(batch);
            }
            if state.first.is_none() && state.rest.is_empty() {
                state.first = Some(batch);
            } else {
                state.rest.push_back(batch);
            }
            if state.waiting {
                self.0.arrived.notify_one();
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl Clone for OutcomeSender {
    fn clone(&self) -> OutcomeSender {
        lock(&self.0.state).senders += 1;
        OutcomeSender(Arc::clone(&self.0))
    }
}

impl Drop for OutcomeSender {
    fn drop(&mut self) {
        let waker = {
            let mut state = lock(&self.0.state);
            state.senders -= 1;
            if !state.closed() {
                return;
            }
            if state.waiting {
                self.0.arrived.notify_one();
            }
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl std::fmt::Debug for OutcomeSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeSender").finish_non_exhaustive()
    }
}

/// The job's end of an outcome [`channel`]: takes batches out, in the order they
/// were sent.
pub struct OutcomeReceiver(Arc<Shared>);

impl OutcomeReceiver {
    /// The next batch, if one is there.
    pub fn try_recv(&self) -> Option<Outcomes> {
        lock(&self.0.state).take()
    }

    /// The next batch, waiting at most `timeout` (for ever with `None`) for one;
    /// `None` if none came in time, or none will come (every sender is gone).
    pub fn recv(&self, timeout: Option<Duration>) -> Option<Outcomes> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = lock(&self.0.state);
        loop {
            if let Some(batch) = state.take() {
                return Some(batch);
            }
            if state.closed() {
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

    /// The next batch if one is there (`Ready(Some)`), the end if every sender is
    /// gone (`Ready(None)`); otherwise `Pending`, and the task of `cx` is woken by
    /// the next [`send`](OutcomeSender::send) or by the last sender's drop. Only
    /// the waker of the latest call is kept.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Outcomes>> {
        let mut state = lock(&self.0.state);
        if let Some(batch) = state.take() {
            return Poll::Ready(Some(batch));
        }
        if state.closed() {
            return Poll::Ready(None);
        }
        match &mut state.waker {
            Some(waker) => waker.clone_from(cx.waker()),
            none => *none = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for OutcomeReceiver {
    /// Later sends hand their batch back; those waiting are dropped now.
    fn drop(&mut self) {
        let (first, rest, waker) = {
            let mut state = lock(&self.0.state);
            state.abandoned = true;
            (
                state.first.take(),
                std::mem::take(&mut state.rest),
                state.waker.take(),
            )
        };
        drop((first, rest, waker));
    }
}

impl std::fmt::Debug for OutcomeReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutcomeReceiver").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

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
        let (sink, mailbox) = channel();
        assert!(mailbox.try_recv().is_none());
        assert!(mailbox.recv(Some(Duration::from_millis(1))).is_none());
        for i in 0..3 {
            sink.send(batch(i)).unwrap();
        }
        for i in 0..3 {
            assert_eq!(first_index(&mailbox.recv(None).unwrap()), i);
        }
        sink.send(batch(3)).unwrap();
        drop(sink);
        // What was sent before the end still comes out.
        assert_eq!(first_index(&mailbox.try_recv().unwrap()), 3);
        assert!(mailbox.recv(None).is_none());
    }

    #[test]
    fn a_waiting_job_wakes_for_a_batch_and_for_the_end() {
        let (sink, mailbox) = channel();
        let waiter = std::thread::spawn(move || {
            let got = mailbox.recv(None).map(|b| first_index(&b));
            (got, mailbox.recv(None).is_none())
        });
        std::thread::sleep(Duration::from_millis(20));
        sink.send(batch(7)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(sink);
        assert_eq!(waiter.join().unwrap(), (Some(7), true));
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_pending_poll_is_woken_by_a_batch_and_by_the_last_sender_gone() {
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let woken = || count.0.load(Ordering::SeqCst);

        let (sink, mailbox) = channel();
        assert!(mailbox.poll_recv(&mut cx).is_pending());
        sink.send(batch(1)).unwrap();
        assert_eq!(woken(), 1);
        match mailbox.poll_recv(&mut cx) {
            Poll::Ready(Some(b)) => assert_eq!(first_index(&b), 1),
            other => panic!("expected the batch, got {other:?}"),
        }

        // A send with nobody polling wakes nobody.
        sink.send(batch(2)).unwrap();
        assert_eq!(woken(), 1);
        assert!(matches!(mailbox.poll_recv(&mut cx), Poll::Ready(Some(_))));

        let clone = sink.clone();
        assert!(mailbox.poll_recv(&mut cx).is_pending());
        drop(sink);
        assert_eq!(woken(), 1, "a clone still sends");
        drop(clone);
        assert_eq!(woken(), 2);
        assert!(matches!(mailbox.poll_recv(&mut cx), Poll::Ready(None)));
    }

    #[test]
    fn a_send_after_the_receiver_is_gone_hands_the_batch_back() {
        let (sink, mailbox) = channel();
        sink.send(batch(1)).unwrap();
        drop(mailbox);
        let back = sink.send(batch(2)).unwrap_err();
        assert_eq!(first_index(&back), 2);
    }
}
