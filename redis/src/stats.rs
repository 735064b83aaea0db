//! What the pool reports about its queue ([`Stats`]).

use std::collections::HashMap;

use redis::RedisResult;
use redis::streams::StreamPendingReply;

use crate::conn::Conn;
use crate::keys::{GROUP, Keys};
use crate::registration::HostInfo;

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

pub(crate) fn read(conn: &mut Conn, keys: &Keys) -> RedisResult<Stats> {
    let (len, pending, counters, hosts, dead): (
        u64,
        StreamPendingReply,
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
    let in_flight = pending.count() as u64;
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
