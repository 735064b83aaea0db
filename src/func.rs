//! [`Func`]: a function value — registered code plus captured state — that is
//! `Clone + Send + Sync + Serialize + Deserialize`.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec::{self, Header};
use crate::error::{Error, Result};
use crate::registry::{self, Entry, Ops};
use crate::same_build::{self, BuildId};
use crate::symbol::{Fingerprint, SymbolId};

/// A registered function with its captured state decoded, ready to be called with
/// encoded arguments: what a worker process holds after it has been sent a function.
///
/// Obtained from [`Entry::prepare`](crate::registry::Entry::prepare); a typed
/// [`Func`] holds one too.
pub trait ErasedFunc: Send + Sync {
    /// Decodes the argument tuple from `args`, calls the function and encodes its
    /// result. A panic in the function propagates; catching it is the caller's choice.
    fn call_bytes(&self, args: &[u8]) -> Result<Vec<u8>>;

    /// Like [`call_bytes`](ErasedFunc::call_bytes), but appends the encoded result
    /// to `out`, so that a caller running many tasks reuses one buffer. On an error,
    /// `out` may hold part of an encoding after its old end.
    fn call_into(&self, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&self.call_bytes(args)?);
        Ok(())
    }

    /// The encoded captured state this function was prepared from.
    fn state(&self) -> &[u8];

    /// The registered argument tuple and return types.
    #[doc(hidden)]
    fn types(&self) -> FuncTypes;

    /// Typed call through `dyn Any`: takes the `Option<A>` behind `args`, writes the
    /// `Option<R>` behind `out`. Returns false (and does nothing) if the types differ.
    #[doc(hidden)]
    fn call_any(&self, args: &mut dyn Any, out: &mut dyn Any) -> bool;
}

/// The argument and return types of a registered function, for checks and messages.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct FuncTypes {
    pub(crate) args: TypeId,
    pub(crate) ret: TypeId,
    pub(crate) args_name: &'static str,
    pub(crate) ret_name: &'static str,
}

impl FuncTypes {
    pub(crate) fn of<A: 'static, R: 'static>() -> FuncTypes {
        FuncTypes {
            args: TypeId::of::<A>(),
            ret: TypeId::of::<R>(),
            args_name: type_name::<A>(),
            ret_name: type_name::<R>(),
        }
    }
}

/// Whether a [`Func`] can cross to another build of the program. The third type
/// parameter of `Func`: [`Portable`] (the default) or [`SameBuild`].
pub trait Mode: sealed::Sealed + Send + Sync + 'static {
    /// True when values of this mode are always named by a registry ID.
    const PORTABLE: bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Portable {}
    impl Sealed for super::SameBuild {}
}

/// The [`Mode`] of values named by a registry ID: any build that registers the
/// same item with the same signature can call them. `Func<A, R>` is
/// `Func<A, R, Portable>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Portable {}

/// The [`Mode`] of values that may name their code by address inside this very
/// executable (closures whose capture types are not written, closures in generic
/// functions): only a process running the identical binary can call them, and any
/// other refuses them with [`Error::BuildMismatch`]. Portable values convert into
/// this mode with `From`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SameBuild {}

impl Mode for Portable {
    const PORTABLE: bool = true;
}

impl Mode for SameBuild {
    const PORTABLE: bool = false;
}

