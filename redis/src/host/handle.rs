//! [`HostHandle`]: a running host, to stop or wait for.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::conn::Conn;
use crate::error::{Error, Result};

use super::Shared;

/// A running worker host, from [`WorkerHostBuilder::spawn`](crate::WorkerHostBuilder::spawn).
pub struct HostHandle {
    pub(super) shared: Arc<Shared>,
    pub(super) threads: Vec<JoinHandle<()>>,
    pub(super) client: redis::Client,
}

impl HostHandle {
    /// The host's name in the registration hash (`hostname:pid`).
    pub fn name(&self) -> &str {
        &self.shared.registration.name
    }

    /// The latest error of the host's runner threads (Redis unreachable past
    /// `reconnect_for`, a command refused), and how many there have been; `None`
    /// while there has been none. Runners retry after an error, and a host whose
    /// errors repeat also prints the first repeat to standard error.
    pub fn last_error(&self) -> Option<(String, u64)> {
        self.shared.report.last_error()
    }

    /// Stops taking chunks, finishes the ones it holds, and deregisters.
    pub fn stop(mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let mut conn =
            Conn::connect(&self.client, Duration::from_secs(5)).map_err(|source| Error::Redis {
                url: self.shared.url.clone(),
                doing: "deregistering the host",
                source,
            })?;
        conn.query::<()>(
            redis::cmd("HDEL")
                .arg(self.shared.keys.hosts())
                .arg(&self.shared.registration.name),
        )
        .map_err(|source| Error::Redis {
            url: self.shared.url.clone(),
            doing: "deregistering the host",
            source,
        })?;
        tracing::info!(host = %self.shared.registration.name, "worker host stopped and deregistered");
        Ok(())
    }

    /// Waits for the host's threads, which run until the process ends.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostHandle")
            .field("name", &self.shared.registration.name)
            .finish()
    }
}
