//! [`Checks`]: what a host checks task entries against before decoding them (the
//! shared key's tag, the size limit), and how it tags the results it writes.

use dilly::Limits;

use crate::entry::{self, Key, Refusal};
use crate::keys::Keys;

/// The shared key and the limits a host applies to entries.
pub(super) struct Checks {
    key: Option<Key>,
    task_domain: Vec<u8>,
    result_domain: Vec<u8>,
    /// The largest task entry accepted, in bytes.
    max_entry: usize,
}

impl Checks {
    pub(super) fn new(keys: &Keys, key: Option<Key>, max_entry: usize) -> Checks {
        Checks {
            key,
            task_domain: keys.task_domain(),
            result_domain: keys.result_domain(),
            max_entry,
        }
    }

    /// Whether the host has a key (it runs same-build function values only then).
    pub(super) fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// [`entry::key_id`] of the key, advertised in the registration and in refusals.
    pub(super) fn key_id(&self) -> String {
        entry::key_id(self.key.as_ref())
    }

    /// Checks a task entry's message and tag before any byte of it is decoded.
    pub(super) fn task(&self, message: &[u8], tag: Option<&[u8]>) -> Result<(), Refusal> {
        entry::check(
            self.key.as_ref(),
            &self.task_domain,
            message,
            tag,
            self.max_entry,
        )
    }

    /// The limits a task message is decoded within.
    pub(super) fn limits(&self) -> Limits {
        Limits::max_len(self.max_entry)
    }

    /// The tag of a result message, with a key.
    pub(super) fn result_tag(&self, message: &[u8]) -> Option<impl AsRef<[u8]>> {
        self.key
            .as_ref()
            .map(|key| key.tag(&self.result_domain, message))
    }
}
