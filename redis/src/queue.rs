//! [`Queue`]: an operator's view of one queue — its counters, its hosts and its
//! dead letters — without submitting or serving. The `dilly-redis` command is
//! built on it.

use std::sync::Mutex;
use std::time::Duration;

use dilly::{Limits, RawFunc};

use crate::conn::{Conn, DEFAULT_MAX_ENTRY, connect, lock, resolve_key};
use crate::entry::{self, Key, TaskMsg};
use crate::error::{Error, Result, redact};
use crate::keys::Keys;
use crate::reply::{EntryList, field};
use crate::stats::{self, Stats};
use crate::submit::DeadLetter;
use crate::submit::dead_letters;

/// How long a command is retried while Redis is unreachable.
const RETRY_FOR: Duration = Duration::from_secs(5);

/// One queue, seen from outside: what [`RedisPool::stats`](crate::RedisPool::stats)
/// and the dead-letter calls read, without starting a pool (no heartbeat key, no
/// collector thread). Opening one writes nothing to Redis.
///
/// ```no_run
/// let queue = dilly_redis::Queue::open("redis://127.0.0.1:6379", "squares", None)?;
/// let stats = queue.stats()?;
/// println!("{} chunks queued, {} in flight", stats.queued, stats.in_flight);
/// for letter in queue.dead_letters(10)? {
///     println!("{}: {}", letter.id, letter.reason);
/// }
/// # Ok::<(), dilly_redis::Error>(())
/// ```
pub struct Queue {
    keys: Keys,
    url: String,
    key: Option<Key>,
    conn: Mutex<Conn>,
}

/// A dead letter with its message decoded, from [`Queue::dead_letter`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterDetail {
    /// What the dead-letter stream says about it.
    pub letter: DeadLetter,
    /// Whether its HMAC tag checks under the key given to [`Queue::open`] (or
    /// [`KEY_ENV`](crate::KEY_ENV)): `Ok` when it does, or when neither side has
    /// a key; otherwise why not. The message is decoded only when it does.
    pub tag: std::result::Result<(), String>,
    /// The chunk's submitter (16 hex digits), when the message decodes.
    pub submitter: Option<String>,
    /// The submitter's job number, when the message decodes.
    pub job: Option<u64>,
    /// The chunk's first task index, when the message decodes.
    pub first: Option<u64>,
    /// How many tasks the chunk holds, when the message decodes.
    pub items: Option<usize>,
    /// The function, as `symbol <id>` or `same-build <build ID>`, when the
    /// message decodes.
    pub function: Option<String>,
    /// Why the message does not decode, when it does not.
    pub malformed: Option<String>,
}

impl Queue {
    /// Connects to the Redis at `url` and names the queue `queue`. `key` is the
    /// shared HMAC key, used only to check the tags of dead letters
    /// ([`dead_letter`](Queue::dead_letter)); without it [`KEY_ENV`](crate::KEY_ENV)
    /// is read.
    pub fn open(url: &str, queue: &str, key: Option<&[u8]>) -> Result<Queue> {
        let keys = Keys::new(queue).map_err(Error::Config)?;
        let (_, conn) = connect(url, RETRY_FOR)?;
        Ok(Queue {
            keys,
            url: redact(url),
            key: resolve_key(key.map(<[u8]>::to_vec)),
            conn: Mutex::new(conn),
        })
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.keys.queue()
    }

    /// The Redis URL, with any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The identifier of the HMAC key this view was given (`none` without one):
    /// compare it with [`HostInfo::key_id`](crate::HostInfo::key_id).
    pub fn key_id(&self) -> String {
        entry::key_id(self.key.as_ref())
    }

    fn run<T>(
        &self,
        doing: &'static str,
        f: impl FnOnce(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T> {
        f(&mut lock(&self.conn)).map_err(|source| Error::Redis {
            url: self.url.clone(),
            doing,
            source,
        })
    }

    /// The queue's counters and registered hosts.
    pub fn stats(&self) -> Result<Stats> {
        self.run("reading stats", |conn| stats::read(conn, &self.keys))
    }

    /// Up to `count` entries of the dead-letter stream, oldest first.
    pub fn dead_letters(&self, count: usize) -> Result<Vec<DeadLetter>> {
        self.run("reading dead letters", |conn| {
            dead_letters::dead_letters(conn, &self.keys, count)
        })
    }

    /// One dead letter, its message decoded when its tag checks.
    pub fn dead_letter(&self, id: &str) -> Result<DeadLetterDetail> {
        let found = self.run("reading a dead letter", |conn| {
            let EntryList(entries) =
                conn.query(redis::cmd("XRANGE").arg(self.keys.dead()).arg(id).arg(id))?;
            Ok(entries.into_iter().next())
        })?;
        let Some((id, fields)) = found else {
            return Err(self.no_such(id));
        };
        let letter = dead_letters::dead_letter(id, &fields);
        let message = field(&fields, "m").unwrap_or_default();
        let tag = entry::check(
            self.key.as_ref(),
            &self.keys.task_domain(),
            message,
            field(&fields, "t"),
            DEFAULT_MAX_ENTRY,
        )
        .map_err(|refusal| refusal.to_string());
        let mut detail = DeadLetterDetail {
            letter,
            tag,
            submitter: None,
            job: None,
            first: None,
            items: None,
            function: None,
            malformed: None,
        };
        if detail.tag.is_ok() {
            match TaskMsg::decode(message, Limits::max_len(DEFAULT_MAX_ENTRY)) {
                Ok(msg) => {
                    detail.submitter = Some(format!("{:016x}", msg.submitter));
                    detail.job = Some(msg.job);
                    detail.first = Some(msg.first);
                    detail.items = Some(msg.items.len());
                    detail.function = Some(match &msg.func {
                        RawFunc::Registered { id, .. } => format!("symbol {id}"),
                        RawFunc::SameBuild { build, .. } => format!("same-build {build}"),
                    });
                }
                Err(e) => detail.malformed = Some(e),
            }
        }
        Ok(detail)
    }

    /// Moves a dead letter back to the task stream, as it was (tag included);
    /// returns its new entry ID.
    pub fn requeue_dead_letter(&self, id: &str) -> Result<String> {
        match self.run("re-queueing a dead letter", |conn| {
            dead_letters::requeue(conn, &self.keys, id)
        })? {
            Some(new) => Ok(new),
            None => Err(self.no_such(id)),
        }
    }

    /// Deletes one dead letter.
    pub fn purge_dead_letter(&self, id: &str) -> Result<()> {
        let deleted: u64 = self.run("purging a dead letter", |conn| {
            conn.query(redis::cmd("XDEL").arg(self.keys.dead()).arg(id))
        })?;
        if deleted == 0 {
            return Err(self.no_such(id));
        }
        Ok(())
    }

    /// Deletes every dead letter; returns how many there were.
    pub fn purge_dead_letters(&self) -> Result<u64> {
        let (count,): (u64,) = self.run("purging the dead letters", |conn| {
            conn.pipe(
                redis::pipe()
                    .atomic()
                    .cmd("XLEN")
                    .arg(self.keys.dead())
                    .cmd("DEL")
                    .arg(self.keys.dead())
                    .ignore(),
            )
        })?;
        Ok(count)
    }

    fn no_such(&self, id: &str) -> Error {
        Error::NoSuchDeadLetter {
            queue: self.keys.queue().to_owned(),
            id: id.to_owned(),
        }
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("url", &self.url)
            .field("queue", &self.keys.queue())
            .finish()
    }
}
