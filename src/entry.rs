//! A registry entry ([`Entry`]) and the type-erased things it yields: a prepared
//! function ([`ErasedFunc`]) and a value of a registered type ([`Object`], and
//! [`Task`] for one that is itself a function). It needs only names, errors and
//! shapes; the registry and the function values build on it.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::panic::Location;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::{Error, Result};
use crate::shape::{Shapes, TypeShape};
use crate::symbol::{Fingerprint, SymbolId};

/// What kind of item a registry entry describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A free or nested function (`#[dilly::func]`), or an associated function.
    Function,
    /// A method with a receiver (`#[dilly::methods]`), called through `bind!`.
    Method,
    /// The body of a `closure!`.
    Closure,
    /// A user type (`#[derive(Dilly)]`) whose values travel as `Box<dyn Object>`.
    Type,
    /// The call of a task object (`#[derive(Dilly)] #[dilly(task)]`).
    Task,
}

impl Kind {
    /// A lowercase noun for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Function => "function",
            Kind::Method => "method",
            Kind::Closure => "closure",
            Kind::Type => "type",
            Kind::Task => "task",
        }
    }

    pub(crate) fn is_callable(self) -> bool {
        !matches!(self, Kind::Type)
    }
}

/// Builds a callable from a function entry's encoded state, keeping the bytes.
pub(crate) type PrepareFn = fn(&[u8]) -> Result<Arc<dyn ErasedFunc>>;
/// Decodes encoded state into something that serializes it readably.
pub(crate) type StateToReadableFn = fn(&[u8]) -> Result<Box<dyn erased_serde::Serialize>>;
/// Reads state from a readable format and encodes it.
pub(crate) type StateFromReadableFn =
    fn(&mut dyn erased_serde::Deserializer<'_>) -> Result<Vec<u8>, erased_serde::Error>;
/// Traces an entry's data shapes.
pub(crate) type ShapesFn = fn() -> Shapes;
/// Reads a type-erased object from any format.
pub(crate) type ObjectFromFn =
    fn(&mut dyn erased_serde::Deserializer<'_>) -> Result<Box<dyn Object>, erased_serde::Error>;

#[derive(Clone, Copy)]
pub(crate) enum Ops {
    Func {
        prepare: PrepareFn,
        state_to_readable: StateToReadableFn,
        state_from_readable: StateFromReadableFn,
    },
    Object {
        deserialize: ObjectFromFn,
    },
}

/// One registered item. Entries are `static`s emitted by the macros; user code reads
/// them through [`lookup`](crate::registry::lookup),
/// [`entries`](crate::registry::entries) and the accessors below.
pub struct Entry {
    /// The name written at compile time: final unless `scope` is set, then the name
    /// the item has when it stands directly in its module.
    pub(crate) name: &'static str,
    signature: &'static str,
    pub(crate) kind: Kind,
    /// [`SymbolId::of`] `name`.
    pub(crate) id: SymbolId,
    pub(crate) fingerprint: Fingerprint,
    ops: Ops,
    trace_shapes: ShapesFn,
    /// Set for items named by where they stand (see `Entry::name`).
    pub(crate) scope: Option<Scope>,
    /// The name and ID of a scoped item, resolved on first use by the registry.
    pub(crate) resolved: OnceLock<(&'static str, SymbolId)>,
    /// Where the macro that registered the item was written.
    pub(crate) location: &'static Location<'static>,
    /// The traced data shapes: traced on first use, as few entries are ever checked.
    shapes: OnceLock<Shapes>,
    /// The prepared function for an empty state (free functions, closures without
    /// captures): immutable, so every receipt can share it instead of allocating.
    stateless: OnceLock<Arc<dyn ErasedFunc>>,
}

/// Where a macro-registered item stands, so that its name can include the function
/// it is nested in. Rust gives a macro no view of the tokens around it, so the scope
/// is read at run time from `std::any::type_name` of an item declared beside it.
#[derive(Clone, Copy)]
pub(crate) struct Scope {
    /// `module_path!()` where the item is written.
    module: &'static str,
    /// The item's path within its scope: `helper`, `Local::go`.
    suffix: &'static str,
    /// `type_name` of an item declared beside it: its scope, then `::` and one segment.
    marker: fn() -> &'static str,
    /// A hash of the item's own tokens: tells apart same-named items in different
    /// blocks of one function.
    pub(crate) tokens: u64,
}

impl Scope {
    pub(crate) const fn new(
        module: &'static str,
        suffix: &'static str,
        marker: fn() -> &'static str,
        tokens: u64,
    ) -> Scope {
        Scope {
            module,
            suffix,
            marker,
            tokens,
        }
    }

    /// The enclosing function's path (`my_app::first`), or `None` for an item that
    /// stands directly in its module.
    pub(crate) fn enclosing(&self) -> Option<&'static str> {
        let marker = (self.marker)();
        let scope = marker.rsplit_once("::").map_or(marker, |(scope, _)| scope);
        (scope != self.module).then_some(scope)
    }
}

impl Entry {
    #[track_caller]
    pub(crate) const fn new(
        name: &'static str,
        signature: &'static str,
        kind: Kind,
        ops: Ops,
        trace_shapes: ShapesFn,
    ) -> Entry {
        Entry {
            name,
            signature,
            kind,
            id: SymbolId::of(name),
            fingerprint: Fingerprint::of(signature),
            ops,
            trace_shapes,
            shapes: OnceLock::new(),
            stateless: OnceLock::new(),
            scope: None,
            resolved: OnceLock::new(),
            location: Location::caller(),
        }
    }

    /// This entry, named by where it stands: `name` is then the name it has
    /// directly in its module, and a nested item's name includes its enclosing
    /// function.
    pub(crate) const fn scoped(mut self, scope: Scope) -> Entry {
        self.scope = Some(scope);
        self
    }

    /// Where the item was registered: the file, line and column of its macro.
    pub fn location(&self) -> &'static Location<'static> {
        self.location
    }

    /// The name by scope alone, for an item nested in a function.
    pub(crate) fn base_name(&self) -> Option<String> {
        let scope = self.scope.as_ref()?;
        Some(format!("{}::{}", scope.enclosing()?, scope.suffix))
    }

    /// The signature as written, e.g. `fn(&Transformer, u64, u64) -> u64`.
    pub fn signature(&self) -> &'static str {
        self.signature
    }

    /// [`Fingerprint::of`] the signature.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The data shapes of the state, arguments and result, as serde sees them
    /// (see [`crate::shape`]). Traced on the first call, then kept.
    #[inline]
    pub fn shapes(&self) -> &Shapes {
        self.shapes.get_or_init(self.trace_shapes)
    }

    /// [`Shapes::hash`] of [`shapes`](Entry::shapes): what compact frames carry.
    #[inline]
    pub fn shape(&self) -> Fingerprint {
        self.shapes().hash()
    }

    /// Checks that the sender's data `shape` matches this build's.
    #[inline]
    pub fn check_shape(&self, shape: Fingerprint) -> Result<()> {
        if shape == self.shape() {
            Ok(())
        } else {
            Err(self.shape_mismatch(shape))
        }
    }

    #[cold]
    fn shape_mismatch(&self, found: Fingerprint) -> Error {
        let shapes = self.shapes();
        Error::ShapeMismatch {
            name: self.name().into(),
            expected: shapes.to_string(),
            expected_shape: shapes.hash(),
            found,
        }
    }

    /// What kind of item this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn ops(&self) -> Ops {
        self.ops
    }

    /// Checks that the sender's `fingerprint` matches this build's signature.
    pub fn check_fingerprint(&self, fingerprint: Fingerprint) -> Result<()> {
        if fingerprint == self.fingerprint {
            Ok(())
        } else {
            Err(Error::SignatureMismatch {
                name: self.name().into(),
                expected: self.signature.into(),
                expected_fingerprint: self.fingerprint,
                found: fingerprint,
            })
        }
    }

    /// Decodes `state` and returns the function ready to be called with encoded
    /// arguments. This is what a worker does once per function it is sent.
    pub fn prepare(&self, state: &[u8]) -> Result<Arc<dyn ErasedFunc>> {
        let Ops::Func { prepare, .. } = self.ops else {
            return Err(self.wrong_kind("function"));
        };
        if !state.is_empty() {
            return prepare(state);
        }
        if let Some(shared) = self.stateless.get() {
            return Ok(Arc::clone(shared));
        }
        let prepared = prepare(state)?;
        Ok(Arc::clone(self.stateless.get_or_init(|| prepared)))
    }

    pub(crate) fn wrong_kind(&self, expected: &'static str) -> Error {
        Error::WrongKind {
            name: self.name().into(),
            expected: expected.into(),
            found: self.kind.describe().into(),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name())
            .field("kind", &self.kind)
            .field("signature", &self.signature)
            .field("id", &self.id())
            .field("location", &self.location)
            .finish()
    }
}

