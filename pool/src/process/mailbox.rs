//! Where a job's outcomes wait for its caller: the backend seam's outcome channel
//! ([`crate::backend::channel`]), under the names the process backend uses.

pub(super) use crate::backend::channel::{Mailbox, Sink, mailbox};
