//! The Redis commands each side needs, checked at start: an ACL user that lacks
//! one fails `build()`, `spawn()` or `serve()` with [`Error::Permissions`] naming
//! every missing command, instead of a host that never serves.
//!
//! Each command is tried once, on a connection of its own, with arguments that
//! change nothing (IDs that do not exist, a probe submitter's keys, `NOMKSTREAM`);
//! Redis checks the ACL before it runs a command, so `NOPERM` is the answer to
//! exactly the question asked.

use std::time::Duration;

use redis::{Client, Cmd, Value, cmd};

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keys::{GROUP, Keys, fresh_id};

/// A command to try: its name and a harmless call of it.
type Probe = (&'static str, Cmd);

/// The commands both sides run, on `keys` and a probe submitter's keys.
fn common(keys: &Keys) -> Vec<Probe> {
    let probe = fresh_id();
    let results = keys.results(probe);
    let nothing = "0-1";
    vec![
        ("PING", cmd("PING")),
        (
            "XGROUP",
            cmd("XGROUP")
                .arg("CREATE")
                .arg(keys.tasks())
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .clone(),
        ),
        (
            "XADD",
            cmd("XADD")
                .arg(&results)
                .arg("NOMKSTREAM")
                .arg("*")
                .arg("m")
                .arg("")
                .clone(),
        ),
        ("XDEL", cmd("XDEL").arg(keys.tasks()).arg(nothing).clone()),
        (
            "XRANGE",
            cmd("XRANGE")
                .arg(keys.tasks())
                .arg(nothing)
                .arg(nothing)
                .clone(),
        ),
        (
            "XPENDING",
            cmd("XPENDING").arg(keys.tasks()).arg(GROUP).clone(),
        ),
        ("PEXPIRE", cmd("PEXPIRE").arg(&results).arg(1).clone()),
        ("DEL", cmd("DEL").arg(&results).clone()),
        ("HGETALL", cmd("HGETALL").arg(keys.hosts()).clone()),
        (
            "HINCRBY",
            cmd("HINCRBY")
                .arg(keys.stats())
                .arg("retried")
                .arg(0)
                .clone(),
        ),
    ]
}

/// What a [`RedisPool`](crate::RedisPool) runs.
pub(crate) fn pool(keys: &Keys) -> Vec<Probe> {
    let probe = fresh_id();
    let mut probes = common(keys);
    probes.extend([
        (
            "SET",
            cmd("SET")
                .arg(keys.alive(probe))
                .arg(1)
                .arg("PX")
                .arg(1)
                .arg("XX")
                .clone(),
        ),
        (
            "XREAD",
            cmd("XREAD")
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(keys.results(probe))
                .arg("0-0")
                .clone(),
        ),
        (
            "XTRIM",
            cmd("XTRIM")
                .arg(keys.results(probe))
                .arg("MINID")
                .arg("0-1")
                .clone(),
        ),
        ("XLEN", cmd("XLEN").arg(keys.dead()).clone()),
    ]);
    probes
}

/// What a worker host runs; `consumer` is one of its consumer names.
pub(crate) fn host(keys: &Keys, consumer: &str) -> Vec<Probe> {
    let probe = fresh_id();
    let mut probes = common(keys);
    probes.extend([
        (
            "XREADGROUP",
            cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(consumer)
                .arg("COUNT")
                .arg(1)
                .arg("STREAMS")
                .arg(keys.tasks())
                .arg("0")
                .clone(),
        ),
        (
            "XCLAIM",
            cmd("XCLAIM")
                .arg(keys.tasks())
                .arg(GROUP)
                .arg(consumer)
                .arg(0)
                .arg("0-1")
                .arg("JUSTID")
                .clone(),
        ),
        (
            "XACK",
            cmd("XACK").arg(keys.tasks()).arg(GROUP).arg("0-1").clone(),
        ),
        (
            "HSET",
            // A probe key of its own, deleted right after.
            cmd("HSET")
                .arg(keys.alive(probe))
                .arg("probe")
                .arg(1)
                .clone(),
        ),
        ("DEL", cmd("DEL").arg(keys.alive(probe)).clone()),
        (
            "HDEL",
            cmd("HDEL")
                .arg(keys.hosts())
                .arg("dilly-redis-no-such-host")
                .clone(),
        ),
        ("EXISTS", cmd("EXISTS").arg(keys.alive(probe)).clone()),
        ("PTTL", cmd("PTTL").arg(keys.alive(probe)).clone()),
        ("WATCH", cmd("WATCH").arg(keys.alive(probe)).clone()),
        ("UNWATCH", cmd("UNWATCH")),
    ]);
    probes
}

/// Tries every probe on a connection of its own; fails with
/// [`Error::Permissions`] naming the commands Redis refused with `NOPERM`.
pub(crate) fn check(
    client: &Client,
    url: &str,
    who: &'static str,
    probes: Vec<Probe>,
) -> Result<()> {
    let mut conn =
        Conn::connect(client, Duration::from_secs(5)).map_err(|source| Error::Redis {
            url: url.to_owned(),
            doing: "connecting to check the ACL user's permissions",
            source,
        })?;
    let mut missing = Vec::new();
    let mut refused = |name: &'static str, probe: &Cmd| match conn.query::<Value>(probe) {
        // EXEC's refusal comes as EXECABORT, naming NOPERM.
        Err(e) if e.code() == Some("NOPERM") || e.to_string().contains("NOPERM") => {
            if !missing.contains(&name) {
                missing.push(name);
            }
            Ok(true)
        }
        Err(e) if e.is_io_error() || e.is_connection_dropped() => Err(Error::Redis {
            url: url.to_owned(),
            doing: "checking the ACL user's permissions",
            source: e,
        }),
        _ => Ok(false),
    };
    for (name, probe) in &probes {
        refused(name, probe)?;
    }
    // An empty transaction.
    if !refused("MULTI", &cmd("MULTI"))? {
        refused("EXEC", &cmd("EXEC"))?;
    }
    // Leaves the transaction, if EXEC did not (the connection is dropped anyway).
    let _: redis::RedisResult<Value> = conn.query(&cmd("DISCARD"));
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Permissions {
        url: url.to_owned(),
        who,
        missing: missing.iter().map(|s| s.to_string()).collect(),
    })
}
