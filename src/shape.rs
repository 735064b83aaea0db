//! Data shapes: what serde sees of a type — struct and field names, field order and
//! types, enum variants, recursively — traced from the type's own `Deserialize`.
//!
//! A compact format such as bincode does not describe itself: a struct whose fields
//! were reordered, or a `u64` that became an `i64`, decodes without complaint into a
//! wrong value. So every registry entry carries a hash of the shapes of its state,
//! arguments and result ([`Shapes`]), and a receiver whose hash differs refuses the
//! value before it decodes anything.
//!
//! The tracer is a serde `Deserializer` that hands every `Deserialize` impl a default
//! value of whatever it asks for (`0`, `""`, one element per sequence) and records
//! what was asked: the same calls a real format receives, so the shape is exactly
//! the one the bytes follow. Enums are traced one variant per pass until every
//! variant has been seen; recursive types are cut where they recurse (an enum takes
//! a variant already seen, an `Option`, sequence or map is left empty). A type whose
//! `Deserialize` needs a self-describing format (`deserialize_any`: untagged or
//! internally tagged enums, `#[serde(flatten)]`, `serde_json::Value`) or refuses the
//! default values (a non-zero integer, a validated string) cannot be traced: its shape
//! is *opaque*, recorded with the reason, and only its written type name (part of the
//! signature fingerprint) is compared.

use std::any::type_name;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use crate::symbol::Fingerprint;

/// The traced shape of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeShape {
    text: String,
    traced: bool,
    described: bool,
    fields: Box<[StructFields]>,
}

/// How many fields the `Deserialize` of a traced type reads for one struct, tuple
/// struct, struct variant or tuple variant it contains. A value whose `Serialize` writes a different number
/// (a field under `#[serde(skip_serializing)]` or `skip_deserializing`) cannot
/// travel compact: the reader would take another field's bytes for the missing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StructFields {
    /// The struct's name, or the enum's for a variant.
    pub(crate) name: &'static str,
    /// The variant's name; empty for a struct.
    pub(crate) variant: &'static str,
    /// How many fields `Deserialize` reads.
    pub(crate) len: usize,
}

impl TypeShape {
    /// The shape as text, e.g. `struct Cfg { scale: u64, bias: u64 }`, or
    /// `opaque (<reason>)` when it could not be traced.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// False when the type's `Deserialize` could not be traced and the shape is opaque.
    pub fn is_traced(&self) -> bool {
        self.traced
    }

    /// True when the type's `Deserialize` asks the format what comes next
    /// (`deserialize_any`, `deserialize_ignored_any`, or an identifier outside an
    /// enum, as untagged and internally or adjacently tagged enums,
    /// `#[serde(flatten)]` and `serde_json::Value` do): its values travel
    /// self-described, since a compact format cannot answer. For the type of a
    /// `#[derive(Dilly)]` entry, also true when its traced values write a struct
    /// with another number of fields than `Deserialize` reads
    /// (`#[serde(skip_serializing)]`); for other types the encoder finds that
    /// while it writes.
    pub fn needs_self_description(&self) -> bool {
        self.described
    }

    /// The field counts of the structs, tuple structs and their kinds of variants
    /// the trace saw (none for an opaque shape).
    pub(crate) fn fields(&self) -> &[StructFields] {
        &self.fields
    }

    /// A traced shape with just these field counts, for the writer's tests.
    #[cfg(test)]
    pub(crate) fn with_fields(fields: Vec<StructFields>) -> TypeShape {
        TypeShape {
            text: String::new(),
            traced: true,
            described: false,
            fields: fields.into(),
        }
    }

    /// Traces `T`. A `Deserialize` impl that panics on the tracer's default values
    /// makes the shape opaque; the panic is caught (the panic hook still reports it).
    pub fn of<T: DeserializeOwned>() -> TypeShape {
        let traced = std::panic::catch_unwind(|| trace::<T>(None));
        TypeShape::from_trace(traced.unwrap_or(Err(TraceError::Panicked)))
    }

