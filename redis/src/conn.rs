//! Connections to Redis, and the setup both sides share. [`Conn`] is a synchronous
//! connection that reconnects: a command that fails because the connection broke
//! (Redis restarted, the network dropped) is retried on a new connection, with
//! backoff, for up to a configured time. [`connect`] opens the first one and checks
//! the URL and credentials, [`ensure_group`] creates the hosts' consumer group,
//! [`resolve_key`] finds the shared HMAC key.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError, RedisResult};

use crate::entry::Key;
use crate::error::{Error, Result, redact};
use crate::keys::{GROUP, Keys};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Conn {
    client: Client,
    con: Option<Connection>,
    /// How long a command keeps being retried across reconnections.
    retry_for: Duration,
    /// Read timeout beyond a blocking command's own block time.
    read_slack: Duration,
}

/// Whether the error means the connection (not the command) failed.
fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.code() == Some("LOADING")
        || e.code() == Some("MASTERDOWN")
        || e.code() == Some("TRYAGAIN")
}

impl Conn {
    /// Connects now: an error here (wrong address, wrong password) is reported,
    /// not retried.
    pub(crate) fn connect(client: &Client, retry_for: Duration) -> RedisResult<Conn> {
        let con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        let mut conn = Conn {
            client: client.clone(),
            con: Some(con),
            retry_for,
            read_slack: Duration::from_secs(10),
        };
        conn.set_timeout(Duration::ZERO)?;
        Ok(conn)
    }

    fn set_timeout(&mut self, block: Duration) -> RedisResult<()> {
        if let Some(con) = &self.con {
            con.set_read_timeout(Some(block + self.read_slack))?;
            con.set_write_timeout(Some(self.read_slack))?;
        }
        Ok(())
    }

    /// Runs `f` on the connection, reconnecting and retrying while the failure is
    /// the connection's. `block` is how long the command may block in Redis.
    pub(crate) fn run<T>(
        &mut self,
        block: Duration,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(20);
        loop {
            let attempt = match self.con.as_mut() {
                Some(_) => {
                    self.set_timeout(block)?;
                    f(self.con.as_mut().expect("connected"))
                }
                None => match self.client.get_connection_with_timeout(CONNECT_TIMEOUT) {
                    Ok(con) => {
                        tracing::info!("reconnected to Redis");
                        self.con = Some(con);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match attempt {
                Ok(v) => return Ok(v),
                Err(e) if is_transient(&e) && started.elapsed() < self.retry_for => {
                    tracing::debug!(error = %e, "Redis connection failed; retrying");
                    self.con = None;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => {
                    if is_transient(&e) {
                        self.con = None;
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Runs a non-blocking command.
    pub(crate) fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        self.run(Duration::ZERO, |con| cmd.query(con))
    }

    /// Runs a pipeline.
    pub(crate) fn pipe<T: redis::FromRedisValue>(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> RedisResult<T> {
        self.run(Duration::ZERO, |con| pipe.query(con))
    }
}

/// The environment variable that holds the shared HMAC key when the builder is
/// not given one.
pub const KEY_ENV: &str = "DILLY_REDIS_KEY";

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
