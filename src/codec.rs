//! The only module that knows how dilly values look as bytes.
//!
//! Values (captured state, arguments, results, whole [`Func`](crate::Func)s) are encoded
//! compactly in bincode 2's serde layout, standard configuration (little endian,
//! variable-length integers), written by `ser.rs` and read by `de.rs`. A value the
//! compact layout cannot carry (its type's `Deserialize` needs a self-describing
//! format, or writing it skips a field or leaves a length open) is written as CBOR
//! (`described.rs`) behind the mark `0xff 0x01`. The layout is described in
//! `docs/wire-format.md` and pinned by the golden files in `tests/golden/`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::shape::TypeShape;

/// The wire-format version this build writes and reads: the first byte of
/// [`to_bytes`] output and of every [`CallFrame`]. Version 2 added the data shape
/// hash to every header that names registered code; bytes of version 1 are refused
/// with [`Error::OlderFormat`].
pub const VERSION: u8 = 2;

/// Upper bounds applied to untrusted input before anything is allocated.
///
/// Two bounds hold for every binary decode whatever the limits say:
///
/// * **Allocation follows the input.** A length inside the input (of a string, a
///   byte string, a sequence or a map) that claims more than the bytes left after it
///   is [`Error::Truncated`] before anything is allocated for it. So a decode
///   allocates at most what the decoded value itself occupies: a small constant per
///   byte of input (how small depends on the types: each element of a sequence takes
///   at least one byte of input and `size_of` its type in memory). One consequence:
///   a sequence of zero-sized values (`Vec<()>`) cannot be longer than the bytes
///   that follow its length.
/// * **Nesting is bounded.** Each compound value (sequence, map,
///   tuple, struct, enum, `Some`, newtype) takes one level of `max_depth`; a value
///   nested deeper is [`Error::TooDeep`], never a stack overflow. Values decoded
///   inside another decode (a function's captured state, a `Box<dyn Object>`)
///   share the budget of the outer decode.
///
/// The defaults are [`Limits::DEFAULT`]: 64 MiB of input, 128 levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest length field (state, arguments, whole input) accepted, in bytes.
    /// Default 64 MiB.
    pub max_len: usize,
    /// The deepest nesting of compound values accepted. Default 128, as serde_json's
    /// recursion limit: enough for any data shape written by hand, shallow enough
    /// that a thread with 512 KiB of stack decodes it even in a debug build.
    pub max_depth: usize,
}

impl Limits {
    /// 64 MiB and 128 levels: large enough for ordinary task payloads, small
    /// enough that a hostile length cannot exhaust memory nor a hostile nesting
    /// the stack.
    pub const DEFAULT: Limits = Limits {
        max_len: 64 << 20,
        max_depth: 128,
    };

    /// Limits with the given maximum length, and the default depth.
    pub const fn max_len(max_len: usize) -> Limits {
        Limits {
            max_len,
            ..Limits::DEFAULT
        }
    }

    /// These limits with the given maximum nesting depth. Raise it only for trusted
    /// input and threads with the stack to match (up to a few KiB per level in a
    /// debug build, where functions nest inside functions).
    ///
    /// ```
    /// use dilly::{Error, Limits};
    ///
    /// let bytes = dilly::to_bytes(&vec![vec![vec![1u8]]])?;
    /// let shallow = Limits::DEFAULT.with_max_depth(2);
    /// let err = dilly::from_bytes_with_limits::<Vec<Vec<Vec<u8>>>>(&bytes, shallow).unwrap_err();
    /// assert!(matches!(err, Error::TooDeep { limit: 2, .. }));
    /// # Ok::<(), dilly::Error>(())
    /// ```
    pub const fn with_max_depth(self, max_depth: usize) -> Limits {
        Limits { max_depth, ..self }
    }

