//! Self-described values: CBOR (RFC 8949), written and read by `ciborium`.
//!
//! A value that the compact format cannot carry (see `ser.rs` and the codec's
//! module header) travels as CBOR, which names struct fields and enum variants and
//! writes every length, so any `Deserialize` impl can ask what comes next.
//!
//! Before `ciborium` reads anything, [`check`] walks the item headers once, without
//! recursion: the bytes must hold exactly one well-formed item, no length claim may
//! exceed the bytes left behind it (each element of an array or map takes at least
//! one byte), and nesting stays within the decode's budget. So a decode allocates
//! in proportion to its input, as the compact reader does, and cannot overflow the
//! stack.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::de::{DeError, Depth};

/// Appends the CBOR encoding of `value` to `out`.
pub(super) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    ciborium::into_writer(value, out).map_err(|e| match e {
        ciborium::ser::Error::Value(message) => message,
        ciborium::ser::Error::Io(io) => io.to_string(),
    })
}

/// Reads the one CBOR value in `bytes`, which [`check`] accepted with `depth`.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8], depth: Depth) -> Result<T, DeError> {
    // `check` proved the nesting fits; ciborium counts arrays, maps and tags, one
    // level each, as `check` does.
    ciborium::de::from_reader_with_recursion_limit(bytes, depth.left.saturating_add(1)).map_err(
        |e| match e {
            ciborium::de::Error::Semantic(_, message) => DeError::Message(message),
            ciborium::de::Error::RecursionLimitExceeded => DeError::TooDeep { limit: depth.limit },
            other => DeError::Message(format!("malformed self-described value: {other:?}")),
        },
    )
}

/// What `check` is inside of.
enum Open {
    /// An array or map with this many items still to come.
    Items(u64),
    /// An indefinite-length array or map: items until a break.
    Indefinite,
    /// A tag: one item follows.
    Tag,
}

