//! The tracing `Deserializer`: answers every request of a `Deserialize` impl with a
//! default value and records what was asked.

use std::any::type_name;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};

use super::{Body, MAX_DEPTH, Node, Result, TraceError, Tracer, Variant};

/// The tracing deserializer: answers one request and writes its shape to `out`.
pub(super) struct De<'t> {
    pub(super) t: &'t mut Tracer,
    pub(super) out: &'t mut Node,
}

impl De<'_> {
    /// Runs `f` one level deeper.
    fn nested<T>(t: &mut Tracer, f: impl FnOnce(&mut Tracer) -> Result<T>) -> Result<T> {
        if t.depth >= MAX_DEPTH {
            return Err(TraceError::TooDeep);
        }
        t.depth += 1;
        let result = f(t);
        t.depth -= 1;
        result
    }

    /// Runs `f` inside container `index`.
    fn inside<T>(
        t: &mut Tracer,
        index: usize,
        f: impl FnOnce(&mut Tracer) -> Result<T>,
    ) -> Result<T> {
        t.stack.push(index);
        let result = De::nested(t, f);
        t.stack.pop();
        result
    }

    /// An `Option`, sequence or map: `fill` visits it with one element; if that
    /// recursed, the next passes visit it empty (`empty`) with the content's shape.
    fn collection<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        wrap: fn(Vec<Node>) -> Node,
        fill: impl FnOnce(&mut Tracer, V, &mut Vec<Node>) -> Result<V::Value>,
        empty: impl FnOnce(V) -> Result<V::Value>,
    ) -> Result<V::Value> {
        let key = type_name::<V::Value>();
        if let Some(content) = self.t.empty.get(key) {
            *self.out = content.clone();
            return empty(visitor);
        }
        let mut parts = Vec::new();
        let result = De::nested(self.t, |t| fill(t, visitor, &mut parts));
        match result {
            Err(TraceError::Recursive(index)) => {
                // Parts not reached are the recursing container.
                let content = wrap(fill_parts(parts, index));
                self.t.empty.insert(key, content.clone());
                *self.out = content;
                self.t.changed = true;
                Err(TraceError::Retry)
            }
            other => {
                *self.out = wrap(parts);
                other
            }
        }
    }

    fn tuple_like<'de, V: Visitor<'de>>(
        t: &mut Tracer,
        len: usize,
        visitor: V,
        parts: &mut Vec<Node>,
    ) -> Result<V::Value> {
        visitor.visit_seq(Parts {
            t,
            remaining: len,
            parts,
        })
    }
}

/// `parts` with an unknown (not reached) last part replaced by the recursing
/// container, and at least two parts for a map.
fn fill_parts(mut parts: Vec<Node>, index: usize) -> Vec<Node> {
    match parts.last_mut() {
        Some(last @ Node::Unknown) => *last = Node::Named(index),
        None => parts.push(Node::Named(index)),
        Some(_) => {}
    }
    parts
}

