//! A runner thread: takes a chunk (a new one, or one whose host died), checks and
//! decodes it, runs it on the local pool, writes its outcomes to the submitter's
//! result stream and acknowledges it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dilly::RawFunc;
use dilly_pool::backend::Outcomes;
use dilly_pool::{Executor, TaskError};
use redis::streams::{StreamPendingCountReply, StreamPendingId};

use crate::conn::{Conn, KEY_ENV, ensure_group};
use crate::entry::{self, ResultMsg, TaskMsg};
use crate::keys::GROUP;
use crate::reply::{self, EntryList, StreamEntries};

use super::dead_letters::Outcome;
use super::{Shared, Taken, consumer_pid};

impl Shared {
    /// A runner thread: take a chunk, run it, write its outcomes, acknowledge it.
    pub(super) fn run(&self, mut conn: Conn, consumer: &str) {
        while !self.stop.load(Ordering::SeqCst) {
            let taken = match self.reclaim(&mut conn, consumer) {
                Ok(Some(t)) => Ok(Some(t)),
                Ok(None) => self
                    .read(&mut conn, consumer)
                    .map_err(|e| ("read the task stream", e)),
                Err(e) => Err(("reclaim chunks", e)),
            };
            match taken {
                Ok(Some(taken)) => {
                    let id = taken.id.clone();
                    if let Err(e) = self.handle(&mut conn, consumer, taken) {
                        // The chunk stays pending: it is reclaimed after the timeout.
                        self.runner_error(format!(
                            "cannot finish chunk {id} (another delivery will): {e}"
                        ));
                    }
                }
                Ok(None) => {}
                Err((_, e)) if e.code() == Some("NOGROUP") => {
                    // Redis restarted without persistence, or the stream was
                    // deleted: the group comes back, empty.
                    tracing::warn!("the consumer group is gone; creating it again");
                    if let Err(e) = ensure_group(&mut conn, &self.keys) {
                        self.runner_error(format!("cannot create the consumer group: {e}"));
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
                Err((doing, e)) => {
                    self.runner_error(format!("cannot {doing} (retrying): {e}"));
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// New chunks, waiting at most a second.
    pub(super) fn read(
        &self,
        conn: &mut Conn,
        consumer: &str,
    ) -> redis::RedisResult<Option<Taken>> {
        let block = Duration::from_secs(1);
        let StreamEntries(entries) = conn.run(block, |con| {
            redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(consumer)
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg(self.keys.tasks())
                .arg(">")
                .query(con)
        })?;
        Ok(entries.into_iter().next().map(|(id, fields)| Taken {
            id,
            fields,
            deliveries: 1,
            previous: None,
        }))
    }

    /// A chunk whose holder has not refreshed its claim for the visibility
    /// timeout, claimed for `consumer`; checked a few times per timeout.
    pub(super) fn reclaim(
        &self,
        conn: &mut Conn,
        consumer: &str,
    ) -> redis::RedisResult<Option<Taken>> {
        if !self.claims.reclaim_due() {
            return Ok(None);
        }
        let idle = self.claims.visibility.as_millis() as u64;
        // Not XAUTOCLAIM: it claims before telling who held the chunk and how often
        // it was delivered, which the dead-lettering of a chunk that keeps killing
        // its hosts reports; XPENDING tells both, then XCLAIM takes that one chunk.
        let pending: StreamPendingCountReply = conn.query(
            redis::cmd("XPENDING")
                .arg(self.keys.tasks())
                .arg(GROUP)
                .arg("IDLE")
                .arg(idle)
                .arg("-")
                .arg("+")
                .arg(1),
        )?;
        let Some(StreamPendingId {
            id,
            consumer: previous,
            times_delivered,
            ..
        }) = pending.ids.into_iter().next()
        else {
            return Ok(None);
        };
        // Min-idle makes the claim a compare-and-set: of two hosts racing for the
        // chunk, one gets it.
        let EntryList(mut entries) = conn.query(
            redis::cmd("XCLAIM")
                .arg(self.keys.tasks())
                .arg(GROUP)
                .arg(consumer)
                .arg(idle)
                .arg(&id),
        )?;
        self.claims.reclaim_again();
        match entries.pop() {
            Some((id, fields)) => {
                let deliveries = times_delivered as u64 + 1;
                conn.query::<()>(
                    redis::cmd("HINCRBY")
                        .arg(self.keys.stats())
                        .arg("retried")
                        .arg(1),
                )?;
                tracing::info!(entry = %id, deliveries, previous = %previous, "reclaimed a chunk");
                Ok(Some(Taken {
                    id,
                    fields,
                    deliveries,
                    previous: Some(previous),
                }))
            }
            None => {
                // Deleted from the stream (its job was cancelled) while pending.
                let EntryList(exists) = conn.query(
                    redis::cmd("XRANGE")
                        .arg(self.keys.tasks())
                        .arg(&id)
                        .arg(&id),
                )?;
                if exists.is_empty() {
                    conn.query::<()>(
                        redis::cmd("XACK")
                            .arg(self.keys.tasks())
                            .arg(GROUP)
                            .arg(&id),
                    )?;
                }
                Ok(None)
            }
        }
    }

    /// Adds `message` to `submitter`'s result stream and sets the stream's time
    /// to live: `result_ttl`, or `alive_ms` (what is left of the submitter's
    /// heartbeat key, its `PTTL`) if that is shorter; 1 ms when the key is gone.
    pub(super) fn add_results(
        &self,
        pipe: &mut redis::Pipeline,
        submitter: u64,
        message: &[u8],
        alive_ms: Option<i64>,
    ) {
        let results = self.keys.results(submitter);
        let xadd = pipe
            .cmd("XADD")
            .arg(&results)
            .arg("*")
            .arg("m")
            .arg(message);
        if let Some(tag) = self.checks.result_tag(message) {
            xadd.arg("t").arg(tag.as_ref());
        }
        xadd.ignore();
        let ttl = self.result_ttl.as_millis() as u64;
        let ttl = match alive_ms {
            Some(ms) if ms > 0 => ttl.min(ms as u64),
            // The key is gone: the stream goes at once.
            Some(-2) => 1,
            // No expiry on the key, or unknown.
            _ => ttl,
        };
        pipe.cmd("PEXPIRE").arg(&results).arg(ttl).ignore();
    }

    pub(super) fn ack(&self, pipe: &mut redis::Pipeline, id: &str) {
        pipe.cmd("XACK")
            .arg(self.keys.tasks())
            .arg(GROUP)
            .arg(id)
            .ignore()
            .cmd("XDEL")
            .arg(self.keys.tasks())
            .arg(id)
            .ignore();
    }

    pub(super) fn handle(
        &self,
        conn: &mut Conn,
        consumer: &str,
        taken: Taken,
    ) -> redis::RedisResult<()> {
        let _span =
            tracing::info_span!("run", entry = %taken.id, deliveries = taken.deliveries).entered();
        let message = reply::field(&taken.fields, "m").unwrap_or_default();
        let tag = reply::field(&taken.fields, "t");
        if let Err(refusal) = self.checks.task(message, tag) {
            tracing::warn!(entry = %taken.id, %refusal, "refused a task entry; dead-lettered");
            return self.dead_letter(
                conn,
                &taken,
                &refusal.to_string(),
                "refused",
                Outcome::Refused,
            );
        }
        let limits = self.checks.limits();
        let msg = match TaskMsg::decode(message, limits) {
            Ok(msg) => msg,
            Err(detail) => {
                let refusal = entry::Refusal::Malformed(detail);
                tracing::warn!(entry = %taken.id, %refusal, "refused a task entry; dead-lettered");
                return self.dead_letter(
                    conn,
                    &taken,
                    &refusal.to_string(),
                    "refused",
                    Outcome::Refused,
                );
            }
        };
        let alive: bool = conn.query(redis::cmd("EXISTS").arg(self.keys.alive(msg.submitter)))?;
        if !alive {
            return self.skip(conn, &taken.id, msg.submitter);
        }
        if taken.deliveries > self.max_deliveries {
            let previous = taken.previous.as_deref().unwrap_or("");
            let error = TaskError::GivenUp {
                deliveries: u32::try_from(taken.deliveries).unwrap_or(u32::MAX),
                last_error: format!(
                    "the hosts holding it kept dying before they finished it (the last one: \
                     process {} of consumer `{previous}`); a task that kills its host (or \
                     exhausts its memory) does this; fix the cause, then find it with \
                     `RedisPool::dead_letters` and run it again with \
                     `RedisPool::requeue_dead_letter`",
                    consumer_pid(previous)
                ),
            };
            let mut outcomes = Outcomes::new();
            outcomes.push_err_range(msg.first, msg.items.len(), error);
            let reason = format!(
                "delivered {} times and never acknowledged: the hosts holding it died (last: {previous})",
                taken.deliveries
            );
            tracing::warn!(entry = %taken.id, %reason, "dead-lettered a chunk");
            let results = ResultMsg::encode(msg.submitter, msg.job, &outcomes).map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::Client, "encoding results", e))
            })?;
            return self.dead_letter(
                conn,
                &taken,
                &reason,
                "dead_lettered",
                Outcome::Results(msg.submitter, results),
            );
        }
        self.claims.hold(&taken.id, consumer);
        let outcomes = self.execute(&msg);
        self.claims.release(&taken.id);
        let results = ResultMsg::encode(msg.submitter, msg.job, &outcomes).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "encoding results", e))
        })?;
        let _ack = tracing::debug_span!("ack", entry = %taken.id).entered();
        // The outcomes are written only while the submitter's heartbeat key
        // exists (WATCH): a chunk that finishes after its submitter cleaned up
        // does not bring the deleted result stream back. The stream lives no
        // longer than the heartbeat key would (nor longer than `result_ttl`).
        let alive = self.keys.alive(msg.submitter);
        loop {
            let written: Option<bool> = conn.run(Duration::ZERO, |con| {
                // One round trip: WATCH, then the key's time left.
                let (left,): (i64,) = redis::pipe()
                    .cmd("WATCH")
                    .arg(&alive)
                    .ignore()
                    .cmd("PTTL")
                    .arg(&alive)
                    .query(con)?;
                if left == -2 {
                    redis::cmd("UNWATCH").exec(con)?;
                    return Ok(Some(false));
                }
                let mut pipe = redis::pipe();
                pipe.atomic();
                self.add_results(&mut pipe, msg.submitter, &results, Some(left));
                self.ack(&mut pipe, &taken.id);
                let done: Option<()> = pipe.query(con)?;
                Ok(done.map(|()| true))
            })?;
            match written {
                Some(true) => {
                    self.report.finished(msg.items.len() as u64);
                    return Ok(());
                }
                Some(false) => return self.skip(conn, &taken.id, msg.submitter),
                // The key changed (the submitter refreshed it) between WATCH and
                // EXEC: look again.
                None => {}
            }
        }
    }

    /// Acknowledges and deletes a chunk of a submitter that is gone, without
    /// running or answering it, and deletes that submitter's result stream.
    fn skip(&self, conn: &mut Conn, id: &str, submitter: u64) -> redis::RedisResult<()> {
        tracing::info!(entry = %id, submitter = %format!("{submitter:016x}"), "skipped a chunk of a submitter that is gone");
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.ack(&mut pipe, id);
        pipe.cmd("DEL")
            .arg(self.keys.results(submitter))
            .ignore()
            .cmd("HINCRBY")
            .arg(self.keys.stats())
            .arg("skipped")
            .arg(1)
            .ignore();
        conn.pipe(&pipe)
    }

    /// Runs a chunk on the local pool: one outcome per item.
    pub(super) fn execute(&self, msg: &TaskMsg) -> Outcomes {
        let n = msg.items.len() as u64;
        let all = |error: TaskError| {
            let mut out = Outcomes::new();
            out.push_err_range(msg.first, msg.items.len(), error);
            out
        };
        if matches!(msg.func, RawFunc::SameBuild { .. }) && !self.checks.has_key() {
            return all(TaskError::Rejected {
                error: dilly::Error::SameBuildUnavailable {
                    detail: format!(
                        "this host has no HMAC key, and runs same-build function values only \
                         from tagged entries; set the same key on the host and the pool \
                         (builder or {KEY_ENV})"
                    ),
                },
            });
        }
        // An unknown symbol or another signature fails every task at once, as a
        // result: retrying on this build would fail the same way.
        if let Err(error) = msg.func.prepare() {
            return all(TaskError::Rejected { error });
        }
        let mut job = match self.pool.open(&msg.func) {
            Ok(job) => job,
            Err(e) => {
                return all(match e {
                    dilly_pool::Error::Task { error, .. } => error,
                    other => TaskError::WorkerStart {
                        reason: other.to_string(),
                    },
                });
            }
        };
        if let Err(e) = job.submit(msg.first, msg.items.clone()) {
            return all(TaskError::WorkerStart {
                reason: e.to_string(),
            });
        }
        let mut out = Outcomes::new();
        let mut seen = vec![false; msg.items.len()];
        let mut got = 0;
        while got < n {
            let Some(batch) = job.next(None) else {
                // The local pool went away: what did not report did not finish.
                for (i, seen) in seen.iter().enumerate() {
                    if !seen {
                        out.push_err(msg.first + i as u64, TaskError::Terminated);
                    }
                }
                break;
            };
            for (index, _) in batch.iter() {
                if let Some(s) = index
                    .checked_sub(msg.first)
                    .and_then(|i| seen.get_mut(i as usize))
                {
                    *s = true;
                }
            }
            got += batch.len() as u64;
            out.append(batch);
        }
        out
    }
}