    /// Traces `T` as [`of`](TypeShape::of) does, then writes the values the trace
    /// made (one per enum variant) with `write_compact`, which says whether a value
    /// wrote each struct with as many fields as `Deserialize` reads (see
    /// [`StructFields`]). If one did not (a field under `#[serde(skip_serializing)]`),
    /// no value of `T` can travel compact and the shape needs self-description.
    pub(crate) fn of_written<T: DeserializeOwned>(
        write_compact: impl Fn(&T, &TypeShape) -> bool,
    ) -> TypeShape {
        let mut samples = Vec::new();
        let traced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            trace::<T>(Some(&mut samples))
        }));
        let mut shape = TypeShape::from_trace(traced.unwrap_or(Err(TraceError::Panicked)));
        if shape.traced {
            let fits = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                samples.iter().all(|v| write_compact(v, &shape))
            }));
            // A `Serialize` that panics on a traced value is left to the real encode.
            shape.described = !fits.unwrap_or(true);
        }
        shape
    }

    fn from_trace(traced: Result<(String, Box<[StructFields]>)>) -> TypeShape {
        match traced {
            Ok((text, fields)) => TypeShape {
                text,
                traced: true,
                described: false,
                fields,
            },
            Err(reason) => TypeShape {
                described: matches!(reason, TraceError::Unsupported(_)),
                text: format!("opaque ({reason})"),
                traced: false,
                fields: Box::default(),
            },
        }
    }
}

impl fmt::Display for TypeShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The data shapes of one registry entry: its captured state (or receiver, or task
/// value), its argument tuple and its result, and their [`hash`](Shapes::hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shapes {
    state: TypeShape,
    args: TypeShape,
    result: TypeShape,
    hash: Fingerprint,
}

impl Shapes {
    /// Traces the three types.
    pub(crate) fn of<S: DeserializeOwned, A: DeserializeOwned, R: DeserializeOwned>() -> Shapes {
        Shapes::from_parts(
            TypeShape::of::<S>(),
            TypeShape::of::<A>(),
            TypeShape::of::<R>(),
        )
    }

    /// The shapes of a type entry (`#[derive(Dilly)]`): the type alone. Its values
    /// are written inside other values' encodes (`Box<dyn Object>`), so whether they
    /// write the fields their `Deserialize` reads is settled here, once.
    pub(crate) fn of_type<T: crate::Object + DeserializeOwned>() -> Shapes {
        let unit = TypeShape {
            text: "()".into(),
            traced: true,
            described: false,
            fields: Box::default(),
        };
        let state = TypeShape::of_written::<T>(|value, shape| {
            crate::codec::writes_fields_as_read(value as &dyn erased_serde::Serialize, shape)
        });
        Shapes::from_parts(state, unit.clone(), unit)
    }

    fn from_parts(state: TypeShape, args: TypeShape, result: TypeShape) -> Shapes {
        let hash = Fingerprint::EMPTY
            .extend(b"state: ")
            .extend(state.text.as_bytes())
            .extend(b"\nargs: ")
            .extend(args.text.as_bytes())
            .extend(b"\nresult: ")
            .extend(result.text.as_bytes());
        Shapes {
            state,
            args,
            result,
            hash,
        }
    }

    /// The shape of the captured state, the bound receiver, the task value, or the
    /// type of a type entry.
    pub fn state(&self) -> &TypeShape {
        &self.state
    }

    /// The shape of the argument tuple.
    pub fn args(&self) -> &TypeShape {
        &self.args
    }

    /// The shape of the result.
    pub fn result(&self) -> &TypeShape {
        &self.result
    }

    /// FNV-1a 64 of `state: <state>\nargs: <args>\nresult: <result>`: what compact
    /// frames carry and receivers compare.
    #[inline]
    pub fn hash(&self) -> Fingerprint {
        self.hash
    }
}