    fn check(&self, what: &'static str, len: u64) -> Result<usize> {
        match usize::try_from(len) {
            Ok(len) if len <= self.max_len => Ok(len),
            _ => Err(Error::TooLarge {
                what: what.into(),
                len,
                limit: self.max_len,
                setting: "Limits::max_len".into(),
            }),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

mod de;
mod described;
mod frame;
mod header;
mod ser;

use de::{DeError as DecodeFailure, Depth};
pub use frame::CallFrame;
pub(crate) use header::{
    ADDRESS_HEADER_LEN, Header, OBJECT_HEADER_LEN, REGISTERED_HEADER_LEN, TAG_ADDRESS,
    TAG_REGISTERED, V1_OBJECT_HEADER_LEN, V1_REGISTERED_HEADER_LEN, address_header, object_header,
    registered_header,
};

/// The first byte of an encoding that is not plain compact bytes: the byte after it
/// says what follows. No compact encoding begins with it unless its first field is
/// a `u8`, `i8`, `f32` or `f64` whose first byte is `0xff`; those are escaped.
pub(crate) const MARK: u8 = 0xff;
/// After [`MARK`]: compact bytes follow that begin with `0xff` themselves.
pub(crate) const MARK_COMPACT: u8 = 0x00;
/// After [`MARK`]: the value follows self-described, as CBOR.
pub(crate) const MARK_DESCRIBED: u8 = 0x01;

/// Encodes `value` (no version byte), self-described when `T`'s own `Deserialize` needs
/// it (see [`needs_self_description`]).
pub(crate) fn encode_typed<T: Serialize + DeserializeOwned>(
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(32);
    encode_into_typed(value, what, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `value` to `out` (no version byte), self-described
/// when `T`'s own `Deserialize` needs it (see [`needs_self_description`]).
#[inline]
pub(crate) fn encode_into_typed<T: Serialize + DeserializeOwned>(
    value: &T,
    what: &'static str,
    out: &mut Vec<u8>,
) -> Result<()> {
    encode_into_as(value, what, out, Some(shape_of::<T>()))
}

/// Appends the encoding of `value` to `out` (no version byte), a value of the type
/// traced as `shape` (`None`: a type not traced): self-described if the shape
/// [needs it](crate::shape::TypeShape::needs_self_description), or if the compact
/// writer finds while writing that it must be (a field skipped by
/// `skip_serializing_if`, a struct written with another number of fields than
/// `shape` says its `Deserialize` reads, a length not known up front); else
/// compact. `what` names the value in errors.
pub(crate) fn encode_into_as<T: Serialize + ?Sized>(
    value: &T,
    what: &'static str,
    out: &mut Vec<u8>,
    shape: Option<&TypeShape>,
) -> Result<()> {
    let start = out.len();
    if !shape.is_some_and(TypeShape::needs_self_description) {
        let outer = WRITING_COMPACT.replace(true);
        NEEDS_DESCRIBED.set(false);
        let written = ser::encode_into(value, out, shape);
        WRITING_COMPACT.set(outer);
        match written {
            Ok(()) => {
                if out.get(start) == Some(&MARK) {
                    out.splice(start..start, [MARK, MARK_COMPACT]);
                }
                return Ok(());
            }
            Err(ser::SerError::NeedsSelfDescribed(_) | ser::SerError::FieldCount(_)) => {
                out.truncate(start)
            }
            Err(ser::SerError::Message(_)) if NEEDS_DESCRIBED.take() => out.truncate(start),
            Err(ser::SerError::Message(detail)) => {
                out.truncate(start);
                return Err(Error::Encode {
                    what: what.into(),
                    detail,
                });
            }
        }
    }
    out.extend_from_slice(&[MARK, MARK_DESCRIBED]);
    let outer = WRITING_COMPACT.replace(false);
    let written = described::encode_into(value, out);
    WRITING_COMPACT.set(outer);
    written.map_err(|detail| {
        out.truncate(start);
        Error::Encode {
            what: what.into(),
            detail,
        }
    })
}

/// Whether `value` writes every struct in it with as many fields as `shape` says
/// its `Deserialize` reads (other failures of the compact writer are not this
/// question's and count as yes).
pub(crate) fn writes_fields_as_read<T: Serialize + ?Sized>(value: &T, shape: &TypeShape) -> bool {
    // Not an encode of its own: values inside must not ask one to start again.
    let outer = WRITING_COMPACT.replace(false);
    let written = ser::encode_into(value, &mut Vec::new(), Some(shape));
    WRITING_COMPACT.set(outer);
    !matches!(written, Err(ser::SerError::FieldCount(_)))
}

thread_local! {
    /// Whether the innermost encode running on this thread writes compact bytes.
    static WRITING_COMPACT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Set by a value found inside a compact encode that needs the whole encode
    /// self-described (see [`needs_self_description_here`]).
    static NEEDS_DESCRIBED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// For a `Serialize` impl that hides its type (a `Box<dyn Object>`) and knows the
/// type needs a self-describing format: `Some(message)` when the encode running
/// now writes compact bytes, after asking it to start again self-described. The
/// impl returns the message as its error.
pub(crate) fn needs_self_description_here() -> Option<&'static str> {
    if WRITING_COMPACT.get() {
        NEEDS_DESCRIBED.set(true);
        Some("this value needs a self-describing encoding")
    } else {
        None
    }
}

/// Whether values of `T` travel self-described because `T`'s `Deserialize` asks
/// the format what comes next (`TypeShape::needs_self_description`).
pub(crate) fn needs_self_description<T: DeserializeOwned>() -> bool {
    shape_of::<T>().needs_self_description()
}

/// The traced shape of `T`: traced once per type and process, and kept for the
/// life of the process (one small value per type encoded or decoded).
pub(crate) fn shape_of<T: DeserializeOwned>() -> &'static TypeShape {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Known = HashMap<std::any::TypeId, &'static TypeShape, TypeIdHash>;
    thread_local! {
        static KNOWN: std::cell::RefCell<Known> = std::cell::RefCell::new(HashMap::default());
    }
    static SHARED: OnceLock<Mutex<Known>> = OnceLock::new();
    let id = typeid::of::<T>();
    if let Some(known) = KNOWN.with(|k| k.borrow().get(&id).copied()) {
        return known;
    }
    let shared = SHARED.get_or_init(Mutex::default);
    let found = shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&id)
        .copied();
    let shape = match found {
        Some(shape) => shape,
        None => {
            // Traced outside both borrows: tracing may encode or decode other values.
            let traced: &'static TypeShape = Box::leak(Box::new(TypeShape::of::<T>()));
            *shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(id)
                .or_insert(traced)
        }
    };
    KNOWN.with(|k| k.borrow_mut().insert(id, shape));
    shape
}

/// A `TypeId` already is a hash; this keeps its last 64 bits instead of hashing
/// it again.
type TypeIdHash = std::hash::BuildHasherDefault<IdHasher>;

#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(buf);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }
}

thread_local! {
    /// The typed error behind the last failure of a dilly `Deserialize` impl on this
    /// thread, with the number of the decode it happened in. serde can only carry a
    /// message through a format's error type; the decoders here hand the typed
    /// error back instead.
    static STASHED: std::cell::RefCell<Option<(u64, Error)>> =
        const { std::cell::RefCell::new(None) };
    /// Decodes begun on this thread: a failing decode takes only an error stashed
    /// since it began (an older one was recovered from, e.g. by an untagged enum
    /// trying another variant). Counting costs less than clearing the stash at every
    /// decode, which has a destructor to look after.
    static DECODES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The last truncation or depth failure the reader raised, with the number of
    /// its decode: a `Deserialize` impl between the reader and the decode (a
    /// `Box<dyn Object>` through erased-serde) can only pass it on as a message.
    static RAISED: std::cell::Cell<Option<(u64, Raised)>> = const { std::cell::Cell::new(None) };
    /// The nesting budget of the innermost decode running on this thread, so that
    /// a decode inside it (a function's captured state) goes on from its depth.
    static DEPTH: std::cell::Cell<Option<Depth>> = const { std::cell::Cell::new(None) };
}

#[derive(Debug, Clone, Copy)]
enum Raised {
    Truncated { needed: usize, available: usize },
    TooDeep { limit: usize },
}

impl Raised {
    fn into_error(self, what: &'static str) -> Error {
        match self {
            Raised::Truncated { needed, available } => Error::Truncated {
                what: what.into(),
                needed,
                available,
            },
            Raised::TooDeep { limit } => Error::TooDeep {
                what: what.into(),
                limit,
            },
        }
    }
}

pub(crate) fn stash_error(err: Error) {
    let decode = DECODES.with(std::cell::Cell::get);
    STASHED.with(|s| *s.borrow_mut() = Some((decode, err)));
}

/// Called by the reader as it raises a truncation or depth failure.
fn note_raised(err: &DecodeFailure) {
    let raised = match *err {
        DecodeFailure::Truncated { needed, available } => Raised::Truncated { needed, available },
        DecodeFailure::TooDeep { limit } => Raised::TooDeep { limit },
        DecodeFailure::Message(_) => return,
    };
    let decode = DECODES.with(std::cell::Cell::get);
    RAISED.with(|r| r.set(Some((decode, raised))));
}

/// Called by the reader at every change of depth.
#[inline(always)]
fn publish_depth(depth: Depth) {
    DEPTH.with(|d| d.set(Some(depth)));
}

/// Numbers a decode that begins now (see [`DECODES`]). Inlined into every
/// decode, most of which are generic and compiled in the caller's crate.
#[inline]
fn begin_decode() -> u64 {
    DECODES.with(|d| {
        let n = d.get().wrapping_add(1);
        d.set(n);
        n
    })
}

/// The error stashed since decode `began` began, if any.
fn take_stashed(began: u64) -> Option<Error> {
    STASHED.with(|s| {
        s.borrow_mut()
            .take()
            .filter(|(decode, _)| *decode >= began)
            .map(|(_, err)| err)
    })
}

/// Puts the outer decode's depth back when a decode ends, however it ends.
struct RestoreDepth(Option<Depth>);

impl Drop for RestoreDepth {
    #[inline]
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(self.0));
    }
}

