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
        errors.spanned(
            &input.generics,
            "generic types cannot be registered by name: the receiving process must know the concrete type; \
             derive Dilly on a concrete wrapper, e.g. `struct Jobs(Queue<u64>);`",
        );
    }
    if let Data::Union(data) = &input.data {
        errors.spanned(
            data.union_token,
            "unions cannot be registered: serde cannot serialize them",
        );
    }
    if !errors.is_empty() {
        return errors.to_compile_errors();
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