/// How a value names its code.
#[derive(Clone, Copy)]
enum Origin {
    Registered(&'static Entry),
    Address { build: BuildId, offset: i64 },
}

/// A function value: registered code plus its captured state.
///
/// `A` is the argument tuple (`(u64,)`, `(u64, u64)`, `()`), `R` the return type,
/// and `M` the [`Mode`]: [`Portable`] (the default; the code is named by its
/// [`SymbolId`]) or [`SameBuild`] (the code may be named by its address in this
/// executable). Make one with [`func_of!`](crate::func_of!),
/// [`bind!`](crate::bind!), [`closure!`](crate::closure!) or [`Func::from_task`];
/// call it with [`call`](Func::call); send it with any serde format.
///
/// * In binary formats a portable value is a tuple of the 8-byte ID, the 8-byte
///   signature fingerprint, the 8-byte data shape hash and the state bytes: a free
///   function is 27 bytes with bincode.
/// * In human-readable formats it is `{"fn": "<name>", "fingerprint": "<hex>",
///   "state": <state>}`, with the state in that format too.
///
/// Cloning is cheap (a reference count). Deserializing looks the ID up in this
/// program's registry, checks the fingerprint and the type parameters, and decodes
/// the state, so an unknown function, version skew or bad bytes fail there, not at
/// the call.
///
/// ```
/// use dilly::Func;
///
/// #[dilly::func]
/// fn double(x: u64) -> u64 {
///     x * 2
/// }
///
/// let f: Func<(u64,), u64> = dilly::func_of!(double);
/// let bytes = dilly::to_bytes(&f)?;
/// let g: Func<(u64,), u64> = dilly::from_bytes(&bytes)?;
/// assert_eq!(g.call((21,)), 42);
/// assert_eq!(g.name(), concat!(module_path!(), "::double"));
/// # Ok::<(), dilly::Error>(())
/// ```
pub struct Func<A, R, M: Mode = Portable> {
    origin: Origin,
    /// The callable, holding both the decoded and the encoded state: one allocation.
    prepared: Arc<dyn ErasedFunc>,
    types: PhantomData<fn(A) -> R>,
    mode: PhantomData<M>,
}

fn check_types<A: 'static, R: 'static>(name: &str, prepared: &dyn ErasedFunc) -> Result<()> {
    let types = prepared.types();
    if types.args != TypeId::of::<A>() || types.ret != TypeId::of::<R>() {
        return Err(Error::TypeMismatch {
            name: name.to_owned(),
            registered: format!("Func<{}, {}>", types.args_name, types.ret_name),
            requested: format!("Func<{}, {}>", type_name::<A>(), type_name::<R>()),
        });
    }
    Ok(())
}

impl<A: 'static, R: 'static, M: Mode> Func<A, R, M> {
    /// Calls the function.
    ///
    /// # Panics
    ///
    /// Only if the function itself panics.
    pub fn call(&self, args: A) -> R {
        let mut args = Some(args);
        let mut out: Option<R> = None;
        let typed = self.prepared.call_any(&mut args, &mut out);
        // Construction verified the types, so `call_any` always runs the function.
        debug_assert!(typed, "dilly: type check of a constructed Func failed");
        match out {
            Some(value) => value,
            None => unreachable!("dilly: Func::call on `{}` produced no result", self.name()),
        }
    }

    fn assemble(origin: Origin, prepared: Arc<dyn ErasedFunc>) -> Result<Self> {
        if let Origin::Registered(entry) = origin {
            check_types::<A, R>(entry.name(), &*prepared)?;
        } else {
            check_types::<A, R>("same-build closure", &*prepared)?;
        }
        Ok(Func {
            origin,
            prepared,
            types: PhantomData,
            mode: PhantomData,
        })
    }

    /// Builds the value that `raw` describes, checking it against this program and
    /// this value's type parameters. A same-build `raw` is refused for a portable
    /// `Func` with [`Error::NotPortable`].
    pub fn from_raw(raw: RawFunc) -> Result<Self> {
        match raw {
            RawFunc::Registered {
                id,
                fingerprint,
                shape,
                state,
            } => {
                let entry = registry::lookup_callable(id, fingerprint, shape)?;
                Self::assemble(Origin::Registered(entry), entry.prepare(&state)?)
            }
            RawFunc::SameBuild { .. } if M::PORTABLE => Err(Error::NotPortable),
            RawFunc::SameBuild {
                build,
                offset,
                state,
            } => {
                let prepared = same_build::resolve(build, offset)?(&state)?;
                Self::assemble(Origin::Address { build, offset }, prepared)
            }
        }
    }
}

impl<A: 'static, R: 'static> Func<A, R> {
    /// Builds the value for `id` from its encoded `state`, checking the sender's
    /// signature `fingerprint`, its data `shape` and this value's type parameters.
    pub fn from_parts(
        id: SymbolId,
        fingerprint: Fingerprint,
        shape: Fingerprint,
        state: Vec<u8>,
    ) -> Result<Self> {
        Self::from_raw(RawFunc::Registered {
            id,
            fingerprint,
            shape,
            state,
        })
    }

