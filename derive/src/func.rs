//! `#[dilly::func]`: registers a free or nested function.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, ItemFn};

use crate::attr::{self, Accept, Options};
use crate::errors::Errors;
use crate::name::{self, Naming};
use crate::sig;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut options = Options::default();
    attr::parse_args(args, Accept::NAME_ONLY, &mut options, &mut errors);

    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            errors.spanned(
                &item,
                "#[dilly::func] goes on a `fn`: use #[dilly::methods] on an `impl` block and #[derive(Dilly)] on a type",
            );
            let compile_errors = errors.to_compile_errors();
            return quote!(#compile_errors #item);
        }
    };

    let sig = &function.sig;
    sig::check_signature(sig, "function", &mut errors);
    if let Some(FnArg::Receiver(receiver)) = sig.inputs.first() {
        errors.spanned(
            receiver,
            "#[dilly::func] registers free functions; for methods put #[dilly::methods] on the `impl` block",
        );
    }
    let mut type_errors = Errors::default();
    let args = sig::argument_types(sig, None, &mut type_errors);
    let ret = sig::checked_return(sig, None, &mut type_errors);
    let fallback = sig::fallback_type(sig, &args, &ret, &type_errors);
    errors.absorb(type_errors);

    let vis = &function.vis;
    let ident = &sig.ident;
    let companion = sig::companion("func", ident, ident.span());
    let quiet = sig::quiet();

    if !errors.is_empty() {
        // Keep the function and a companion of the value's type (or of any type), so
        // uses of `func_of!` do not add errors of their own.
        let compile_errors = errors.to_compile_errors();
        return quote! {
            #compile_errors
            #function
            #quiet
            #vis fn #companion() -> #fallback { ::core::unreachable!() }
        };
    }

    let naming = match &options.name {
        Some(lit) => Naming::Explicit(lit),
        None => {
            let block = &function.block;
            Naming::Scoped {
                suffix: sig::ident_text(ident),
                marker: name::marker_of(ident),
                own_tokens: quote!(#sig #block),
            }
        }
    };
    let name = naming.module_name();
    let signature = sig::signature_text(None, &args, &ret);
    let body = call_body(quote!(#ident), &args, &ret);
    let args_tuple = sig::tuple_type(&args);
    let entry = naming.wrap(quote! {
        ::dilly::__private::func_entry::<()>(
            #name,
            #signature,
            ::dilly::__private::Kind::Function,
            |state| ::dilly::__private::prepare_shared::<(), #args_tuple, #ret, _>(state, #body),
            ::dilly::__private::shapes::<(), #args_tuple, #ret>,
        )
    });
    quote! {
        #function
        #quiet
        #vis fn #companion() -> ::dilly::Func<#args_tuple, #ret> {
            static ENTRY: ::dilly::__private::Entry = #entry;
            ::dilly::__register!(ENTRY);
            ::dilly::__private::shared_value(&ENTRY, (), #body)
        }
    }
}

/// `|_: &(), (a0, a1,): (A, B,)| -> R { path(a0, a1) }`
pub(crate) fn call_body(path: TokenStream, args: &[syn::Type], ret: &syn::Type) -> TokenStream {
    let (pattern, idents) = sig::tuple_pattern(args.len());
    let args_tuple = sig::tuple_type(args);
    quote!(|_: &(), #pattern: #args_tuple| -> #ret { #path(#(#idents),*) })
}