impl fmt::Display for Shapes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state {}; arguments {}; result {}",
            self.state, self.args, self.result
        )
    }
}

// ---------------------------------------------------------------------------------
// The tracer.
// ---------------------------------------------------------------------------------

/// At most this many passes over one type (each explores at least one new enum
/// variant or cuts one more recursion).
const MAX_PASSES: usize = 4096;
/// At most this many structs and enums visited in one pass.
const MAX_STEPS: usize = 100_000;
/// At most this deep a nesting of values.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Unknown,
    Prim(&'static str),
    Option(Box<Node>),
    Seq(Box<Node>),
    Map(Box<Node>, Box<Node>),
    Tuple(Vec<Node>),
    Named(usize),
}

#[derive(Debug, Clone)]
enum Body {
    Unknown,
    Unit,
    Newtype(Node),
    Tuple(Vec<Node>),
    Struct(Vec<(&'static str, Node)>),
    Enum(Vec<Variant>),
}

#[derive(Debug, Clone)]
struct Variant {
    name: &'static str,
    shape: Option<Body>,
    deferred: bool,
}

struct Container {
    name: &'static str,
    body: Body,
}

#[derive(Debug)]
enum TraceError {
    /// The container with this index recursed with no way to end the value.
    Recursive(usize),
    /// The pass learned something (a recursion to cut); start the next one.
    Retry,
    Unsupported(&'static str),
    Custom(String),
    TooDeep,
    TooLong,
    Panicked,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceError::Recursive(_) => f.write_str("a type that contains itself with no end"),
            TraceError::Retry => f.write_str("retry"),
            TraceError::Unsupported(what) => write!(f, "its Deserialize calls {what}"),
            TraceError::Custom(msg) => write!(f, "its Deserialize refused a default value: {msg}"),
            TraceError::TooDeep => write!(f, "nested deeper than {MAX_DEPTH}"),
            TraceError::TooLong => f.write_str("too many types or variants to trace"),
            TraceError::Panicked => f.write_str("its Deserialize panicked"),
        }
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        TraceError::Custom(msg.to_string())
    }
}

#[derive(Default)]
struct Tracer {
    keys: HashMap<&'static str, usize>,
    containers: Vec<Container>,
    /// Containers being deserialized, innermost last.
    stack: Vec<usize>,
    /// Options, sequences and maps (by their Rust type) to leave empty because their
    /// content recursed, with the content's shape.
    empty: HashMap<&'static str, Node>,
    depth: usize,
    steps: usize,
    /// Whether this pass learned anything.
    changed: bool,
    /// Whether this pass completed a variant.
    completed: bool,
}

type Result<T, E = TraceError> = std::result::Result<T, E>;

/// Traces `T`, keeping the value each successful pass made in `samples`.
fn trace<T: DeserializeOwned>(
    mut samples: Option<&mut Vec<T>>,
) -> Result<(String, Box<[StructFields]>), TraceError> {
    let mut tracer = Tracer::default();
    for _ in 0..MAX_PASSES {
        tracer.changed = false;
        tracer.completed = false;
        tracer.steps = 0;
        tracer.depth = 0;
        tracer.stack.clear();
        let mut root = Node::Unknown;
        let outcome = T::deserialize(De {
            t: &mut tracer,
            out: &mut root,
        });
        if tracer.completed {
            // A new variant may end a value that a deferred one needs.
            for c in &mut tracer.containers {
                if let Body::Enum(variants) = &mut c.body {
                    variants.iter_mut().for_each(|v| v.deferred = false);
                }
            }
        }
        let outcome = outcome.map(|value| {
            if let Some(samples) = samples.as_deref_mut() {
                samples.push(value);
            }
        });
        match outcome {
            Ok(()) if tracer.all_variants_seen() => {
                return Ok((tracer.render(&root), tracer.struct_fields()));
            }
            Ok(()) | Err(TraceError::Retry) => {}
            Err(TraceError::Recursive(_)) if tracer.changed => {}
            Err(err) => return Err(err),
        }
        if !tracer.changed {
            return Err(TraceError::Recursive(0));
        }
    }
    Err(TraceError::TooLong)
}

impl Tracer {
    /// The field count of every struct, tuple struct, struct variant and tuple
    /// variant seen.
    fn struct_fields(&self) -> Box<[StructFields]> {
        let mut out = Vec::new();
        for c in &self.containers {
            match &c.body {
                Body::Struct(fields) => out.push(StructFields {
                    name: c.name,
                    variant: "",
                    len: fields.len(),
                }),
                Body::Tuple(items) => out.push(StructFields {
                    name: c.name,
                    variant: "",
                    len: items.len(),
                }),
                Body::Enum(variants) => {
                    for v in variants {
                        let len = match &v.shape {
                            Some(Body::Struct(fields)) => fields.len(),
                            Some(Body::Tuple(items)) => items.len(),
                            _ => continue,
                        };
                        out.push(StructFields {
                            name: c.name,
                            variant: v.name,
                            len,
                        });
                    }
                }
                _ => {}
            }
        }
        out.into()
    }

