//! The bytes of a stream entry: a task chunk going to hosts, a result batch coming
//! back, and the HMAC-SHA256 tag over each. The tag is checked before any byte of
//! the message is decoded; lengths are checked against the bytes present before
//! anything is allocated.

use dilly::{Limits, RawFunc};
use dilly_pool::TaskError;
use dilly_pool::backend::{Items, Outcomes};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Format version of task and result messages (2: a task's failure is its
/// [`TaskError`] in the core codec). A build refuses entries of any other version.
const VERSION: u8 = 2;
const KIND_TASK: u8 = b'T';
const KIND_RESULT: u8 = b'R';

/// Length of a tag in bytes.
pub(crate) const TAG_LEN: usize = 32;

/// A shared secret that tags and checks entries.
#[derive(Clone)]
pub(crate) struct Key(Vec<u8>);

impl Key {
    pub(crate) fn new(bytes: &[u8]) -> Key {
        Key(bytes.to_vec())
    }

    fn mac(&self, domain: &[u8], message: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(&(domain.len() as u64).to_le_bytes());
        mac.update(domain);
        mac.update(message);
        mac
    }

    /// The tag of `message` in `domain` (the queue and the stream kind, so that an
    /// entry cannot be replayed into another queue or as the other kind).
    pub(crate) fn tag(&self, domain: &[u8], message: &[u8]) -> [u8; TAG_LEN] {
        self.mac(domain, message).finalize().into_bytes().into()
    }

    /// The key's identifier: the first 8 bytes of its HMAC of a fixed label, in
    /// hex. Equal keys have equal identifiers; the identifier tells nothing about
    /// the key beyond what any tagged entry in Redis already does.
    pub(crate) fn id(&self) -> String {
        let tag = self.tag(b"dilly-redis key id", b"");
        tag[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `tag` is `message`'s tag, compared in constant time.
    pub(crate) fn verify(&self, domain: &[u8], message: &[u8], tag: &[u8]) -> bool {
        self.mac(domain, message).verify_slice(tag).is_ok()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// The identifier of `key` ([`Key::id`]), or `none` without a key.
pub(crate) fn key_id(key: Option<&Key>) -> String {
    key.map_or_else(|| "none".to_owned(), Key::id)
}

/// Why an entry was refused before it was decoded or run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No tag, though a key is set.
    MissingTag,
    /// The tag does not match.
    BadTag,
    /// A tag, though this side has no key to check it with.
    UnexpectedTag,
    /// Larger than the limit; `setting` raises it on the side that refused.
    TooLarge {
        len: usize,
        limit: usize,
        setting: &'static str,
    },
    /// The bytes do not decode.
    Malformed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::MissingTag => {
                f.write_str("the entry has no HMAC tag, but this side has a key")
            }
            Refusal::BadTag => f.write_str(
                "the entry's HMAC tag is wrong (forged, corrupted, or made under another key)",
            ),
            Refusal::UnexpectedTag => {
                f.write_str("the entry has an HMAC tag, but this side has no key to check it")
            }
            Refusal::TooLarge {
                len,
                limit,
                setting,
            } => {
                write!(
                    f,
                    "the entry's {len} bytes exceed the limit of {limit} bytes; raise it with `{setting}`"
                )
            }
            Refusal::Malformed(detail) => write!(f, "the entry does not decode: {detail}"),
        }
    }
}

/// Checks an entry's tag (when a key is set) and size, before decoding anything.
pub(crate) fn check(
    key: Option<&Key>,
    domain: &[u8],
    message: &[u8],
    tag: Option<&[u8]>,
    limit: usize,
) -> Result<(), Refusal> {
    if message.len() > limit {
        // Hosts check task entries, pools result entries.
        let setting = if domain.starts_with(b"dilly-redis result") {
            "RedisPoolBuilder::max_len"
        } else {
            "WorkerHostBuilder::max_len"
        };
        return Err(Refusal::TooLarge {
            len: message.len(),
            limit,
            setting,
        });
    }
    match (key, tag) {
        (Some(key), Some(tag)) if !key.verify(domain, message, tag) => Err(Refusal::BadTag),
        (Some(_), None) => Err(Refusal::MissingTag),
        (None, Some(_)) => Err(Refusal::UnexpectedTag),
        _ => Ok(()),
    }
}

/// A chunk of tasks of one job.
#[derive(Debug)]
pub(crate) struct TaskMsg {
    pub(crate) submitter: u64,
    pub(crate) job: u64,
    pub(crate) first: u64,
    pub(crate) func: RawFunc,
    pub(crate) items: Items,
}

/// Outcomes of (some of) the tasks of one chunk.
#[derive(Debug)]
pub(crate) struct ResultMsg {
    pub(crate) submitter: u64,
    pub(crate) job: u64,
    pub(crate) outcomes: Outcomes,
}

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), String> {
        let len = u32::try_from(v.len()).map_err(|_| "a field over 4 GiB".to_owned())?;
        self.u32(len);
        self.0.extend_from_slice(v);
        Ok(())
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "{what} needs {n} bytes but only {} are left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }
    /// A count of things that each take at least `min` bytes: refused when the
    /// bytes left cannot hold them, so nothing is reserved on a lie.
    fn count(&mut self, what: &str, min: usize) -> Result<usize, String> {
        let n = self.u32(what)? as usize;
        if n.saturating_mul(min) > self.0.len() {
            return Err(format!(
                "{n} {what} cannot fit in the {} bytes left",
                self.0.len()
            ));
        }
        Ok(n)
    }
    fn end(&self) -> Result<(), String> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("{} bytes after the end", self.0.len()))
        }
    }
}

