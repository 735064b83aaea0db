//! [`RedisJob`]: one job of a [`RedisPool`](crate::RedisPool), as the backend seam
//! sees it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dilly_pool::backend::{Items, Job, OutcomeReceiver, Outcomes};

use crate::conn::lock;

use super::Inner;

pub(super) struct RedisJob {
    pub(super) inner: Arc<Inner>,
    pub(super) id: u64,
    pub(super) rx: OutcomeReceiver,
}

impl Job for RedisJob {
    fn submit(&mut self, first: u64, items: Items) -> dilly_pool::Result<()> {
        self.submit_chunks(first, vec![items])
    }

    // The chunks that may go to Redis now go in one pipelined round trip.
    fn submit_chunks(&mut self, first: u64, chunks: Vec<Items>) -> dilly_pool::Result<()> {
        let mut outgoing = Vec::new();
        {
            let mut state = lock(&self.inner.state);
            if state.terminated {
                return Err(dilly_pool::Error::Closed);
            }
            let Some(job) = state.jobs.get_mut(&self.id) else {
                return Err(dilly_pool::Error::Closed);
            };
            let mut first = first;
            for items in chunks {
                let len = items.len() as u64;
                if len > 0 {
                    job.waiting.push_back((first, items));
                }
                first += len;
            }
            self.inner.take_outgoing(&mut state, self.id, &mut outgoing);
        }
        // Chunks that could not be added fail their tasks as outcomes, naming
        // the cause; the job itself carries on (the submitter may be reading an
        // `imap` lazily, and Redis may come back for its next chunks).
        let _ = self.inner.send(outgoing);
        Ok(())
    }

    fn next(&mut self, timeout: Option<Duration>) -> Option<Outcomes> {
        self.rx.recv(timeout)
    }

    // The collector thread puts outcomes in the channel and wakes the task.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcomes>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for RedisJob {
    fn drop(&mut self) {
        let entries: Vec<String> = {
            let mut state = lock(&self.inner.state);
            let entries = state
                .jobs
                .remove(&self.id)
                .map(|job| job.live.into_values().filter_map(|l| l.entry).collect())
                .unwrap_or_default();
            self.inner.idle.notify_all();
            entries
        };
        self.inner.delete_entries(entries);
    }
}
