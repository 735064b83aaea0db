//! [`RedisPool`]: the submitting side.
//!
//! One chunk's path across machines: [`RedisPool::open`](dilly_pool::Executor::open)
//! gives a job (`job`) whose chunks wait in this process until the job's window
//! has room; `sender` encodes each as a task message (`TaskMsg`), tags it with
//! the shared key and adds it to the queue's task stream (`XADD`, pipelined),
//! recording its entry ID. A worker host ([`crate::host`]) takes the entry with
//! its consumer group, runs the chunk on its local
//! [`ProcessPool`](dilly_pool::ProcessPool) and adds the outcomes to this pool's
//! result stream. The collector thread (`collector`) reads that stream (`XREAD`),
//! checks each entry's tag, drops outcomes already delivered (a re-run's
//! duplicates) by task index, hands each job its outcomes and refills its window;
//! a host's refusal record fails the chunk added under the entry ID it names.
//! `builder` connects and checks the live hosts' keys before the first chunk;
//! `dead_letters` lists and re-queues the chunks hosts gave up on.

mod builder;
mod collector;
pub(crate) mod dead_letters;
mod job;
mod sender;

pub use builder::RedisPoolBuilder;
pub use dead_letters::DeadLetter;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use dilly::RawFunc;
use dilly_pool::backend::{Items, Job, OutcomeSender, Outcomes, Shape};
use dilly_pool::{Executor, TaskError};

use crate::conn::{Conn, KEY_ENV, lock};
use crate::entry::Key;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::registration::HostInfo;
use crate::stats::{self, Stats};

use self::job::RedisJob;

/// A host whose registration is younger than this counts as live when a
/// same-build value's build ID is compared with the hosts' (hosts refresh it
/// every second by default).
const LIVE_FOR_BUILD_CHECK: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Settings {
    workers: usize,
    chunk_size: Option<usize>,
    progress: bool,
    window: usize,
    ttl: Duration,
    reconnect_for: Duration,
    max_entry: usize,
}

/// An [`Executor`] whose tasks run on worker hosts ([`WorkerHost`](crate::WorkerHost))
/// through Redis Streams: every typed method of [`Executor`] works, and each task's
/// outcome is delivered exactly once, while hosts die, restart or Redis restarts.
///
/// ```no_run
/// use dilly_pool::Executor;
/// use dilly_redis::RedisPool;
///
/// #[dilly::func]
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// // Hosts serving the queue "squares" run elsewhere:
/// // `dilly_redis::WorkerHost::builder(url).queue("squares").workers(4).serve()`.
/// let pool = RedisPool::builder("redis://127.0.0.1:6379").queue("squares").build()?;
/// assert_eq!(pool.map(&dilly::func_of!(square), 1..=4u64)?, [1, 4, 9, 16]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedisPool {
    inner: Arc<Inner>,
    collector: Mutex<Option<JoinHandle<()>>>,
}

struct Inner {
    keys: Keys,
    submitter: u64,
    key: Option<Key>,
    /// [`entry::key_id`](crate::entry::key_id) of `key`.
    key_id: String,
    url: String,
    client: redis::Client,
    settings: Settings,
    /// Idle connections for submitting and cancelling.
    conns: Mutex<Vec<Conn>>,
    state: Mutex<State>,
    /// Signalled when a job's last outstanding task is delivered.
    idle: Condvar,
    stop: AtomicBool,
}

#[derive(Default)]
struct State {
    jobs: HashMap<u64, JobState>,
    next_job: u64,
    closed: bool,
    terminated: bool,
    /// Refusals of entries not (yet) known as live chunks, oldest first: the
    /// collector can read a refusal before `send` records the entry's ID.
    early_refusals: VecDeque<(String, TaskError)>,
}

struct JobState {
    sink: OutcomeSender,
    /// The function, encoded once.
    func: Arc<[u8]>,
    /// Chunks not yet in Redis.
    waiting: VecDeque<(u64, Items)>,
    /// Chunks in Redis, by first index.
    live: BTreeMap<u64, Live>,
}

impl JobState {
    fn busy(&self) -> bool {
        !self.waiting.is_empty() || !self.live.is_empty()
    }
}

struct Live {
    /// Which of the chunk's tasks have been delivered.
    seen: Vec<bool>,
    left: usize,
    /// The task entry's ID, once added.
    entry: Option<String>,
    /// The task message, kept to add it again if its entry vanishes from Redis
    /// (a restart without persistence, a trimmed or deleted stream).
    message: Arc<[u8]>,
    /// How many times it was added again.
    resends: u32,
}

