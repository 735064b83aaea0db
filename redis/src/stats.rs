//! What the pool reports about its queue ([`Stats`], [`HostInfo`]), the dead
//! letters ([`DeadLetter`]), and reading stream replies.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{RedisResult, Value};

use crate::conn::Conn;
use crate::keys::{GROUP, Keys, now_ms};

/// A snapshot of a queue, from [`RedisPool::stats`](crate::RedisPool::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Chunks in the task stream that no host has taken yet.
    pub queued: u64,
    /// Chunks a host has taken and not yet acknowledged.
    pub in_flight: u64,
    /// Deliveries of chunks beyond their first (a host died or stalled holding them).
    pub retried: u64,
    /// Entries moved to the dead-letter stream, ever.
    pub dead_lettered: u64,
    /// Entries refused before decoding (missing or wrong tag, a tag where no key
    /// is set, too large, malformed).
    pub refused: u64,
    /// Chunks skipped because their submitter was gone.
    pub skipped: u64,
    /// Entries now in the dead-letter stream.
    pub dead_letters: u64,
    /// Registered hosts, by name: live ones, and a host killed without a goodbye
    /// until another host removes it (after ten of that host's heartbeats and two
    /// visibility timeouts of silence); [`HostInfo::is_live`] tells them apart.
    pub hosts: Vec<HostInfo>,
}

/// A registered worker host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostInfo {
    /// Its name: `hostname:pid`.
    pub name: String,
    /// Its process ID on its machine.
    pub pid: u32,
    /// Its worker processes.
    pub processes: usize,
    /// Its build ID, or why it has none.
    pub build: String,
    /// Its registry fingerprint (count and hash of registered items).
    pub registry: String,
    /// The identifier of its HMAC key (16 hex digits, from the key's HMAC of a
    /// fixed label; not the key), or `none` without a key; `None` for a
    /// registration that does not say.
    pub key_id: Option<String>,
    /// When it last refreshed its registration.
    pub last_heartbeat: SystemTime,
}

impl HostInfo {
    /// Whether its heartbeat is younger than `within`.
    pub fn is_live(&self, within: Duration) -> bool {
        SystemTime::now()
            .duration_since(self.last_heartbeat)
            .map_or(true, |age| age <= within)
    }

    /// The registration value stored in the hosts hash.
    pub(crate) fn encode(
        pid: u32,
        processes: usize,
        key_id: &str,
        build: &str,
        registry: &str,
        heartbeat_ms: u64,
    ) -> String {
        format!(
            "pid={pid} processes={processes} heartbeat_ms={heartbeat_ms} key={key_id} build={build} registry={registry}"
        )
    }

    pub(crate) fn decode(name: &str, value: &str) -> Option<HostInfo> {
        let field = |k: &str| {
            value
                .split(' ')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
        };
        let registry = value.split_once(" registry=").map(|(_, r)| r)?;
        let build = value
            .split_once(" build=")
            .map(|(_, b)| b.split_once(" registry=").map_or(b, |(b, _)| b))?;
        Some(HostInfo {
            name: name.to_owned(),
            pid: field("pid")?.parse().ok()?,
            processes: field("processes")?.parse().ok()?,
            build: build.to_owned(),
            registry: registry.to_owned(),
            key_id: field("key").map(str::to_owned),
            last_heartbeat: UNIX_EPOCH
                + Duration::from_millis(field("heartbeat_ms")?.parse().ok()?),
        })
    }
}

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

/// The entries of an `XREAD`/`XRANGE`/`XCLAIM` reply: ID and fields.
pub(crate) type Entry = (String, Vec<(String, Vec<u8>)>);

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// Entries of a list of `[id, [field, value, …]]` (an `XRANGE` reply); deleted
/// entries (nil fields) are skipped.
pub(crate) fn entry_list(value: Value) -> Vec<Entry> {
    let Value::Array(list) = value else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|e| {
            let Value::Array(mut pair) = e else {
                return None;
            };
            if pair.len() != 2 {
                return None;
            }
            let fields = pair.pop()?;
            let id = text(&pair.pop()?)?;
            let Value::Array(fields) = fields else {
                return None;
            };
            let mut out = Vec::with_capacity(fields.len() / 2);
            let mut it = fields.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((text(&k)?, bytes(v)?));
            }
            Some((id, out))
        })
        .collect()
}

/// Entries of an `XREAD`/`XREADGROUP` reply on one stream (RESP2 or RESP3).
pub(crate) fn stream_entries(value: Value) -> Vec<Entry> {
    match value {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => {
                    entry_list(pair.pop().unwrap_or(Value::Nil))
                }
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries)| entry_list(entries))
            .collect(),
        _ => Vec::new(),
    }
}

/// A field's value.
pub(crate) fn field<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

pub(crate) fn read(conn: &mut Conn, keys: &Keys) -> RedisResult<Stats> {
    let (len, pending, counters, hosts, dead): (
        u64,
        Value,
        HashMap<String, u64>,
        HashMap<String, String>,
        u64,
    ) = conn.pipe(
        redis::pipe()
            .cmd("XLEN")
            .arg(keys.tasks())
            .cmd("XPENDING")
            .arg(keys.tasks())
            .arg(GROUP)
            .cmd("HGETALL")
            .arg(keys.stats())
            .cmd("HGETALL")
            .arg(keys.hosts())
            .cmd("XLEN")
            .arg(keys.dead()),
    )?;
    let in_flight = match &pending {
        Value::Array(v) => v.first().and_then(text).and_then(|t| t.parse().ok()),
        _ => None,
    }
    .unwrap_or(0);
    let count = |k: &str| counters.get(k).copied().unwrap_or(0);
    let mut hosts: Vec<HostInfo> = hosts
        .iter()
        .filter_map(|(name, v)| HostInfo::decode(name, v))
        .collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Stats {
        queued: len.saturating_sub(in_flight),
        in_flight,
        retried: count("retried"),
        dead_lettered: count("dead_lettered"),
        refused: count("refused"),
        skipped: count("skipped"),
        dead_letters: dead,
        hosts,
    })
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

pub(crate) fn dead_letters(
    conn: &mut Conn,
    keys: &Keys,
    count: usize,
) -> RedisResult<Vec<DeadLetter>> {
    let value: Value = conn.query(
        redis::cmd("XRANGE")
            .arg(keys.dead())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count),
    )?;
    Ok(entry_list(value)
        .into_iter()
        .map(|(id, fields)| dead_letter(id, &fields))
        .collect())
}

pub(crate) fn requeue(conn: &mut Conn, keys: &Keys, id: &str) -> RedisResult<Option<String>> {
    let value: Value = conn.query(redis::cmd("XRANGE").arg(keys.dead()).arg(id).arg(id))?;
    let Some((_, fields)) = entry_list(value).into_iter().next() else {
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

/// Milliseconds since the epoch, for the hosts' registrations.
pub(crate) fn heartbeat_now() -> u64 {
    now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_round_trips() {
        let v = HostInfo::encode(12, 4, "0123456789abcdef", "abc def", "7 items", 1_000);
        let h = HostInfo::decode("h:12", &v).unwrap();
        assert_eq!(h.key_id.as_deref(), Some("0123456789abcdef"));
        assert_eq!((h.pid, h.processes), (12, 4));
        assert_eq!(h.build, "abc def");
        assert_eq!(h.registry, "7 items");
        assert_eq!(h.last_heartbeat, UNIX_EPOCH + Duration::from_secs(1));
    }
}
