//! [`WorkerHost`]: the serving side. A host reads chunks from its queue's task
//! stream with a consumer group, runs each through a local
//! [`ProcessPool`](dilly_pool::ProcessPool), writes the outcomes to the submitter's
//! result stream and only then acknowledges the chunk. Chunks whose host died are
//! claimed by another host after the visibility timeout; a chunk delivered too
//! often goes to the dead-letter stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dilly::{Limits, RawFunc};
use dilly_pool::backend::Outcomes;
use dilly_pool::{Executor, ProcessPool, TaskError};
use redis::Value;

use crate::conn::Conn;
use crate::entry::{self, Key, ResultMsg, TaskMsg};
use crate::error::{Error, Result, redact};
use crate::keys::{GROUP, Keys};
use crate::pool::{DEFAULT_MAX_ENTRY, KEY_ENV, connect, ensure_group, lock, resolve_key};
use crate::stats::{self, HostInfo};

/// A worker host: this program, serving a queue. See [`WorkerHost::builder`].
#[derive(Debug)]
pub struct WorkerHost {
    _private: (),
}

impl WorkerHost {
    /// A builder for a host of the Redis at `url`.
    ///
    /// ```no_run
    /// // In the program's `main`, on every worker machine:
    /// dilly_redis::WorkerHost::builder("redis://10.0.0.5:6379")
    ///     .queue("squares")
    ///     .processes(4)
    ///     .serve()?;
    /// # Ok::<(), dilly_redis::Error>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> HostBuilder {
        HostBuilder {
            url: url.into(),
            queue: "default".to_owned(),
            processes: std::thread::available_parallelism().map_or(1, usize::from),
            pool: None,
            key: None,
            visibility_timeout: Duration::from_secs(30),
            max_deliveries: 5,
            heartbeat: Duration::from_secs(1),
            result_ttl: Duration::from_secs(300),
            reconnect_for: Duration::from_secs(60),
            max_entry: DEFAULT_MAX_ENTRY,
        }
    }
}

/// Options of a worker host; see [`WorkerHost::builder`].
#[derive(Debug)]
pub struct HostBuilder {
    url: String,
    queue: String,
    processes: usize,
    pool: Option<dilly_pool::Builder>,
    key: Option<Vec<u8>>,
    visibility_timeout: Duration,
    max_deliveries: u64,
    heartbeat: Duration,
    result_ttl: Duration,
    reconnect_for: Duration,
    max_entry: usize,
}

