//! dilly's writer of bincode 2's standard format (the layout is in `de.rs`).
//!
//! It writes the bytes bincode 2.0.1 writes with `config::standard()` (a property
//! test below holds it to that), and it notices the three things a compact format
//! cannot carry, so the codec can send such a value self-described instead:
//!
//! * a struct field that the type's `Serialize` skipped (`skip_serializing_if`):
//!   the reader would take the next field's bytes for it;
//! * a sequence or map whose length is not known up front (`#[serde(flatten)]`,
//!   `collect_seq` over a filter): the format writes the length first;
//! * a struct, tuple struct or variant written with another number of fields than
//!   the type's `Deserialize` reads (`#[serde(skip_serializing)]`,
//!   `skip_deserializing`), where the trace of the type (`StructFields`) says how
//!   many it reads.

use std::fmt;

use serde::ser::{self, Serialize};

use crate::shape::{StructFields, TypeShape};

/// Why a value was not written compactly.
#[derive(Debug)]
pub(super) enum SerError {
    /// The value needs a self-describing encoding; the text says why.
    NeedsSelfDescribed(String),
    /// The value needs a self-describing encoding because a struct in it is written
    /// with another number of fields than its `Deserialize` reads.
    FieldCount(String),
    /// The value's `Serialize` impl failed.
    Message(String),
}

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerError::NeedsSelfDescribed(why) | SerError::FieldCount(why) => {
                write!(f, "needs a self-describing encoding: {why}")
            }
            SerError::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        SerError::Message(msg.to_string())
    }
}

type Result<T = (), E = SerError> = std::result::Result<T, E>;

/// Appends bincode 2 standard-configuration bytes to a `Vec`.
pub(super) struct Serializer<'a> {
    out: &'a mut Vec<u8>,
    /// The trace of the type being written: how many fields the reader expects
    /// per struct. A thin reference, so that the writer stays two words.
    shape: Option<&'a TypeShape>,
}

impl<'a> Serializer<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>, shape: Option<&'a TypeShape>) -> Self {
        Serializer { out, shape }
    }

    /// Fails when the struct, tuple struct or variant `name`/`variant` is written
    /// with `len` fields where the type's `Deserialize` reads another number.
    #[inline]
    fn check_fields(&self, name: &'static str, variant: &'static str, len: usize) -> Result {
        let Some(shape) = self.shape else {
            return Ok(());
        };
        for f in shape.fields() {
            if f.len != len && f.name == name && f.variant == variant {
                return Err(field_count(f, len));
            }
        }
        Ok(())
    }

    #[inline]
    fn varint(&mut self, v: u128) {
        if v <= 250 {
            self.out.push(v as u8);
        } else if v <= u128::from(u16::MAX) {
            self.out.push(251);
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v <= u128::from(u32::MAX) {
            self.out.push(252);
            self.out.extend_from_slice(&(v as u32).to_le_bytes());
        } else if v <= u128::from(u64::MAX) {
            self.out.push(253);
            self.out.extend_from_slice(&(v as u64).to_le_bytes());
        } else {
            self.out.push(254);
            self.out.extend_from_slice(&v.to_le_bytes());
        }
    }

    #[inline]
    fn zigzag(&mut self, v: i128) {
        self.varint(((v << 1) ^ (v >> 127)) as u128);
    }

    #[inline]
    fn len(&mut self, len: Option<usize>, what: &str) -> Result {
        match len {
            Some(len) => {
                self.varint(len as u128);
                Ok(())
            }
            None => Err(unknown_length(what)),
        }
    }

    #[inline]
    fn reborrow(&mut self) -> Serializer<'_> {
        Serializer {
            out: self.out,
            shape: self.shape,
        }
    }
}

#[cold]
fn field_count(expected: &StructFields, len: usize) -> SerError {
    let (name, variant) = (expected.name, expected.variant);
    let what = if variant.is_empty() {
        format!("`{name}`")
    } else {
        format!("`{name}::{variant}`")
    };
    SerError::FieldCount(format!(
        "{what} writes {len} fields but its `Deserialize` reads {} \
         (`#[serde(skip_serializing)]` or `skip_deserializing`)",
        expected.len
    ))
}

#[cold]
fn unknown_length(what: &str) -> SerError {
    SerError::NeedsSelfDescribed(format!(
        "a {what} of unknown length (as `#[serde(flatten)]` writes)"
    ))
}

