//! [`RedisPoolBuilder`]: a pool's options, and the checks and connections made
//! before its first task.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::conn::{Conn, DEFAULT_MAX_ENTRY, connect, ensure_group, resolve_key};
use crate::entry;
use crate::error::{Error, Result, redact};
use crate::keys::{Keys, fresh_id};
use crate::permissions;
use crate::registration::HostInfo;

use super::collector::collect;
use super::{Inner, RedisPool, Settings, State};

/// A host whose registration is younger than this counts as live when
/// [`RedisPoolBuilder::build`] compares key IDs (hosts refresh it every second by
/// default).
const LIVE_FOR_KEY_CHECK: Duration = Duration::from_secs(10);

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
    /// [`KEY_ENV`](crate::KEY_ENV) environment variable is read; without either, entries travel
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

    /// The size limit: the largest result entry accepted, in bytes (default
    /// 64 MiB); a larger one is refused before it is decoded. The same name as
    /// `dilly::Limits::max_len` and the pools' builders' `max_len`.
    pub fn max_len(mut self, bytes: usize) -> Self {
        self.max_entry = bytes;
        self
    }

    /// The old name of [`max_len`](RedisPoolBuilder::max_len), kept for one release.
    #[deprecated(
        since = "0.1.0",
        note = "renamed to `max_len`, the size limit's name in every dilly crate"
    )]
    pub fn max_entry_bytes(self, bytes: usize) -> Self {
        self.max_len(bytes)
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
        permissions::check(&client, &url, "pool", permissions::pool(&keys))?;
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
}

/// `Err(Ok(KeyMismatch))` when live hosts serve the queue and none advertises
/// the key ID `pool`; hosts whose registration does not name a key ID are not
/// counted either way.
pub(super) fn check_hosts_key(
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
