//! The Redis keys of one queue. Every key of queue `q` starts with `dilly:{q}:`;
//! the braces are a Redis Cluster hash tag, so one queue's keys share a slot and
//! its multi-key transactions stay valid on a cluster.

use std::time::{SystemTime, UNIX_EPOCH};

/// The consumer group of worker hosts on a queue's task stream.
pub(crate) const GROUP: &str = "hosts";

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    queue: String,
    prefix: String,
}

impl Keys {
    /// The keys of `queue`; queue names are letters, digits, `-`, `_`, `.` and `:`.
    pub(crate) fn new(queue: &str) -> Result<Keys, String> {
        let ok = !queue.is_empty()
            && queue.len() <= 128
            && queue
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !ok {
            return Err(format!(
                "queue name `{queue}`: use 1 to 128 letters, digits, `-`, `_`, `.` or `:`"
            ));
        }
        Ok(Keys {
            queue: queue.to_owned(),
            prefix: format!("dilly:{{{queue}}}"),
        })
    }

    pub(crate) fn queue(&self) -> &str {
        &self.queue
    }

    /// The stream of task chunks, read by the hosts' consumer group.
    pub(crate) fn tasks(&self) -> String {
        format!("{}:tasks", self.prefix)
    }

    /// The dead-letter stream.
    pub(crate) fn dead(&self) -> String {
        format!("{}:dead", self.prefix)
    }

    /// The hash of registered hosts: host name → registration.
    pub(crate) fn hosts(&self) -> String {
        format!("{}:hosts", self.prefix)
    }

    /// The hash of counters (retried, dead-lettered, refused, skipped).
    pub(crate) fn stats(&self) -> String {
        format!("{}:stats", self.prefix)
    }

    /// A submitter's heartbeat key: it exists while the submitter lives.
    pub(crate) fn alive(&self, submitter: u64) -> String {
        format!("{}:submitter:{submitter:016x}", self.prefix)
    }

    /// A submitter's result stream.
    pub(crate) fn results(&self, submitter: u64) -> String {
        format!("{}:results:{submitter:016x}", self.prefix)
    }

    /// The HMAC domain of task entries.
    pub(crate) fn task_domain(&self) -> Vec<u8> {
        format!("dilly-redis task {}", self.queue).into_bytes()
    }

    /// The HMAC domain of result entries.
    pub(crate) fn result_domain(&self) -> Vec<u8> {
        format!("dilly-redis result {}", self.queue).into_bytes()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A fresh 64-bit ID, unpredictable enough to keep submitters apart.
pub(crate) fn fresh_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.write_u32(std::process::id());
    if let Ok(t) = SystemTime::now().duration_since(UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_names_are_checked_and_keys_share_a_hash_tag() {
        let keys = super::Keys::new("jobs.v1").unwrap();
        assert_eq!(keys.tasks(), "dilly:{jobs.v1}:tasks");
        assert_eq!(
            keys.results(255),
            "dilly:{jobs.v1}:results:00000000000000ff"
        );
        assert!(super::Keys::new("a}b").is_err());
        assert!(super::Keys::new("").is_err());
    }
}
