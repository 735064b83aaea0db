//! Where a job's outcomes wait for its caller: the backend seam's outcome channel
//! ([`crate::backend::channel`]), under the names the process backend uses.

use crate::backend::{OutcomeReceiver, OutcomeSender, Outcomes, channel};

/// The pool's end: puts batches in. Dropped, it tells the job none will come.
pub(super) struct Sink(OutcomeSender);

impl Sink {
    /// Puts a batch in; one for a job that was dropped is dropped.
    pub(super) fn send(&self, batch: Outcomes) {
        let _ = self.0.send(batch);
    }
}

/// The job's end: takes batches out, in the order they were put in.
pub(super) type Mailbox = OutcomeReceiver;

/// A new mailbox: the pool's end, and the job's.
pub(super) fn mailbox() -> (Sink, Mailbox) {
    let (sink, mailbox) = channel();
    (Sink(sink), mailbox)
}
