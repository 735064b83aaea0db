//! Reading stream replies: the entries of `XREAD`, `XREADGROUP`, `XRANGE` and
//! `XCLAIM` replies, as ID and fields.

use redis::Value;

/// The entries of an `XREAD`/`XRANGE`/`XCLAIM` reply: ID and fields.
pub(crate) type Entry = (String, Vec<(String, Vec<u8>)>);

pub(crate) fn text(v: &Value) -> Option<String> {
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
pub(crate) fn entry_list(value: Value) -> Vec<Entry> {
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
pub(crate) fn stream_entries(value: Value) -> Vec<Entry> {
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
