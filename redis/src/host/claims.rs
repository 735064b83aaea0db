//! [`Claims`]: the chunks a host is running, whose claims its heartbeat keeps
//! fresh, and the pacing of its search for chunks whose host died.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::conn::lock;

/// The chunks a host holds, and when it last looked for one to reclaim.
pub(super) struct Claims {
    /// How long a chunk may sit unacknowledged, without its holder refreshing the
    /// claim, before another host takes it.
    pub(super) visibility: Duration,
    /// Chunks being run, by entry ID, with the consumer holding them.
    holding: Mutex<HashMap<String, String>>,
    last_reclaim: Mutex<Instant>,
}

impl Claims {
    pub(super) fn new(visibility: Duration) -> Claims {
        Claims {
            visibility,
            holding: Mutex::new(HashMap::new()),
            last_reclaim: Mutex::new(Instant::now()),
        }
    }

    /// Records that `consumer` runs the chunk of entry `id`.
    pub(super) fn hold(&self, id: &str, consumer: &str) {
        lock(&self.holding).insert(id.to_owned(), consumer.to_owned());
    }

    /// Forgets the chunk of entry `id`: it has finished.
    pub(super) fn release(&self, id: &str) {
        lock(&self.holding).remove(id);
    }

    /// The chunks held now: entry ID and consumer.
    pub(super) fn held(&self) -> Vec<(String, String)> {
        lock(&self.holding)
            .iter()
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect()
    }

    /// Whether to look for a chunk to reclaim now (a few times per visibility
    /// timeout, across the host's runners); when it is, the time is taken.
    pub(super) fn reclaim_due(&self) -> bool {
        let mut last = lock(&self.last_reclaim);
        if last.elapsed() < self.visibility / 4 {
            return false;
        }
        *last = Instant::now();
        true
    }

    /// Makes the next look due at once: after a reclaim, more chunks may be waiting.
    pub(super) fn reclaim_again(&self) {
        let mut last = lock(&self.last_reclaim);
        if let Some(earlier) = last.checked_sub(self.visibility) {
            *last = earlier;
        }
    }
}