fn header(input: &mut In<'_>, kind: u8) -> Result<(), String> {
    let version = input.u8("version")?;
    if version != VERSION {
        return Err(format!(
            "message format version {version}, this build reads version {VERSION}"
        ));
    }
    let found = input.u8("kind")?;
    if found != kind {
        return Err(format!("a message of kind {found}, expected {kind}"));
    }
    Ok(())
}

impl TaskMsg {
    /// The message bytes; `func` is the function already encoded with
    /// [`dilly::to_bytes`].
    pub(crate) fn encode(
        submitter: u64,
        job: u64,
        first: u64,
        func: &[u8],
        items: &Items,
    ) -> Result<Vec<u8>, String> {
        let mut out = Out(Vec::with_capacity(
            40 + func.len() + items.byte_len() + 4 * items.len(),
        ));
        out.u8(VERSION);
        out.u8(KIND_TASK);
        out.u64(submitter);
        out.u64(job);
        out.u64(first);
        out.bytes(func)?;
        out.u32(u32::try_from(items.len()).map_err(|_| "over 4 billion items".to_owned())?);
        for item in items.iter() {
            out.bytes(item)?;
        }
        Ok(out.0)
    }

    pub(crate) fn decode(bytes: &[u8], limits: Limits) -> Result<TaskMsg, String> {
        let mut input = In(bytes);
        header(&mut input, KIND_TASK)?;
        let submitter = input.u64("submitter")?;
        let job = input.u64("job")?;
        let first = input.u64("first index")?;
        let func = input.bytes("function")?;
        let func: RawFunc =
            dilly::from_bytes_with_limits(func, limits).map_err(|e| e.to_string())?;
        let n = input.count("items", 4)?;
        let mut items = Items::with_capacity(n, input.0.len());
        for _ in 0..n {
            items.push(input.bytes("item")?);
        }
        input.end()?;
        Ok(TaskMsg {
            submitter,
            job,
            first,
            func,
            items,
        })
    }
}

impl ResultMsg {
    pub(crate) fn encode(submitter: u64, job: u64, outcomes: &Outcomes) -> Result<Vec<u8>, String> {
        let mut out = Out(Vec::with_capacity(64 + 16 * outcomes.len()));
        out.u8(VERSION);
        out.u8(KIND_RESULT);
        out.u64(submitter);
        out.u64(job);
        out.u32(u32::try_from(outcomes.len()).map_err(|_| "over 4 billion outcomes".to_owned())?);
        for (index, outcome) in outcomes.iter() {
            out.u64(index);
            match outcome {
                Ok(bytes) => {
                    out.u8(0);
                    out.bytes(bytes)?;
                }
                Err(error) => {
                    out.u8(1);
                    out.bytes(&dilly::to_bytes(error).map_err(|e| e.to_string())?)?;
                }
            }
        }
        Ok(out.0)
    }

