//! `#[derive(Dilly)]`: registers a type for `Box<dyn dilly::Object>` and, with
//! `#[dilly(task)]`, its `dilly::Task` call.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput};

use crate::attr::{self, Accept};
use crate::errors::Errors;
use crate::sig;

pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let mut input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(err) => return err.to_compile_error(),
    };
    let mut errors = Errors::default();
    let options = attr::take_dilly_attrs(
        &mut input.attrs,
        Accept {
            task: true,
            skip: false,
        },
        &mut errors,
    );
    if !input.generics.params.is_empty() {
        let ty = &input.ident;
        let example =
            if input.generics.params.len() == 1 && input.generics.type_params().count() == 1 {
                format!("`struct {ty}U64({ty}<u64>);`")
            } else {
                format!("a struct holding a `{ty}` with concrete parameters")
            };
        errors.spanned(
            &input.generics,
            format!(
                "generic types cannot be registered by name: the receiving process must know the concrete type; \
                 derive Dilly on a concrete wrapper, e.g. {example}"
            ),
        );
    }
    if let Data::Union(data) = &input.data {
        errors.spanned(
            data.union_token,
            "unions cannot be registered: serde cannot serialize them; use a struct or an enum",
        );
    }
    if !errors.is_empty() {
        let compile_errors = errors.to_compile_errors();
        let fallback = fallback(&input, options.task);
        return quote!(#compile_errors #fallback);
    }

    let ty = &input.ident;
    let name = sig::canonical_name(options.name.as_ref(), &sig::ident_text(ty));
    let task = options.task.then(|| {
        let signature = format!("task {}", sig::ident_text(ty));
        quote! {
            static TASK_ENTRY: ::dilly::__private::Entry =
                ::dilly::__private::task_entry::<#ty>(::core::concat!(#name, "::call"), #signature);
            ::dilly::__register!(TASK_ENTRY);
            impl ::dilly::__private::RegisteredTask for #ty {
                fn __dilly_task_entry() -> &'static ::dilly::__private::Entry {
                    &TASK_ENTRY
                }
            }
        }
    });
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            static ENTRY: ::dilly::__private::Entry = ::dilly::__private::object_entry::<#ty>(#name);
            ::dilly::__register!(ENTRY);
            impl ::dilly::Object for #ty {
                fn __dilly_entry(&self) -> &'static ::dilly::__private::Entry {
                    &ENTRY
                }
            }
            #task
        };
    }
}

/// Impls of any rejected type that can have them, so its uses as a `dyn Object` or a
/// task add no errors of their own.
fn fallback(input: &DeriveInput, task: bool) -> TokenStream {
    let ty = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let mut predicates: Vec<TokenStream> = where_clause
        .map(|w| w.predicates.iter().map(|p| quote!(#p)).collect())
        .unwrap_or_default();
    predicates.push(quote!(
        Self: ::dilly::__private::serde::Serialize
            + ::core::marker::Send
            + ::core::marker::Sync
            + 'static
    ));
    // A bound that does not hold on a concrete type is an error of its own.
    let object = (!input.generics.params.is_empty()).then(|| {
        quote! {
            impl #impl_generics ::dilly::Object for #ty #ty_generics where #(#predicates),* {
                fn __dilly_entry(&self) -> &'static ::dilly::__private::Entry {
                    ::core::unreachable!()
                }
            }
        }
    });
    let task = task.then(|| {
        quote! {
            impl #impl_generics ::dilly::__private::RegisteredTask for #ty #ty_generics #where_clause {
                fn __dilly_task_entry() -> &'static ::dilly::__private::Entry {
                    ::core::unreachable!()
                }
            }
        }
    });
    quote! {
        #[allow(unused_qualifications, clippy::all)]
        const _: () = {
            #object
            #task
        };
    }
}