    /// Wraps a local value whose state the caller has already encoded.
    pub(crate) fn from_local(entry: &'static Entry, prepared: Arc<dyn ErasedFunc>) -> Self {
        match Self::assemble(Origin::Registered(entry), prepared) {
            Ok(func) => func,
            // The macros pass the same types to the entry and to the value.
            Err(err) => panic!("dilly: inconsistent macro expansion: {err}"),
        }
    }
}

impl<A, R> Func<A, R> {
    /// The registered code's stable ID.
    pub fn id(&self) -> SymbolId {
        self.entry().id()
    }

    /// The signature fingerprint that travels with the value.
    pub fn fingerprint(&self) -> Fingerprint {
        self.entry().fingerprint()
    }

    /// The data shape hash that travels with the value in binary formats
    /// ([`Entry::shape`]).
    pub fn shape(&self) -> Fingerprint {
        self.entry().shape()
    }

    /// The registry entry of the code.
    pub fn entry(&self) -> &'static Entry {
        match self.origin {
            Origin::Registered(entry) => entry,
            Origin::Address { .. } => unreachable!("a portable Func is always registered"),
        }
    }
}

impl<A: 'static, R: 'static> Func<A, R, SameBuild> {
    /// A same-build value from its parts, made by `closure!` when a closure's
    /// capture types are not written.
    pub(crate) fn from_address(prepared: Arc<dyn ErasedFunc>, offset: i64) -> Result<Self> {
        let build = same_build::this_build()?;
        Self::assemble(Origin::Address { build, offset }, prepared)
    }

    /// The portable value, if this one names its code by registry ID.
    pub fn into_portable(self) -> Result<Func<A, R>, Self> {
        match self.origin {
            Origin::Registered(_) => Ok(Func {
                origin: self.origin,
                prepared: self.prepared,
                types: PhantomData,
                mode: PhantomData,
            }),
            Origin::Address { .. } => Err(self),
        }
    }
}

impl<A, R> From<Func<A, R>> for Func<A, R, SameBuild> {
    fn from(func: Func<A, R>) -> Self {
        Func {
            origin: func.origin,
            prepared: func.prepared,
            types: PhantomData,
            mode: PhantomData,
        }
    }
}

impl<A, R, M: Mode> Func<A, R, M> {
    /// The canonical name of the registered code, e.g. `my_app::double`, or
    /// `same-build closure` for a value named by address.
    pub fn name(&self) -> &'static str {
        match self.origin {
            Origin::Registered(entry) => entry.name(),
            Origin::Address { .. } => "same-build closure",
        }
    }

    /// True if any build that registers the code can call this value; false if only
    /// the identical executable can.
    pub fn is_portable(&self) -> bool {
        matches!(self.origin, Origin::Registered(_))
    }

    /// The encoded captured state (empty for functions that capture nothing).
    pub fn state(&self) -> &[u8] {
        self.prepared.state()
    }

    /// The type-erased callable, for executors that move encoded arguments and results.
    pub fn erased(&self) -> &Arc<dyn ErasedFunc> {
        &self.prepared
    }

    /// The value without its Rust types, as executors move it between processes.
    pub fn raw(&self) -> RawFunc {
        let state = self.state().to_vec();
        match self.origin {
            Origin::Registered(entry) => RawFunc::Registered {
                id: entry.id(),
                fingerprint: entry.fingerprint(),
                shape: entry.shape(),
                state,
            },
            Origin::Address { build, offset } => RawFunc::SameBuild {
                build,
                offset,
                state,
            },
        }
    }
}