impl HostBuilder {
    /// The queue to serve (default `"default"`).
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = name.into();
        self
    }

    /// Worker processes of the local pool, and chunks run at once (default: one
    /// per core).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = n;
        self
    }

    /// The local pool's other settings (per-task timeout, memory limit, start
    /// method, …); its worker count is replaced by [`processes`](HostBuilder::processes).
    pub fn pool(mut self, builder: dilly_pool::Builder) -> Self {
        self.pool = Some(builder);
        self
    }

    /// The shared HMAC key (else the [`KEY_ENV`] environment variable). With a key,
    /// entries without a valid tag are refused before decoding and dead-lettered;
    /// without one, tagged entries are (their pool has a key this host lacks).
    /// Either way the submitting pool is told, and fails those tasks.
    pub fn key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.key = Some(key.as_ref().to_vec());
        self
    }

    /// How long a chunk may sit unacknowledged, without its host refreshing the
    /// claim, before another host takes it (default 30 s).
    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    /// Deliveries after which a chunk goes to the dead-letter stream and its tasks
    /// fail with [`TaskError::GivenUp`] (default 5).
    pub fn max_deliveries(mut self, n: u64) -> Self {
        self.max_deliveries = n;
        self
    }

    /// How often the host refreshes its registration (default 1 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// The time to live the host sets on a result stream it writes to (default
    /// 5 min; a live submitter keeps refreshing it).
    pub fn result_ttl(mut self, ttl: Duration) -> Self {
        self.result_ttl = ttl;
        self
    }

    /// How long a command keeps being retried while Redis is unreachable before
    /// the host logs the failure and tries again later (default 60 s).
    pub fn reconnect_for(mut self, time: Duration) -> Self {
        self.reconnect_for = time;
        self
    }

    /// The largest task entry accepted, in bytes (default 64 MiB): a larger one is
    /// refused before it is decoded, and dead-lettered.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry = bytes;
        self
    }

    /// Serves the queue until the process ends.
    pub fn serve(self) -> Result<()> {
        self.spawn()?.wait();
        Ok(())
    }

    /// Starts serving in background threads; the handle stops the host.
    pub fn spawn(self) -> Result<HostHandle> {
        let keys = Keys::new(&self.queue).map_err(Error::Config)?;
        if self.processes == 0 || self.max_deliveries == 0 {
            return Err(Error::Config(
                "processes and max_deliveries must be at least 1".to_owned(),
            ));
        }
        if self.visibility_timeout < Duration::from_millis(200) {
            return Err(Error::Config(
                "visibility_timeout must be at least 200 ms".to_owned(),
            ));
        }
        let url = redact(&self.url);
        let (client, mut conn) = connect(&self.url, self.reconnect_for)?;
        ensure_group(&mut conn, &keys).map_err(|source| Error::Redis {
            url: url.clone(),
            doing: "creating the consumer group",
            source,
        })?;
        let pool = self
            .pool
            .unwrap_or_else(ProcessPool::builder)
            .workers(self.processes)
            .build()?;
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        let pid = std::process::id();
        let name = format!("{hostname}:{pid}");
        let build = match dilly::same_build::this_build() {
            Ok(id) => id.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let key = resolve_key(self.key);
        let shared = Arc::new(Shared {
            task_domain: keys.task_domain(),
            result_domain: keys.result_domain(),
            keys,
            key_id: entry::key_id(key.as_ref()),
            key,
            name: name.clone(),
            pid,
            processes: self.processes,
            build,
            registry: dilly::registry::fingerprint().to_string(),
            visibility: self.visibility_timeout,
            max_deliveries: self.max_deliveries,
            heartbeat: self.heartbeat,
            result_ttl: self.result_ttl,
            max_entry: self.max_entry,
            url,
            pool,
            stop: AtomicBool::new(false),
            holding: Mutex::new(HashMap::new()),
            last_reclaim: Mutex::new(Instant::now()),
        });
        shared.register(&mut conn).map_err(|source| Error::Redis {
            url: shared.url.clone(),
            doing: "registering the host",
            source,
        })?;
        let mut threads = Vec::new();
        for i in 0..self.processes {
            let runner_conn =
                Conn::connect(&client, self.reconnect_for).map_err(|source| Error::Redis {
                    url: shared.url.clone(),
                    doing: "opening a runner connection",
                    source,
                })?;
            let shared = Arc::clone(&shared);
            let consumer = format!("{name}:{i}");
            threads.push(
                std::thread::Builder::new()
                    .name(format!("dilly-redis-runner-{i}"))
                    .spawn(move || shared.run(runner_conn, &consumer))
                    .map_err(|e| Error::Config(format!("cannot start a runner thread: {e}")))?,
            );
        }
        {
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name("dilly-redis-heartbeat".to_owned())
                    .spawn(move || shared.beat(conn))
                    .map_err(|e| {
                        Error::Config(format!("cannot start the heartbeat thread: {e}"))
                    })?,
            );
        }
        tracing::info!(host = %name, queue = shared.keys.queue(), processes = self.processes, "worker host serving");
        Ok(HostHandle {
            shared,
            threads,
            client,
        })
    }
}

/// A running worker host, from [`HostBuilder::spawn`].
pub struct HostHandle {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    client: redis::Client,
}

impl HostHandle {
    /// The host's name in the registration hash (`hostname:pid`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Stops taking chunks, finishes the ones it holds, and deregisters.
    pub fn stop(mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut conn =
            Conn::connect(&self.client, Duration::from_secs(5)).map_err(|source| Error::Redis {
                url: self.shared.url.clone(),
                doing: "deregistering the host",
                source,
            })?;
        conn.query::<()>(
            redis::cmd("HDEL")
                .arg(self.shared.keys.hosts())
                .arg(&self.shared.name),
        )
        .map_err(|source| Error::Redis {
            url: self.shared.url.clone(),
            doing: "deregistering the host",
            source,
        })?;
        tracing::info!(host = %self.shared.name, "worker host stopped and deregistered");
        Ok(())
    }

