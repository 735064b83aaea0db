//! [`WorkerHost`]: the serving side.
//!
//! One chunk's path through a host: `builder` registers the host and starts one
//! runner thread per local worker process and a heartbeat thread (`heartbeat`).
//! A runner (`runner`) reads a new chunk from the queue's task stream with the
//! consumer group (`XREADGROUP`) or, a few times per visibility timeout, claims
//! one whose holder stopped refreshing its claim (`XPENDING`, then `XCLAIM`;
//! paced by `claims`). It checks the entry's tag and size before decoding
//! (`checks`), skips a chunk whose submitter is gone, and runs the chunk on the
//! local [`ProcessPool`], so a task that panics,
//! segfaults or runs past its timeout fails alone; meanwhile the heartbeat keeps
//! the claim fresh. The outcomes go to the submitter's result stream, and the
//! chunk is acknowledged and deleted in the same transaction. A chunk the checks
//! refuse, or one delivered more than `max_deliveries` times, goes to the
//! dead-letter stream instead (`dead_letters`), and its submitter is told.
//! `handle` stops the host and deregisters it.

mod builder;
mod checks;
mod claims;
mod dead_letters;
mod handle;
mod heartbeat;
mod report;
mod runner;

pub use builder::WorkerHostBuilder;
pub use handle::HostHandle;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use dilly_pool::ProcessPool;

use crate::keys::Keys;

use self::checks::Checks;
use self::claims::Claims;
use self::report::Report;

/// A worker host: this program, serving a queue. See [`WorkerHost::builder`].
#[derive(Debug)]
pub struct WorkerHost {
    _private: (),
}

/// What a host's threads share: the runners, the heartbeat and the handle.
struct Shared {
    keys: Keys,
    /// The Redis URL, password redacted, for errors.
    url: String,
    /// What the host advertises in the hosts hash.
    registration: Registration,
    /// The key and limits entries are checked against.
    checks: Checks,
    /// The chunks being run, and the pacing of reclaims.
    claims: Claims,
    /// Deliveries after which a chunk is dead-lettered.
    max_deliveries: u64,
    /// How often the registration is refreshed.
    heartbeat: Duration,
    /// The time to live set on a result stream written to.
    result_ttl: Duration,
    /// The local pool chunks run on.
    pool: ProcessPool,
    stop: AtomicBool,
    /// Tasks finished and runner errors.
    report: Report,
}

impl Shared {
    /// Records a runner error ([`Report::error`]).
    fn runner_error(&self, message: String) {
        self.report
            .error(&self.registration.name, self.keys.queue(), message);
    }
}

/// What a host advertises in the queue's hosts hash.
pub(super) struct Registration {
    /// `hostname:pid`, the hash field.
    pub(super) name: String,
    pub(super) pid: u32,
    pub(super) processes: usize,
    /// [`entry::key_id`](crate::entry::key_id) of the host's key.
    pub(super) key_id: String,
    pub(super) build: String,
    pub(super) registry: String,
}

/// A chunk taken from the stream.
struct Taken {
    id: String,
    fields: Vec<(String, Vec<u8>)>,
    deliveries: u64,
    /// The consumer that held it before (a reclaimed chunk).
    previous: Option<String>,
}

/// The process ID in a consumer name `hostname:pid:runner`.
fn consumer_pid(consumer: &str) -> u32 {
    let mut parts = consumer.rsplit(':');
    parts.next();
    parts.next().and_then(|p| p.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn consumer_names_carry_the_pid() {
        assert_eq!(super::consumer_pid("box:1234:0"), 1234);
        assert_eq!(super::consumer_pid("a:b:c:77:3"), 77);
        assert_eq!(super::consumer_pid(""), 0);
    }
}
