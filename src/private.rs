//! What the macros' output refers to. Not public API: no stability promise, no docs.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::Result;
use crate::func::{ErasedFunc, Func, Owned, SameBuild, Shared};
use crate::object::{Object, Task};
use crate::registry::{Ops, PrepareFn, ShapesFn};
use crate::same_build;
use crate::shape::Shapes;

#[cfg(not(feature = "inventory"))]
pub use crate::registry::REGISTRY;
#[cfg(feature = "inventory")]
pub use crate::registry::Registration;
pub use crate::registry::{Entry, Kind};
#[cfg(feature = "inventory")]
pub use inventory;
pub use linkme;
pub use serde;

/// Registers a `static` entry with the collector this build of dilly uses.
#[cfg(not(feature = "inventory"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __register {
    ($entry:ident) => {
        const _: () = {
            #[::dilly::__private::linkme::distributed_slice(::dilly::__private::REGISTRY)]
            #[linkme(crate = ::dilly::__private::linkme)]
            static REGISTRATION: &::dilly::__private::Entry = &$entry;
        };
    };
}

/// Registers a `static` entry with the collector this build of dilly uses.
#[cfg(feature = "inventory")]
#[macro_export]
#[doc(hidden)]
macro_rules! __register {
    ($entry:ident) => {
        ::dilly::__private::inventory::submit! {
            ::dilly::__private::Registration(&$entry)
        }
    };
}

/// A function entry whose captured state has type `S`; `shapes` traces the state,
/// argument and result types ([`shapes`] or [`shapes_of`]).
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

/// What a registered function's result must be: the caller decodes it, and its
/// shape is part of the function's identity across builds.
#[diagnostic::on_unimplemented(
    message = "the result type `{Self}` of a registered function must implement serde's `Serialize` and `Deserialize`",
    label = "this result type",
    note = "derive `Serialize, Deserialize` for it: the caller decodes the result, and dilly compares its data shape across builds"
)]
pub trait Output: Serialize + DeserializeOwned + 'static {}

impl<T: Serialize + DeserializeOwned + 'static> Output for T {}

/// The entry of a `#[derive(Dilly)]` type.
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
        Shapes::of_type::<T>,
    )
}

/// The entry of a `#[dilly(task)]` type's call.
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
    T::Output: Serialize + DeserializeOwned + 'static,
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

/// Decodes `S` and pairs it with code that borrows it.
pub fn prepare_shared<S, A, R, F>(encoded: &[u8], call: F) -> Result<Arc<dyn ErasedFunc>>
where
    S: Serialize + DeserializeOwned + Send + Sync + 'static,
    A: DeserializeOwned + 'static,
    R: crate::private::Output,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    let state: S = codec::decode(encoded, "state")?;
    Ok(Arc::new(Shared {
        state,
        // Encoded again only if the value is sent on: receiving allocates nothing
        // for the bytes.
        encoded: OnceLock::new(),
        call,
        types: PhantomData,
    }))
}

/// Checks that `S` decodes and pairs the bytes with code that consumes a fresh copy
/// per call.
pub fn prepare_owned<S, A, R, F>(state: &[u8], call: F) -> Result<Arc<dyn ErasedFunc>>
where
    S: DeserializeOwned + 'static,
    A: DeserializeOwned + 'static,
    R: crate::private::Output,
    F: Fn(S, A) -> R + Send + Sync + 'static,
{
    let _: S = codec::decode(state, "state")?;
    Ok(Arc::new(Owned {
        state: state.to_vec(),
        call,
        types: PhantomData,
    }))
}

/// Encodes the state of a value being made; `owner` names it in the panic message.
/// `described` says whether the state's type travels self-described.
fn encode_state<S: Serialize + ?Sized>(
    owner: &dyn std::fmt::Display,
    state: &S,
    described: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match codec::encode_into_as(state, "state", &mut out, described).map(|()| out) {
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
    R: crate::private::Output,
    F: Fn(&S, A) -> R + Send + Sync + 'static,
{
    let described = entry.shapes().state().needs_self_description();
    let encoded = encode_state(&format_args!("`{}`", entry.name()), &state, described);
    let prepared = Arc::new(Shared {
        state,
        encoded: OnceLock::from(encoded),
        call,
        types: PhantomData,
    });
    Func::from_local(entry, prepared)
}

/// A bound method: the receiver is encoded, and prepared from those bytes exactly as
/// a receiving process would.
pub fn bound_value<S, A, R>(entry: &'static Entry, receiver: &S) -> Func<A, R>
where
    S: Serialize + ?Sized,
    A: 'static,
    R: 'static,
{
    let described = entry.shapes().state().needs_self_description();
    let bytes = encode_state(&format_args!("`{}`", entry.name()), receiver, described);
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
    R: crate::private::Output,
    L: Fn(&C, A) -> R + Copy + Send + Sync + 'static,
{
    let offset = same_build::offset_of(same_build::preparer_for::<C, A, R, L>(&lifted));
    let described = codec::needs_self_description::<C>();
    let encoded = encode_state(&"a same-build closure", &captures, described);
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

/// What a captured variable must be to travel.
#[diagnostic::on_unimplemented(
    message = "captured variable of type `{Self}` cannot travel: it must implement serde's `Serialize` and `Deserialize` and be `Send + Sync + 'static`",
    label = "this capture",
    note = "derive `Serialize, Deserialize` for the type, or capture a serializable part of it"
)]
pub trait Capture {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Capture for T {}

/// Type-checks a capture's written type, reporting at its span.
pub const fn assert_capture<T: Capture>() {}