impl<A: Serialize, R: DeserializeOwned, M: Mode> Func<A, R, M> {
    /// Encodes an argument tuple for [`ErasedFunc::call_bytes`] on a receiver.
    pub fn encode_args(&self, args: &A) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(32);
        self.encode_args_into(args, &mut out)?;
        Ok(out)
    }

    /// Like [`encode_args`](Func::encode_args), but appends the encoding to `out`
    /// (many argument tuples can share one buffer). On an error, `out` may hold
    /// part of the encoding after its old end.
    pub fn encode_args_into(&self, args: &A, out: &mut Vec<u8>) -> Result<()> {
        // The entry traced the argument types: it knows whether they travel
        // self-described.
        let described = match self.origin {
            Origin::Registered(entry) => entry.shapes().args().needs_self_description(),
            Origin::Address { .. } => false,
        };
        codec::encode_into_as(args, "arguments", out, described)
    }

    /// Decodes a result produced by [`ErasedFunc::call_bytes`].
    pub fn decode_result(&self, bytes: &[u8]) -> Result<R> {
        codec::decode(bytes, "result")
    }
}

impl<A, R, M: Mode> Clone for Func<A, R, M> {
    fn clone(&self) -> Self {
        Func {
            origin: self.origin,
            prepared: Arc::clone(&self.prepared),
            types: PhantomData,
            mode: PhantomData,
        }
    }
}

impl<A, R, M: Mode> fmt::Debug for Func<A, R, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Func");
        d.field("name", &self.name());
        match self.origin {
            Origin::Registered(entry) => d.field("signature", &entry.signature()),
            Origin::Address { build, offset } => d.field("build", &build).field("offset", &offset),
        };
        d.field("state_len", &self.state().len()).finish()
    }
}

/// A function value without its Rust types: what executors send to workers, and
/// what a worker turns into an [`ErasedFunc`] with [`RawFunc::prepare`].
///
/// Its `Serialize` form is the same as the corresponding [`Func`]'s in binary
/// formats, preceded by a tag byte that tells the two kinds apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RawFunc {
    /// Code named by its registry ID.
    Registered {
        /// The registered code's ID.
        id: SymbolId,
        /// The sender's signature fingerprint.
        fingerprint: Fingerprint,
        /// The sender's data shape hash ([`Entry::shape`]).
        shape: Fingerprint,
        /// The encoded captured state.
        state: Vec<u8>,
    },
    /// Code named by its address in one particular executable.
    SameBuild {
        /// The sender's executable.
        build: BuildId,
        /// The code's offset from the anchor.
        offset: i64,
        /// The encoded captured state.
        state: Vec<u8>,
    },
}

impl RawFunc {
    /// Looks the code up (by ID, or by address after checking the build), checks the
    /// fingerprint and decodes the state: the function, ready for encoded calls.
    pub fn prepare(&self) -> Result<Arc<dyn ErasedFunc>> {
        match self {
            RawFunc::Registered {
                id,
                fingerprint,
                shape,
                state,
            } => registry::lookup_callable(*id, *fingerprint, *shape)?.prepare(state),
            RawFunc::SameBuild {
                build,
                offset,
                state,
            } => same_build::resolve(*build, *offset)?(state),
        }
    }

    /// The encoded captured state.
    pub fn state(&self) -> &[u8] {
        match self {
            RawFunc::Registered { state, .. } | RawFunc::SameBuild { state, .. } => state,
        }
    }

    /// True if any build that registers the code can call it.
    pub fn is_portable(&self) -> bool {
        matches!(self, RawFunc::Registered { .. })
    }