    fn all_variants_seen(&self) -> bool {
        self.containers.iter().all(|c| match &c.body {
            Body::Enum(variants) => variants.iter().all(|v| v.shape.is_some()),
            _ => true,
        })
    }

    /// Records the body of container `index` seen in this pass: always when the
    /// visit completed; when it recursed, only if nothing better is known (later
    /// passes may cut the recursion before the container is visited again).
    fn record(&mut self, index: usize, complete: bool, body: Body) {
        let slot = &mut self.containers[index].body;
        if complete || matches!(slot, Body::Unknown) {
            *slot = body;
        }
    }

    /// Registers a visit of the container `key` named `name`.
    fn enter(&mut self, key: &'static str, name: &'static str) -> Result<usize> {
        self.steps += 1;
        if self.steps > MAX_STEPS || self.containers.len() > MAX_STEPS {
            return Err(TraceError::TooLong);
        }
        let next = self.containers.len();
        let index = *self.keys.entry(key).or_insert(next);
        if index == next {
            self.containers.push(Container {
                name,
                body: Body::Unknown,
            });
        }
        Ok(index)
    }

    fn render(&self, root: &Node) -> String {
        let mut out = String::new();
        let mut seen = vec![false; self.containers.len()];
        self.render_node(root, &mut seen, &mut out);
        out
    }

    fn render_node(&self, node: &Node, seen: &mut [bool], out: &mut String) {
        match node {
            Node::Unknown => out.push('?'),
            Node::Prim(p) => out.push_str(p),
            Node::Option(inner) => {
                out.push_str("Option<");
                self.render_node(inner, seen, out);
                out.push('>');
            }
            Node::Seq(inner) => {
                out.push_str("Seq<");
                self.render_node(inner, seen, out);
                out.push('>');
            }
            Node::Map(k, v) => {
                out.push_str("Map<");
                self.render_node(k, seen, out);
                out.push_str(", ");
                self.render_node(v, seen, out);
                out.push('>');
            }
            Node::Tuple(items) => {
                self.render_list(items, seen, out);
                if items.len() == 1 {
                    out.insert(out.len() - 1, ',');
                }
            }
            Node::Named(i) => {
                let c = &self.containers[*i];
                if seen[*i] {
                    out.push_str(c.name);
                    return;
                }
                seen[*i] = true;
                let keyword = if matches!(c.body, Body::Enum(_)) {
                    "enum "
                } else {
                    "struct "
                };
                out.push_str(keyword);
                out.push_str(c.name);
                self.render_body(&c.body, seen, out);
            }
        }
    }

    fn render_list(&self, items: &[Node], seen: &mut [bool], out: &mut String) {
        out.push('(');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            self.render_node(item, seen, out);
        }
        out.push(')');
    }

