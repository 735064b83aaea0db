//! [`RedisPool`]: the submitting side. Jobs cut into chunks go to the queue's task
//! stream, a bounded window of chunks per job at a time; one collector thread per
//! pool reads the pool's result stream, drops duplicates by task index, hands each
//! job its outcomes and refills its window.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dilly::{Limits, RawFunc};
use dilly_pool::backend::{Items, Job, Outcomes, Shape};
use dilly_pool::{Executor, TaskError};
use redis::Value;

use crate::conn::Conn;
use crate::entry::{self, Key, ResultMsg, TaskMsg};
use crate::error::{Error, Result, redact};
use crate::keys::{GROUP, Keys, fresh_id};
use crate::stats::{self, DeadLetter, HostInfo, Stats};

/// The environment variable that holds the shared HMAC key when the builder is
/// not given one.
pub const KEY_ENV: &str = "DILLY_REDIS_KEY";

/// A host whose registration is younger than this counts as live when
/// [`RedisPoolBuilder::build`] compares key IDs (hosts refresh it every second by
/// default).
const LIVE_FOR_KEY_CHECK: Duration = Duration::from_secs(10);

/// Refusal records kept for chunks whose entry ID is not known yet (a host
/// refused the entry before the pool recorded its ID).
const MAX_EARLY_REFUSALS: usize = 1024;

/// The largest entry accepted by default, in bytes.
pub(crate) const DEFAULT_MAX_ENTRY: usize = 64 << 20;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Connects a client for `url`, checking the URL, the address and the
/// credentials now rather than at the first task.
pub(crate) fn connect(url: &str, retry_for: Duration) -> Result<(redis::Client, Conn)> {
    let client = redis::Client::open(url).map_err(|source| Error::Url {
        url: redact(url),
        source,
    })?;
    let mut conn = Conn::connect(&client, retry_for).map_err(|source| Error::Redis {
        url: redact(url),
        doing: "connecting (check the address, the password or ACL user in the URL, and TLS)",
        source,
    })?;
    conn.query::<()>(&redis::cmd("PING"))
        .map_err(|source| Error::Redis {
            url: redact(url),
            doing: "sending PING after connecting",
            source,
        })?;
    Ok((client, conn))
}

