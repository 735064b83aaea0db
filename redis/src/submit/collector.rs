//! The collector thread: one per pool, it refreshes the pool's heartbeat, reads the
//! pool's result stream, drops duplicates by task index, hands each job its
//! outcomes and refills its window.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use dilly::Limits;
use dilly_pool::TaskError;
use dilly_pool::backend::Outcomes;

use crate::conn::{Conn, KEY_ENV, lock};
use crate::entry::{self, ResultMsg};
use crate::reply::{self, StreamEntries};

use super::sender::Outgoing;
use super::{Inner, fail_chunk};

/// Refusal records kept for chunks whose entry ID is not known yet (a host
/// refused the entry before the pool recorded its ID).
const MAX_EARLY_REFUSALS: usize = 1024;

impl Inner {
    /// Takes in one result entry.
    pub(super) fn receive(&self, msg: ResultMsg, outgoing: &mut Vec<Outgoing>) {
        let mut state = lock(&self.state);
        let Some(job) = state.jobs.get_mut(&msg.job) else {
            return;
        };
        let mut fresh = Outcomes::new();
        let mut done = Vec::new();
        for (index, outcome) in msg.outcomes.iter() {
            let Some((&first, live)) = job.live.range_mut(..=index).next_back() else {
                continue;
            };
            let Some(seen) = live.seen.get_mut((index - first) as usize) else {
                continue;
            };
            if std::mem::replace(seen, true) {
                // A re-run's duplicate.
                continue;
            }
            live.left -= 1;
            if live.left == 0 {
                done.push(first);
            }
            match outcome {
                Ok(bytes) => fresh.push_ok(index, bytes),
                Err(error) => fresh.push_err(index, error.clone()),
            }
        }
        for first in done {
            job.live.remove(&first);
        }
        if !fresh.is_empty() {
            let _ = job.sink.send(fresh);
        }
        let busy = job.busy();
        self.take_outgoing(&mut state, msg.job, outgoing);
        if !busy {
            self.idle.notify_all();
        }
    }

    /// Takes in a host's refusal of the task entry `entry` (the entry went to the
    /// dead-letter stream): the chunk's undelivered tasks fail.
    pub(super) fn refused(
        &self,
        entry: &str,
        fields: &[(String, Vec<u8>)],
        outgoing: &mut Vec<Outgoing>,
    ) {
        let text = |name| {
            reply::field(fields, name)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let (reason, host, host_key) = (text("reason"), text("host"), text("key"));
        let deliveries = text("deliveries").parse().unwrap_or(1);
        let last_error = if host_key != self.key_id {
            format!(
                "host `{host}` refused it: {reason}; the pool and that host have different \
                 HMAC keys (key ID `{}` here, `{host_key}` there): give both the same key \
                 (`key(..)` on both builders, or the {KEY_ENV} environment variable)",
                self.key_id
            )
        } else {
            format!("host `{host}` refused it: {reason}")
        };
        tracing::error!(%entry, %host, %last_error, "a host refused a task entry of this pool");
        let error = TaskError::DeadLettered {
            deliveries,
            last_error,
        };
        let mut state = lock(&self.state);
        let found = state.jobs.iter().find_map(|(&job, j)| {
            j.live
                .iter()
                .find(|(_, live)| live.entry.as_deref() == Some(entry))
                .map(|(&first, _)| (job, first))
        });
        match found {
            Some((job, first)) => {
                fail_chunk(&mut state, job, first, &error);
                self.take_outgoing(&mut state, job, outgoing);
                self.idle.notify_all();
            }
            None => {
                if state.early_refusals.len() >= MAX_EARLY_REFUSALS {
                    state.early_refusals.pop_front();
                }
                state.early_refusals.push_back((entry.to_owned(), error));
            }
        }
    }

    /// Fails every outstanding task that is in Redis: the collector lost Redis.
    pub(super) fn fail_live(&self, reason: &str) {
        let mut state = lock(&self.state);
        for job in state.jobs.values_mut() {
            let mut out = Outcomes::new();
            for (first, live) in std::mem::take(&mut job.live) {
                for (i, seen) in live.seen.iter().enumerate() {
                    if !seen {
                        out.push_err(
                            first + i as u64,
                            TaskError::WorkerStart {
                                reason: reason.to_owned(),
                            },
                        );
                    }
                }
            }
            if !out.is_empty() {
                let _ = job.sink.send(out);
            }
        }
        self.idle.notify_all();
    }
}

/// The collector thread: heartbeat, read results, refill windows.
pub(super) fn collect(inner: &Inner, mut conn: Conn) {
    let results = inner.keys.results(inner.submitter);
    let alive = inner.keys.alive(inner.submitter);
    let domain = inner.keys.result_domain();
    let ttl = inner.settings.ttl.as_millis() as u64;
    let beat = inner.settings.ttl / 3;
    let mut last_beat = Instant::now();
    let mut last_id = "0-0".to_owned();
    let limits = Limits::max_len(inner.settings.max_entry);
    while !inner.stop.load(Ordering::SeqCst) {
        if last_beat.elapsed() >= beat {
            last_beat = Instant::now();
            let _: redis::RedisResult<()> = conn.pipe(
                redis::pipe()
                    .cmd("SET")
                    .arg(&alive)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&results)
                    .arg(ttl)
                    .ignore(),
            );
        }
        let block = Duration::from_millis(100);
        let read: redis::RedisResult<StreamEntries> = conn.run(block, |con| {
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(512)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg(&results)
                .arg(&last_id)
                .query(con)
        });
        let entries = match read {
            Ok(StreamEntries(entries)) => entries,
            Err(e) => {
                tracing::error!(error = %e, "lost Redis while reading results");
                inner.fail_live(&format!(
                    "lost the connection to Redis at {} while waiting for the result: {e}",
                    inner.url
                ));
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        let mut outgoing = Vec::new();
        for (id, fields) in entries {
            last_id.clone_from(&id);
            if let Some(entry) = reply::field(&fields, "refused") {
                let entry = String::from_utf8_lossy(entry).into_owned();
                inner.refused(&entry, &fields, &mut outgoing);
                continue;
            }
            let message = reply::field(&fields, "m").unwrap_or_default();
            let tag = reply::field(&fields, "t");
            if let Err(refusal) = entry::check(
                inner.key.as_ref(),
                &domain,
                message,
                tag,
                inner.settings.max_entry,
            ) {
                tracing::warn!(entry = %id, %refusal, "refused a result entry");
                let _: redis::RedisResult<()> = conn.query(
                    redis::cmd("HINCRBY")
                        .arg(inner.keys.stats())
                        .arg("refused")
                        .arg(1),
                );
                continue;
            }
            match ResultMsg::decode(message, limits) {
                Ok(msg) if msg.submitter == inner.submitter => {
                    let _span = tracing::trace_span!("ack", job = msg.job).entered();
                    inner.receive(msg, &mut outgoing);
                }
                Ok(_) => {}
                Err(detail) => {
                    tracing::warn!(entry = %id, %detail, "a result entry does not decode");
                }
            }
        }
        let _: redis::RedisResult<()> =
            conn.query(redis::cmd("XTRIM").arg(&results).arg("MINID").arg(&last_id));
        let _ = inner.send(outgoing);
    }
}
