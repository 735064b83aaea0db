//! Procedural macros of [`dilly`](https://docs.rs/dilly). Use them through the
//! `dilly` crate, which re-exports each one and documents it; the generated code
//! refers only to `::dilly::__private`.
//!
//! Each macro parses its input, validates it (collecting every error, each on the
//! tokens at fault), and expands. A rejected item still expands to something that
//! type-checks, so one mistake is reported once.

#![forbid(unsafe_code)]

mod attr;
mod bind;
mod closure;
mod derive;
mod errors;
mod func;
mod methods;
mod name;
mod sig;

use proc_macro::TokenStream;

/// Registers a free or nested function so [`func_of!`] can make it a value.
///
/// The name is `module_path!()` + `::` + the function's name; a nested function's
/// name includes its enclosing function (`my_app::first::helper`). `name = "..."`
/// gives one explicitly.
#[proc_macro_attribute]
pub fn func(attr: TokenStream, item: TokenStream) -> TokenStream {
    func::expand(attr.into(), item.into()).into()
}

/// Registers the methods of an inherent `impl` block for [`bind!`] and [`func_of!`].
#[proc_macro_attribute]
pub fn methods(attr: TokenStream, item: TokenStream) -> TokenStream {
    methods::expand(attr.into(), item.into()).into()
}

/// The value of a function registered with `#[dilly::func]` (or of an associated
/// function registered with `#[dilly::methods]`).
#[proc_macro]
pub fn func_of(input: TokenStream) -> TokenStream {
    bind::expand_func_of(input.into()).into()
}

/// A bound method: `bind!(value.method)`.
#[proc_macro]
pub fn bind(input: TokenStream) -> TokenStream {
    bind::expand_bind(input.into()).into()
}

/// A closure as a registered function plus its captured state.
#[proc_macro]
pub fn closure(input: TokenStream) -> TokenStream {
    closure::expand(input.into()).into()
}

/// Registers a type so its values travel as `Box<dyn dilly::Object>`.
#[proc_macro_derive(Dilly, attributes(dilly))]
pub fn derive_dilly(input: TokenStream) -> TokenStream {
    derive::expand(input.into()).into()
}
