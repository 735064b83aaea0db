//! What the macros' output calls to build registry entries and function values;
//! reached through the hidden `__private` re-exports.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::entry::{
    Entry, ErasedFunc, Kind, Object, Ops, Output, PrepareFn, Scope, ShapesFn, Task,
};
use crate::error::Result;
use crate::func::{Func, SameBuild};
use crate::prepared::{Shared, prepare_shared};
use crate::same_build;
use crate::shape::{Shapes, TypeShape};

/// A function entry whose captured state has type `S`; `shapes` traces the state,
/// argument and result types ([`shapes`] or [`shapes_of`]).
#[track_caller]
pub const fn func_entry<S>(
    name: &'static str,
    signature: &'static str,
    kind: Kind,
    prepare: PrepareFn,
    shapes: ShapesFn,
) -> Entry
where
    S: Serialize + DeserializeOwned + 'static,
{
    Entry::new(
        name,
        signature,
        kind,
        Ops::Func {
            prepare,
            state_to_readable: state_to_readable::<S>,
            state_from_readable: state_from_readable::<S>,
        },
        shapes,
    )
}

/// Traces the shapes of state `S`, arguments `A` and result `R`.
pub fn shapes<S, A, R>() -> Shapes
where
    S: DeserializeOwned,
    A: DeserializeOwned,
    R: Output,
{
    Shapes::of::<S, A, R>()
}

/// [`shapes`] with the result type taken from the lifted body of a `closure!`.
pub fn shapes_of<S, A, R, F>(_lifted: &F) -> Shapes
where
    S: DeserializeOwned,
    A: DeserializeOwned,
    R: Output,
    F: Fn(&S, A) -> R,
{
    Shapes::of::<S, A, R>()
}

/// `entry`, named by where it stands: `entry`'s name is the one it has directly in
/// `module`; nested in a function, it is named by the scope `marker` (the
/// `type_name` of an item beside it, one segment below the scope) and `suffix`.
pub const fn scoped(
    entry: Entry,
    module: &'static str,
    suffix: &'static str,
    marker: fn() -> &'static str,
    tokens: u64,
) -> Entry {
    entry.scoped(Scope::new(module, suffix, marker, tokens))
}

/// The entry of a `#[derive(Dilly)]` type.
#[track_caller]
pub const fn object_entry<T>(name: &'static str) -> Entry
where
    T: Object + DeserializeOwned,
{
    Entry::new(
        name,
        "type",
        Kind::Type,
        Ops::Object {
            deserialize: deserialize_object::<T>,
        },
        object_shapes::<T>,
    )
}

/// The shapes of a `#[derive(Dilly)]` type, and whether its values write the
/// fields their `Deserialize` reads when written compact.
fn object_shapes<T: Object + DeserializeOwned>() -> Shapes {
    Shapes::of_type::<T>(|value, shape| {
        codec::writes_fields_as_read(value as &dyn erased_serde::Serialize, shape)
    })
}

/// The entry of a `#[dilly(task)]` type's call.
#[track_caller]
pub const fn task_entry<T>(name: &'static str, signature: &'static str) -> Entry
where
    T: Task + Serialize + DeserializeOwned,
    T::Args: DeserializeOwned + 'static,
    T::Output: Output,
{
    func_entry::<T>(
        name,
        signature,
        Kind::Task,
        prepare_task::<T>,
        shapes::<T, T::Args, T::Output>,
    )
}

fn prepare_task<T>(state: &[u8]) -> Result<Arc<dyn ErasedFunc>>
where
    T: Task + Serialize + DeserializeOwned,
    T::Args: DeserializeOwned + 'static,
    T::Output: Output,
{
    prepare_shared::<T, T::Args, T::Output, _>(state, |t: &T, args| t.call(args))
}

fn state_to_readable<S>(state: &[u8]) -> Result<Box<dyn erased_serde::Serialize>>
where
    S: Serialize + DeserializeOwned + 'static,
{
    let value: S = codec::decode(state, "state")?;
    Ok(Box::new(value))
}

fn state_from_readable<S>(
    de: &mut dyn erased_serde::Deserializer<'_>,
) -> Result<Vec<u8>, erased_serde::Error>
where
    S: Serialize + DeserializeOwned + 'static,
{
    let value: S = erased_serde::deserialize(de)?;
    codec::encode_typed(&value, "state").map_err(serde::de::Error::custom)
}

fn deserialize_object<T>(
    de: &mut dyn erased_serde::Deserializer<'_>,
) -> Result<Box<dyn Object>, erased_serde::Error>
where
    T: Object + DeserializeOwned,
{
    let value: T = erased_serde::deserialize(de)?;
    Ok(Box::new(value))
}

/// Encodes the state of a value being made; `owner` names it in the panic message.
/// `shape` is the traced shape of the state's type.
fn encode_state<S: Serialize + ?Sized>(
    owner: &dyn std::fmt::Display,
    state: &S,
    shape: &TypeShape,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match codec::encode_into_as(state, "state", &mut out, Some(shape)).map(|()| out) {
        Ok(bytes) => bytes,
        Err(err) => panic!("dilly: the captured state of {owner} cannot be encoded: {err}"),
    }
}

/// A local value whose state the caller owns: encoded once for sending, and kept as
/// is for local calls.
pub fn shared_value<S, A, R, F>(entry: &'static Entry, state: S, call: F) -> Func<A, R>
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    Func::from_local(entry, closure_prepared(entry, state, call))
}

/// A bound method: the receiver is encoded, and prepared from those bytes exactly as
/// a receiving process would.
pub fn bound_value<S, A, R>(entry: &'static Entry, receiver: &S) -> Func<A, R>
where
    S: Serialize + ?Sized,
    A: 'static,
    R: 'static,
{
    let bytes = encode_state(
        &format_args!("`{}`", entry.name()),
        receiver,
        entry.shapes().state(),
    );
    match entry.prepare(&bytes) {
        Ok(prepared) => Func::from_local(entry, prepared),
        Err(err) => panic!(
            "dilly: the receiver of `{}` does not decode from its own encoding: {err}",
            entry.name()
        ),
    }
}

/// A same-build closure value: `lifted` is the closure body taking the captures by
/// reference; its code is named by address in this executable.
pub fn same_build_value<C, A, R, L>(captures: C, lifted: L) -> Func<A, R, SameBuild>
where
    C: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    L: Fn(&C, A) -> R + Copy + Send + Sync + 'static,
{
    let offset = same_build::offset_of(same_build::preparer_for::<C, A, R, L>(&lifted));
    let encoded = encode_state(&"a same-build closure", &captures, codec::shape_of::<C>());
    let prepared = Arc::new(Shared {
        state: captures,
        encoded: OnceLock::from(encoded),
        call: lifted,
        types: PhantomData,
    });
    match Func::from_address(prepared, offset) {
        Ok(func) => func,
        Err(err) => panic!("dilly: {err}"),
    }
}

/// Implemented by `#[derive(Dilly)] #[dilly(task)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not registered as a task",
    label = "needs `#[derive(Dilly)]` with `#[dilly(task)]`",
    note = "add `#[dilly(task)]` next to `#[derive(Dilly)]` on `{Self}`"
)]
pub trait RegisteredTask {
    /// The registered call of the task.
    fn __dilly_task_entry() -> &'static Entry;
}

