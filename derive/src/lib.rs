//! Procedural macros of `dilly`. Use them through the `dilly` crate.
use proc_macro::TokenStream;

/// Registers a function.
#[proc_macro_attribute]
pub fn func(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
/// Registers methods.
#[proc_macro_attribute]
pub fn methods(_attr: TokenStream, item: TokenStream) -> TokenStream {
    item
}
/// Value of a function.
#[proc_macro]
pub fn func_of(item: TokenStream) -> TokenStream {
    item
}
/// Bound method.
#[proc_macro]
pub fn bind(item: TokenStream) -> TokenStream {
    item
}
/// Closure.
#[proc_macro]
pub fn closure(item: TokenStream) -> TokenStream {
    item
}
/// Derive.
#[proc_macro_derive(Dilly, attributes(dilly))]
pub fn derive_dilly(_item: TokenStream) -> TokenStream {
    TokenStream::new()
}
