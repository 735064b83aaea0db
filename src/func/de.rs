//! The two `Deserialize` forms of a [`Func`]: each looks the code up in this
//! program's registry (or resolves a same-build address), checks it, and prepares
//! the state as it is read.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::codec::{self, Header};
use crate::entry::{Entry, ErasedFunc, Ops, PrepareFn};
use crate::error::Error;
use crate::registry;
use crate::same_build;
use crate::symbol::{BuildId, Fingerprint};

use super::{Func, Mode, Origin, RawFunc};

/// Receives an owned byte buffer from any format (bytes, or a sequence of `u8`).
struct ByteBuf(Vec<u8>);

impl ByteBuf {
    fn from_seq<'de, S: SeqAccess<'de>>(mut seq: S) -> Result<ByteBuf, S::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(ByteBuf(out))
    }
}

impl<'de> Deserialize<'de> for ByteBuf {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BufVisitor;
        impl<'de> Visitor<'de> for BufVisitor {
            type Value = ByteBuf;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                Ok(ByteBuf(v))
            }
            fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<ByteBuf, S::Error> {
                ByteBuf::from_seq(seq)
            }
        }
        deserializer.deserialize_byte_buf(BufVisitor)
    }
}

/// Turns a dilly error inside a serde `Deserialize` impl into the format's error,
/// keeping the typed error for [`crate::from_bytes`] and friends to hand back.
/// The message ends in "found in the data", so that where a format appends a
/// position (serde_json: " at line 7 column 1") it reads as a position in the
/// data, not in a source file.
pub(crate) fn de_error<E: de::Error>(err: Error) -> E {
    let message = format!("{err}; found in the data");
    codec::stash_error(err);
    E::custom(message)
}

impl<'de, A: 'static, R: 'static, M: Mode> Deserialize<'de> for Func<A, R, M> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_struct(
                "Func",
                &["fn", "fingerprint", "same_build", "offset", "state"],
                ReadableVisitor(PhantomData),
            )
        } else if M::PORTABLE {
            deserializer.deserialize_tuple(2, CompactVisitor(PhantomData))
        } else {
            deserializer.deserialize_tuple(3, CompactVisitor(PhantomData))
        }
    }
}

struct CompactVisitor<A, R, M>(PhantomData<fn(A, M) -> R>);

impl<'de, A: 'static, R: 'static, M: Mode> Visitor<'de> for CompactVisitor<A, R, M> {
    type Value = Func<A, R, M>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dilly function: (header, state)")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let missing = |i| de::Error::invalid_length(i, &"a complete function value");
        let tag: u8 = if M::PORTABLE {
            codec::TAG_REGISTERED
        } else {
            seq.next_element()?.ok_or_else(|| missing(0))?
        };
        let header: Header = seq.next_element()?.ok_or_else(|| missing(1))?;
        // A same-build value (tag 1, then its 24-byte header) read as a portable
        // one, in a format that writes a `u8` as one byte and a length as one byte
        // (bincode, postcard): the tag reads as a length of 1 and the header's
        // length as its content. Say what it is rather than "malformed".
        if M::PORTABLE && header.len == 1 && header.first() == Some(codec::ADDRESS_HEADER_LEN as u8)
        {
            return Err(de_error(Error::NotPortable));
        }
        let expected_len = match tag {
            codec::TAG_REGISTERED => codec::REGISTERED_HEADER_LEN,
            codec::TAG_ADDRESS => codec::ADDRESS_HEADER_LEN,
            other => {
                return Err(de::Error::invalid_value(
                    de::Unexpected::Unsigned(u64::from(other)),
                    &"0 (registered) or 1 (same-build)",
                ));
            }
        };
        if tag == codec::TAG_REGISTERED && header.len == codec::V1_REGISTERED_HEADER_LEN {
            return Err(de_error(Error::OlderFormat {
                found: 1,
                supported: codec::VERSION,
            }));
        }
        if header.len != expected_len {
            return Err(de::Error::invalid_length(
                header.len,
                &"a 24-byte header (registered or same-build)",
            ));
        }
        let (origin, preparer) = if tag == codec::TAG_REGISTERED {
            let (id, fingerprint, shape) = header.registered();
            let entry = registry::lookup_callable(id, fingerprint, shape).map_err(de_error)?;
            (Origin::Registered(entry), Preparer::Entry(entry))
        } else if M::PORTABLE {
            return Err(de_error(Error::NotPortable));
        } else {
            let (build, offset) = header.address();
            let build = BuildId(build);
            let prepare = same_build::resolve(build, offset).map_err(de_error)?;
            (
                Origin::Address { build, offset },
                Preparer::Address(prepare),
            )
        };
        let prepared = seq.next_element_seed(preparer)?.ok_or_else(|| missing(2))?;
        Func::assemble(origin, prepared).map_err(de_error)
    }
}