macro_rules! primitive {
    ($($method:ident => $name:literal, $visit:ident($($value:expr)?);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
                *self.out = Node::Prim($name);
                visitor.$visit($($value)?)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = TraceError;

    primitive! {
        deserialize_bool => "bool", visit_bool(false);
        deserialize_i8 => "i8", visit_i8(0);
        deserialize_i16 => "i16", visit_i16(0);
        deserialize_i32 => "i32", visit_i32(0);
        deserialize_i64 => "i64", visit_i64(0);
        deserialize_i128 => "i128", visit_i128(0);
        deserialize_u8 => "u8", visit_u8(0);
        deserialize_u16 => "u16", visit_u16(0);
        deserialize_u32 => "u32", visit_u32(0);
        deserialize_u64 => "u64", visit_u64(0);
        deserialize_u128 => "u128", visit_u128(0);
        deserialize_f32 => "f32", visit_f32(0.0);
        deserialize_f64 => "f64", visit_f64(0.0);
        deserialize_char => "char", visit_char('\0');
        deserialize_str => "str", visit_str("");
        deserialize_string => "str", visit_string(String::new());
        deserialize_bytes => "bytes", visit_bytes(&[]);
        deserialize_byte_buf => "bytes", visit_byte_buf(Vec::new());
        deserialize_unit => "()", visit_unit();
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(TraceError::Unsupported(
            "deserialize_any (a self-describing format)",
        ))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(TraceError::Unsupported("deserialize_ignored_any"))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(TraceError::Unsupported(
            "deserialize_identifier outside an enum",
        ))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.collection(
            visitor,
            |mut parts| Node::Option(Box::new(parts.pop().unwrap_or(Node::Unknown))),
            |t, visitor, parts| {
                parts.push(Node::Unknown);
                let slot = parts.last_mut().expect("just pushed");
                visitor.visit_some(De { t, out: slot })
            },
            |visitor| visitor.visit_none(),
        )
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.collection(
            visitor,
            |mut parts| Node::Seq(Box::new(parts.pop().unwrap_or(Node::Unknown))),
            |t, visitor, parts| De::tuple_like(t, 1, visitor, parts),
            |visitor| {
                visitor.visit_seq(Parts {
                    t: &mut Tracer::default(),
                    remaining: 0,
                    parts: &mut Vec::new(),
                })
            },
        )
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.collection(
            visitor,
            |mut parts| {
                let v = parts.pop().unwrap_or(Node::Unknown);
                let k = parts.pop().unwrap_or(Node::Unknown);
                Node::Map(Box::new(k), Box::new(v))
            },
            |t, visitor, parts| {
                visitor.visit_map(Parts {
                    t,
                    remaining: 1,
                    parts,
                })
            },
            |visitor| {
                visitor.visit_map(Parts {
                    t: &mut Tracer::default(),
                    remaining: 0,
                    parts: &mut Vec::new(),
                })
            },
        )
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        let mut parts = Vec::new();
        let result = De::nested(self.t, |t| De::tuple_like(t, len, visitor, &mut parts));
        *self.out = Node::Tuple(parts);
        result
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        let index = self.t.enter(type_name::<V::Value>(), name)?;
        *self.out = Node::Named(index);
        self.t.containers[index].body = Body::Unit;
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        let index = enter_struct(self.t, self.out, type_name::<V::Value>(), name)?;
        let mut inner = Node::Unknown;
        let result = De::inside(self.t, index, |t| {
            visitor.visit_newtype_struct(De { t, out: &mut inner })
        });
        self.t.record(index, result.is_ok(), Body::Newtype(inner));
        result
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        let index = enter_struct(self.t, self.out, type_name::<V::Value>(), name)?;
        let mut parts = Vec::new();
        let result = De::inside(self.t, index, |t| {
            De::tuple_like(t, len, visitor, &mut parts)
        });
        self.t.record(index, result.is_ok(), Body::Tuple(parts));
        result
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let index = enter_struct(self.t, self.out, type_name::<V::Value>(), name)?;
        let mut parts = Vec::new();
        let result = De::inside(self.t, index, |t| {
            De::tuple_like(t, fields.len(), visitor, &mut parts)
        });
        let body = Body::Struct(fields.iter().copied().zip(parts).collect());
        self.t.record(index, result.is_ok(), body);
        result
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let index = self.t.enter(type_name::<V::Value>(), name)?;
        *self.out = Node::Named(index);
        if variants.is_empty() {
            return Err(TraceError::Unsupported("deserialize_enum with no variants"));
        }
        let container = &mut self.t.containers[index];
        if !matches!(container.body, Body::Enum(_)) {
            container.body = Body::Enum(
                variants
                    .iter()
                    .map(|&name| Variant {
                        name,
                        shape: None,
                        deferred: false,
                    })
                    .collect(),
            );
        }
        let Body::Enum(known) = &container.body else {
            unreachable!("set above")
        };
        let recursing = self.t.stack.contains(&index);
        let first_seen = known.iter().position(|v| v.shape.is_some());
        let to_explore = known.iter().position(|v| v.shape.is_none() && !v.deferred);
        let (variant, explore) = match (recursing, to_explore, first_seen) {
            (false, Some(v), _) => (v, true),
            (_, _, Some(v)) => (v, false),
            _ => return Err(TraceError::Recursive(index)),
        };
        let mut shape = Body::Unknown;
        let result = De::inside(self.t, index, |t| {
            visitor.visit_enum(Choice {
                t,
                variant,
                shape: &mut shape,
            })
        });
        let Body::Enum(known) = &mut self.t.containers[index].body else {
            unreachable!("set above")
        };
        match result {
            Ok(value) => {
                if explore {
                    known[variant].shape = Some(shape);
                    self.t.changed = true;
                    self.t.completed = true;
                }
                Ok(value)
            }
            Err(TraceError::Recursive(_)) if explore => {
                known[variant].deferred = true;
                self.t.changed = true;
                Err(TraceError::Retry)
            }
            Err(err) => Err(err),
        }
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// Enters a struct container, failing with [`TraceError::Recursive`] when it is
/// already being deserialized (a value of it would never end).
fn enter_struct(
    t: &mut Tracer,
    out: &mut Node,
    key: &'static str,
    name: &'static str,
) -> Result<usize> {
    let index = t.enter(key, name)?;
    *out = Node::Named(index);
    if t.stack.contains(&index) {
        return Err(TraceError::Recursive(index));
    }
    Ok(index)
}

/// The parts of a tuple, struct, sequence or map as their deserializer visits
/// them: up to `remaining` elements, or `remaining` entries (a key and a value
/// each), every one traced into a node of its own.
struct Parts<'a> {
    t: &'a mut Tracer,
    remaining: usize,
    parts: &'a mut Vec<Node>,
}

impl Parts<'_> {
    /// Traces the next part into a new node.
    fn trace<'de, S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        self.parts.push(Node::Unknown);
        let slot = self.parts.last_mut().expect("just pushed");
        seed.deserialize(De {
            t: self.t,
            out: slot,
        })
    }

    /// Whether another element or entry is left, counting it off.
    fn take_one(&mut self) -> bool {
        let left = self.remaining > 0;
        self.remaining = self.remaining.saturating_sub(1);
        left
    }
}

impl<'de> SeqAccess<'de> for Parts<'_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if !self.take_one() {
            return Ok(None);
        }
        self.trace(seed).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