/// Creates the hosts' consumer group on the task stream (and the stream), from
/// the stream's start, unless it exists.
pub(crate) fn ensure_group(conn: &mut Conn, keys: &Keys) -> redis::RedisResult<()> {
    let created: redis::RedisResult<()> = conn.query(
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(keys.tasks())
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM"),
    );
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// The key from the builder, else from [`KEY_ENV`].
pub(crate) fn resolve_key(given: Option<Vec<u8>>) -> Option<Key> {
    given
        .or_else(|| {
            std::env::var_os(KEY_ENV)
                .filter(|v| !v.is_empty())
                .map(|v| v.into_encoded_bytes())
        })
        .map(|k| Key::new(&k))
}

/// Options of a [`RedisPool`]; see [`RedisPool::builder`].
#[derive(Debug, Clone)]
pub struct RedisPoolBuilder {
    url: String,
    queue: String,
    workers: usize,
    chunk_size: Option<usize>,
    progress: bool,
    window: usize,
    key: Option<Vec<u8>>,
    submitter_timeout: Duration,
    reconnect_for: Duration,
    max_entry: usize,
}

impl RedisPoolBuilder {
    /// The queue to submit to (default `"default"`); hosts serve one queue each.
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = name.into();
        self
    }

    /// How many worker processes the hosts offer in total, as a hint for cutting
    /// maps into chunks (about four chunks per worker; default 8).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Items per chunk (one stream entry each), instead of the automatic size.
    pub fn chunk_size(mut self, items: usize) -> Self {
        self.chunk_size = Some(items);
        self
    }

    /// Draw a progress bar for long maps.
    pub fn progress(mut self, progress: bool) -> Self {
        self.progress = progress;
        self
    }

    /// The most chunks of one job in Redis at once (default 32): a job's other
    /// chunks wait in this process until earlier ones finish, so Redis memory
    /// stays bounded however long the map.
    pub fn window(mut self, chunks: usize) -> Self {
        self.window = chunks;
        self
    }

    /// The shared secret that tags every entry (HMAC-SHA256). Without it the
    /// [`KEY_ENV`] environment variable is read; without either, entries travel
    /// untagged and same-build function values are refused.
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(key.as_ref().to_vec());
        self
    }

    /// How long after this process stops refreshing its heartbeat key the hosts
    /// treat its jobs as abandoned, skip them and delete its result stream; also
    /// the result stream's time to live (default 30 s).
    pub fn submitter_timeout(mut self, timeout: Duration) -> Self {
        self.submitter_timeout = timeout;
        self
    }

    /// How long a Redis command keeps being retried while the connection is down
    /// (Redis restarting, say) before the tasks waiting on it fail (default 60 s).
    pub fn reconnect_for(mut self, time: Duration) -> Self {
        self.reconnect_for = time;
        self
    }

    /// The largest result entry accepted, in bytes (default 64 MiB): a larger one
    /// is refused before it is decoded.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry = bytes;
        self
    }

    /// Connects, checks the credentials, and starts the pool's collector thread.
    ///
    /// Fails with [`Error::KeyMismatch`] when the queue has live hosts that
    /// advertise a key ID and none has this pool's key (or lack of one): they
    /// would refuse every task.
    pub fn build(self) -> Result<RedisPool> {
        let keys = Keys::new(&self.queue).map_err(Error::Config)?;
        if self.workers == 0 || self.window == 0 || self.chunk_size == Some(0) {
            return Err(Error::Config(
                "workers, window and chunk_size must be at least 1".to_owned(),
            ));
        }
        if self.submitter_timeout < Duration::from_millis(300) {
            return Err(Error::Config(
                "submitter_timeout must be at least 300 ms".to_owned(),
            ));
        }
        let url = redact(&self.url);
        let (client, mut conn) = connect(&self.url, self.reconnect_for)?;
        let fail = |doing| {
            let url = url.clone();
            move |source| Error::Redis { url, doing, source }
        };
        ensure_group(&mut conn, &keys).map_err(fail("creating the consumer group"))?;
        let key = resolve_key(self.key);
        let key_id = entry::key_id(key.as_ref());
        check_hosts_key(&mut conn, &keys, &key_id).map_err(|e| match e {
            Ok(mismatch) => mismatch,
            Err(source) => fail("reading the hosts' registrations")(source),
        })?;
        let submitter = fresh_id();
        let ttl = self.submitter_timeout.as_millis() as u64;
        conn.query::<()>(
            redis::cmd("SET")
                .arg(keys.alive(submitter))
                .arg(1)
                .arg("PX")
                .arg(ttl),
        )
        .map_err(fail("setting the submitter's heartbeat key"))?;
        let collector_conn = Conn::connect(&client, self.reconnect_for)
            .map_err(fail("opening the collector's connection"))?;
        let inner = Arc::new(Inner {
            key,
            key_id,
            keys,
            submitter,
            url,
            client,
            settings: Settings {
                workers: self.workers,
                chunk_size: self.chunk_size,
                progress: self.progress,
                window: self.window,
                ttl: self.submitter_timeout,
                reconnect_for: self.reconnect_for,
                max_entry: self.max_entry,
            },
            conns: Mutex::new(vec![conn]),
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let collector = {
            let inner = Arc::clone(&inner);
            std::thread::Builder::new()
                .name("dilly-redis-collector".to_owned())
                .spawn(move || collect(&inner, collector_conn))
                .map_err(|e| Error::Config(format!("cannot start the collector thread: {e}")))?
        };
        tracing::info!(queue = inner.keys.queue(), submitter = %format!("{submitter:016x}"), "redis pool ready");
        Ok(RedisPool {
            inner,
            collector: Mutex::new(Some(collector)),
        })
    }
}

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
/// // `dilly_redis::WorkerHost::builder(url).queue("squares").processes(4).serve()`.
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
    /// [`entry::key_id`] of `key`.
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

/// A chunk on its way into Redis.
struct Outgoing {
    job: u64,
    first: u64,
    len: usize,
    message: Vec<u8>,
}

impl RedisPool {
    /// A builder for a pool on the Redis at `url` (`redis://[user:password@]host[:port][/db]`,
    /// or `rediss://…` for TLS with the `tls` feature).
    pub fn builder(url: impl Into<String>) -> RedisPoolBuilder {
        RedisPoolBuilder {
            url: url.into(),
            queue: "default".to_owned(),
            workers: 8,
            chunk_size: None,
            progress: false,
            window: 32,
            key: None,
            submitter_timeout: Duration::from_secs(30),
            reconnect_for: Duration::from_secs(60),
            max_entry: DEFAULT_MAX_ENTRY,
        }
    }

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

    /// Up to `count` entries of the queue's dead-letter stream, oldest first.
    pub fn dead_letters(&self, count: usize) -> Result<Vec<DeadLetter>> {
        let mut conn = self
            .inner
            .conn()
            .map_err(self.inner.fail("reading dead letters"))?;
        let out = stats::dead_letters(&mut conn, &self.inner.keys, count)
            .map_err(self.inner.fail("reading dead letters"));
        self.inner.give_back(conn);
        out
    }

    /// Moves a dead letter back to the task stream, as it was (tag included), for
    /// the hosts to try again; returns its new entry ID. Its outcomes reach the
    /// submitter only while that submitter is alive, and only for tasks it has not
    /// delivered yet (a chunk dead-lettered after too many deliveries, or refused
    /// by a host that could tell this pool, was delivered as failures).
    pub fn requeue_dead_letter(&self, id: &str) -> Result<String> {
        let mut conn = self
            .inner
            .conn()
            .map_err(self.inner.fail("re-queueing a dead letter"))?;
        let out = stats::requeue(&mut conn, &self.inner.keys, id);
        self.inner.give_back(conn);
        match out {
            Ok(Some(new)) => Ok(new),
            Ok(None) => Err(Error::NoSuchDeadLetter {
                queue: self.inner.keys.queue().to_owned(),
                id: id.to_owned(),
            }),
            Err(source) => Err(Error::Redis {
                url: self.inner.url.clone(),
                doing: "re-queueing a dead letter",
                source,
            }),
        }
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

    /// Takes the chunks of job `id` that fit in its window, marking them live.
    fn take_outgoing(&self, state: &mut State, id: u64, out: &mut Vec<Outgoing>) {
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
                                    what: "task chunk".into(),
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
    fn send(&self, outgoing: Vec<Outgoing>) -> std::result::Result<(), redis::RedisError> {
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
    fn delete_entries(&self, entries: Vec<String>) {
        if entries.is_empty() {
            return;
        }
        if let Ok(mut conn) = self.conn() {
            let _: redis::RedisResult<()> =
                conn.query(redis::cmd("XDEL").arg(self.keys.tasks()).arg(&entries));
            self.give_back(conn);
        }
    }

    /// Takes in one result entry.
    fn receive(&self, msg: ResultMsg, outgoing: &mut Vec<Outgoing>) {
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
    fn refused(&self, entry: &str, fields: &[(String, Vec<u8>)], outgoing: &mut Vec<Outgoing>) {
        let text = |name| {
            stats::field(fields, name)
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

    /// Fails every outstanding task that is in Redis: the collector lost Redis.
    fn fail_live(&self, reason: &str) {
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

/// `Err(Ok(KeyMismatch))` when live hosts serve the queue and none advertises
/// the key ID `pool`; hosts whose registration does not name a key ID are not
/// counted either way.
fn check_hosts_key(
    conn: &mut Conn,
    keys: &Keys,
    pool: &str,
) -> std::result::Result<(), std::result::Result<Error, redis::RedisError>> {
    let hosts: HashMap<String, String> = conn
        .query(redis::cmd("HGETALL").arg(keys.hosts()))
        .map_err(Err)?;
    let mut live: Vec<(String, String)> = hosts
        .iter()
        .filter_map(|(name, v)| HostInfo::decode(name, v))
        .filter(|h| h.is_live(LIVE_FOR_KEY_CHECK))
        .filter_map(|h| Some((h.name, h.key_id?)))
        .collect();
    if live.is_empty() || live.iter().any(|(_, id)| id == pool) {
        return Ok(());
    }
    live.sort();
    let hosts = live
        .iter()
        .map(|(name, id)| format!("{name}: `{id}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(Ok(Error::KeyMismatch {
        queue: keys.queue().to_owned(),
        pool: pool.to_owned(),
        hosts,
    }))
}

/// The collector thread: heartbeat, read results, refill windows.
fn collect(inner: &Inner, mut conn: Conn) {
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
        let read: redis::RedisResult<Value> = conn.run(block, |con| {
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
            Ok(value) => stats::stream_entries(value),
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
            if let Some(entry) = stats::field(&fields, "refused") {
                let entry = String::from_utf8_lossy(entry).into_owned();
                inner.refused(&entry, &fields, &mut outgoing);
                continue;
            }
            let message = stats::field(&fields, "m").unwrap_or_default();
            let tag = stats::field(&fields, "t");
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

struct RedisJob {
    inner: Arc<Inner>,
    id: u64,
    rx: mpsc::Receiver<Outcomes>,
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
