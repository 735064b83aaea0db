//! The dead-letter stream as the pool sees it: [`DeadLetter`] entries listed and
//! re-queued through [`RedisPool::dead_letters`] and [`RedisPool::requeue_dead_letter`].

use redis::RedisResult;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::reply::{EntryList, field};

use super::RedisPool;

/// An entry of the dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its entry ID in the dead-letter stream.
    pub id: String,
    /// The task entry's ID it was.
    pub entry: String,
    /// Why it was dead-lettered.
    pub reason: String,
    /// How many times it was delivered to hosts.
    pub deliveries: u64,
    /// The host that dead-lettered it.
    pub host: String,
    /// The size of its message in bytes.
    pub bytes: usize,
}

impl RedisPool {
    /// Up to `count` entries of the queue's dead-letter stream, oldest first.
    pub fn dead_letters(&self, count: usize) -> Result<Vec<DeadLetter>> {
        let mut conn = self
            .inner
            .conn()
            .map_err(self.inner.fail("reading dead letters"))?;
        let out = dead_letters(&mut conn, &self.inner.keys, count)
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
        let out = requeue(&mut conn, &self.inner.keys, id);
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
}

fn dead_letter(id: String, fields: &[(String, Vec<u8>)]) -> DeadLetter {
    let get = |k| String::from_utf8_lossy(field(fields, k).unwrap_or_default()).into_owned();
    DeadLetter {
        id,
        entry: get("entry"),
        reason: get("reason"),
        deliveries: get("deliveries").parse().unwrap_or(0),
        host: get("host"),
        bytes: field(fields, "m").map_or(0, <[u8]>::len),
    }
}

fn dead_letters(conn: &mut Conn, keys: &Keys, count: usize) -> RedisResult<Vec<DeadLetter>> {
    let EntryList(entries) = conn.query(
        redis::cmd("XRANGE")
            .arg(keys.dead())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count),
    )?;
    Ok(entries
        .into_iter()
        .map(|(id, fields)| dead_letter(id, &fields))
        .collect())
}

fn requeue(conn: &mut Conn, keys: &Keys, id: &str) -> RedisResult<Option<String>> {
    let EntryList(entries) = conn.query(redis::cmd("XRANGE").arg(keys.dead()).arg(id).arg(id))?;
    let Some((_, fields)) = entries.into_iter().next() else {
        return Ok(None);
    };
    let mut xadd = redis::cmd("XADD");
    xadd.arg(keys.tasks()).arg("*");
    for name in ["m", "t"] {
        if let Some(v) = field(&fields, name) {
            xadd.arg(name).arg(v);
        }
    }
    let (new,): (String,) = conn.pipe(
        redis::pipe()
            .atomic()
            .add_command(xadd)
            .cmd("XDEL")
            .arg(keys.dead())
            .arg(id)
            .ignore(),
    )?;
    Ok(Some(new))
}
