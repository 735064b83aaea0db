//! Shared pieces of signatures: argument tuples, type checks, stable type text.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::visit_mut::VisitMut;
use syn::{FnArg, ReturnType, Signature, Type};

use crate::errors::Errors;

/// Text of tokens with spaces only where two words meet: `Vec<String>`, `dyn Fn()`.
/// It feeds signature fingerprints, so it must not depend on the compiler's spacing.
pub(crate) fn text<T: ToTokens>(tokens: &T) -> String {
    let raw = tokens.to_token_stream().to_string();
    let chars: Vec<char> = raw.chars().collect();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(raw.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = out.chars().last().is_some_and(word);
            let after = chars.get(i + 1).copied().is_some_and(word);
            if before && after {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Rejects types that cannot cross a process boundary by name.
pub(crate) fn check_type(ty: &Type, role: &str, errors: &mut Errors) {
    match ty {
        Type::Reference(_) => errors.spanned(
            ty,
            format!(
                "{role} must be an owned type: a borrowed value cannot be deserialized in another process; \
                 take the owned form (`String` for `&str`, `Vec<T>` for `&[T]`)"
            ),
        ),
        Type::ImplTrait(_) => errors.spanned(
            ty,
            format!("{role} cannot be `impl Trait`: a registered function needs a concrete type; write the type out"),
        ),
        Type::Infer(_) => errors.spanned(ty, format!("{role} cannot be `_`: write the type out")),
        Type::Paren(inner) => check_type(&inner.elem, role, errors),
        Type::Tuple(tuple) => tuple.elems.iter().for_each(|t| check_type(t, role, errors)),
        _ => {}
    }
}

/// The argument tuple type `(A, B,)` for these element types.
pub(crate) fn tuple_type(types: &[Type]) -> TokenStream {
    quote!((#(#types,)*))
}

/// A pattern `(__dilly_arg0, __dilly_arg1,)` and the matching call arguments.
pub(crate) fn tuple_pattern(count: usize) -> (TokenStream, Vec<syn::Ident>) {
    let idents: Vec<_> = (0..count)
        .map(|i| format_ident!("__dilly_arg{}", i))
        .collect();
    (quote!((#(#idents,)*)), idents)
}

/// The return type, `()` when none is written.
pub(crate) fn return_type(output: &ReturnType) -> Type {
    match output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

/// Replaces `Self` with the implementing type, so types can be used outside the impl.
pub(crate) struct ReplaceSelf<'a>(pub(crate) &'a Type);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(path) = ty
            && path.qself.is_none()
            && path.path.is_ident("Self")
        {
            *ty = self.0.clone();
            return;
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}

/// Rejects what no registered function can be: generic, async, unsafe, variadic,
/// `extern`. `what` names the item in messages.
pub(crate) fn check_signature(sig: &Signature, what: &str, errors: &mut Errors) {
    // A variadic is necessarily `unsafe extern`: one error says it all.
    if let Some(variadic) = &sig.variadic {
        errors.spanned(
            variadic,
            format!(
                "variadic {what}s cannot be registered: register a Rust wrapper with a fixed list of arguments"
            ),
        );
        return;
    }
    if !sig.generics.params.is_empty() {
        let has_types = sig
            .generics
            .params
            .iter()
            .any(|p| !matches!(p, syn::GenericParam::Lifetime(_)));
        let message = if has_types && what == "method" {
            format!(
                "generic methods cannot be registered by name: the receiving process must know the concrete types; \
                 register a non-generic method that calls `{name}` with concrete types",
                name = sig.ident
            )
        } else if has_types {
            format!(
                "generic {what}s cannot be registered by name: the receiving process must know the concrete types; \
                 register a concrete wrapper instead, e.g. `#[dilly::func] fn {name}_u64(x: u64) -> u64 {{ {name}(x) }}`",
                name = sig.ident
            )
        } else {
            format!(
                "{what}s with lifetime parameters cannot be registered: arguments and results must be owned values"
            )
        };
        errors.spanned(&sig.generics, message);
    }
    // A `where` clause on a generic item is part of the error above.
    if let Some(where_clause) = &sig.generics.where_clause
        && sig.generics.params.is_empty()
    {
        errors.spanned(
            where_clause,
            format!("a registered {what} cannot have a `where` clause: it must not be generic; remove the clause"),
        );
    }
    if let Some(token) = &sig.asyncness {
        errors.spanned(
            token,
            format!("async {what}s cannot be registered: register a plain `fn` that runs the future to completion"),
        );
    }
    if let Some(token) = &sig.unsafety {
        errors.spanned(
            token,
            format!("unsafe {what}s cannot be registered: a payload could call them; register a safe wrapper"),
        );
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            format!("`extern` {what}s cannot be registered: register a Rust wrapper"),
        );
    }
}

/// Argument types of a signature without its receiver, checked.
pub(crate) fn argument_types(
    sig: &Signature,
    replace_self: Option<&Type>,
    errors: &mut Errors,
) -> Vec<Type> {
    sig.inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Receiver(_) => None,
            FnArg::Typed(typed) => {
                let mut ty = (*typed.ty).clone();
                if let Some(self_ty) = replace_self {
                    ReplaceSelf(self_ty).visit_type_mut(&mut ty);
                }
                check_type(&ty, "an argument", errors);
                Some(ty)
            }
        })
        .collect()
}

/// The checked return type of a signature.
pub(crate) fn checked_return(
    sig: &Signature,
    replace_self: Option<&Type>,
    errors: &mut Errors,
) -> Type {
    let mut ty = return_type(&sig.output);
    if let Some(self_ty) = replace_self {
        ReplaceSelf(self_ty).visit_type_mut(&mut ty);
    }
    check_type(&ty, "the result", errors);
    ty
}

/// `fn(A, B) -> R`, as text, for the fingerprint.
pub(crate) fn signature_text(receiver: Option<String>, args: &[Type], ret: &Type) -> String {
    let mut parts: Vec<String> = receiver.into_iter().collect();
    parts.extend(args.iter().map(text));
    format!("fn({}) -> {}", parts.join(", "), text(ret))
}

/// `concat!(module_path!(), "::", suffix)` or the explicit name.
pub(crate) fn canonical_name(explicit: Option<&syn::LitStr>, suffix: &str) -> TokenStream {
    match explicit {
        Some(lit) => quote!(#lit),
        None => {
            let suffix = format!("::{suffix}");
            quote!(::core::concat!(::core::module_path!(), #suffix))
        }
    }
}

/// The value type of a rejected item's companion: the `Func` it would have made when
/// its argument and result types are usable (so uses of the value type-check as
/// usual), else `!`.
pub(crate) fn fallback_type(
    sig: &Signature,
    args: &[Type],
    ret: &Type,
    type_errors: &Errors,
) -> TokenStream {
    if type_errors.is_empty() && sig.generics.params.is_empty() {
        let args_tuple = tuple_type(args);
        quote!(::dilly::Func<#args_tuple, #ret>)
    } else {
        quote!(!)
    }
}

/// Attributes that keep generated companions quiet under strict user lints.
pub(crate) fn quiet() -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(
            non_snake_case,
            dead_code,
            missing_docs,
            unreachable_pub,
            unused_qualifications,
            clippy::all,
            clippy::pedantic,
            clippy::nursery,
            clippy::restriction
        )]
    }
}

/// An identifier like `__dilly_func_double`, spanned at `span`.
pub(crate) fn companion(prefix: &str, ident: &syn::Ident, span: Span) -> syn::Ident {
    syn::Ident::new(&format!("__dilly_{prefix}_{}", ident.unraw()), span)
}

/// The identifier without a raw `r#` prefix.
pub(crate) fn ident_text(ident: &syn::Ident) -> String {
    ident.unraw().to_string()
}

use syn::ext::IdentExt as _;
