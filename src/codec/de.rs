//! dilly's reader of bincode 2's standard format.
//!
//! bincode writes every value (see `docs/wire-format.md`); this serde `Deserializer`
//! reads the same bytes back. It exists for two guarantees bincode's own reader does
//! not give and cannot be taught (its `Decoder` trait is sealed):
//!
//! * **Allocation is bounded by the input.** A string, byte string, sequence or map
//!   whose length is more than the bytes left is [`DeError::Truncated`] before
//!   anything is allocated; strings and byte strings are borrowed from the input, and
//!   an owned copy is made only after its bytes were found. bincode allocates the
//!   claimed length first (zeroed), so 24 bytes could cost a gigabyte.
//! * **Nesting is bounded.** Every compound value (sequence, map, tuple, struct,
//!   enum, `Some`, newtype) takes one level of a budget; past it the decode is
//!   [`DeError::TooDeep`], not a stack overflow.
//!
//! The format, as bincode 2.0.1 writes it with `config::standard()`:
//!
//! * `u8`, `i8`: one byte. `bool`: one byte, 0 or 1. `f32`, `f64`: little endian.
//! * `u16`..`u128`, `usize` and lengths: a varint — one byte up to 250, else a
//!   marker (251: `u16`, 252: `u32`, 253: `u64`, 254: `u128`) and that many bytes,
//!   little endian. `i16`..`i128`: zigzag, then the varint.
//! * `char`: its UTF-8 bytes. `str`, bytes: a varint length, then the bytes.
//! * `Option`: a tag byte (0 `None`, 1 `Some` then the value). Unit, unit structs:
//!   nothing. Newtypes: the inner value.
//! * Sequences and maps: a varint length, then the elements (keys and values
//!   alternating). Tuples and structs: the fields in order, no length.
//! * Enums: the variant index as a `u32` varint, then the variant's fields.
//!
//! Like bincode, it cannot read self-describing input: `deserialize_any`,
//! `deserialize_identifier` and `deserialize_ignored_any` are errors.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

/// Why a decode failed, as this reader sees it.
#[derive(Debug)]
pub(super) enum DeError {
    /// A read or a length claim needs more bytes than are left.
    Truncated {
        /// Bytes the read needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// The value nests deeper than the budget.
    TooDeep {
        /// The nesting budget of the whole decode.
        limit: usize,
    },
    /// Anything else: an invalid tag, bad UTF-8, or a `Deserialize` impl's error.
    Message(String),
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeError::Truncated { needed, available } => write!(
                f,
                "truncated input: {needed} bytes needed, {available} left"
            ),
            DeError::TooDeep { limit } => {
                write!(f, "the value nests deeper than {limit} levels")
            }
            DeError::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::Message(msg.to_string())
    }
}

/// How deep a decode may still nest, and the limit it started from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Depth {
    /// Levels left.
    pub(super) left: usize,
    /// The decode's whole budget, for the error message.
    pub(super) limit: usize,
}

/// Reads one value from the front of `rest`, within the nesting budget `depth`.
pub(super) struct Deserializer<'de> {
    rest: &'de [u8],
    depth: Depth,
}

const SINGLE_BYTE_MAX: u8 = 250;
const U16_BYTE: u8 = 251;
const U32_BYTE: u8 = 252;
const U64_BYTE: u8 = 253;
const U128_BYTE: u8 = 254;

impl<'de> Deserializer<'de> {
    pub(super) fn new(input: &'de [u8], depth: Depth) -> Self {
        Deserializer { rest: input, depth }
    }

    /// The bytes not read yet.
    pub(super) fn rest(&self) -> &'de [u8] {
        self.rest
    }

    #[cold]
    #[inline(never)]
    fn truncated(&self, needed: usize) -> DeError {
        let err = DeError::Truncated {
            needed,
            available: self.rest.len(),
        };
        super::note_raised(&err);
        err
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], DeError> {
        match self.rest.split_at_checked(n) {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(head)
            }
            None => Err(self.truncated(n)),
        }
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DeError> {
        match self.rest.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.rest = tail;
                Ok(*head)
            }
            None => Err(self.truncated(N)),
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, DeError> {
        match self.rest.split_first() {
            Some((&b, tail)) => {
                self.rest = tail;
                Ok(b)
            }
            None => Err(self.truncated(1)),
        }
    }

    /// A varint of at most `max_marker`'s width (`U16_BYTE`..`U128_BYTE`).
    #[inline]
    fn varint(&mut self, max_marker: u8, ty: &'static str) -> Result<u128, DeError> {
        let first = self.byte()?;
        if first <= SINGLE_BYTE_MAX {
            return Ok(u128::from(first));
        }
        self.wide_varint(first, max_marker, ty)
    }

    #[cold]
    fn wide_varint(
        &mut self,
        marker: u8,
        max_marker: u8,
        ty: &'static str,
    ) -> Result<u128, DeError> {
        if marker > max_marker {
            return Err(DeError::Message(format!(
                "invalid integer: a {ty} cannot start with the varint marker {marker}"
            )));
        }
        Ok(match marker {
            U16_BYTE => u128::from(u16::from_le_bytes(self.array()?)),
            U32_BYTE => u128::from(u32::from_le_bytes(self.array()?)),
            U64_BYTE => u128::from(u64::from_le_bytes(self.array()?)),
            _ => u128::from_le_bytes(self.array()?),
        })
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, DeError> {
        // The marker bound keeps each value within the type.
        Ok(self.varint(U16_BYTE, "u16")? as u16)
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, DeError> {
        Ok(self.varint(U32_BYTE, "u32")? as u32)
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, DeError> {
        Ok(self.varint(U64_BYTE, "u64")? as u64)
    }

    /// A length, checked against the bytes left before anything is allocated for
    /// it: every element of a string, byte string, sequence or map takes at least
    /// one byte.
    #[inline]
    fn len(&mut self) -> Result<usize, DeError> {
        let claimed = self.u64()?;
        match usize::try_from(claimed) {
            Ok(len) if len <= self.rest.len() => Ok(len),
            _ => Err(self.truncated(usize::try_from(claimed).unwrap_or(usize::MAX))),
        }
    }

    #[inline]
    fn str(&mut self) -> Result<&'de str, DeError> {
        let len = self.len()?;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|e| DeError::Message(format!("invalid UTF-8: {e}")))
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'de [u8], DeError> {
        let len = self.len()?;
        self.take(len)
    }

    /// Takes one level of the nesting budget.
    #[inline]
    fn enter(&mut self) -> Result<(), DeError> {
        match self.depth.left.checked_sub(1) {
            Some(left) => {
                self.depth.left = left;
                super::publish_depth(self.depth);
                Ok(())
            }
            None => Err(self.too_deep()),
        }
    }

    #[inline]
    fn leave(&mut self) {
        self.depth.left += 1;
        super::publish_depth(self.depth);
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self) -> DeError {
        let err = DeError::TooDeep {
            limit: self.depth.limit,
        };
        super::note_raised(&err);
        err
    }

    /// Runs `visit` one level deeper.
    #[inline]
    fn nested<T>(
        &mut self,
        visit: impl FnOnce(&mut Self) -> Result<T, DeError>,
    ) -> Result<T, DeError> {
        self.enter()?;
        let out = visit(self);
        self.leave();
        out
    }
}

