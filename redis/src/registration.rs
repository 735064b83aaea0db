//! A worker host's registration in the queue's hosts hash ([`HostInfo`]): what a
//! host writes with every heartbeat, and what the pool and other hosts read back.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::keys::now_ms;

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
