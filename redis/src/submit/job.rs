//! [`RedisJob`]: one job of a [`RedisPool`](crate::RedisPool), as the backend seam
//! sees it.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use dilly_pool::backend::{Items, Job, Outcomes};

use crate::conn::lock;

use super::Inner;

pub(super) struct RedisJob {
    pub(super) inner: Arc<Inner>,
    pub(super) id: u64,
    pub(super) rx: mpsc::Receiver<Outcomes>,
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
        self.inner
            .send(outgoing)
            .map_err(|e| dilly_pool::Error::Io {
                context: "cannot add task chunks to the Redis task stream",
                source: std::io::Error::other(e.to_string()),
            })
    }

    fn next(&mut self, timeout: Option<Duration>) -> Option<Outcomes> {
        match timeout {
            None => self.rx.recv().ok(),
            Some(t) => self.rx.recv_timeout(t).ok(),
        }
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