    pub(crate) fn decode(bytes: &[u8], limits: Limits) -> Result<ResultMsg, String> {
        let mut input = In(bytes);
        header(&mut input, KIND_RESULT)?;
        let submitter = input.u64("submitter")?;
        let job = input.u64("job")?;
        let n = input.count("outcomes", 13)?;
        let mut outcomes = Outcomes::new();
        for _ in 0..n {
            let index = input.u64("index")?;
            match input.u8("outcome kind")? {
                0 => outcomes.push_ok(index, input.bytes("result")?),
                1 => {
                    let error: TaskError =
                        dilly::from_bytes_with_limits(input.bytes("error")?, limits)
                            .map_err(|e| e.to_string())?;
                    outcomes.push_err(index, error);
                }
                other => return Err(format!("outcome kind {other}")),
            }
        }
        input.end()?;
        Ok(ResultMsg {
            submitter,
            job,
            outcomes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dilly::{Fingerprint, SymbolId};
    use dilly_pool::WorkerExit;

    fn func() -> RawFunc {
        RawFunc::Registered {
            id: SymbolId::from_raw(7),
            fingerprint: Fingerprint::from_raw(9),
            shape: Fingerprint::from_raw(11),
            state: vec![1, 2],
        }
    }

    #[test]
    fn a_task_message_round_trips() {
        let items: Items = [&b"ab"[..], b"", b"c"].into_iter().collect();
        let raw = dilly::to_bytes(&func()).unwrap();
        let bytes = TaskMsg::encode(1, 2, 30, &raw, &items).unwrap();
        let msg = TaskMsg::decode(&bytes, Limits::DEFAULT).unwrap();
        assert_eq!((msg.submitter, msg.job, msg.first), (1, 2, 30));
        assert_eq!(msg.func, func());
        assert_eq!(msg.items, items);
    }

    #[test]
    fn a_result_message_round_trips_errors_typed() {
        let mut outcomes = Outcomes::new();
        outcomes.push_ok(4, b"four");
        outcomes.push_err(
            5,
            TaskError::WorkerDied {
                pid: 12,
                exit: WorkerExit::Signal(11),
                memory_limited: false,
            },
        );
        outcomes.push_err(
            6,
            TaskError::Rejected {
                error: dilly::Error::UnknownSymbol {
                    id: SymbolId::from_raw(3),
                    name: None,
                },
            },
        );
        outcomes.push_err(
            7,
            TaskError::GivenUp {
                deliveries: 3,
                last_error: "the hosts died".to_owned(),
            },
        );
        let stopped = TaskError::WorkerStopped {
            pid: 13,
            after: std::time::Duration::from_millis(2001),
        };
        outcomes.push_err(8, stopped.clone());
        // Errors whose text the host's build wrote travel owned, whole.
        let skew = TaskError::Rejected {
            error: dilly::Error::SignatureMismatch {
                name: "app::f".to_owned().into(),
                expected: "fn(u64) -> u64".to_owned().into(),
                expected_fingerprint: Fingerprint::from_raw(1),
                found: Fingerprint::from_raw(2),
            },
        };
        outcomes.push_err(9, skew.clone());
        let arguments = TaskError::Arguments {
            error: dilly::Error::Truncated {
                what: "arguments".into(),
                needed: 8,
                available: 3,
            },
        };
        outcomes.push_err(10, arguments.clone());
        let bytes = ResultMsg::encode(1, 2, &outcomes).unwrap();
        let msg = ResultMsg::decode(&bytes, Limits::DEFAULT).unwrap();
        let got: Vec<_> = msg
            .outcomes
            .iter()
            .map(|(i, r)| (i, r.map(<[u8]>::to_vec).map_err(Clone::clone)))
            .collect();
        assert_eq!(
            got,
            [
                (4, Ok(b"four".to_vec())),
                (
                    5,
                    Err(TaskError::WorkerDied {
                        pid: 12,
                        exit: WorkerExit::Signal(11),
                        memory_limited: false
                    })
                ),
                (
                    6,
                    Err(TaskError::Rejected {
                        error: dilly::Error::UnknownSymbol {
                            id: SymbolId::from_raw(3),
                            name: None
                        }
                    })
                ),
                (
                    7,
                    Err(TaskError::GivenUp {
                        deliveries: 3,
                        last_error: "the hosts died".to_owned()
                    })
                ),
                (8, Err(stopped)),
                (9, Err(skew)),
                (10, Err(arguments)),
            ]
        );
    }

    #[test]
    fn codec_errors_in_a_result_entry_read_as_they_were_written() {
        let errors = [
            TaskError::Arguments {
                error: dilly::Error::Malformed {
                    what: "arguments".into(),
                    detail: "x is not an email address".into(),
                },
            },
            TaskError::Unserializable {
                error: dilly::Error::Encode {
                    what: "result".into(),
                    detail: "zero is never sent".into(),
                },
            },
        ];
        let mut outcomes = Outcomes::new();
        for (i, error) in errors.iter().enumerate() {
            outcomes.push_err(i as u64, error.clone());
        }
        let bytes = ResultMsg::encode(1, 2, &outcomes).unwrap();
        let msg = ResultMsg::decode(&bytes, Limits::DEFAULT).unwrap();
        let texts: Vec<String> = msg
            .outcomes
            .iter()
            .map(|(_, r)| r.map(|_| ()).unwrap_err().to_string())
            .collect();
        assert_eq!(
            texts,
            [
                "the task's arguments do not travel: malformed arguments: \
                 x is not an email address",
                "the task's result does not travel: cannot encode result: zero is never sent",
            ]
        );
    }

    #[test]
    fn an_entry_of_another_format_version_is_refused() {
        let items: Items = [&b"ab"[..]].into_iter().collect();
        let raw = dilly::to_bytes(&func()).unwrap();
        let mut task = TaskMsg::encode(1, 2, 3, &raw, &items).unwrap();
        let mut result = ResultMsg::encode(1, 2, &Outcomes::new()).unwrap();
        // Version 1 wrote failures in a form of its own.
        task[0] = 1;
        result[0] = 1;
        let err = TaskMsg::decode(&task, Limits::DEFAULT).unwrap_err();
        assert_eq!(
            err,
            format!("message format version 1, this build reads version {VERSION}")
        );
        let err = ResultMsg::decode(&result, Limits::DEFAULT).unwrap_err();
        assert!(err.contains("message format version 1"), "{err}");
    }

    #[test]
    fn every_truncation_and_a_lying_count_are_refused_without_panic() {
        let items: Items = [&b"ab"[..], b"cd"].into_iter().collect();
        let raw = dilly::to_bytes(&func()).unwrap();
        let bytes = TaskMsg::encode(1, 2, 3, &raw, &items).unwrap();
        for cut in 0..bytes.len() {
            assert!(TaskMsg::decode(&bytes[..cut], Limits::DEFAULT).is_err());
        }
        // A count of four billion items in a few bytes.
        let mut lie = bytes[..bytes.len() - 12].to_vec();
        let at = lie.len() - 4;
        lie[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = TaskMsg::decode(&lie, Limits::DEFAULT).unwrap_err();
        assert!(err.contains("cannot fit"), "{err}");
    }

    #[test]
    fn a_tag_binds_key_domain_and_message() {
        let key = Key::new(b"secret");
        let tag = key.tag(b"q task", b"message");
        assert!(check(Some(&key), b"q task", b"message", Some(&tag), 100).is_ok());
        assert_eq!(
            check(Some(&key), b"q result", b"message", Some(&tag), 100),
            Err(Refusal::BadTag)
        );
        assert_eq!(
            check(Some(&key), b"q task", b"messagf", Some(&tag), 100),
            Err(Refusal::BadTag)
        );
        assert_eq!(
            check(
                Some(&Key::new(b"other")),
                b"q task",
                b"message",
                Some(&tag),
                100
            ),
            Err(Refusal::BadTag)
        );
        assert_eq!(
            check(Some(&key), b"q task", b"message", None, 100),
            Err(Refusal::MissingTag)
        );
        assert_eq!(
            check(Some(&key), b"q task", b"message", Some(&tag), 3),
            Err(Refusal::TooLarge {
                len: 7,
                limit: 3,
                setting: "WorkerHostBuilder::max_len"
            })
        );
        // A result entry is refused by the pool, whose builder raises the limit.
        let refusal = check(None, b"dilly-redis result q", b"message", None, 3).unwrap_err();
        assert!(
            refusal
                .to_string()
                .ends_with("raise it with `RedisPoolBuilder::max_len`"),
            "{refusal}"
        );
        assert!(check(None, b"q task", b"message", None, 100).is_ok());
        assert_eq!(
            check(None, b"q task", b"message", Some(&tag), 100),
            Err(Refusal::UnexpectedTag)
        );
    }

    #[test]
    fn a_key_id_tells_keys_apart_and_is_not_the_key() {
        let id = Key::new(b"secret").id();
        assert_eq!(id, Key::new(b"secret").id());
        assert_ne!(id, Key::new(b"secreT").id());
        assert_eq!(id.len(), 16);
        assert!(!id.contains("secret"));
        assert_eq!(key_id(None), "none");
    }
}
