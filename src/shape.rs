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

use std::fmt;

use serde::de::DeserializeOwned;

use crate::symbol::Fingerprint;

use self::tracer::{TraceError, trace};

mod tracer;

#[cfg(test)]
mod tests;

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

    fn from_trace(traced: Result<(String, Box<[StructFields]>), TraceError>) -> TypeShape {
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
    /// write the fields their `Deserialize` reads is settled here, once, with
    /// `write_compact` (see [`TypeShape::of_written`]).
    pub(crate) fn of_type<T: DeserializeOwned>(
        write_compact: impl Fn(&T, &TypeShape) -> bool,
    ) -> Shapes {
        let unit = TypeShape {
            text: "()".into(),
            traced: true,
            described: false,
            fields: Box::default(),
        };
        let state = TypeShape::of_written::<T>(write_compact);
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