impl<'de> MapAccess<'de> for Parts<'_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if !self.take_one() {
            return Ok(None);
        }
        self.trace(seed).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        self.trace(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining)
    }
}

/// The variant an enum's deserializer chose, and where its shape goes.
struct Choice<'a> {
    t: &'a mut Tracer,
    variant: usize,
    shape: &'a mut Body,
}

impl<'de, 'a> EnumAccess<'de> for Choice<'a> {
    type Error = TraceError;
    type Variant = Choice<'a>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant)> {
        let index = u32::try_from(self.variant).map_err(|_| TraceError::TooLong)?;
        let value = seed.deserialize(de::value::U32Deserializer::<TraceError>::new(index))?;
        Ok((value, self))
    }
}

impl<'de> VariantAccess<'de> for Choice<'_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<()> {
        *self.shape = Body::Unit;
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        let mut inner = Node::Unknown;
        let result = seed.deserialize(De {
            t: self.t,
            out: &mut inner,
        });
        *self.shape = Body::Newtype(inner);
        result
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        let mut parts = Vec::new();
        let result = De::tuple_like(self.t, len, visitor, &mut parts);
        *self.shape = Body::Tuple(parts);
        result
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let mut parts = Vec::new();
        let result = De::tuple_like(self.t, fields.len(), visitor, &mut parts);
        *self.shape = Body::Struct(fields.iter().copied().zip(parts).collect());
        result
    }
}