impl Live {
    /// Fails the tasks of this chunk (its first task is `first`) not delivered
    /// yet with `error`: one range per run of them.
    fn fail_unseen(&self, first: u64, error: &TaskError, out: &mut Outcomes) {
        let mut i = 0;
        while i < self.seen.len() {
            let start = i;
            while i < self.seen.len() && !self.seen[i] {
                i += 1;
            }
            if i > start {
                out.push_err_range(first + start as u64, i - start, error.clone());
            }
            i += 1;
        }
    }
}

impl RedisPool {
    /// Stops taking new jobs; queued and running tasks still complete. Call
    /// [`join`](RedisPool::join) to wait for them.
    pub fn close(&self) {
        lock(&self.inner.state).closed = true;
    }

    /// Cancels every job now: chunks not yet taken by a host are deleted, and every
    /// outstanding task ends with [`TaskError::Terminated`].
    pub fn terminate(&self) {
        let entries = {
            let mut state = lock(&self.inner.state);
            state.closed = true;
            state.terminated = true;
            let mut entries = Vec::new();
            for job in state.jobs.values_mut() {
                let mut out = Outcomes::new();
                for (first, items) in job.waiting.drain(..) {
                    out.push_err_range(first, items.len(), TaskError::Terminated);
                }
                for (first, live) in std::mem::take(&mut job.live) {
                    live.fail_unseen(first, &TaskError::Terminated, &mut out);
                    entries.extend(live.entry);
                }
                if !out.is_empty() {
                    let _ = job.sink.send(out);
                }
            }
            self.inner.idle.notify_all();
            entries
        };
        self.inner.delete_entries(entries);
    }

    /// Waits until every job's tasks have been delivered, after
    /// [`close`](RedisPool::close) or [`terminate`](RedisPool::terminate).
    pub fn join(&self) -> dilly_pool::Result<()> {
        let mut state = lock(&self.inner.state);
        if !state.closed {
            return Err(dilly_pool::Error::NotClosed);
        }
        while state.jobs.values().any(JobState::busy) {
            state = self
                .inner
                .idle
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Ok(())
    }

    /// The queue's counters and live hosts, read from Redis.
    pub fn stats(&self) -> Result<Stats> {
        let mut conn = self
            .inner
            .conn()
            .map_err(self.inner.fail("reading stats"))?;
        let out =
            stats::read(&mut conn, &self.inner.keys).map_err(self.inner.fail("reading stats"));
        self.inner.give_back(conn);
        out
    }

    /// The queue this pool submits to.
    pub fn queue(&self) -> &str {
        self.inner.keys.queue()
    }
}

impl Executor for RedisPool {
    fn open(&self, func: &RawFunc) -> dilly_pool::Result<Box<dyn Job>> {
        if matches!(func, RawFunc::SameBuild { .. }) && self.inner.key.is_none() {
            return Err(dilly_pool::Error::Task {
                index: 0,
                error: TaskError::Rejected {
                    error: dilly::Error::SameBuildUnavailable {
                        detail: format!(
                            "a same-build function value names code by its address, and runs on a \
                             Redis host only under a shared HMAC key; set one with \
                             `RedisPool::builder(..).key(..)` (and on the hosts) or the {KEY_ENV} \
                             environment variable"
                        ),
                    },
                },
            });
        }
        if let RawFunc::SameBuild { build, .. } = func {
            self.inner.check_same_build(build)?;
        }
        let encoded =
            dilly::to_bytes(func).map_err(|error| dilly_pool::Error::Encode { index: 0, error })?;
        let (sink, rx) = dilly_pool::backend::channel();
        let mut state = lock(&self.inner.state);
        if state.closed {
            return Err(dilly_pool::Error::Closed);
        }
        state.next_job += 1;
        let id = state.next_job;
        state.jobs.insert(
            id,
            JobState {
                sink,
                func: encoded.into(),
                waiting: VecDeque::new(),
                live: BTreeMap::new(),
            },
        );
        Ok(Box::new(RedisJob {
            inner: Arc::clone(&self.inner),
            id,
            rx,
        }))
    }

