//! `#[dilly::methods]`: registers the methods of an inherent `impl` block.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{FnArg, ImplItem, ImplItemFn, ItemImpl, Type};

use crate::attr::{self, Accept, Options};
use crate::errors::Errors;
use crate::func::call_body;
use crate::name::{self, Naming};
use crate::sig;

enum Receiver {
    /// `&self`: the prepared state is shared by every call.
    Shared,
    /// `&mut self`: each call mutates a fresh copy.
    Mutable,
    /// `self`: each call consumes a fresh copy.
    Owned,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut options = Options::default();
    attr::parse_args(args, Accept::NAME_ONLY, &mut options, &mut errors);
    if let Some(name) = &options.name {
        errors.spanned(
            name,
            "#[dilly::methods] takes no `name`: put `#[dilly(name = \"...\")]` on the method instead",
        );
    }

    let mut block: ItemImpl = match syn::parse2(item.clone()) {
        Ok(block) => block,
        Err(_) => {
            errors.spanned(
                &item,
                "#[dilly::methods] goes on an inherent `impl` block: use #[dilly::func] on a `fn` and #[derive(Dilly)] on a type",
            );
            let compile_errors = errors.to_compile_errors();
            return quote!(#compile_errors #item);
        }
    };

    let rejected = !block.generics.params.is_empty() || block.trait_.is_some();
    if !block.generics.params.is_empty() {
        errors.spanned(
            &block.generics,
            "generic impl blocks cannot be registered by name: the receiving process must know the concrete type; \
             put #[dilly::methods] on an impl for a concrete type, e.g. `impl Wrapper<u64> { ... }`",
        );
    }
    if let Some((_, path, _)) = &block.trait_ {
        errors.spanned(
            path,
            "#[dilly::methods] goes on an inherent `impl` block, not a trait impl; \
             register an inherent method that calls the trait method",
        );
    }

    let self_ty = (*block.self_ty).clone();
    let mut companions = Vec::new();
    let mut entries = Vec::new();
    // Explicit names so far, with the method that has each: a clash within one
    // block is reported here, at compile time.
    let mut explicit_names: Vec<(String, syn::Ident)> = Vec::new();
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let method_options = attr::take_dilly_attrs(
            &mut method.attrs,
            Accept {
                task: false,
                skip: true,
            },
            &mut errors,
        );
        if method_options.skip {
            continue;
        }
        if rejected {
            // The block itself is the mistake: its methods are not checked, and each
            // gets a companion of any type so `bind!` and `func_of!` add no errors.
            companions.push(fallback(method, &quote!(!)));
            continue;
        }
        if let Some(lit) = &method_options.name {
            let name = lit.value();
            match explicit_names.iter().find(|(taken, _)| *taken == name) {
                Some((_, owner)) => errors.spanned(
                    lit,
                    format!(
                        "`name = \"{name}\"` is already given to `{owner}` in this impl block: \
                         two registered methods cannot share a name; give each its own"
                    ),
                ),
                None => explicit_names.push((name, method.sig.ident.clone())),
            }
        }
        let (companion, entry) = companion(method, &self_ty, &method_options, &mut errors);
        companions.push(companion);
        entries.push(entry);
    }

    let compile_errors = errors.to_compile_errors();
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    quote! {
        #compile_errors
        #block
        impl #impl_generics #self_ty #where_clause {
            #(#companions)*
        }
        #(#entries)*
    }
}

