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
mod dead_letters;
mod job;
mod sender;

pub use builder::RedisPoolBuilder;
pub use dead_letters::DeadLetter;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use dilly::RawFunc;
use dilly_pool::backend::{Items, Job, Outcomes, Shape};
use dilly_pool::{Executor, TaskError};

use crate::conn::{Conn, KEY_ENV, lock};
use crate::entry::Key;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::stats::{self, Stats};

use self::job::RedisJob;

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
    sink: mpsc::Sender<Outcomes>,
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
                    for i in 0..items.len() as u64 {
                        out.push_err(first + i, TaskError::Terminated);
                    }
                }
                for (first, live) in std::mem::take(&mut job.live) {
                    for (i, seen) in live.seen.iter().enumerate() {
                        if !seen {
                            out.push_err(first + i as u64, TaskError::Terminated);
                        }
                    }
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
        let encoded =
            dilly::to_bytes(func).map_err(|error| dilly_pool::Error::Encode { index: 0, error })?;
        let (sink, rx) = mpsc::channel();
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
    for (i, seen) in live.seen.iter().enumerate() {
        if !seen {
            out.push_err(first + i as u64, error.clone());
        }
    }
    if !out.is_empty() {
        let _ = job.sink.send(out);
    }
}