impl<'a> ser::Serializer for Serializer<'a> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Struct<'a>;
    type SerializeStructVariant = Struct<'a>;

    #[inline]
    fn serialize_bool(self, v: bool) -> Result {
        self.out.push(u8::from(v));
        Ok(())
    }
    #[inline]
    fn serialize_i8(self, v: i8) -> Result {
        self.out.push(v as u8);
        Ok(())
    }
    #[inline]
    fn serialize_i16(mut self, v: i16) -> Result {
        self.zigzag(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i32(mut self, v: i32) -> Result {
        self.zigzag(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i64(mut self, v: i64) -> Result {
        self.zigzag(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_i128(mut self, v: i128) -> Result {
        self.zigzag(v);
        Ok(())
    }
    #[inline]
    fn serialize_u8(self, v: u8) -> Result {
        self.out.push(v);
        Ok(())
    }
    #[inline]
    fn serialize_u16(mut self, v: u16) -> Result {
        self.varint(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u32(mut self, v: u32) -> Result {
        self.varint(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u64(mut self, v: u64) -> Result {
        self.varint(v.into());
        Ok(())
    }
    #[inline]
    fn serialize_u128(mut self, v: u128) -> Result {
        self.varint(v);
        Ok(())
    }
    #[inline]
    fn serialize_f32(self, v: f32) -> Result {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_f64(self, v: f64) -> Result {
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_char(self, v: char) -> Result {
        self.out
            .extend_from_slice(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_str(mut self, v: &str) -> Result {
        self.varint(v.len() as u128);
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    #[inline]
    fn serialize_bytes(mut self, v: &[u8]) -> Result {
        self.varint(v.len() as u128);
        self.out.extend_from_slice(v);
        Ok(())
    }
    #[inline]
    fn serialize_none(self) -> Result {
        self.out.push(0);
        Ok(())
    }
    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        self.out.push(1);
        value.serialize(self)
    }
    #[inline]
    fn serialize_unit(self) -> Result {
        Ok(())
    }
    #[inline]
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        Ok(())
    }
    #[inline]
    fn serialize_unit_variant(mut self, _: &'static str, index: u32, _: &'static str) -> Result {
        self.varint(index.into());
        Ok(())
    }
    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Result {
        self.varint(index.into());
        value.serialize(self)
    }
    #[inline]
    fn serialize_seq(mut self, len: Option<usize>) -> Result<Self> {
        self.len(len, "sequence")?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Self> {
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self> {
        self.check_fields(name, "", len)?;
        Ok(self)
    }
    #[inline]
    fn serialize_tuple_variant(
        mut self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self> {
        self.check_fields(name, variant, len)?;
        self.varint(index.into());
        Ok(self)
    }
    #[inline]
    fn serialize_map(mut self, len: Option<usize>) -> Result<Self> {
        self.len(len, "map")?;
        Ok(self)
    }
    #[inline]
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Struct<'a>> {
        self.check_fields(name, "", len)?;
        Ok(Struct { ser: self, name })
    }
    #[inline]
    fn serialize_struct_variant(
        mut self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Struct<'a>> {
        self.check_fields(name, variant, len)?;
        self.varint(index.into());
        Ok(Struct { ser: self, name })
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

macro_rules! compound {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Serializer<'_> {
            type Ok = ();
            type Error = SerError;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
                value.serialize(self.reborrow())
            }
            #[inline]
            fn end(self) -> Result {
                Ok(())
            }
        }
    )*};
}

compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Serializer<'_> {
    type Ok = ();
    type Error = SerError;
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        key.serialize(self.reborrow())
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(self.reborrow())
    }
    #[inline]
    fn end(self) -> Result {
        Ok(())
    }
}

/// A struct or struct variant being written: fields in order, no names.
pub(super) struct Struct<'a> {
    ser: Serializer<'a>,
    name: &'static str,
}

impl Struct<'_> {
    #[cold]
    fn skipped(&self, field: &'static str) -> SerError {
        SerError::NeedsSelfDescribed(format!(
            "field `{field}` of `{}` was skipped (`skip_serializing_if`)",
            self.name
        ))
    }
}

impl ser::SerializeStruct for Struct<'_> {
    type Ok = ();
    type Error = SerError;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Result {
        value.serialize(self.ser.reborrow())
    }
    fn skip_field(&mut self, field: &'static str) -> Result {
        Err(self.skipped(field))
    }
    #[inline]
    fn end(self) -> Result {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Struct<'_> {
    type Ok = ();
    type Error = SerError;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, _: &'static str, value: &T) -> Result {
        value.serialize(self.ser.reborrow())
    }
    fn skip_field(&mut self, field: &'static str) -> Result {
        Err(self.skipped(field))
    }
    #[inline]
    fn end(self) -> Result {
        Ok(())
    }
}

/// Writes `value` after the end of `out`.
#[inline]
pub(super) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
    shape: Option<&TypeShape>,
) -> Result {
    value.serialize(Serializer::new(out, shape))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;

    fn same_as_bincode<T: Serialize>(value: &T) {
        let mut ours = Vec::new();
        super::encode_into(value, &mut ours, None).unwrap();
        let theirs = bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap();
        assert_eq!(ours, theirs);
    }

    #[derive(Serialize, Debug, Clone)]
    enum E {
        Unit,
        New(i64),
        Tuple(u8, String),
        Struct { a: Option<u32>, b: char },
    }

    #[derive(Serialize, Debug, Clone)]
    struct S {
        a: u16,
        b: Vec<E>,
        c: BTreeMap<i32, (f32, f64)>,
        d: (),
        e: [u8; 3],
    }

    fn e() -> impl Strategy<Value = E> {
        prop_oneof![
            Just(E::Unit),
            any::<i64>().prop_map(E::New),
            (any::<u8>(), ".{0,8}").prop_map(|(a, b)| E::Tuple(a, b)),
            (any::<Option<u32>>(), any::<char>()).prop_map(|(a, b)| E::Struct { a, b }),
        ]
    }

    proptest! {
        #[test]
        fn writes_what_bincode_writes(
            a in any::<u16>(),
            b in proptest::collection::vec(e(), 0..5),
            c in proptest::collection::btree_map(any::<i32>(), any::<(f32, f64)>(), 0..4),
            e in any::<[u8; 3]>(),
        ) {
            same_as_bincode(&S { a, b, c, d: (), e });
        }

        #[test]
        fn integers_as_bincode(
            a in any::<u128>(), b in any::<i128>(), c in any::<u64>(), d in any::<i64>(),
            e in any::<u32>(), f in any::<i32>(), g in any::<i16>(), h in any::<i8>(),
            i in any::<bool>(), j in any::<Vec<u8>>(),
        ) {
            same_as_bincode(&(a, b, c, d, e, f, g, h, i, serde_bytes::ByteBuf::from(j)));
        }
    }

    #[test]
    fn a_skipped_field_and_an_unknown_length_are_noticed() {
        #[derive(Serialize)]
        struct Row {
            id: u8,
            #[serde(skip_serializing_if = "Option::is_none")]
            note: Option<String>,
        }
        let mut out = Vec::new();
        let err = super::encode_into(&Row { id: 1, note: None }, &mut out, None).unwrap_err();
        assert!(err.to_string().contains("`note` of `Row`"), "{err}");
        assert!(matches!(err, super::SerError::NeedsSelfDescribed(_)));
        out.clear();
        super::encode_into(
            &Row {
                id: 1,
                note: Some("x".into()),
            },
            &mut out,
            None,
        )
        .unwrap();
        assert_eq!(out, [1, 1, 1, b'x']);

        struct Unknown;
        impl Serialize for Unknown {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((0..3u8).filter(|n| n % 2 == 0))
            }
        }
        let err = super::encode_into(&Unknown, &mut Vec::new(), None).unwrap_err();
        assert!(
            matches!(err, super::SerError::NeedsSelfDescribed(_)),
            "{err}"
        );
    }

    #[test]
    fn a_struct_written_with_other_fields_than_read_is_refused() {
        use crate::shape::{StructFields, TypeShape};

        #[derive(Serialize)]
        #[allow(dead_code)]
        struct W {
            a: u8,
            #[serde(skip_serializing)]
            b: Option<u8>,
            c: u8,
        }
        #[derive(Serialize)]
        enum E {
            V {
                a: u8,
                #[serde(skip_serializing)]
                b: u8,
            },
        }
        let w = W {
            a: 1,
            b: None,
            c: 2,
        };
        let reads =
            |name, variant, len| TypeShape::with_fields(vec![StructFields { name, variant, len }]);
        let err = super::encode_into(&w, &mut Vec::new(), Some(&reads("W", "", 3))).unwrap_err();
        assert!(matches!(err, super::SerError::FieldCount(_)), "{err}");
        assert!(
            err.to_string()
                .contains("`W` writes 2 fields but its `Deserialize` reads 3"),
            "{err}"
        );
        let err = super::encode_into(
            &E::V { a: 1, b: 2 },
            &mut Vec::new(),
            Some(&reads("E", "V", 2)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`E::V` writes 1 fields"), "{err}");
        // Counts that agree, or belong to another struct, leave the bytes as they were.
        let mut out = Vec::new();
        super::encode_into(&w, &mut out, Some(&reads("W", "", 2))).unwrap();
        assert_eq!(out, [1, 2]);
        out.clear();
        super::encode_into(&w, &mut out, Some(&reads("Other", "", 3))).unwrap();
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn the_writer_stays_two_words() {
        // Passed by value at every step of a `Serialize`; two words go in registers.
        assert_eq!(
            std::mem::size_of::<super::Serializer<'_>>(),
            2 * std::mem::size_of::<usize>()
        );
    }
}