/// A registered function with its captured state decoded, ready to be called with
/// encoded arguments: what a worker process holds after it has been sent a function.
///
/// Obtained from [`Entry::prepare`](crate::registry::Entry::prepare); a typed
/// [`Func`](crate::Func) holds one too.
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
    /// The traced shape of the argument tuple.
    pub(crate) args_shape: fn() -> &'static TypeShape,
}

impl FuncTypes {
    pub(crate) fn of<A: DeserializeOwned + 'static, R: 'static>() -> FuncTypes {
        FuncTypes {
            args: TypeId::of::<A>(),
            ret: TypeId::of::<R>(),
            args_name: type_name::<A>(),
            ret_name: type_name::<R>(),
            args_shape: codec::shape_of::<A>,
        }
    }
}

/// A value of a `#[derive(Dilly)]` type, usable behind `Box<dyn Object>`: it
/// serializes with its type's registered name and deserializes, in any process that
/// registers the type, back into that type.
///
/// Implemented only by `#[derive(Dilly)]`.
///
/// ```
/// use dilly::Object;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, dilly::Dilly, Debug, PartialEq)]
/// struct Point { x: i32, y: i32 }
///
/// let value: Box<dyn Object> = Box::new(Point { x: 1, y: 2 });
/// let bytes = dilly::to_bytes(&value)?;
/// let back: Box<dyn Object> = dilly::from_bytes(&bytes)?;
/// assert_eq!(back.downcast_ref::<Point>(), Some(&Point { x: 1, y: 2 }));
/// # Ok::<(), dilly::Error>(())
/// ```
pub trait Object: erased_serde::Serialize + Any + Send + Sync {
    /// The registry entry of this value's type.
    #[doc(hidden)]
    fn __dilly_entry(&self) -> &'static Entry;
}

