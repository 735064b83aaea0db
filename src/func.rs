//! [`Func`]: a function value — registered code plus captured state — that is
//! `Clone + Send + Sync + Serialize + Deserialize`.

use std::any::{TypeId, type_name};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::entry::{Entry, ErasedFunc};
use crate::error::{Error, Result};
use crate::registry;
use crate::same_build;
use crate::symbol::{BuildId, Fingerprint, SymbolId};

mod de;
mod ser;

pub(crate) use de::de_error;
pub(crate) use ser::Bytes;

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
/// // `double` stands inside this example's function, so that function is part of
/// // its name (see `Entry::name`).
/// assert!(g.name().starts_with(module_path!()) && g.name().ends_with("::double"));
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
        // The entry traced the argument types (a same-build value's code knows
        // them): whether they travel self-described, how many fields each struct
        // in them is read with.
        let shape = match self.origin {
            Origin::Registered(entry) => entry.shapes().args(),
            Origin::Address { .. } => (self.prepared.types().args_shape)(),
        };
        codec::encode_into_as(args, "arguments", out, Some(shape))
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