/// Checks that `bytes` hold exactly one well-formed CBOR item whose length claims
/// fit the bytes and whose nesting fits `depth`; returns how deep it nests.
pub(super) fn check(bytes: &[u8], depth: Depth) -> Result<usize, DeError> {
    let mut at = 0usize;
    let mut deepest = 0usize;
    let mut open: Vec<Open> = Vec::new();
    let truncated = |needed: usize, at: usize| {
        let err = DeError::Truncated {
            needed,
            available: bytes.len() - at,
        };
        super::note_raised(&err);
        err
    };
    let malformed = |what: &str, at: usize| {
        DeError::Message(format!(
            "malformed self-described value: {what} at byte {at}"
        ))
    };
    loop {
        let Some(&initial) = bytes.get(at) else {
            return Err(truncated(1, at));
        };
        let start = at;
        at += 1;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let argument: Option<u64> = match info {
            0..=23 => Some(u64::from(info)),
            24..=27 => {
                let n = 1usize << (info - 24);
                let Some(field) = bytes.get(at..at + n) else {
                    return Err(truncated(n, at));
                };
                at += n;
                let mut buf = [0u8; 8];
                buf[8 - n..].copy_from_slice(field);
                Some(u64::from_be_bytes(buf))
            }
            31 if matches!(major, 2..=5 | 7) => None,
            _ => return Err(malformed("a reserved header", start)),
        };
        let left = (bytes.len() - at) as u64;
        // Whether this header completes an item (and so counts against the
        // container around it).
        let mut complete = true;
        match (major, argument) {
            // Integers, floats and simple values: the argument was all.
            (0 | 1, _) | (7, Some(_)) => {}
            // Break: ends an indefinite container or string.
            (7, None) => match open.pop() {
                Some(Open::Indefinite) => {}
                _ => return Err(malformed("a break outside an indefinite item", start)),
            },
            (2 | 3, Some(len)) => {
                if len > left {
                    return Err(truncated(usize::try_from(len).unwrap_or(usize::MAX), at));
                }
                at += len as usize;
            }
            (2 | 3, None) => {
                // Definite chunks of the same major type, then a break.
                loop {
                    let Some(&chunk) = bytes.get(at) else {
                        return Err(truncated(1, at));
                    };
                    if chunk == 0xff {
                        at += 1;
                        break;
                    }
                    if chunk >> 5 != major || chunk & 0x1f == 31 {
                        return Err(malformed("a chunk of another type", at));
                    }
                    let info = chunk & 0x1f;
                    at += 1;
                    let len = match info {
                        0..=23 => u64::from(info),
                        24..=27 => {
                            let n = 1usize << (info - 24);
                            let Some(field) = bytes.get(at..at + n) else {
                                return Err(truncated(n, at));
                            };
                            at += n;
                            let mut buf = [0u8; 8];
                            buf[8 - n..].copy_from_slice(field);
                            u64::from_be_bytes(buf)
                        }
                        _ => return Err(malformed("a reserved header", at - 1)),
                    };
                    if len > (bytes.len() - at) as u64 {
                        return Err(truncated(usize::try_from(len).unwrap_or(usize::MAX), at));
                    }
                    at += len as usize;
                }
            }
            (4 | 5, len) => {
                let items = match len {
                    Some(n) if major == 5 => n.checked_mul(2),
                    n => n,
                };
                match items {
                    Some(items) if items > left => {
                        return Err(truncated(usize::try_from(items).unwrap_or(usize::MAX), at));
                    }
                    None if len.is_some() => {
                        return Err(truncated(usize::MAX, at));
                    }
                    Some(0) => {}
                    Some(items) => {
                        open.push(Open::Items(items));
                        complete = false;
                    }
                    None => {
                        open.push(Open::Indefinite);
                        complete = false;
                    }
                }
            }
            (6, _) => {
                open.push(Open::Tag);
                complete = false;
            }
            _ => return Err(malformed("a reserved header", start)),
        }
        deepest = deepest.max(open.len());
        if open.len() > depth.left {
            let err = DeError::TooDeep { limit: depth.limit };
            super::note_raised(&err);
            return Err(err);
        }
        if complete {
            // Close every container this item completes.
            loop {
                match open.last_mut() {
                    None => {
                        return if at == bytes.len() {
                            Ok(deepest)
                        } else {
                            Err(DeError::Message(format!(
                                "{} unexpected bytes after the value",
                                bytes.len() - at
                            )))
                        };
                    }
                    Some(Open::Tag) => {
                        open.pop();
                    }
                    Some(Open::Items(n)) => {
                        *n -= 1;
                        if *n == 0 {
                            open.pop();
                        } else {
                            break;
                        }
                    }
                    Some(Open::Indefinite) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{DeError, Depth, check};

    const DEPTH: Depth = Depth {
        left: 128,
        limit: 128,
    };

    fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        super::encode_into(value, &mut out).unwrap();
        out
    }

    #[test]
    fn a_length_claim_beyond_the_input_is_refused_before_reading() {
        // An array of 2^32 elements, a map of 2^63, a text and a byte string of
        // 2^64 - 1 bytes: each in a few bytes.
        for bytes in [
            &[0x9a, 0xff, 0xff, 0xff, 0xff][..],
            &[0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x5f, 0x5a, 0xff, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(
                matches!(check(bytes, DEPTH), Err(DeError::Truncated { .. })),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn nesting_past_the_budget_is_too_deep_not_a_stack_overflow() {
        for open in [0x81u8, 0xc6, 0x9f] {
            let bytes = vec![open; 100_000];
            assert!(
                matches!(check(&bytes, DEPTH), Err(DeError::TooDeep { limit: 128 })),
                "{open:02x}"
            );
        }
        let mut within = vec![0x81u8; 127];
        within.push(0x00);
        assert_eq!(check(&within, DEPTH).unwrap(), 127);
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bytes in [
            &[][..],
            &[0x1c],             // reserved additional information
            &[0xff],             // a break outside an indefinite item
            &[0x82, 0x01],       // an array cut short
            &[0x01, 0x02],       // bytes after the value
            &[0x5f, 0x61, 0x61], // a text chunk inside a byte string
            &[0x9f, 0x01],       // an indefinite array without its break
        ] {
            assert!(check(bytes, DEPTH).is_err(), "{bytes:02x?}");
        }
    }

    #[test]
    fn what_ciborium_writes_passes_the_check() {
        let value = serde_json::json!({"a": [1, -2, 2.5, null, true, "s"], "b": {"c": {}}});
        let bytes = cbor(&value);
        // The outer map, and the map under "b" (an empty map opens nothing).
        assert_eq!(check(&bytes, DEPTH).unwrap(), 2);
        let back: serde_json::Value = super::decode(&bytes, DEPTH).unwrap();
        assert_eq!(back, value);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if check(&bytes, DEPTH).is_ok() {
                let _ = super::decode::<serde_json::Value>(&bytes, DEPTH);
                let _ = super::decode::<(u64, String, Vec<i8>)>(&bytes, DEPTH);
            }
        }

        #[test]
        fn mutated_values_never_panic(
            text in ".{0,12}",
            n in any::<i64>(),
            at in any::<usize>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = cbor(&serde_json::json!({"t": text, "n": n, "l": [n, 1.5]}));
            let i = at % bytes.len();
            bytes[i] = byte;
            if check(&bytes, DEPTH).is_ok() {
                let _ = super::decode::<serde_json::Value>(&bytes, DEPTH);
            }
        }
    }
}