    /// Waits for the host's threads, which run until the process ends.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostHandle")
            .field("name", &self.shared.name)
            .finish()
    }
}

struct Shared {
    keys: Keys,
    task_domain: Vec<u8>,
    result_domain: Vec<u8>,
    key: Option<Key>,
    /// [`entry::key_id`] of `key`, advertised in the registration.
    key_id: String,
    name: String,
    pid: u32,
    processes: usize,
    build: String,
    registry: String,
    visibility: Duration,
    max_deliveries: u64,
    heartbeat: Duration,
    result_ttl: Duration,
    max_entry: usize,
    url: String,
    pool: ProcessPool,
    stop: AtomicBool,
    /// Chunks being run, by entry ID, with the consumer holding them: their claims
    /// are kept fresh.
    holding: Mutex<HashMap<String, String>>,
    last_reclaim: Mutex<Instant>,
}

/// A chunk taken from the stream.
struct Taken {
    id: String,
    fields: Vec<(String, Vec<u8>)>,
    deliveries: u64,
    /// The consumer that held it before (a reclaimed chunk).
    previous: Option<String>,
}

/// What a dead-lettered entry's submitter is told.
enum Outcome {
    /// These failures of its tasks, for this submitter.
    Results(u64, Vec<u8>),
    /// That the entry was refused (when the entry names its submitter).
    Refused,
}

