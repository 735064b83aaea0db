//! [`Func`]: a function value — registered code plus captured state — that is
//! `Clone + Send + Sync + Serialize + Deserialize`.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::codec;
use crate::error::{Error, Result};
use crate::registry::{self, Entry, Ops};
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

/// A function value: the [`SymbolId`] of registered code plus its captured state.
///
/// `A` is the argument tuple (`(u64,)`, `(u64, u64)`, `()`), `R` the return type.
/// Make one with [`func_of!`](crate::func_of!), [`bind!`](crate::bind!),
/// [`closure!`](crate::closure!) or [`Func::from_task`]; call it with
/// [`call`](Func::call); send it with any serde format.
///
/// * In binary formats it is a tuple of the 8-byte ID, the 8-byte signature
///   fingerprint and the state bytes: a free function is 18 bytes with bincode.
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
pub struct Func<A, R> {
    inner: Arc<Inner>,
    types: PhantomData<fn(A) -> R>,
}

struct Inner {
    entry: &'static Entry,
    state: Vec<u8>,
    prepared: Arc<dyn ErasedFunc>,
}

impl<A: 'static, R: 'static> Func<A, R> {
    /// Calls the function.
    ///
    /// # Panics
    ///
    /// Only if the function itself panics.
    pub fn call(&self, args: A) -> R {
        let mut args = Some(args);
        let mut out: Option<R> = None;
        let typed = self.inner.prepared.call_any(&mut args, &mut out);
        // Construction verified the types, so `call_any` always runs the function.
        debug_assert!(typed, "dilly: type check of a constructed Func failed");
        match out {
            Some(value) => value,
            None => unreachable!("dilly: Func::call on `{}` produced no result", self.name()),
        }
    }

    /// Builds the value for `entry` from its encoded `state`, checking the sender's
    /// `fingerprint` and this value's type parameters.
    pub fn from_parts(id: SymbolId, fingerprint: Fingerprint, state: Vec<u8>) -> Result<Self> {
        let entry = registry::lookup_callable(id, fingerprint)?;
        let prepared = entry.prepare(&state)?;
        Self::assemble(entry, state, prepared)
    }

    fn assemble(
        entry: &'static Entry,
        state: Vec<u8>,
        prepared: Arc<dyn ErasedFunc>,
    ) -> Result<Self> {
        let types = prepared.types();
        if types.args != TypeId::of::<A>() || types.ret != TypeId::of::<R>() {
            return Err(Error::TypeMismatch {
                name: entry.name(),
                registered: format!("Func<{}, {}>", types.args_name, types.ret_name),
                requested: format!("Func<{}, {}>", type_name::<A>(), type_name::<R>()),
            });
        }
        Ok(Func {
            inner: Arc::new(Inner {
                entry,
                state,
                prepared,
            }),
            types: PhantomData,
        })
    }

    /// Wraps a local value whose state the caller has already encoded.
    pub(crate) fn from_local(
        entry: &'static Entry,
        state: Vec<u8>,
        prepared: Arc<dyn ErasedFunc>,
    ) -> Self {
        match Self::assemble(entry, state, prepared) {
            Ok(func) => func,
            // The macros pass the same types to the entry and to the value.
            Err(err) => panic!("dilly: inconsistent macro expansion: {err}"),
        }
    }
}

impl<A, R> Func<A, R> {
    /// The canonical name of the registered code, e.g. `my_app::double`.
    pub fn name(&self) -> &'static str {
        self.inner.entry.name()
    }

    /// The registered code's stable ID.
    pub fn id(&self) -> SymbolId {
        self.inner.entry.id()
    }

    /// The signature fingerprint that travels with the value.
    pub fn fingerprint(&self) -> Fingerprint {
        self.inner.entry.fingerprint()
    }

    /// The registry entry of the code.
    pub fn entry(&self) -> &'static Entry {
        self.inner.entry
    }

    /// The encoded captured state (empty for functions that capture nothing).
    pub fn state(&self) -> &[u8] {
        &self.inner.state
    }

    /// The type-erased callable, for executors that move encoded arguments and results.
    pub fn erased(&self) -> &Arc<dyn ErasedFunc> {
        &self.inner.prepared
    }
}

impl<A: Serialize, R: DeserializeOwned> Func<A, R> {
    /// Encodes an argument tuple for [`ErasedFunc::call_bytes`] on a receiver.
    pub fn encode_args(&self, args: &A) -> Result<Vec<u8>> {
        codec::encode(args, "arguments")
    }

    /// Decodes a result produced by [`ErasedFunc::call_bytes`].
    pub fn decode_result(&self, bytes: &[u8]) -> Result<R> {
        codec::decode(bytes, "result")
    }
}

impl<A, R> Clone for Func<A, R> {
    fn clone(&self) -> Self {
        Func {
            inner: Arc::clone(&self.inner),
            types: PhantomData,
        }
    }
}

impl<A, R> fmt::Debug for Func<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Func")
            .field("name", &self.name())
            .field("signature", &self.inner.entry.signature())
            .field("state_len", &self.inner.state.len())
            .finish()
    }
}