/// A companion that type-checks whatever it is used as.
fn fallback(method: &ImplItemFn, ty: &TokenStream) -> TokenStream {
    let ident = &method.sig.ident;
    let vis = &method.vis;
    let quiet = sig::quiet();
    match method.sig.inputs.first() {
        Some(FnArg::Receiver(_)) => {
            let companion = sig::companion("bind", ident, ident.span());
            quote!(#quiet #vis fn #companion(&self) -> #ty { ::core::unreachable!() })
        }
        _ => {
            let companion = sig::companion("func", ident, ident.span());
            quote!(#quiet #vis fn #companion() -> #ty { ::core::unreachable!() })
        }
    }
}

fn receiver_kind(method: &ImplItemFn, errors: &mut Errors) -> Option<Receiver> {
    let FnArg::Receiver(receiver) = method.sig.inputs.first()? else {
        return None;
    };
    if receiver.colon_token.is_some() {
        errors.spanned(
            receiver,
            "a registered method takes `self`, `&self` or `&mut self`; other receiver types cannot be rebuilt from bytes",
        );
        return Some(Receiver::Shared);
    }
    Some(match &receiver.reference {
        None => Receiver::Owned,
        Some(_) if receiver.mutability.is_some() => Receiver::Mutable,
        Some(_) => Receiver::Shared,
    })
}

/// The companion method and, next to the `impl` block, the entry it registers.
///
/// The entry lives outside the method: the registration expands to `unsafe` code
/// (link sections), and clippy's `unsafe_derive_deserialize` would otherwise blame
/// the user's `#[derive(Deserialize)]` for an inherent method that contains it.
fn companion(
    method: &ImplItemFn,
    self_ty: &Type,
    options: &Options,
    errors: &mut Errors,
) -> (TokenStream, TokenStream) {
    let mut local = Errors::default();
    let sig = &method.sig;
    sig::check_signature(sig, "method", &mut local);
    let receiver = receiver_kind(method, &mut local);
    let mut type_errors = Errors::default();
    let args = sig::argument_types(sig, Some(self_ty), &mut type_errors);
    let ret = sig::checked_return(sig, Some(self_ty), &mut type_errors);
    let fallback_type = sig::fallback_type(sig, &args, &ret, &type_errors);
    local.absorb(type_errors);

    let ident = &sig.ident;
    let vis = &method.vis;
    let quiet = sig::quiet();
    let type_text = sig::text(self_ty);
    let entry = quote::format_ident!(
        "__DILLY_ENTRY_{:016x}",
        crate::closure::fnv1a(format!("{type_text}::{}", sig::ident_text(ident)).as_bytes())
    );
    let suffix = format!("{type_text}::{}", sig::ident_text(ident));
    // The scope's marker stands beside the entry, outside the `impl` block.
    let marker = quote::format_ident!(
        "__dilly_scope_{:016x}",
        crate::closure::fnv1a(suffix.as_bytes())
    );
    let naming = match &options.name {
        Some(lit) => Naming::Explicit(lit),
        None => {
            let block = &method.block;
            Naming::Scoped {
                suffix,
                marker: name::marker_of(&marker),
                own_tokens: quote!(#self_ty #sig #block),
            }
        }
    };
    let name = naming.module_name();
    let marker_item = match naming {
        Naming::Explicit(_) => TokenStream::new(),
        Naming::Scoped { .. } => quote!(#quiet fn #marker() {}),
    };
    let args_tuple = sig::tuple_type(&args);
    let (pattern, idents) = sig::tuple_pattern(args.len());

    if !local.is_empty() {
        errors.absorb(local);
        // A companion of any type keeps `bind!` and `func_of!` uses from adding errors.
        return (fallback(method, &fallback_type), TokenStream::new());
    }

    match receiver {
        None => {
            let companion = sig::companion("func", ident, ident.span());
            let body = call_body(quote!(<#self_ty>::#ident), &args, &ret);
            let signature = sig::signature_text(None, &args, &ret);
            let method = quote! {
                #quiet
                #vis fn #companion() -> ::dilly::Func<#args_tuple, #ret> {
                    ::dilly::__private::shared_value(&#entry, (), #body)
                }
            };
            let value = naming.wrap(quote! {
                ::dilly::__private::func_entry::<()>(
                    #name,
                    #signature,
                    ::dilly::__private::Kind::Function,
                    |state| ::dilly::__private::prepare_shared::<(), #args_tuple, #ret, _>(state, #body),
                    ::dilly::__private::shapes::<(), #args_tuple, #ret>,
                )
            });
            let item = quote! {
                #marker_item
                #quiet
                #[allow(non_upper_case_globals)]
                static #entry: ::dilly::__private::Entry = #value;
                ::dilly::__register!(#entry);
            };
            (method, item)
        }
        Some(kind) => {
            let companion = sig::companion("bind", ident, ident.span());
            let (receiver_text, prepare) = match kind {
                Receiver::Shared => (
                    format!("&{type_text}"),
                    quote! {
                        ::dilly::__private::prepare_shared::<#self_ty, #args_tuple, #ret, _>(
                            state,
                            |__dilly_self: &#self_ty, #pattern: #args_tuple| -> #ret { __dilly_self.#ident(#(#idents),*) },
                        )
                    },
                ),
                Receiver::Mutable => (
                    format!("&mut {type_text}"),
                    quote! {
                        ::dilly::__private::prepare_owned::<#self_ty, #args_tuple, #ret, _>(
                            state,
                            |mut __dilly_self: #self_ty, #pattern: #args_tuple| -> #ret { __dilly_self.#ident(#(#idents),*) },
                        )
                    },
                ),
                Receiver::Owned => (
                    type_text.clone(),
                    quote! {
                        ::dilly::__private::prepare_owned::<#self_ty, #args_tuple, #ret, _>(
                            state,
                            |__dilly_self: #self_ty, #pattern: #args_tuple| -> #ret { __dilly_self.#ident(#(#idents),*) },
                        )
                    },
                ),
            };
            let signature = sig::signature_text(Some(receiver_text), &args, &ret);
            let method = quote! {
                #quiet
                #vis fn #companion(&self) -> ::dilly::Func<#args_tuple, #ret> {
                    ::dilly::__private::bound_value(&#entry, self)
                }
            };
            let value = naming.wrap(quote! {
                ::dilly::__private::func_entry::<#self_ty>(
                    #name,
                    #signature,
                    ::dilly::__private::Kind::Method,
                    |state| #prepare,
                    ::dilly::__private::shapes::<#self_ty, #args_tuple, #ret>,
                )
            });
            let item = quote! {
                #marker_item
                #quiet
                #[allow(non_upper_case_globals)]
                static #entry: ::dilly::__private::Entry = #value;
                ::dilly::__register!(#entry);
            };
            (method, item)
        }
    }
}
