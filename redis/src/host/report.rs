//! What a host reports about itself: the tasks it finished (advertised in its
//! registration) and its runner errors (for [`HostHandle::last_error`](super::HostHandle::last_error),
//! and printed once to standard error when they repeat).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::conn::lock;
use crate::registration::Done;

#[derive(Default)]
pub(super) struct Report {
    /// Tasks finished and acknowledged since the host started.
    done: AtomicU64,
    /// `done` at each registration of the last minute, oldest first.
    samples: Mutex<VecDeque<(Instant, u64)>>,
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

impl Report {
    /// Counts `tasks` finished.
    pub(super) fn finished(&self, tasks: u64) {
        self.done.fetch_add(tasks, Ordering::Relaxed);
    }

    /// Tasks finished, in all and in the last minute (since the oldest sample
    /// at most a minute old); takes a sample.
    pub(super) fn done(&self) -> Done {
        let total = self.done.load(Ordering::Relaxed);
        let mut samples = lock(&self.samples);
        let now = Instant::now();
        samples.push_back((now, total));
        // Keep the newest sample at least a minute old, and the ones after it.
        while samples
            .get(1)
            .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(60))
        {
            samples.pop_front();
        }
        let since = samples.front().map_or(0, |(_, d)| *d);
        Done {
            total,
            last_minute: total - since,
        }
    }

    /// Records a runner error of host `host` on `queue`. The first error that
    /// repeats (the same message twice in a row) is printed once to standard
    /// error, so that a host that cannot serve says so without a `tracing`
    /// subscriber.
    pub(super) fn error(&self, host: &str, queue: &str, message: String) {
        tracing::error!(%host, error = %message, "worker host runner error");
        let mut errors = lock(&self.errors);
        errors.count += 1;
        let repeats = errors.last.as_deref() == Some(message.as_str());
        if repeats && !errors.printed {
            errors.printed = true;
            eprintln!(
                "dilly-redis worker host {host} (queue `{queue}`): {message} (repeating; \
                 HostHandle::last_error has the latest)"
            );
        }
        errors.last = Some(message);
    }

    /// The latest runner error and how many there were.
    pub(super) fn last_error(&self) -> Option<(String, u64)> {
        let errors = lock(&self.errors);
        errors.last.clone().map(|e| (e, errors.count))
    }
}
