//! `bind!(value.method)` and `func_of!(path)`: name the companions that
//! `#[dilly::methods]` and `#[dilly::func]` generate.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Expr, Member, Path};

use crate::sig;

pub(crate) fn expand_bind(input: TokenStream) -> TokenStream {
    let expr: Expr = match syn::parse2(input.clone()) {
        Ok(expr) => expr,
        Err(_) => return usage_error(&input),
    };
    match expr {
        Expr::Field(field) => match &field.member {
            Member::Named(method) => {
                let base = &field.base;
                let companion = sig::companion("bind", method, method.span());
                quote!((#base).#companion())
            }
            Member::Unnamed(_) => usage_error(&field.member),
        },
        other => usage_error(&other),
    }
}

fn usage_error<T: quote::ToTokens>(tokens: &T) -> TokenStream {
    syn::Error::new_spanned(
        tokens,
        "bind! takes `value.method` for a method registered with #[dilly::methods], e.g. `bind!(t.process_data)`",
    )
    .to_compile_error()
}

pub(crate) fn expand_func_of(input: TokenStream) -> TokenStream {
    let mut path: Path = match syn::parse2(input.clone()) {
        Ok(path) => path,
        Err(_) => {
            return syn::Error::new_spanned(
                &input,
                "func_of! takes the path of a function registered with #[dilly::func], e.g. `func_of!(double)`",
            )
            .to_compile_error();
        }
    };
    let Some(last) = path.segments.last_mut() else {
        return syn::Error::new_spanned(&input, "func_of! needs a function path")
            .to_compile_error();
    };
    if !last.arguments.is_empty() {
        let arguments = std::mem::take(&mut last.arguments);
        return syn::Error::new_spanned(
            &arguments,
            format!(
                "generic functions cannot be registered, so func_of! takes no generic arguments; write `func_of!({})`",
                sig::text(&path)
            ),
        )
        .to_compile_error();
    }
    last.ident = sig::companion("func", &last.ident, last.ident.span());
    quote!(#path())
}
