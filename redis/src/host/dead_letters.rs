//! Dead-lettering: a task entry moved to the dead-letter stream, and its
//! submitter told.

use crate::conn::Conn;
use crate::reply;

use super::{Shared, Taken};

/// What a dead-lettered entry's submitter is told.
pub(super) enum Outcome {
    /// These failures of its tasks, for this submitter.
    Results(u64, Vec<u8>),
    /// That the entry was refused (when the entry names its submitter).
    Refused,
}

/// The submitter an entry names in its `s` field (16 hex digits), read without
/// decoding the message, so that a refused entry's submitter can be told.
pub(super) fn outcome_refused(fields: &[(String, Vec<u8>)]) -> Option<u64> {
    let s = reply::field(fields, "s")?;
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(s).ok()?, 16).ok()
}

impl Shared {
    /// Moves a task entry to the dead-letter stream and acknowledges it, in one
    /// transaction with:
    /// * `Outcome::Results`: its tasks' failures, written to the submitter;
    /// * `Outcome::Refused`: a refusal record in the result stream of the submitter
    ///   the entry names in its `s` field (untagged: a refused entry may come from
    ///   a pool whose key differs, which could not check a tag of this host's).
    ///   The record names the entry, the reason, this host and its key ID; the
    ///   pool fails the chunk it added under that entry ID.
    pub(super) fn dead_letter(
        &self,
        conn: &mut Conn,
        taken: &Taken,
        reason: &str,
        counter: &str,
        outcome: Outcome,
    ) -> redis::RedisResult<()> {
        let results = match outcome {
            Outcome::Results(submitter, message) => Some((submitter, message)),
            Outcome::Refused => None,
        };
        let refused_for = match outcome_refused(&taken.fields) {
            Some(submitter) if results.is_none() => Some(submitter),
            _ => None,
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        let xadd = pipe.cmd("XADD").arg(self.keys.dead()).arg("*");
        for name in ["m", "t"] {
            if let Some(v) = reply::field(&taken.fields, name) {
                xadd.arg(name).arg(v);
            }
        }
        xadd.arg("reason")
            .arg(reason)
            .arg("deliveries")
            .arg(taken.deliveries)
            .arg("entry")
            .arg(&taken.id)
            .arg("host")
            .arg(&self.registration.name)
            .ignore();
        if let Some((submitter, message)) = results {
            self.add_results(&mut pipe, submitter, &message);
        }
        if let Some(submitter) = refused_for {
            let stream = self.keys.results(submitter);
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("refused")
                .arg(&taken.id)
                .arg("reason")
                .arg(reason)
                .arg("host")
                .arg(&self.registration.name)
                .arg("key")
                .arg(&self.registration.key_id)
                .arg("deliveries")
                .arg(taken.deliveries)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&stream)
                .arg(self.result_ttl.as_millis() as u64)
                .ignore();
        }
        pipe.cmd("HINCRBY")
            .arg(self.keys.stats())
            .arg("dead_lettered")
            .arg(1)
            .ignore();
        if counter != "dead_lettered" {
            pipe.cmd("HINCRBY")
                .arg(self.keys.stats())
                .arg(counter)
                .arg(1)
                .ignore();
        }
        self.ack(&mut pipe, &taken.id);
        conn.pipe(&pipe)
    }
}
