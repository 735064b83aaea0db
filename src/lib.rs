//! # dilly — closures, methods and nested functions as serde values
//!
//! Python needs dill or cloudpickle to send a lambda, a nested function or a bound
//! method to another process. dilly does it for Rust without ever shipping code: a
//! function value is the **name** of registered code (a stable 64-bit [`SymbolId`])
//! plus its **captured state**, and it serializes with any serde format. Any process
//! that links the same registry entry can call it; a `Func<A, R>` payload can only
//! call functions that were registered on purpose, with arguments of the registered
//! types.
//!
//! ```
//! use dilly::{Func, bind, closure, func_of};
//! use serde::{Deserialize, Serialize};
//!
//! // A free function.
//! #[dilly::func]
//! fn double(x: u64) -> u64 {
//!     x * 2
//! }
//!
//! // A type whose methods travel with their receiver, like Python's bound methods.
//! #[derive(Serialize, Deserialize)]
//! struct Transformer {
//!     factor: u64,
//! }
//!
//! #[dilly::methods]
//! impl Transformer {
//!     fn process_data(&self, x: u64, y: u64) -> u64 {
//!         x * y * self.factor
//!     }
//! }
//!
//! let t = Transformer { factor: 1 };
//! let offset = 10u64;
//! let names = vec!["alpha".to_string(), "beta".to_string()];
//!
//! let free: Func<(u64,), u64> = func_of!(double);
//! let method: Func<(u64, u64), u64> = bind!(t.process_data);
//! // Captured variables are found in the body; their types are written once.
//! let lambda = closure!([offset: u64, names: Vec<String>] move |x: u64| x + offset + names.len() as u64);
//!
//! // Any serde format: here dilly's compact bincode form, then JSON.
//! let sent = dilly::to_bytes(&(free, method, lambda))?;
//! let (free, method, lambda): (Func<(u64,), u64>, Func<(u64, u64), u64>, Func<(u64,), u64>) =
//!     dilly::from_bytes(&sent)?;
//! assert_eq!(free.call((21,)), 42);
//! assert_eq!(method.call((6, 7)), 42);
//! assert_eq!(lambda.call((30,)), 42);
//!
//! let json = serde_json::to_string(&method).unwrap();
//! assert!(json.contains("Transformer::process_data"));
//! # Ok::<(), dilly::Error>(())
//! ```
//!
//! ## The pieces
//!
//! * [`#[dilly::func]`](macro@func) registers a free or nested function;
//!   [`func_of!`] makes its value. A nested function is named by its enclosing
//!   function as well (`my_app::first::helper`; see [`registry::Entry::name`]), so
//!   same-named nested functions of different functions never collide.
//! * [`#[dilly::methods]`](macro@methods) registers the methods of an `impl` block;
//!   [`bind!`] makes a bound method, receiver included.
//! * [`closure!`] lifts a closure's body into a registered function and its captures
//!   into a generated serde struct.
//! * [`#[derive(Dilly)]`](macro@Dilly) registers a type so its values travel as
//!   `Box<dyn` [`Object`]`>`; with `#[dilly(task)]` a type implementing [`Task`] is a
//!   function value of its own.
//! * [`registry`] is the link-time index; [`codec`] the byte format ([`to_bytes`],
//!   [`from_bytes`], [`CallFrame`]).
//! * [`same_build`]: `closure!` without capture types makes a
//!   `Func<A, R, `[`SameBuild`]`>`, named by its code's address in this very
//!   executable; only the identical executable (a pool's workers, say) can call it.
//!
//! Every failure on the receiving side — unknown ID, signature mismatch between two
//! builds, truncated or hostile bytes — is an [`Error`], never a panic.
//!
//! ## Collectors
//!
//! Entries are gathered by `linkme` link sections. On targets without them, enable
//! the `inventory` feature to use the `inventory` crate instead; behaviour is the
//! same, except that `dilly-pool`'s zero-set-up workers then need
//! `dilly_pool::serve_if_worker()` first in `main` (see that crate's docs).
//! Items registered in a library crate are found as long as the binary links that
//! crate, i.e. refers to anything in it (a `use that_crate as _;` is enough).

#![deny(unsafe_code)]

extern crate self as dilly;

pub mod codec;
mod construct;
mod entry;
mod error;
mod func;
mod object;
mod prepared;
pub mod registry;
pub mod same_build;
pub mod shape;
mod symbol;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::codec::{CallFrame, Limits, VERSION, from_bytes, from_bytes_with_limits, to_bytes};
pub use crate::entry::{ErasedFunc, Object, Task};
pub use crate::error::{Error, Result};
pub use crate::func::{Func, Mode, Portable, RawFunc, SameBuild};
pub use crate::symbol::{BuildId, Fingerprint, SymbolId};
#[doc = include_str!("macro_docs/derive.md")]
pub use dilly_derive::Dilly;
#[doc = include_str!("macro_docs/bind.md")]
pub use dilly_derive::bind;
#[doc = include_str!("macro_docs/closure.md")]
pub use dilly_derive::closure;
#[doc = include_str!("macro_docs/func.md")]
pub use dilly_derive::func;
#[doc = include_str!("macro_docs/func_of.md")]
pub use dilly_derive::func_of;
#[doc = include_str!("macro_docs/methods.md")]
pub use dilly_derive::methods;

/// Internal name of the hidden module, so `crate::private::X` reads naturally.
use crate::__private as private;