/// The nesting budget of a decode that begins now: the rest of the outer decode's
/// if this one runs inside it, else all of `limits` (or of the defaults); never
/// more than `limits` allow.
#[inline]
fn depth_budget(outer: Option<Depth>, limits: Option<&Limits>) -> Depth {
    let fresh = |max_depth| Depth {
        left: max_depth,
        limit: max_depth,
    };
    match (outer, limits) {
        (Some(outer), None) => outer,
        (Some(outer), Some(limits)) if outer.left <= limits.max_depth => outer,
        (_, Some(limits)) => fresh(limits.max_depth),
        (None, None) => fresh(Limits::DEFAULT.max_depth),
    }
}

/// Decodes exactly one value from all of `bytes` (no version byte).
#[inline]
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    decode_with(bytes, what, None)
}

fn decode_with<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    limits: Option<&Limits>,
) -> Result<T> {
    let began = begin_decode();
    let outer = DEPTH.with(std::cell::Cell::get);
    let _restore = RestoreDepth(outer);
    let depth = depth_budget(outer, limits);
    let compact = match bytes {
        [MARK, MARK_DESCRIBED, rest @ ..] => {
            return decode_described(rest, depth)
                .map_err(|failure| decode_error(failure, what, began));
        }
        [MARK, MARK_COMPACT, rest @ ..] if rest.first() == Some(&MARK) => rest,
        [MARK, ..] => return Err(unknown_mark(bytes, what)),
        _ => bytes,
    };
    let mut de = de::Deserializer::new(compact, depth);
    let value = match T::deserialize(&mut de) {
        Ok(value) => value,
        Err(failure) => return Err(compact_error::<T>(failure, what, began)),
    };
    if !de.rest().is_empty() {
        return Err(Error::Malformed {
            what: what.into(),
            detail: format!("{} unexpected bytes after the value", de.rest().len()),
        });
    }
    Ok(value)
}