    fn render_fields(&self, fields: &[(&'static str, Node)], seen: &mut [bool], out: &mut String) {
        out.push_str(" {");
        for (i, (name, node)) in fields.iter().enumerate() {
            out.push_str(if i > 0 { ", " } else { " " });
            let _ = write!(out, "{name}: ");
            self.render_node(node, seen, out);
        }
        out.push_str(" }");
    }

    fn render_body(&self, body: &Body, seen: &mut [bool], out: &mut String) {
        match body {
            Body::Unknown => out.push_str(" ?"),
            Body::Unit => {}
            Body::Newtype(inner) => self.render_list(std::slice::from_ref(inner), seen, out),
            Body::Tuple(items) => self.render_list(items, seen, out),
            Body::Struct(fields) => self.render_fields(fields, seen, out),
            Body::Enum(variants) => {
                out.push_str(" {");
                for (i, v) in variants.iter().enumerate() {
                    out.push_str(if i > 0 { ", " } else { " " });
                    out.push_str(v.name);
                    match &v.shape {
                        Some(shape) => self.render_body(shape, seen, out),
                        None => out.push_str(" ?"),
                    }
                }
                out.push_str(" }");
            }
        }
    }
}

/// The tracing deserializer: answers one request and writes its shape to `out`.
struct De<'t> {
    t: &'t mut Tracer,
    out: &'t mut Node,
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::num::NonZeroU64;

    use serde::Deserialize;

    use super::*;

    fn text<T: DeserializeOwned>() -> String {
        let shape = TypeShape::of::<T>();
        assert!(shape.is_traced(), "{shape}");
        shape.text
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Cfg {
        scale: u64,
        bias: u64,
    }

    mod reordered {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        pub(super) struct Cfg {
            pub(super) bias: u64,
            pub(super) scale: u64,
        }
    }

    #[test]
    fn structs_show_field_names_order_and_types() {
        assert_eq!(text::<Cfg>(), "struct Cfg { scale: u64, bias: u64 }");
        assert_eq!(
            text::<reordered::Cfg>(),
            "struct Cfg { bias: u64, scale: u64 }"
        );
        assert_eq!(text::<(u64,)>(), "(u64,)");
        assert_eq!(
            text::<(Cfg, i8)>(),
            "(struct Cfg { scale: u64, bias: u64 }, i8)"
        );
        assert_eq!(
            text::<(Vec<String>, Option<[u8; 2]>, BTreeMap<u32, bool>)>(),
            "(Seq<str>, Option<(u8, u8)>, Map<u32, bool>)"
        );
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Op {
        Stop,
        Add(i64),
        Pair(u8, u8),
        Named { inner: Cfg },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Program {
        ops: Vec<Op>,
        first: Option<Op>,
    }

    #[test]
    fn every_variant_of_every_enum_is_traced() {
        let op = "enum Op { Stop, Add(i64), Pair(u8, u8), Named { inner: struct Cfg { scale: u64, bias: u64 } } }";
        assert_eq!(text::<Op>(), op);
        assert_eq!(
            text::<Program>(),
            format!("struct Program {{ ops: Seq<{op}>, first: Option<Op> }}")
        );
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum TreeNodeFirst {
        Node(Box<TreeNodeFirst>, Box<TreeNodeFirst>),
        Leaf(u64),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Dir {
        name: String,
        children: Vec<Dir>,
        parent: Option<Box<Dir>>,
    }

    #[test]
    fn recursive_types_are_cut_where_they_recurse() {
        assert_eq!(
            text::<TreeNodeFirst>(),
            "enum TreeNodeFirst { Node(TreeNodeFirst, TreeNodeFirst), Leaf(u64) }"
        );
        assert_eq!(
            text::<Dir>(),
            "struct Dir { name: str, children: Seq<Dir>, parent: Option<Dir> }"
        );
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Link {
        next: Option<Hop>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Hop(Box<Link>);

    #[test]
    fn a_container_seen_only_on_the_way_to_a_recursion_keeps_its_shape() {
        // `Hop` is visited only in the pass that finds the recursion; later passes
        // leave the `Option` empty.
        assert_eq!(
            text::<Link>(),
            "struct Link { next: Option<struct Hop(Link)> }"
        );
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Endless {
        next: Box<Endless>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Untagged {
        A(u64),
        B(String),
    }

    #[test]
    fn untraceable_types_are_opaque_with_a_reason() {
        let endless = TypeShape::of::<Endless>();
        assert!(!endless.is_traced());
        assert!(endless.text().contains("contains itself"), "{endless}");
        let untagged = TypeShape::of::<Untagged>();
        assert!(!untagged.is_traced());
        assert!(untagged.text().contains("deserialize_any"), "{untagged}");
        let nonzero = TypeShape::of::<NonZeroU64>();
        assert!(!nonzero.is_traced());
        assert!(nonzero.text().contains("refused"), "{nonzero}");
        let json = TypeShape::of::<serde_json::Value>();
        assert!(!json.is_traced(), "{json}");
    }

    struct Panics;

    impl<'de> Deserialize<'de> for Panics {
        fn deserialize<D: de::Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
            panic!("this type cannot be traced");
        }
    }

    #[test]
    fn a_panicking_deserialize_is_opaque() {
        let shape = TypeShape::of::<(u8, Panics)>();
        assert_eq!(shape.text(), "opaque (its Deserialize panicked)");
    }

    #[test]
    fn shapes_hash_all_three_parts() {
        let a = Shapes::of::<Cfg, (u64,), u64>();
        let b = Shapes::of::<reordered::Cfg, (u64,), u64>();
        let c = Shapes::of::<Cfg, (i64,), u64>();
        let d = Shapes::of::<Cfg, (u64,), i64>();
        let hashes = [a.hash(), b.hash(), c.hash(), d.hash()];
        for i in 0..4 {
            for j in 0..i {
                assert_ne!(hashes[i], hashes[j], "{i} {j}");
            }
        }
        assert_eq!(a, Shapes::of::<Cfg, (u64,), u64>());
        assert_eq!(
            a.to_string(),
            "state struct Cfg { scale: u64, bias: u64 }; arguments (u64,); result u64"
        );
    }

    #[test]
    fn struct_fields_count_what_deserialize_reads() {
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            a: u8,
            #[serde(skip_deserializing)]
            b: u8,
            inner: Vec<Inner>,
        }
        #[derive(Deserialize)]
        #[allow(dead_code)]
        enum Inner {
            Unit,
            Named { x: u8, y: u8, z: u8 },
        }
        let shape = TypeShape::of::<Outer>();
        let mut fields: Vec<_> = shape
            .fields()
            .iter()
            .map(|f| (f.name, f.variant, f.len))
            .collect();
        fields.sort();
        assert_eq!(fields, [("Inner", "Named", 3), ("Outer", "", 2)]);
        assert!(!shape.needs_self_description());
    }

    #[test]
    fn a_type_written_with_fewer_fields_than_read_needs_self_description() {
        use serde::Serialize;

        #[derive(Serialize, Deserialize)]
        enum Kinds {
            Plain(u8),
            Named {
                a: u8,
                #[serde(skip_serializing, default)]
                b: u8,
            },
        }
        let written =
            |value: &Kinds, shape: &TypeShape| crate::codec::writes_fields_as_read(value, shape);
        assert!(TypeShape::of_written::<Kinds>(written).needs_self_description());
        #[derive(Serialize, Deserialize)]
        struct Full {
            a: u8,
            kinds: Vec<(u8, String)>,
        }
        let all =
            |value: &Full, shape: &TypeShape| crate::codec::writes_fields_as_read(value, shape);
        assert!(!TypeShape::of_written::<Full>(all).needs_self_description());
    }
}
