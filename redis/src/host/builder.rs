//! [`WorkerHostBuilder`]: a host's options, its registration and the start of its threads.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use dilly_pool::ProcessPool;

use crate::conn::{Conn, DEFAULT_MAX_ENTRY, connect, ensure_group, resolve_key};
use crate::error::{Error, Result, redact};
use crate::keys::Keys;
use crate::permissions;

use super::checks::Checks;
use super::claims::Claims;
use super::{HostHandle, Registration, Shared, WorkerHost};

impl WorkerHost {
    /// A builder for a host of the Redis at `url`.
    ///
    /// ```no_run
    /// // In the program's `main`, on every worker machine:
    /// dilly_redis::WorkerHost::builder("redis://10.0.0.5:6379")
    ///     .queue("squares")
    ///     .workers(4)
    ///     .serve()?;
    /// # Ok::<(), dilly_redis::Error>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> WorkerHostBuilder {
        WorkerHostBuilder {
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
pub struct WorkerHostBuilder {
    url: String,
    queue: String,
    processes: usize,
    pool: Option<dilly_pool::ProcessPoolBuilder>,
    key: Option<Vec<u8>>,
    visibility_timeout: Duration,
    max_deliveries: u64,
    heartbeat: Duration,
    result_ttl: Duration,
    reconnect_for: Duration,
    max_entry: usize,
}

impl WorkerHostBuilder {
    /// The queue to serve (default `"default"`).
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = name.into();
        self
    }

    /// Worker processes of the local pool, and chunks run at once (default: one
    /// per core). The same word as `workers` on every pool's builder.
    pub fn workers(mut self, n: usize) -> Self {
        self.processes = n;
        self
    }

    /// The old name of [`workers`](WorkerHostBuilder::workers), kept for one release.
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `workers`, the worker count's name on every builder"
    )]
    pub fn processes(self, n: usize) -> Self {
        self.workers(n)
    }

    /// The local pool's other settings (per-task timeout, memory limit, start
    /// method, …); its worker count is replaced by [`workers`](WorkerHostBuilder::workers).
    pub fn pool(mut self, builder: dilly_pool::ProcessPoolBuilder) -> Self {
        self.pool = Some(builder);
        self
    }

    /// The shared HMAC key (else the [`KEY_ENV`](crate::KEY_ENV) environment variable). With a key,
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
    /// fail with [`TaskError::GivenUp`](dilly_pool::TaskError::GivenUp) (default 5).
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

    /// The size limit: the largest task entry accepted, in bytes (default 64 MiB);
    /// a larger one is refused before it is decoded, and dead-lettered. The same
    /// name as `dilly::Limits::max_len` and the pools' builders' `max_len`.
    pub fn max_len(mut self, bytes: usize) -> Self {
        self.max_entry = bytes;
        self
    }

    /// The old name of [`max_len`](WorkerHostBuilder::max_len), kept for one release.
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `max_len`, the size limit's name in every dilly crate"
    )]
    pub fn max_entry_bytes(self, bytes: usize) -> Self {
        self.max_len(bytes)
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
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "host".to_owned());
        let pid = std::process::id();
        let name = format!("{hostname}:{pid}");
        permissions::check(
            &client,
            &url,
            "worker host",
            permissions::host(&keys, &format!("{name}:0")),
        )?;
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
        let build = match dilly::same_build::this_build() {
            Ok(id) => id.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let key = resolve_key(self.key);
        let checks = Checks::new(&keys, key, self.max_entry);
        let shared = Arc::new(Shared {
            keys,
            url,
            registration: Registration {
                name: name.clone(),
                pid,
                processes: self.processes,
                key_id: checks.key_id(),
                build,
                registry: dilly::registry::fingerprint().to_string(),
            },
            checks,
            claims: Claims::new(self.visibility_timeout),
            max_deliveries: self.max_deliveries,
            heartbeat: self.heartbeat,
            result_ttl: self.result_ttl,
            pool,
            stop: AtomicBool::new(false),
            report: Default::default(),
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