    /// A name for messages: the registered name when this process knows the ID.
    pub fn describe(&self) -> String {
        match self {
            RawFunc::Registered { id, .. } => match registry::lookup(*id) {
                Ok(entry) => format!("`{}`", entry.name()),
                Err(_) => format!("symbol {id}"),
            },
            RawFunc::SameBuild { build, .. } => format!("a same-build closure of build {build}"),
        }
    }
}

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
pub(crate) fn de_error<E: de::Error>(err: Error) -> E {
    let message = err.to_string();
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
    Address(crate::registry::PrepareFn),
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

/// The body of [`ErasedFunc::call_any`]: takes the `Option<A>` behind `args`, runs
/// `call` and stores its result in the `Option<R>` behind `out`; false if either has
/// another type.
fn call_typed<A: 'static, R: 'static>(
    args: &mut dyn Any,
    out: &mut dyn Any,
    call: impl FnOnce(A) -> R,
) -> bool {
    match (
        args.downcast_mut::<Option<A>>(),
        out.downcast_mut::<Option<R>>(),
    ) {
        (Some(args), Some(out)) => match args.take() {
            Some(args) => {
                *out = Some(call(args));
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Prepared state for functions whose code borrows the state (`&self` methods,
/// closures, free functions with `S = ()`).
pub(crate) struct Shared<S, A, R, F> {
    pub(crate) state: S,
    /// The encoding of `state`: set when the value is made locally, computed on
    /// first use when it was received.
    pub(crate) encoded: std::sync::OnceLock<Vec<u8>>,
    pub(crate) call: F,
    pub(crate) types: PhantomData<fn(A) -> R>,
}

impl<S, A, R, F> ErasedFunc for Shared<S, A, R, F>
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: crate::private::Output,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    fn call_bytes(&self, args: &[u8]) -> Result<Vec<u8>> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode_typed(&(self.call)(&self.state, args), "result")
    }

    fn call_into(&self, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode_into_typed(&(self.call)(&self.state, args), "result", out)
    }

    fn state(&self) -> &[u8] {
        self.encoded
            .get_or_init(|| match codec::encode_typed(&self.state, "state") {
                Ok(bytes) => bytes,
                // The state was decoded from bytes; only a `Serialize` impl that fails on
                // a value its `Deserialize` produced gets here.
                Err(err) => panic!("dilly: a received state does not encode again: {err}"),
            })
    }

    fn types(&self) -> FuncTypes {
        FuncTypes::of::<A, R>()
    }

    fn call_any(&self, args: &mut dyn Any, out: &mut dyn Any) -> bool {
        call_typed(args, out, |args| (self.call)(&self.state, args))
    }
}

/// Prepared state for methods that take the receiver by value or `&mut`: each call
/// gets a fresh copy decoded from the state bytes, as a worker process would.
pub(crate) struct Owned<S, A, R, F> {
    pub(crate) state: Vec<u8>,
    pub(crate) call: F,
    pub(crate) types: PhantomData<fn(S, A) -> R>,
}

impl<S, A, R, F> Owned<S, A, R, F>
where
    S: DeserializeOwned,
{
    fn fresh_state(&self) -> S {
        match codec::decode(&self.state, "state") {
            Ok(state) => state,
            // The bytes decoded once when this value was prepared; decoding is
            // deterministic, so this only fires on a non-deterministic Deserialize impl.
            Err(err) => panic!("dilly: state decoded once but not twice: {err}"),
        }
    }
}

impl<S, A, R, F> ErasedFunc for Owned<S, A, R, F>
where
    S: DeserializeOwned + 'static,
    A: DeserializeOwned + 'static,
    R: crate::private::Output,
    F: Fn(S, A) -> R + Send + Sync + 'static,
{
    fn call_bytes(&self, args: &[u8]) -> Result<Vec<u8>> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode_typed(&(self.call)(self.fresh_state(), args), "result")
    }

    fn call_into(&self, args: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode_into_typed(&(self.call)(self.fresh_state(), args), "result", out)
    }

    fn state(&self) -> &[u8] {
        &self.state
    }

    fn types(&self) -> FuncTypes {
        FuncTypes::of::<A, R>()
    }

    fn call_any(&self, args: &mut dyn Any, out: &mut dyn Any) -> bool {
        call_typed(args, out, |args| (self.call)(self.fresh_state(), args))
    }
}