/// Zigzag decoding: 0, 1, 2, 3, … mean 0, -1, 1, -2, ….
macro_rules! unzigzag {
    ($n:expr, $t:ty) => {{
        let n = $n;
        if n % 2 == 0 {
            (n / 2) as $t
        } else {
            !(n / 2) as $t
        }
    }};
}

impl<'de> de::Deserializer<'de> for &mut Deserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom(
            "this binary format does not describe itself, so it cannot decode a type that needs `deserialize_any` (untagged or internally tagged enums, `serde_json::Value`)",
        ))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.byte()? {
            0 => visitor.visit_bool(false),
            1 => visitor.visit_bool(true),
            other => Err(DeError::Message(format!(
                "invalid bool: expected 0 or 1, found {other}"
            ))),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_i8(self.byte()? as i8)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = self.varint(U16_BYTE, "i16")? as u16;
        visitor.visit_i16(unzigzag!(n, i16))
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = self.varint(U32_BYTE, "i32")? as u32;
        visitor.visit_i32(unzigzag!(n, i32))
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = self.varint(U64_BYTE, "i64")? as u64;
        visitor.visit_i64(unzigzag!(n, i64))
    }

    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let n = self.varint(U128_BYTE, "i128")?;
        visitor.visit_i128(unzigzag!(n, i128))
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_u8(self.byte()?)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_u16(self.u16()?)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_u32(self.u32()?)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_u64(self.u64()?)
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_u128(self.varint(U128_BYTE, "u128")?)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_f32(f32::from_le_bytes(self.array()?))
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_f64(f64::from_le_bytes(self.array()?))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let first = *self.rest.first().ok_or_else(|| self.truncated(1))?;
        let width = match first {
            0x00..=0x7f => 1,
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        let invalid =
            || DeError::Message(format!("invalid char encoding starting with {first:#04x}"));
        if width == 0 {
            return Err(invalid());
        }
        let bytes = self.take(width)?;
        let c = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.chars().next())
            .ok_or_else(invalid)?;
        visitor.visit_char(c)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.str()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        // Owned only now that the bytes are known to be there.
        visitor.visit_string(self.str()?.to_owned())
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_byte_buf(self.bytes()?.to_vec())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.byte()? {
            0 => visitor.visit_none(),
            1 => self.nested(|de| visitor.visit_some(de)),
            other => Err(DeError::Message(format!(
                "invalid Option tag: expected 0 or 1, found {other}"
            ))),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(|de| visitor.visit_newtype_struct(de))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let len = self.len()?;
        self.nested(|de| visitor.visit_seq(Elements { de, left: len }))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(|de| visitor.visit_seq(Elements { de, left: len }))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_tuple(len, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let len = self.len()?;
        self.nested(|de| visitor.visit_map(Elements { de, left: len }))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_tuple(fields.len(), visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(|de| visitor.visit_enum(de))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom(
            "this binary format does not write field or variant names",
        ))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom(
            "this binary format cannot skip a value of unknown type (`deserialize_ignored_any`)",
        ))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The elements of a sequence, tuple or struct, or the entries of a map.
struct Elements<'a, 'de> {
    de: &'a mut Deserializer<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = DeError;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Elements<'_, 'de> {
    type Error = DeError;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        seed.deserialize(&mut *self.de)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> EnumAccess<'de> for &mut Deserializer<'de> {
    type Error = DeError;
    type Variant = Self;

    #[inline]
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let index = self.u32()?;
        let value = seed.deserialize(index.into_deserializer())?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for &mut Deserializer<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

#[cfg(test)]
mod tests;