/// The submitter an entry names in its `s` field (16 hex digits), read without
/// decoding the message, so that a refused entry's submitter can be told.
fn outcome_refused(fields: &[(String, Vec<u8>)]) -> Option<u64> {
    let s = stats::field(fields, "s")?;
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

/// The process ID in a consumer name `hostname:pid:runner`.
fn consumer_pid(consumer: &str) -> u32 {
    let mut parts = consumer.rsplit(':');
    parts.next();
    parts.next().and_then(|p| p.parse().ok()).unwrap_or(0)
}

impl Shared {
    fn register(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        conn.query(
            redis::cmd("HSET")
                .arg(self.keys.hosts())
                .arg(&self.name)
                .arg(HostInfo::encode(
                    self.pid,
                    self.processes,
                    &self.key_id,
                    &self.build,
                    &self.registry,
                    stats::heartbeat_now(),
                )),
        )
    }

    /// Removes the registrations of hosts silent for ten heartbeats and two
    /// visibility timeouts (by then their chunks have gone to other hosts): hosts
    /// killed without a goodbye. A host with a slower heartbeat that is removed
    /// this way registers itself again with its next one.
    fn forget_dead_hosts(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        let hosts: HashMap<String, String> =
            conn.query(redis::cmd("HGETALL").arg(self.keys.hosts()))?;
        let silent = (self.heartbeat * 10).max(self.visibility * 2);
        let dead: Vec<&String> = hosts
            .iter()
            .filter(|(name, v)| HostInfo::decode(name, v).is_none_or(|h| !h.is_live(silent)))
            .map(|(name, _)| name)
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        tracing::info!(hosts = ?dead, "forgetting hosts without a heartbeat");
        conn.query(redis::cmd("HDEL").arg(self.keys.hosts()).arg(dead))
    }

    /// The heartbeat thread: refreshes the registration and the claims on the
    /// chunks being run.
    fn beat(&self, mut conn: Conn) {
        let every = self.heartbeat.min(self.visibility / 3);
        let mut last: Option<Instant> = None;
        let mut beats: u64 = 0;
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(every.min(Duration::from_millis(100)));
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if last.is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            last = Some(Instant::now());
            if let Err(e) = self.register(&mut conn) {
                tracing::warn!(error = %e, "cannot refresh the host's registration");
            }
            beats += 1;
            if beats.is_multiple_of(30)
                && let Err(e) = self.forget_dead_hosts(&mut conn)
            {
                tracing::warn!(error = %e, "cannot clean the host registrations");
            }
            let holding: Vec<(String, String)> = lock(&self.holding)
                .iter()
                .map(|(id, c)| (id.clone(), c.clone()))
                .collect();
            if holding.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for (id, consumer) in &holding {
                // JUSTID: resets the idle time without counting a delivery.
                pipe.cmd("XCLAIM")
                    .arg(self.keys.tasks())
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(0)
                    .arg(id)
                    .arg("JUSTID")
                    .ignore();
            }
            if let Err(e) = conn.pipe::<()>(&pipe) {
                tracing::warn!(error = %e, "cannot refresh the claims on running chunks");
            }
        }
    }

    /// A runner thread: take a chunk, run it, write its outcomes, acknowledge it.
    fn run(&self, mut conn: Conn, consumer: &str) {
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
    fn read(&self, conn: &mut Conn, consumer: &str) -> redis::RedisResult<Option<Taken>> {
        let block = Duration::from_secs(1);
        let value: Value = conn.run(block, |con| {
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
        Ok(stats::stream_entries(value)
            .into_iter()
            .next()
            .map(|(id, fields)| Taken {
                id,
                fields,
                deliveries: 1,
                previous: None,
            }))
    }

    /// A chunk whose holder has not refreshed its claim for the visibility
    /// timeout, claimed for `consumer`; checked a few times per timeout.
    fn reclaim(&self, conn: &mut Conn, consumer: &str) -> redis::RedisResult<Option<Taken>> {
        {
            let mut last = lock(&self.last_reclaim);
            if last.elapsed() < self.visibility / 4 {
                return Ok(None);
            }
            *last = Instant::now();
        }
        let idle = self.visibility.as_millis() as u64;
        let pending: Value = conn.query(
            redis::cmd("XPENDING")
                .arg(self.keys.tasks())
                .arg(GROUP)
                .arg("IDLE")
                .arg(idle)
                .arg("-")
                .arg("+")
                .arg(1),
        )?;
        let Value::Array(list) = pending else {
            return Ok(None);
        };
        let Some(Value::Array(info)) = list.into_iter().next() else {
            return Ok(None);
        };
        let text = |v: &Value| match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => String::new(),
        };
        let (Some(id), Some(previous), Some(count)) = (
            info.first().map(text),
            info.get(1).map(text),
            info.get(3).map(text),
        ) else {
            return Ok(None);
        };
        // Min-idle makes the claim a compare-and-set: of two hosts racing for the
        // chunk, one gets it.
        let claimed: Value = conn.query(
            redis::cmd("XCLAIM")
                .arg(self.keys.tasks())
                .arg(GROUP)
                .arg(consumer)
                .arg(idle)
                .arg(&id),
        )?;
        let mut entries = stats::entry_list(claimed);
        // Ask again soon: more chunks may be waiting.
        {
            let mut last = lock(&self.last_reclaim);
            if let Some(earlier) = last.checked_sub(self.visibility) {
                *last = earlier;
            }
        }
        match entries.pop() {
            Some((id, fields)) => {
                let deliveries = count.parse::<u64>().unwrap_or(0) + 1;
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
                let exists: Value = conn.query(
                    redis::cmd("XRANGE")
                        .arg(self.keys.tasks())
                        .arg(&id)
                        .arg(&id),
                )?;
                if stats::entry_list(exists).is_empty() {
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

    /// Moves a task entry to the dead-letter stream and acknowledges it, in one
    /// transaction with:
    /// * `Outcome::Results`: its tasks' failures, written to the submitter;
    /// * `Outcome::Refused`: a refusal record in the result stream of the submitter
    ///   the entry names in its `s` field (untagged: a refused entry may come from
    ///   a pool whose key differs, which could not check a tag of this host's).
    ///   The record names the entry, the reason, this host and its key ID; the
    ///   pool fails the chunk it added under that entry ID.
    fn dead_letter(
        &self,
        conn: &mut Conn,
        taken: &Taken,
        reason: &str,
        counter: &str,
        outcome: Outcome,
    ) -> redis::RedisResult<()> {
        let results = match outcome {
            Outcome::Results(submitter, message) => Some((submitter, message)),
            Outcome::Refused => None,
        };
        let refused_for = match outcome_refused(&taken.fields) {
            Some(submitter) if results.is_none() => Some(submitter),
            _ => None,
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        let xadd = pipe.cmd("XADD").arg(self.keys.dead()).arg("*");
        for name in ["m", "t"] {
            if let Some(v) = stats::field(&taken.fields, name) {
                xadd.arg(name).arg(v);
            }
        }
        xadd.arg("reason")
            .arg(reason)
            .arg("deliveries")
            .arg(taken.deliveries)
            .arg("entry")
            .arg(&taken.id)
            .arg("host")
            .arg(&self.name)
            .ignore();
        if let Some((submitter, message)) = results {
            self.add_results(&mut pipe, submitter, &message);
        }
        if let Some(submitter) = refused_for {
            let stream = self.keys.results(submitter);
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("refused")
                .arg(&taken.id)
                .arg("reason")
                .arg(reason)
                .arg("host")
                .arg(&self.name)
                .arg("key")
                .arg(&self.key_id)
                .arg("deliveries")
                .arg(taken.deliveries)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&stream)
                .arg(self.result_ttl.as_millis() as u64)
                .ignore();
        }
        pipe.cmd("HINCRBY")
            .arg(self.keys.stats())
            .arg("dead_lettered")
            .arg(1)
            .ignore();
        if counter != "dead_lettered" {
            pipe.cmd("HINCRBY")
                .arg(self.keys.stats())
                .arg(counter)
                .arg(1)
                .ignore();
        }
        self.ack(&mut pipe, &taken.id);
        conn.pipe(&pipe)
    }

    fn add_results(&self, pipe: &mut redis::Pipeline, submitter: u64, message: &[u8]) {
        let results = self.keys.results(submitter);
        let xadd = pipe
            .cmd("XADD")
            .arg(&results)
            .arg("*")
            .arg("m")
            .arg(message);
        if let Some(key) = &self.key {
            xadd.arg("t")
                .arg(&key.tag(&self.result_domain, message)[..]);
        }
        xadd.ignore();
        pipe.cmd("PEXPIRE")
            .arg(&results)
            .arg(self.result_ttl.as_millis() as u64)
            .ignore();
    }

    fn ack(&self, pipe: &mut redis::Pipeline, id: &str) {
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

    fn handle(&self, conn: &mut Conn, consumer: &str, taken: Taken) -> redis::RedisResult<()> {
        let _span =
            tracing::info_span!("run", entry = %taken.id, deliveries = taken.deliveries).entered();
        let message = stats::field(&taken.fields, "m").unwrap_or_default();
        let tag = stats::field(&taken.fields, "t");
        if let Err(refusal) = entry::check(
            self.key.as_ref(),
            &self.task_domain,
            message,
            tag,
            self.max_entry,
        ) {
            tracing::warn!(entry = %taken.id, %refusal, "refused a task entry; dead-lettered");
            return self.dead_letter(
                conn,
                &taken,
                &refusal.to_string(),
                "refused",
                Outcome::Refused,
            );
        }
        let limits = Limits::max_len(self.max_entry);
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
        lock(&self.holding).insert(taken.id.clone(), consumer.to_owned());
        let outcomes = self.execute(&msg);
        lock(&self.holding).remove(&taken.id);
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
    fn execute(&self, msg: &TaskMsg) -> Outcomes {
        let n = msg.items.len() as u64;
        let all = |error: TaskError| {
            let mut out = Outcomes::new();
            for i in 0..n {
                out.push_err(msg.first + i, error.clone());
            }
            out
        };
        if matches!(msg.func, RawFunc::SameBuild { .. }) && self.key.is_none() {
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

#[cfg(test)]
mod tests {
    #[test]
    fn consumer_names_carry_the_pid() {
        assert_eq!(super::consumer_pid("box:1234:0"), 1234);
        assert_eq!(super::consumer_pid("a:b:c:77:3"), 77);
        assert_eq!(super::consumer_pid(""), 0);
    }
}
