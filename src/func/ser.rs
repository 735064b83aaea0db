//! The two `Serialize` forms of a [`Func`]: compact (header and state bytes) in
//! binary formats, readable (`{"fn": .., "fingerprint": .., "state": ..}`)
//! elsewhere.

use serde::ser::{SerializeStruct, SerializeTuple};
use serde::{Serialize, Serializer};

use crate::codec;
use crate::entry::{Entry, Ops};

use super::{Func, Mode, Origin};

impl<A, R, M: Mode> Serialize for Func<A, R, M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.origin {
            Origin::Registered(entry) if M::PORTABLE => {
                serialize_registered(entry, self.state(), serializer)
            }
            Origin::Registered(entry) => {
                if serializer.is_human_readable() {
                    serialize_registered(entry, self.state(), serializer)
                } else {
                    let mut t = serializer.serialize_tuple(3)?;
                    t.serialize_element(&codec::TAG_REGISTERED)?;
                    t.serialize_element(&Bytes(&codec::registered_header(
                        entry.id(),
                        entry.fingerprint(),
                        entry.shape(),
                    )))?;
                    t.serialize_element(&Bytes(self.state()))?;
                    t.end()
                }
            }
            Origin::Address { build, offset } => {
                if serializer.is_human_readable() {
                    let mut s = serializer.serialize_struct("Func", 3)?;
                    s.serialize_field("same_build", &build.to_string())?;
                    s.serialize_field("offset", &offset)?;
                    s.serialize_field("state", &Bytes(self.state()))?;
                    s.end()
                } else {
                    let mut t = serializer.serialize_tuple(3)?;
                    t.serialize_element(&codec::TAG_ADDRESS)?;
                    t.serialize_element(&Bytes(&codec::address_header(build.0, offset)))?;
                    t.serialize_element(&Bytes(self.state()))?;
                    t.end()
                }
            }
        }
    }
}

fn serialize_registered<S: Serializer>(
    entry: &'static Entry,
    state: &[u8],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        let Ops::Func {
            state_to_readable, ..
        } = entry.ops()
        else {
            return Err(serde::ser::Error::custom(
                "dilly: a Func names a type entry",
            ));
        };
        let state = state_to_readable(state).map_err(serde::ser::Error::custom)?;
        let mut s = serializer.serialize_struct("Func", 3)?;
        s.serialize_field("fn", entry.name())?;
        s.serialize_field("fingerprint", &entry.fingerprint().to_string())?;
        s.serialize_field("state", &*state)?;
        s.end()
    } else {
        let mut t = serializer.serialize_tuple(2)?;
        t.serialize_element(&Bytes(&codec::registered_header(
            entry.id(),
            entry.fingerprint(),
            entry.shape(),
        )))?;
        t.serialize_element(&Bytes(state))?;
        t.end()
    }
}

/// Serializes a byte slice with `serialize_bytes` (length + raw bytes in bincode).
pub(crate) struct Bytes<'a>(pub(crate) &'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}