/// Reads a self-described value, leaving the decodes inside it (a function's
/// state) the budget that its own nesting leaves.
fn decode_described<T: DeserializeOwned>(bytes: &[u8], depth: Depth) -> Result<T, DecodeFailure> {
    let used = described::check(bytes, depth)?;
    publish_depth(Depth {
        left: depth.left - used,
        limit: depth.limit,
    });
    described::decode(bytes, depth)
}

#[cold]
fn unknown_mark(bytes: &[u8], what: &'static str) -> Error {
    match bytes.get(1) {
        None => Error::Truncated {
            what: what.into(),
            needed: 2,
            available: 1,
        },
        Some(kind) => Error::Malformed {
            what: what.into(),
            detail: format!(
                "unknown encoding mark 0xff 0x{kind:02x} (a newer dilly may have written it)"
            ),
        },
    }
}

/// The error for a failed compact decode of `T`, naming `T` when its
/// `Deserialize` needs a self-describing format the sender did not use.
#[cold]
fn compact_error<T: DeserializeOwned>(
    failure: DecodeFailure,
    what: &'static str,
    began: u64,
) -> Error {
    let err = decode_error(failure, what, began);
    if matches!(err, Error::Malformed { .. }) && needs_self_description::<T>() {
        return Error::Malformed {
            what: what.into(),
            detail: format!(
                "`{}` is read with `deserialize_any` (an untagged or internally tagged enum, \
                 `#[serde(flatten)]`, `serde_json::Value`), but the sender wrote it compact: \
                 encode it with a dilly function that knows its type (`dilly::to_bytes`, a \
                 registered function's arguments, results and state)",
                std::any::type_name::<T>()
            ),
        };
    }
    err
}