    fn shape(&self) -> Shape {
        Shape {
            workers: self.inner.settings.workers,
            chunk_size: self.inner.settings.chunk_size,
            progress: self.inner.settings.progress,
        }
    }
}

impl Drop for RedisPool {
    fn drop(&mut self) {
        let busy = lock(&self.inner.state).jobs.values().any(JobState::busy);
        if busy {
            self.terminate();
        }
        self.inner.stop.store(true, Ordering::SeqCst);
        if let Some(collector) = lock(&self.collector).take() {
            let _ = collector.join();
        }
        if let Ok(mut conn) = self.inner.conn() {
            let _: redis::RedisResult<()> = conn.pipe(
                redis::pipe()
                    .cmd("DEL")
                    .arg(self.inner.keys.alive(self.inner.submitter))
                    .ignore()
                    .cmd("DEL")
                    .arg(self.inner.keys.results(self.inner.submitter))
                    .ignore(),
            );
        }
    }
}

impl std::fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPool")
            .field("url", &self.inner.url)
            .field("queue", &self.inner.keys.queue())
            .field("submitter", &format_args!("{:016x}", self.inner.submitter))
            .finish()
    }
}

impl Inner {
    fn fail(&self, doing: &'static str) -> impl FnOnce(redis::RedisError) -> Error + '_ {
        move |source| Error::Redis {
            url: self.url.clone(),
            doing,
            source,
        }
    }

    /// Refuses a same-build value unless a live host of the queue runs the
    /// build it belongs to, with the error a local pool gives when its workers
    /// run another executable.
    fn check_same_build(&self, build: &dilly::BuildId) -> dilly_pool::Result<()> {
        let hosts: redis::RedisResult<HashMap<String, String>> =
            self.conn().and_then(|mut conn| {
                let hosts = conn.query(redis::cmd("HGETALL").arg(self.keys.hosts()));
                self.give_back(conn);
                hosts
            });
        let hosts = hosts.map_err(|e| dilly_pool::Error::Io {
            context: "cannot read the worker hosts' build IDs from Redis",
            source: std::io::Error::other(format!("Redis at {}: {e}", self.url)),
        })?;
        let wanted = build.to_string();
        let mut live: Vec<(String, String)> = hosts
            .iter()
            .filter_map(|(name, v)| HostInfo::decode(name, v))
            .filter(|h| h.is_live(LIVE_FOR_BUILD_CHECK))
            .map(|h| (h.name, h.build))
            .collect();
        if live.iter().any(|(_, b)| *b == wanted) {
            return Ok(());
        }
        live.sort();
        let workers = if live.is_empty() {
            "no live host is registered".to_owned()
        } else {
            let builds: Vec<String> = live
                .iter()
                .map(|(name, b)| format!("{name}: build {b}"))
                .collect();
            builds.join(", ")
        };
        Err(dilly_pool::Error::NotSameBuild {
            program: format!("the worker hosts of queue `{}`", self.keys.queue()).into(),
            workers,
            found: *build,
        })
    }

    fn conn(&self) -> redis::RedisResult<Conn> {
        if let Some(conn) = lock(&self.conns).pop() {
            return Ok(conn);
        }
        Conn::connect(&self.client, self.settings.reconnect_for)
    }

    fn give_back(&self, conn: Conn) {
        let mut conns = lock(&self.conns);
        if conns.len() < 8 {
            conns.push(conn);
        }
    }
}

/// Fails the undelivered tasks of job `job`'s live chunk at `first` with `error`.
fn fail_chunk(state: &mut State, job: u64, first: u64, error: &TaskError) {
    let Some(job) = state.jobs.get_mut(&job) else {
        return;
    };
    let Some(live) = job.live.remove(&first) else {
        return;
    };
    let mut out = Outcomes::new();
    live.fail_unseen(first, error, &mut out);
    if !out.is_empty() {
        let _ = job.sink.send(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(seen: &[bool]) -> Vec<(u64, bool)> {
        let live = Live {
            seen: seen.to_vec(),
            left: seen.iter().filter(|s| !**s).count(),
            entry: None,
            message: Arc::from(&[][..]),
            resends: 0,
        };
        let mut out = Outcomes::new();
        live.fail_unseen(10, &TaskError::Terminated, &mut out);
        out.iter().map(|(i, r)| (i, r.is_err())).collect()
    }

    #[test]
    fn only_undelivered_tasks_fail_each_once() {
        assert_eq!(
            failed(&[true, false, false, true, false]),
            [(11, true), (12, true), (14, true)]
        );
        assert_eq!(failed(&[false, false]), [(10, true), (11, true)]);
        assert_eq!(failed(&[true, true]), []);
        assert_eq!(failed(&[]), []);
    }
}
