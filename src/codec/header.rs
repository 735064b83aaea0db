//! The headers that open a same-build-mode value: the tag byte's values, the
//! header lengths, writing them, and reading one back without allocating.

use crate::symbol::{Fingerprint, SymbolId};

/// The tag byte before a same-build-mode value's header: registered code follows.
pub(crate) const TAG_REGISTERED: u8 = 0;
/// The tag byte before a same-build-mode value's header: code named by address.
pub(crate) const TAG_ADDRESS: u8 = 1;
/// Length of the header of registered code: SymbolId, signature Fingerprint, shape
/// hash.
pub(crate) const REGISTERED_HEADER_LEN: usize = 24;
/// Length of the header of registered code in wire format 1, which had no shape
/// hash: recognised to say where such bytes come from.
pub(crate) const V1_REGISTERED_HEADER_LEN: usize = 16;
/// Length of the header of code named by address: build ID, offset.
pub(crate) const ADDRESS_HEADER_LEN: usize = 24;
/// Length of a type-erased object's header: its type's SymbolId and shape hash.
pub(crate) const OBJECT_HEADER_LEN: usize = 16;
/// Length of a type-erased object's header in wire format 1 (no shape hash).
pub(crate) const V1_OBJECT_HEADER_LEN: usize = 8;

/// The binary header of registered code: ID, signature fingerprint and shape hash,
/// each 8 bytes little endian, written as one byte string so formats copy it in one
/// piece.
#[inline]
pub(crate) fn registered_header(
    id: SymbolId,
    fingerprint: Fingerprint,
    shape: Fingerprint,
) -> [u8; REGISTERED_HEADER_LEN] {
    let mut header = [0u8; REGISTERED_HEADER_LEN];
    header[..8].copy_from_slice(&id.to_raw().to_le_bytes());
    header[8..16].copy_from_slice(&fingerprint.to_raw().to_le_bytes());
    header[16..].copy_from_slice(&shape.to_raw().to_le_bytes());
    header
}

/// The binary header of code named by address: the 16-byte build ID, then the
/// offset from the anchor as a little-endian `i64`.
#[inline]
pub(crate) fn address_header(build: [u8; 16], offset: i64) -> [u8; ADDRESS_HEADER_LEN] {
    let mut header = [0u8; ADDRESS_HEADER_LEN];
    header[..16].copy_from_slice(&build);
    header[16..].copy_from_slice(&offset.to_le_bytes());
    header
}

/// The binary header of a type-erased object: its type's ID and shape hash, each 8
/// bytes little endian.
#[inline]
pub(crate) fn object_header(id: SymbolId, shape: Fingerprint) -> [u8; OBJECT_HEADER_LEN] {
    let mut header = [0u8; OBJECT_HEADER_LEN];
    header[..8].copy_from_slice(&id.to_raw().to_le_bytes());
    header[8..].copy_from_slice(&shape.to_raw().to_le_bytes());
    header
}

/// A short byte string (a header) as received, without allocating.
pub(crate) struct Header {
    bytes: [u8; Header::MAX],
    pub(crate) len: usize,
}

impl Header {
    /// The longest header of any kind.
    const MAX: usize = ADDRESS_HEADER_LEN;

    #[inline]
    fn split<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[at..at + N]);
        out
    }

    /// A registered header's ID, fingerprint and shape hash (the caller checked the
    /// length).
    #[inline]
    pub(crate) fn registered(&self) -> (SymbolId, Fingerprint, Fingerprint) {
        (
            SymbolId::from_raw(u64::from_le_bytes(self.split(0))),
            Fingerprint::from_raw(u64::from_le_bytes(self.split(8))),
            Fingerprint::from_raw(u64::from_le_bytes(self.split(16))),
        )
    }

    /// An address header's build ID and offset (the caller checked the length).
    #[inline]
    pub(crate) fn address(&self) -> ([u8; 16], i64) {
        (self.split(0), i64::from_le_bytes(self.split(16)))
    }

    /// An object header's type ID and shape hash (the caller checked the length).
    #[inline]
    pub(crate) fn object(&self) -> (SymbolId, Fingerprint) {
        (
            SymbolId::from_raw(u64::from_le_bytes(self.split(0))),
            Fingerprint::from_raw(u64::from_le_bytes(self.split(8))),
        )
    }

    /// The first byte, if any.
    #[inline]
    pub(crate) fn first(&self) -> Option<u8> {
        (self.len > 0).then_some(self.bytes[0])
    }
}

impl<'de> serde::Deserialize<'de> for Header {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, SeqAccess, Visitor};
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = Header;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a header of at most {} bytes", Header::MAX)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Header, E> {
                if v.len() > Header::MAX {
                    return Err(E::invalid_length(v.len(), &self));
                }
                let mut bytes = [0u8; Header::MAX];
                bytes[..v.len()].copy_from_slice(v);
                Ok(Header {
                    bytes,
                    len: v.len(),
                })
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Header, S::Error> {
                let mut bytes = [0u8; Header::MAX];
                let mut len = 0;
                while let Some(b) = seq.next_element::<u8>()? {
                    if len == Header::MAX {
                        return Err(de::Error::invalid_length(Header::MAX + 1, &self));
                    }
                    bytes[len] = b;
                    len += 1;
                }
                Ok(Header { bytes, len })
            }
        }
        deserializer.deserialize_bytes(HeaderVisitor)
    }
}