/// The typed error for a failed decode that began as number `began`.
#[cold]
fn decode_error(failure: DecodeFailure, what: &'static str, began: u64) -> Error {
    let raised = RAISED
        .with(|r| r.take())
        .filter(|(decode, _)| *decode >= began)
        .map(|(_, raised)| raised);
    let stashed = take_stashed(began);
    match failure {
        DecodeFailure::Truncated { needed, available } => Error::Truncated {
            what: what.into(),
            needed,
            available,
        },
        DecodeFailure::TooDeep { limit } => Error::TooDeep {
            what: what.into(),
            limit,
        },
        DecodeFailure::Message(detail) => match (stashed, raised) {
            (Some(typed), _) => typed,
            (None, Some(raised)) => raised.into_error(what),
            (None, None) => Error::Malformed {
                what: what.into(),
                detail,
            },
        },
    }
}

/// Encodes any serde value — a [`Func`](crate::Func), a `Box<dyn Object>`, or a
/// struct holding them — as dilly's binary format: one version byte, then the
/// compact (bincode 2) encoding, or, for a value that needs it, a two-byte mark and
/// the value self-described (`docs/wire-format.md`). `T`'s `Deserialize` tells
/// which: the type is traced once per thread.
///
/// ```
/// let bytes = dilly::to_bytes(&vec![1u32, 2, 3])?;
/// assert_eq!(bytes, [dilly::VERSION, 3, 1, 2, 3]);
/// # Ok::<(), dilly::Error>(())
/// ```
pub fn to_bytes<T: Serialize + DeserializeOwned>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(64);
    out.push(VERSION);
    encode_into_typed(value, "value", &mut out)?;
    Ok(out)
}

/// Decodes bytes written by [`to_bytes`], with the [default limits](Limits::DEFAULT).
///
/// Never panics: truncated, oversized, malformed or hostile input is an [`Error`].
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    from_bytes_with_limits(bytes, Limits::DEFAULT)
}

/// Decodes bytes written by [`to_bytes`], refusing input longer than `limits.max_len`
/// and values nested deeper than `limits.max_depth`.
pub fn from_bytes_with_limits<T: DeserializeOwned>(bytes: &[u8], limits: Limits) -> Result<T> {
    limits.check("input", bytes.len() as u64)?;
    let body = check_version(bytes)?;
    decode_with(body, "value", Some(&limits))
}

fn check_version(bytes: &[u8]) -> Result<&[u8]> {
    match bytes.split_first() {
        None => Err(Error::Truncated {
            what: "version byte".into(),
            needed: 1,
            available: 0,
        }),
        Some((&VERSION, rest)) => Ok(rest),
        Some((&found, _)) if (1..VERSION).contains(&found) => Err(Error::OlderFormat {
            found,
            supported: VERSION,
        }),
        Some((&found, _)) => Err(Error::UnsupportedVersion {
            found,
            supported: VERSION,
        }),
    }
}

#[cfg(test)]
mod tests;
