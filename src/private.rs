//! What the macros' output refers to. Not public API: no stability promise, no docs.

pub use crate::construct::{
    Capture, ClosureEntry, RegisteredTask, bound_value, check_capture, closure_entry,
    closure_prepared, closure_value, func_entry, object_entry, same_build_value, scoped, shapes,
    shapes_of, shared_value, task_entry,
};
pub use crate::entry::{Entry, Kind, Output};
pub use crate::prepared::{prepare_owned, prepare_shared};
#[cfg(not(feature = "inventory"))]
pub use crate::registry::REGISTRY;
#[cfg(feature = "inventory")]
pub use crate::registry::Registration;
#[cfg(feature = "inventory")]
pub use inventory;
pub use linkme;
pub use serde;

/// Registers a `static` entry with the collector this build of dilly uses.
#[cfg(not(feature = "inventory"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __register {
    ($entry:ident $(. $field:ident)?) => {
        const _: () = {
            #[::dilly::__private::linkme::distributed_slice(::dilly::__private::REGISTRY)]
            #[linkme(crate = ::dilly::__private::linkme)]
            static REGISTRATION: &::dilly::__private::Entry = &$entry $(. $field)?;
        };
    };
}

/// Registers a `static` entry with the collector this build of dilly uses.
#[cfg(feature = "inventory")]
#[macro_export]
#[doc(hidden)]
macro_rules! __register {
    ($entry:ident $(. $field:ident)?) => {
        ::dilly::__private::inventory::submit! {
            ::dilly::__private::Registration(&$entry $(. $field)?)
        }
    };
}
