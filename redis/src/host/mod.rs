//! [`WorkerHost`]: the serving side. A host reads chunks from its queue's task
//! stream with a consumer group, runs each through a local
//! [`ProcessPool`](dilly_pool::ProcessPool), writes the outcomes to the submitter's
//! result stream and only then acknowledges the chunk. Chunks whose host died are
//! claimed by another host after the visibility timeout; a chunk delivered too
//! often goes to the dead-letter stream.

mod builder;
mod dead_letters;
mod handle;
mod heartbeat;
mod runner;

pub use builder::HostBuilder;
pub use handle::HostHandle;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use dilly_pool::ProcessPool;

use crate::entry::Key;
use crate::keys::Keys;

/// A worker host: this program, serving a queue. See [`WorkerHost::builder`].
#[derive(Debug)]
pub struct WorkerHost {
    _private: (),
}

struct Shared {
    keys: Keys,
    task_domain: Vec<u8>,
    result_domain: Vec<u8>,
    key: Option<Key>,
    /// [`entry::key_id`] of `key`, advertised in the registration.
    key_id: String,
    name: String,
    pid: u32,
    processes: usize,
    build: String,
    registry: String,
    visibility: Duration,
    max_deliveries: u64,
    heartbeat: Duration,
    result_ttl: Duration,
    max_entry: usize,
    url: String,
    pool: ProcessPool,
    stop: AtomicBool,
    /// Chunks being run, by entry ID, with the consumer holding them: their claims
    /// are kept fresh.
    holding: Mutex<HashMap<String, String>>,
    last_reclaim: Mutex<Instant>,
    /// Tasks finished and acknowledged since the host started.
    done: AtomicU64,
    /// `done` at each registration of the last minute, oldest first.
    done_samples: Mutex<VecDeque<(Instant, u64)>>,
    /// Runner errors, for [`HostHandle::last_error`].
    errors: Mutex<Errors>,
}

/// The runner errors a host has met.
#[derive(Default)]
struct Errors {
    /// The latest one.
    last: Option<String>,
    /// How many there were.
    count: u64,
    /// Whether one has been printed to standard error.
    printed: bool,
}

impl Shared {
    /// Records a runner error. The first error that repeats (the same message
    /// twice in a row) is printed once to standard error, so that a host that
    /// cannot serve says so without a `tracing` subscriber.
    fn runner_error(&self, message: String) {
        tracing::error!(host = %self.name, error = %message, "worker host runner error");
        let mut errors = crate::conn::lock(&self.errors);
        errors.count += 1;
        let repeats = errors.last.as_deref() == Some(message.as_str());
        if repeats && !errors.printed {
            errors.printed = true;
            eprintln!(
                "dilly-redis worker host {} (queue `{}`): {message} (repeating;                  HostHandle::last_error has the latest)",
                self.name,
                self.keys.queue()
            );
        }
        errors.last = Some(message);
    }
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