/// Prepares a function from its state bytes as they are read, without copying them.
enum Preparer {
    Entry(&'static Entry),
    Address(PrepareFn),
}

impl Preparer {
    fn prepare<E: de::Error>(&self, state: &[u8]) -> Result<Arc<dyn ErasedFunc>, E> {
        match self {
            Preparer::Entry(entry) => entry.prepare(state),
            Preparer::Address(prepare) => prepare(state),
        }
        .map_err(de_error)
    }
}

impl<'de> DeserializeSeed<'de> for Preparer {
    type Value = Arc<dyn ErasedFunc>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for Preparer {
    type Value = Arc<dyn ErasedFunc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a function's state as a byte string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        self.prepare(v)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, seq: S) -> Result<Self::Value, S::Error> {
        let ByteBuf(bytes) = ByteBuf::from_seq(seq)?;
        self.prepare(&bytes)
    }
}

struct ReadableVisitor<A, R, M>(PhantomData<fn(A, M) -> R>);

impl<'de, A: 'static, R: 'static, M: Mode> Visitor<'de> for ReadableVisitor<A, R, M> {
    type Value = Func<A, R, M>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a dilly function: {"fn": name, "fingerprint": hex, "state": ...}"#)
    }

    fn visit_map<V: MapAccess<'de>>(self, mut map: V) -> Result<Self::Value, V::Error> {
        let mut entry: Option<&'static Entry> = None;
        let mut fingerprint: Option<Fingerprint> = None;
        let mut build: Option<BuildId> = None;
        let mut offset: Option<i64> = None;
        let mut state: Option<Vec<u8>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "fn" => {
                    let name: String = map.next_value()?;
                    entry = Some(registry::lookup_name(&name).map_err(de_error)?);
                }
                "fingerprint" => {
                    let hex: String = map.next_value()?;
                    let raw = u64::from_str_radix(&hex, 16).map_err(|_| {
                        de::Error::invalid_value(de::Unexpected::Str(&hex), &"16 hex digits")
                    })?;
                    fingerprint = Some(Fingerprint::from_raw(raw));
                }
                "same_build" => {
                    if M::PORTABLE {
                        return Err(de_error(Error::NotPortable));
                    }
                    let hex: String = map.next_value()?;
                    build = Some(parse_build_id(&hex).ok_or_else(|| {
                        de::Error::invalid_value(de::Unexpected::Str(&hex), &"32 hex digits")
                    })?);
                }
                "offset" => offset = Some(map.next_value()?),
                "state" => match (entry, build) {
                    (Some(entry), _) => state = Some(map.next_value_seed(ReadableState(entry))?),
                    (None, Some(_)) => state = Some(map.next_value::<ByteBuf>()?.0),
                    (None, None) => {
                        return Err(de::Error::custom(
                            "dilly: the `fn` field must come before `state`, so the state's type is known",
                        ));
                    }
                },
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["fn", "fingerprint", "same_build", "offset", "state"],
                    ));
                }
            }
        }
        let state = state.ok_or_else(|| de::Error::missing_field("state"))?;
        let raw = match (entry, build) {
            // Readable formats carry no shape hash: the state's fields are matched
            // by name, and serde refuses a missing field or an unknown variant.
            (Some(entry), _) => RawFunc::Registered {
                id: entry.id(),
                fingerprint: fingerprint.ok_or_else(|| de::Error::missing_field("fingerprint"))?,
                shape: entry.shape(),
                state,
            },
            (None, Some(build)) => RawFunc::SameBuild {
                build,
                offset: offset.ok_or_else(|| de::Error::missing_field("offset"))?,
                state,
            },
            (None, None) => return Err(de::Error::missing_field("fn")),
        };
        Func::from_raw(raw).map_err(de_error)
    }
}

fn parse_build_id(hex: &str) -> Option<BuildId> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(BuildId(out))
}

/// Reads a function's state in a readable format and re-encodes it with the codec.
struct ReadableState(&'static Entry);

impl<'de> DeserializeSeed<'de> for ReadableState {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<u8>, D::Error> {
        let Ops::Func {
            state_from_readable,
            ..
        } = self.0.ops()
        else {
            return Err(de_error(self.0.wrong_kind("function")));
        };
        let mut erased = <dyn erased_serde::Deserializer>::erase(deserializer);
        state_from_readable(&mut erased).map_err(de::Error::custom)
    }
}