impl<A, R> Serialize for Func<A, R> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entry = self.inner.entry;
        if serializer.is_human_readable() {
            let Ops::Func {
                state_to_readable, ..
            } = entry.ops()
            else {
                return Err(serde::ser::Error::custom(
                    "dilly: a Func names a type entry",
                ));
            };
            let state = state_to_readable(&self.inner.state).map_err(serde::ser::Error::custom)?;
            let mut s = serializer.serialize_struct("Func", 3)?;
            s.serialize_field("fn", entry.name())?;
            s.serialize_field("fingerprint", &entry.fingerprint().to_string())?;
            s.serialize_field("state", &*state)?;
            s.end()
        } else {
            let mut t = serializer.serialize_tuple(3)?;
            t.serialize_element(&entry.id().to_raw().to_le_bytes())?;
            t.serialize_element(&entry.fingerprint().to_raw().to_le_bytes())?;
            t.serialize_element(&Bytes(&self.inner.state))?;
            t.end()
        }
    }
}

/// Serializes a byte slice with `serialize_bytes` (length + raw bytes in bincode).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// Receives an owned byte buffer from any format (bytes, or a sequence of `u8`).
struct ByteBuf(Vec<u8>);

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
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<ByteBuf, S::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(ByteBuf(out))
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

impl<'de, A: 'static, R: 'static> Deserialize<'de> for Func<A, R> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_struct(
                "Func",
                &["fn", "fingerprint", "state"],
                ReadableVisitor(PhantomData),
            )
        } else {
            deserializer.deserialize_tuple(3, CompactVisitor(PhantomData))
        }
    }
}

struct CompactVisitor<A, R>(PhantomData<fn(A) -> R>);

impl<'de, A: 'static, R: 'static> Visitor<'de> for CompactVisitor<A, R> {
    type Value = Func<A, R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dilly function: (symbol id, fingerprint, state)")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let missing = |i| de::Error::invalid_length(i, &"3 fields");
        let id: [u8; 8] = seq.next_element()?.ok_or_else(|| missing(0))?;
        let fingerprint: [u8; 8] = seq.next_element()?.ok_or_else(|| missing(1))?;
        let ByteBuf(state) = seq.next_element()?.ok_or_else(|| missing(2))?;
        Func::from_parts(
            SymbolId::from_raw(u64::from_le_bytes(id)),
            Fingerprint::from_raw(u64::from_le_bytes(fingerprint)),
            state,
        )
        .map_err(de_error)
    }
}

struct ReadableVisitor<A, R>(PhantomData<fn(A) -> R>);

impl<'de, A: 'static, R: 'static> Visitor<'de> for ReadableVisitor<A, R> {
    type Value = Func<A, R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a dilly function: {"fn": name, "fingerprint": hex, "state": ...}"#)
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut entry: Option<&'static Entry> = None;
        let mut fingerprint: Option<Fingerprint> = None;
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
                "state" => {
                    let Some(entry) = entry else {
                        return Err(de::Error::custom(
                            "dilly: the `fn` field must come before `state`, so the state's type is known",
                        ));
                    };
                    state = Some(map.next_value_seed(ReadableState(entry))?);
                }
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["fn", "fingerprint", "state"],
                    ));
                }
            }
        }
        let entry = entry.ok_or_else(|| de::Error::missing_field("fn"))?;
        let fingerprint = fingerprint.ok_or_else(|| de::Error::missing_field("fingerprint"))?;
        let state = state.ok_or_else(|| de::Error::missing_field("state"))?;
        Func::from_parts(entry.id(), fingerprint, state).map_err(de_error)
    }
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

/// Prepared state for functions whose code borrows the state (`&self` methods,
/// closures, free functions with `S = ()`).
pub(crate) struct Shared<S, A, R, F> {
    pub(crate) state: S,
    pub(crate) call: F,
    pub(crate) types: PhantomData<fn(A) -> R>,
}

impl<S, A, R, F> ErasedFunc for Shared<S, A, R, F>
where
    S: Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: Serialize + 'static,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    fn call_bytes(&self, args: &[u8]) -> Result<Vec<u8>> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode(&(self.call)(&self.state, args), "result")
    }

    fn types(&self) -> FuncTypes {
        FuncTypes::of::<A, R>()
    }

    fn call_any(&self, args: &mut dyn Any, out: &mut dyn Any) -> bool {
        match (
            args.downcast_mut::<Option<A>>(),
            out.downcast_mut::<Option<R>>(),
        ) {
            (Some(args), Some(out)) => match args.take() {
                Some(args) => {
                    *out = Some((self.call)(&self.state, args));
                    true
                }
                None => false,
            },
            _ => false,
        }
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
    R: Serialize + 'static,
    F: Fn(S, A) -> R + Send + Sync + 'static,
{
    fn call_bytes(&self, args: &[u8]) -> Result<Vec<u8>> {
        let args: A = codec::decode(args, "arguments")?;
        codec::encode(&(self.call)(self.fresh_state(), args), "result")
    }

    fn types(&self) -> FuncTypes {
        FuncTypes::of::<A, R>()
    }

    fn call_any(&self, args: &mut dyn Any, out: &mut dyn Any) -> bool {
        match (
            args.downcast_mut::<Option<A>>(),
            out.downcast_mut::<Option<R>>(),
        ) {
            (Some(args), Some(out)) => match args.take() {
                Some(args) => {
                    *out = Some((self.call)(self.fresh_state(), args));
                    true
                }
                None => false,
            },
            _ => false,
        }
    }
}
