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
                Ok(Some(t)) => Some(t),
                Ok(None) => match self.read(&mut conn, consumer) {
                    Ok(t) => t,
                    Err(e) if e.code() == Some("NOGROUP") => {
                        // Redis restarted without persistence, or the stream was
                        // deleted: the group comes back, empty.
                        tracing::warn!("the consumer group is gone; creating it again");
                        if let Err(e) = ensure_group(&mut conn, &self.keys) {
                            tracing::error!(error = %e, "cannot create the consumer group");
                            std::thread::sleep(Duration::from_millis(500));
                        }
                        None
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the task stream; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                        None
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "cannot reclaim chunks; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                    None
                }
            };
            if let Some(taken) = taken {
                let id = taken.id.clone();
                if let Err(e) = self.handle(&mut conn, consumer, taken) {
                    // The chunk stays pending: it is reclaimed after the timeout.
                    tracing::error!(entry = %id, error = %e, "cannot finish a chunk; another delivery will");
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

    pub(super) fn add_results(&self, pipe: &mut redis::Pipeline, submitter: u64, message: &[u8]) {
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
        pipe.cmd("PEXPIRE")
            .arg(&results)
            .arg(self.result_ttl.as_millis() as u64)
            .ignore();
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
            tracing::info!(entry = %taken.id, submitter = %format!("{:016x}", msg.submitter), "skipped a chunk of a submitter that is gone");
            let mut pipe = redis::pipe();
            pipe.atomic();
            self.ack(&mut pipe, &taken.id);
            pipe.cmd("DEL")
                .arg(self.keys.results(msg.submitter))
                .ignore()
                .cmd("HINCRBY")
                .arg(self.keys.stats())
                .arg("skipped")
                .arg(1)
                .ignore();
            return conn.pipe(&pipe);
        }
        if taken.deliveries > self.max_deliveries {
            let previous = taken.previous.as_deref().unwrap_or("");
            let error = TaskError::DeadLettered {
                deliveries: u32::try_from(taken.deliveries).unwrap_or(u32::MAX),
                last_error: format!(
                    "the hosts holding it kept dying before they finished it (the last one: \
                     process {} of consumer `{previous}`); a task that kills its host (or \
                     exhausts its memory) does this",
                    consumer_pid(previous)
                ),
            };
            let mut outcomes = Outcomes::new();
            for i in 0..msg.items.len() as u64 {
                outcomes.push_err(msg.first + i, error.clone());
            }
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
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_results(&mut pipe, msg.submitter, &results);
        self.ack(&mut pipe, &taken.id);
        conn.pipe(&pipe)
    }

    /// Runs a chunk on the local pool: one outcome per item.
    pub(super) fn execute(&self, msg: &TaskMsg) -> Outcomes {
        let n = msg.items.len() as u64;
        let all = |error: TaskError| {
            let mut out = Outcomes::new();
            for i in 0..n {
                out.push_err(msg.first + i, error.clone());
            }
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
