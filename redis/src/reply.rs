//! Reading stream entries out of replies: [`StreamEntries`] for `XREAD` and
//! `XREADGROUP`, [`EntryList`] for `XRANGE` and `XCLAIM`, each a
//! [`FromRedisValue`] that a command's `query` returns directly.
//!
//! The `redis` crate's typed replies are used where Redis itself writes the
//! reply: the pending-entries summary ([`StreamPendingReply`](redis::streams::StreamPendingReply),
//! in [`stats`](crate::stats)) and the pending-entries list
//! ([`StreamPendingCountReply`](redis::streams::StreamPendingCountReply), when a
//! host looks for a chunk to reclaim). Entries are not read through its
//! `StreamReadReply`, `StreamRangeReply` or `StreamClaimReply`: those read every
//! field name as a UTF-8 `String` and fail the whole reply when one entry's field
//! name is not, and anyone who can write to the Redis can add such an entry. A
//! reader failing on it would never get past it: the collector would read the
//! same entry again forever, and a host's reclaim, which takes the oldest
//! pending chunk first, would not reclaim any chunk after it. Here a field name is
//! read lossily, so such an entry reaches the checks and is refused like any
//! other forged entry (it lacks a valid message or tag), and an entry without
//! fields (deleted while pending) is skipped.

use redis::{FromRedisValue, ParsingError, Value};

/// A stream entry: its ID and fields, in order.
pub(crate) type Entry = (String, Vec<(String, Vec<u8>)>);

/// The entries of an `XREAD`/`XREADGROUP` reply on one or more streams (RESP2 or
/// RESP3), in order; none for a reply that timed out.
pub(crate) struct StreamEntries(pub(crate) Vec<Entry>);

/// The entries of an `XRANGE`/`XCLAIM` reply, in order.
pub(crate) struct EntryList(pub(crate) Vec<Entry>);

impl FromRedisValue for StreamEntries {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Ok(StreamEntries(stream_entries(v)))
    }
}

impl FromRedisValue for EntryList {
    fn from_redis_value(v: Value) -> Result<Self, ParsingError> {
        Ok(EntryList(entry_list(v)))
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

/// Entries of a list of `[id, [field, value, …]]` (an `XRANGE` reply); deleted
/// entries (nil fields) are skipped.
fn entry_list(value: Value) -> Vec<Entry> {
    let Value::Array(list) = value else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|e| {
            let Value::Array(mut pair) = e else {
                return None;
            };
            if pair.len() != 2 {
                return None;
            }
            let fields = pair.pop()?;
            let id = text(&pair.pop()?)?;
            let Value::Array(fields) = fields else {
                return None;
            };
            let mut out = Vec::with_capacity(fields.len() / 2);
            let mut it = fields.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((text(&k)?, bytes(v)?));
            }
            Some((id, out))
        })
        .collect()
}

/// Entries of an `XREAD`/`XREADGROUP` reply on one stream (RESP2 or RESP3).
fn stream_entries(value: Value) -> Vec<Entry> {
    match value {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut pair) if pair.len() == 2 => {
                    entry_list(pair.pop().unwrap_or(Value::Nil))
                }
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams
            .into_iter()
            .flat_map(|(_, entries)| entry_list(entries))
            .collect(),
        _ => Vec::new(),
    }
}

/// A field's value.
pub(crate) fn field<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(b: &[u8]) -> Value {
        Value::BulkString(b.to_vec())
    }

    #[test]
    fn a_field_name_that_is_not_utf8_is_read_lossily() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk(b"1-1"),
            Value::Array(vec![
                bulk(b"\xff"),
                bulk(b"x"),
                bulk(b"m"),
                bulk(b"\x00\x01"),
            ]),
        ])]);
        let EntryList(entries) = EntryList::from_redis_value(reply).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "1-1");
        assert_eq!(field(&entries[0].1, "m"), Some(&b"\x00\x01"[..]));
        assert_eq!(entries[0].1[0].0, "\u{fffd}");
    }

    #[test]
    fn deleted_entries_and_timeouts_give_no_entries() {
        let deleted = Value::Array(vec![Value::Array(vec![bulk(b"1-1"), Value::Nil])]);
        assert!(EntryList::from_redis_value(deleted).unwrap().0.is_empty());
        assert!(
            StreamEntries::from_redis_value(Value::Nil)
                .unwrap()
                .0
                .is_empty()
        );
    }

    #[test]
    fn resp2_and_resp3_read_replies_give_the_same_entries() {
        let entries = Value::Array(vec![Value::Array(vec![
            bulk(b"2-0"),
            Value::Array(vec![bulk(b"m"), bulk(b"abc")]),
        ])]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk(b"s"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk(b"s"), entries)]);
        let StreamEntries(a) = StreamEntries::from_redis_value(resp2).unwrap();
        let StreamEntries(b) = StreamEntries::from_redis_value(resp3).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a,
            vec![("2-0".to_owned(), vec![("m".to_owned(), b"abc".to_vec())])]
        );
    }

    /// Why entries are not read through the crate's typed replies (module doc):
    /// one field name that is not UTF-8 fails the whole reply.
    #[test]
    fn the_typed_read_reply_fails_on_a_field_name_that_is_not_utf8() {
        let entries = Value::Array(vec![Value::Array(vec![
            bulk(b"2-0"),
            Value::Array(vec![bulk(b"\xff"), bulk(b"x")]),
        ])]);
        let reply = Value::Array(vec![Value::Array(vec![bulk(b"s"), entries])]);
        assert!(redis::streams::StreamReadReply::from_redis_value(reply.clone()).is_err());
        assert_eq!(StreamEntries::from_redis_value(reply).unwrap().0.len(), 1);
    }
}
