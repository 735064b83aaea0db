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
use crate::reply::{self, EntryList, StreamEntries};

use super::sender::Outgoing;
use super::{Inner, fail_chunk};

/// Refusal records kept for chunks whose entry ID is not known yet (a host
/// refused the entry before the pool recorded its ID).
const MAX_EARLY_REFUSALS: usize = 1024;

/// How often the collector checks that its chunks' task entries are still in
/// Redis.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// An outstanding chunk in Redis: its job, its first task index, its entry ID.
type Held = (u64, u64, String);

/// How long between two checks of every outstanding chunk's entry, for `held`
/// chunks: [`CHECK_EVERY`], or a millisecond per chunk past a thousand, so the
/// check costs Redis about a thousand `XRANGE`s per second at most.
fn sweep_every(held: usize) -> Duration {
    CHECK_EVERY.max(Duration::from_millis(held as u64))
}

/// How many times a chunk whose entry vanished is added again before it fails.
pub(super) const MAX_RESENDS: u32 = 5;

/// The most result entries one read takes.
const READ_COUNT: usize = 512;

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
        let error = TaskError::GivenUp {
            deliveries,
            last_error: format!(
                "{last_error}; fix the cause, then find it with `RedisPool::dead_letters` \
                 and run it again with `RedisPool::requeue_dead_letter`"
            ),
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

    /// Fails every outstanding task, in Redis or still waiting in this process:
    /// the collector lost Redis for `reconnect_for`.
    pub(super) fn fail_all(&self, reason: &str) {
        let error = TaskError::WorkerStart {
            reason: reason.to_owned(),
        };
        let mut state = lock(&self.state);
        for job in state.jobs.values_mut() {
            let mut out = Outcomes::new();
            for (first, items) in job.waiting.drain(..) {
                out.push_err_range(first, items.len(), error.clone());
            }
            for (first, live) in std::mem::take(&mut job.live) {
                live.fail_unseen(first, &error, &mut out);
            }
            if !out.is_empty() {
                let _ = job.sink.send(out);
            }
        }
        self.idle.notify_all();
    }

    /// Sets the heartbeat key again (a Redis restart without persistence loses
    /// it) and, when `sweep` says so for the number of outstanding chunks or the
    /// key was gone, returns the live chunks whose task entry is no longer in
    /// the task stream, as `(job, first index, entry ID)`, and whether it swept.
    ///
    /// A host deletes an entry in the transaction that writes its outcomes, so a
    /// chunk found missing here whose outcomes are not in the result stream
    /// either, read after this check, was lost.
    fn vanished(
        &self,
        conn: &mut Conn,
        sweep: impl FnOnce(usize) -> bool,
    ) -> redis::RedisResult<(Vec<Held>, bool)> {
        let held: Vec<Held> = {
            let state = lock(&self.state);
            state
                .jobs
                .iter()
                .flat_map(|(&job, j)| {
                    j.live
                        .iter()
                        .filter_map(move |(&first, l)| Some((job, first, l.entry.clone()?)))
                })
                .collect()
        };
        if held.is_empty() {
            return Ok((Vec::new(), false));
        }
        let previous: Option<String> = conn.query(
            redis::cmd("SET")
                .arg(self.keys.alive(self.submitter))
                .arg(1)
                .arg("PX")
                .arg(self.settings.ttl.as_millis() as u64)
                .arg("GET"),
        )?;
        if previous.is_some() && !sweep(held.len()) {
            return Ok((Vec::new(), false));
        }
        let tasks = self.keys.tasks();
        let mut pipe = redis::pipe();
        for (_, _, entry) in &held {
            pipe.cmd("XRANGE").arg(&tasks).arg(entry).arg(entry);
        }
        let found: Vec<EntryList> = conn.pipe(&pipe)?;
        let missing = held
            .into_iter()
            .zip(found)
            .filter(|(_, EntryList(entries))| entries.is_empty())
            .map(|(h, _)| h)
            .collect();
        Ok((missing, true))
    }

    /// Adds again the chunks of `lost` that are still outstanding under the same
    /// entry ID: their entries vanished and their outcomes never came. A chunk
    /// whose entry vanished more than [`MAX_RESENDS`] times fails.
    fn resend(&self, lost: Vec<Held>) {
        let mut outgoing = Vec::new();
        let mut state = lock(&self.state);
        for (job, first, entry) in lost {
            let Some(live) = state
                .jobs
                .get_mut(&job)
                .and_then(|j| j.live.get_mut(&first))
            else {
                continue;
            };
            if live.entry.as_deref() != Some(entry.as_str()) {
                continue;
            }
            live.resends += 1;
            if live.resends > MAX_RESENDS {
                let error = TaskError::WorkerStart {
                    reason: format!(
                        "its task entry vanished from the Redis at {} {} times before a host \
                         finished it (Redis restarted without persistence, or the task stream \
                         was trimmed or deleted); turn on AOF (appendonly yes) and do not trim \
                         the stream",
                        self.url, live.resends
                    ),
                };
                tracing::error!(%entry, "a chunk's task entry keeps vanishing; failing it");
                fail_chunk(&mut state, job, first, &error);
                continue;
            }
            tracing::warn!(%entry, job, first, "a chunk's task entry vanished from Redis; adding it again");
            live.entry = None;
            outgoing.push(Outgoing::again(job, first, live));
        }
        self.idle.notify_all();
        drop(state);
        let _ = self.send(outgoing);
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
    let mut last_check = Instant::now();
    let mut last_sweep = Instant::now();
    // Chunks whose entries were missing at the last check, to add again unless
    // the results read since have finished them.
    let mut suspects: Option<Vec<Held>> = None;
    let lost = |e: &redis::RedisError| {
        tracing::error!(error = %e, "lost Redis while reading results");
        inner.fail_all(&format!(
            "lost the connection to Redis at {} (for longer than reconnect_for) while the \
             task was outstanding: {e}",
            inner.url
        ));
        std::thread::sleep(Duration::from_millis(200));
    };
    while !inner.stop.load(Ordering::SeqCst) {
        if suspects.is_none() && last_check.elapsed() >= CHECK_EVERY {
            last_check = Instant::now();
            // Every chunk's entry once a second, or, past a thousand outstanding
            // chunks, each once per millisecond per chunk; at once when the
            // heartbeat key was gone.
            let due = |held: usize| last_sweep.elapsed() >= sweep_every(held);
            match inner.vanished(&mut conn, due) {
                Ok((missing, swept)) => {
                    if swept {
                        last_sweep = Instant::now();
                    }
                    if !missing.is_empty() {
                        suspects = Some(missing);
                    }
                }
                Err(e) => {
                    lost(&e);
                    continue;
                }
            }
        }
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
                .arg(READ_COUNT)
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
                lost(&e);
                suspects = None;
                continue;
            }
        };
        // Every result written before the check has been read once a read
        // returns less than it may.
        let drained = entries.len() < READ_COUNT;
        if entries.is_empty() {
            if let Some(missing) = suspects.take() {
                inner.resend(missing);
            }
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
        if drained && let Some(missing) = suspects.take() {
            inner.resend(missing);
        }
    }
}