/// What a captured variable must be to travel; `Name` is the marker type that
/// `closure!` names after the capture, so the message can name it.
#[diagnostic::on_unimplemented(
    message = "captured variable `{Name}` of type `{Self}` cannot travel: it must implement serde's `Serialize` and `Deserialize` and be `Send + Sync + 'static`",
    label = "`{Name}` is captured here",
    note = "derive `Serialize, Deserialize` for the type, or capture a serializable part of it"
)]
pub trait Capture<Name = ()>: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static, Name> Capture<Name> for T {}

/// Type-checks the written type `T` of the capture named by the marker `Name`.
/// `closure!` calls it first, at the span of its other uses of the captures, so
/// rustc reports a failed bound once, with this message.
pub const fn check_capture<T: Capture<Name>, Name>() {}

/// The registry entry of a `closure!`, with the function that makes a local value
/// from its captured state `S`. The value is made through `make`, so the code at the
/// macro's call site puts no bounds on `S`: they are checked once, where this entry
/// is built.
pub struct ClosureEntry<S> {
    /// The registered code.
    pub entry: Entry,
    /// Encodes the state and pairs it with the code: the local value's callable.
    pub make: fn(S) -> Arc<dyn ErasedFunc>,
}

/// A [`ClosureEntry`].
pub const fn closure_entry<S>(entry: Entry, make: fn(S) -> Arc<dyn ErasedFunc>) -> ClosureEntry<S> {
    ClosureEntry { entry, make }
}

/// The callable of a local value whose state the caller owns: the state encoded once
/// for sending, and kept as is for local calls.
pub fn closure_prepared<S, A, R, F>(entry: &'static Entry, state: S, call: F) -> Arc<dyn ErasedFunc>
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: Output,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    let encoded = encode_state(
        &format_args!("`{}`", entry.name()),
        &state,
        entry.shapes().state(),
    );
    Arc::new(Shared {
        state,
        encoded: OnceLock::from(encoded),
        call,
        types: PhantomData,
    })
}

/// The value of a `closure!` from the callable its entry made; `lifted` (the
/// closure's body taking the state) only fixes the argument and result types.
pub fn closure_value<S, A, R, F>(
    entry: &'static Entry,
    prepared: Arc<dyn ErasedFunc>,
    lifted: F,
) -> Func<A, R>
where
    A: 'static,
    R: 'static,
    F: Fn(&S, A) -> R,
{
    let _ = lifted;
    Func::from_local(entry, prepared)
}
