//! Attribute arguments: `name = "..."`, `task`, `skip`.

use syn::parse::Parser;
use syn::{Attribute, LitStr, Meta};

use crate::errors::Errors;

/// Options shared by the attribute macros.
#[derive(Default)]
pub(crate) struct Options {
    /// An explicit canonical name.
    pub(crate) name: Option<LitStr>,
    /// `#[dilly(task)]` on a derive.
    pub(crate) task: bool,
    /// `#[dilly(skip)]` on a method.
    pub(crate) skip: bool,
}

/// Which keys a position accepts.
#[derive(Clone, Copy)]
pub(crate) struct Accept {
    pub(crate) task: bool,
    pub(crate) skip: bool,
}

impl Accept {
    pub(crate) const NAME_ONLY: Accept = Accept {
        task: false,
        skip: false,
    };
}

fn check_name(lit: &LitStr, errors: &mut Errors) {
    let value = lit.value();
    let valid = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_alphanumeric() || "_:<>{}#.-".contains(c))
        && !value.starts_with(':')
        && !value.ends_with(':');
    if !valid {
        errors.spanned(
            lit,
            "`name` must be a non-empty path without spaces, like `name = \"my_app::double\"`",
        );
    }
}

/// Parses `name = "...", task, skip` (as accepted) from an attribute's arguments.
pub(crate) fn parse_args(
    args: proc_macro2::TokenStream,
    accept: Accept,
    options: &mut Options,
    errors: &mut Errors,
) {
    let parser = syn::punctuated::Punctuated::<Meta, syn::Token![,]>::parse_terminated;
    let metas = match parser.parse2(args) {
        Ok(metas) => metas,
        Err(err) => {
            errors.push(syn::Error::new(
                err.span(),
                format!("{err}; write options like `name = \"my_app::double\"`"),
            ));
            return;
        }
    };
    for meta in metas {
        match &meta {
            Meta::NameValue(nv) if nv.path.is_ident("name") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                }) => {
                    check_name(lit, errors);
                    if options.name.replace(lit.clone()).is_some() {
                        errors.spanned(&meta, "`name` is given twice; keep one");
                    }
                }
                other => errors.spanned(
                    other,
                    "`name` takes a string literal, like `name = \"my_app::double\"`",
                ),
            },
            Meta::Path(path) if accept.task && path.is_ident("task") => options.task = true,
            Meta::Path(path) if accept.skip && path.is_ident("skip") => options.skip = true,
            _ => {
                let mut keys = vec!["`name = \"...\"`"];
                if accept.task {
                    keys.push("`task`");
                }
                if accept.skip {
                    keys.push("`skip`");
                }
                errors.spanned(
                    &meta,
                    format!("unknown dilly option; expected {}", keys.join(" or ")),
                );
            }
        }
    }
}

/// Reads and removes the `#[dilly(...)]` attributes from `attrs`.
pub(crate) fn take_dilly_attrs(
    attrs: &mut Vec<Attribute>,
    accept: Accept,
    errors: &mut Errors,
) -> Options {
    let mut options = Options::default();
    attrs.retain(|attr| {
        if !attr.path().is_ident("dilly") {
            return true;
        }
        match &attr.meta {
            Meta::List(list) => parse_args(list.tokens.clone(), accept, &mut options, errors),
            other => errors.spanned(other, "write options as `#[dilly(...)]`"),
        }
        false
    });
    options
}
