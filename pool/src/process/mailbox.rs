//! Where a job's outcomes wait for its caller: the backend seam's outcome channel
//! ([`crate::backend::channel`]), under the names the process backend uses.

use crate::backend::{OutcomeReceiver, OutcomeSender, channel};

/// The pool's end: puts batches in. Dropped, it tells the job none will come.
pub(super) type Sink = OutcomeSender;

/// The job's end: takes batches out, in the order they were put in.
pub(super) type Mailbox = OutcomeReceiver;

/// A new mailbox: the pool's end, and the job's.
pub(super) fn mailbox() -> (Sink, Mailbox) {
    channel()
}