/// A value that is itself a function: a struct whose fields are the captured state
/// and whose [`call`](Task::call) is the code. `#[derive(Dilly)]` with
/// `#[dilly(task)]` registers the call, and [`Func::from_task`](crate::Func::from_task) makes the sendable
/// value.
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, dilly::Dilly)]
/// #[dilly(task)]
/// struct Scale { factor: u64 }
///
/// impl dilly::Task for Scale {
///     type Args = (u64,);
///     type Output = u64;
///     fn call(&self, (x,): (u64,)) -> u64 { x * self.factor }
/// }
///
/// let f = dilly::Func::from_task(Scale { factor: 3 });
/// let g: dilly::Func<(u64,), u64> = dilly::from_bytes(&dilly::to_bytes(&f)?)?;
/// assert_eq!(g.call((14,)), 42);
/// # Ok::<(), dilly::Error>(())
/// ```
pub trait Task: Object {
    /// The argument tuple.
    type Args;
    /// The result.
    type Output;
    /// Runs the task.
    fn call(&self, args: Self::Args) -> Self::Output;
}

/// What a registered function's result must be: the caller decodes it, and its
/// shape is part of the function's identity across builds.
#[diagnostic::on_unimplemented(
    message = "the result type `{Self}` of a registered function must implement serde's `Serialize` and `Deserialize`",
    label = "this result type",
    note = "derive `Serialize, Deserialize` for it: the caller decodes the result, and dilly compares its data shape across builds"
)]
pub trait Output: Serialize + DeserializeOwned + 'static {}

impl<T: Serialize + DeserializeOwned + 'static> Output for T {}
