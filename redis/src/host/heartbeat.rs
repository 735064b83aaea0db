//! The heartbeat thread: a host's registration refreshed, the claims on its
//! running chunks kept fresh, and the registrations of dead hosts removed.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::keys::GROUP;
use crate::registration::{HostInfo, heartbeat_now};

use super::Shared;

impl Shared {
    pub(super) fn register(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        let r = &self.registration;
        conn.query(
            redis::cmd("HSET")
                .arg(self.keys.hosts())
                .arg(&r.name)
                .arg(HostInfo::encode(
                    r.pid,
                    r.processes,
                    &r.key_id,
                    &r.build,
                    &r.registry,
                    heartbeat_now(),
                )),
        )
    }

    /// Removes the registrations of hosts silent for ten heartbeats and two
    /// visibility timeouts (by then their chunks have gone to other hosts): hosts
    /// killed without a goodbye. A host with a slower heartbeat that is removed
    /// this way registers itself again with its next one.
    pub(super) fn forget_dead_hosts(&self, conn: &mut Conn) -> redis::RedisResult<()> {
        let hosts: HashMap<String, String> =
            conn.query(redis::cmd("HGETALL").arg(self.keys.hosts()))?;
        let silent = (self.heartbeat * 10).max(self.claims.visibility * 2);
        let dead: Vec<&String> = hosts
            .iter()
            .filter(|(name, v)| HostInfo::decode(name, v).is_none_or(|h| !h.is_live(silent)))
            .map(|(name, _)| name)
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        tracing::info!(hosts = ?dead, "forgetting hosts without a heartbeat");
        conn.query(redis::cmd("HDEL").arg(self.keys.hosts()).arg(dead))
    }

    /// The heartbeat thread: refreshes the registration and the claims on the
    /// chunks being run.
    pub(super) fn beat(&self, mut conn: Conn) {
        let every = self.heartbeat.min(self.claims.visibility / 3);
        let mut last: Option<Instant> = None;
        let mut beats: u64 = 0;
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(every.min(Duration::from_millis(100)));
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            if last.is_some_and(|t| t.elapsed() < every) {
                continue;
            }
            last = Some(Instant::now());
            if let Err(e) = self.register(&mut conn) {
                tracing::warn!(error = %e, "cannot refresh the host's registration");
            }
            beats += 1;
            if beats.is_multiple_of(30)
                && let Err(e) = self.forget_dead_hosts(&mut conn)
            {
                tracing::warn!(error = %e, "cannot clean the host registrations");
            }
            let holding = self.claims.held();
            if holding.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for (id, consumer) in &holding {
                // JUSTID: resets the idle time without counting a delivery.
                pipe.cmd("XCLAIM")
                    .arg(self.keys.tasks())
                    .arg(GROUP)
                    .arg(consumer)
                    .arg(0)
                    .arg(id)
                    .arg("JUSTID")
                    .ignore();
            }
            if let Err(e) = conn.pipe::<()>(&pipe) {
                tracing::warn!(error = %e, "cannot refresh the claims on running chunks");
            }
        }
    }
}
