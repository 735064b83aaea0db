//! Putting chunks into the task stream: a job's window of chunks in Redis is
//! refilled from the chunks waiting in this process, in one pipelined round trip.

use dilly_pool::TaskError;
use dilly_pool::backend::Outcomes;

use crate::conn::lock;
use crate::entry::TaskMsg;

use super::{Inner, Live, State, fail_chunk};

/// A chunk on its way into Redis.
pub(super) struct Outgoing {
    job: u64,
    first: u64,
    len: usize,
    message: Vec<u8>,
}

impl Inner {
    /// Takes the chunks of job `id` that fit in its window, marking them live.
    pub(super) fn take_outgoing(&self, state: &mut State, id: u64, out: &mut Vec<Outgoing>) {
        let Some(job) = state.jobs.get_mut(&id) else {
            return;
        };
        while job.live.len() < self.settings.window {
            let Some((first, items)) = job.waiting.pop_front() else {
                break;
            };
            match TaskMsg::encode(self.submitter, id, first, &job.func, &items) {
                Ok(message) => {
                    job.live.insert(
                        first,
                        Live {
                            seen: vec![false; items.len()],
                            left: items.len(),
                            entry: None,
                        },
                    );
                    out.push(Outgoing {
                        job: id,
                        first,
                        len: items.len(),
                        message,
                    });
                }
                Err(detail) => {
                    let mut failed = Outcomes::new();
                    for i in 0..items.len() as u64 {
                        failed.push_err(
                            first + i,
                            TaskError::Arguments {
                                error: dilly::Error::Encode {
                                    what: "task chunk",
                                    detail: detail.clone(),
                                },
                            },
                        );
                    }
                    let _ = job.sink.send(failed);
                }
            }
        }
    }

    /// Adds chunks to the task stream, in one round trip, and records their entry
    /// IDs; chunks that could not be added fail their tasks.
    pub(super) fn send(
        &self,
        outgoing: Vec<Outgoing>,
    ) -> std::result::Result<(), redis::RedisError> {
        if outgoing.is_empty() {
            return Ok(());
        }
        let _span = tracing::debug_span!("submit", chunks = outgoing.len()).entered();
        let tasks = self.keys.tasks();
        let domain = self.keys.task_domain();
        let mut pipe = redis::pipe();
        // The heartbeat key again, with the chunks: after a Redis restart that
        // lost it, hosts must not take this pool for gone.
        pipe.cmd("SET")
            .arg(self.keys.alive(self.submitter))
            .arg(1)
            .arg("PX")
            .arg(self.settings.ttl.as_millis() as u64)
            .ignore();
        // `s` names this pool to a host that refuses the entry before decoding it.
        let submitter = format!("{:016x}", self.submitter);
        for chunk in &outgoing {
            let cmd = pipe
                .cmd("XADD")
                .arg(&tasks)
                .arg("*")
                .arg("s")
                .arg(&submitter)
                .arg("m")
                .arg(&chunk.message);
            if let Some(key) = &self.key {
                cmd.arg("t").arg(&key.tag(&domain, &chunk.message)[..]);
            }
        }
        let ids = self.conn().and_then(|mut conn| {
            let ids: redis::RedisResult<Vec<String>> = conn.pipe(&pipe);
            self.give_back(conn);
            ids
        });
        let mut state = lock(&self.state);
        match ids {
            Ok(ids) => {
                let mut orphans = Vec::new();
                for (chunk, entry) in outgoing.iter().zip(ids) {
                    let early = state
                        .early_refusals
                        .iter()
                        .position(|(id, _)| *id == entry)
                        .and_then(|at| state.early_refusals.remove(at));
                    match state
                        .jobs
                        .get_mut(&chunk.job)
                        .and_then(|j| j.live.get_mut(&chunk.first))
                    {
                        Some(live) => live.entry = Some(entry),
                        // The job was dropped meanwhile.
                        None => orphans.push(entry),
                    }
                    if let Some((_, error)) = early {
                        fail_chunk(&mut state, chunk.job, chunk.first, &error);
                    }
                }
                self.idle.notify_all();
                drop(state);
                self.delete_entries(orphans);
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot add task chunks to Redis");
                for chunk in &outgoing {
                    if let Some(job) = state.jobs.get_mut(&chunk.job)
                        && job.live.remove(&chunk.first).is_some()
                    {
                        let mut failed = Outcomes::new();
                        for i in 0..chunk.len as u64 {
                            failed.push_err(
                                chunk.first + i,
                                TaskError::WorkerStart {
                                    reason: format!(
                                        "cannot queue the task in Redis at {}: {e}",
                                        self.url
                                    ),
                                },
                            );
                        }
                        let _ = job.sink.send(failed);
                    }
                }
                self.idle.notify_all();
                Err(e)
            }
        }
    }

    /// Deletes task entries not yet taken (best effort: a host that holds one
    /// finishes it, and its results are dropped).
    pub(super) fn delete_entries(&self, entries: Vec<String>) {
        if entries.is_empty() {
            return;
        }
        if let Ok(mut conn) = self.conn() {
            let _: redis::RedisResult<()> =
                conn.query(redis::cmd("XDEL").arg(self.keys.tasks()).arg(&entries));
            self.give_back(conn);
        }
    }
}
