//! `closure!([captures] |args| body)`: a closure as registered code plus its state.
//!
//! The captured variables are found by scanning the body for free identifiers; each
//! must be listed with its type, because the registered function lives in a `static`
//! where inferred types cannot reach. The body is lifted into that function with every
//! capture rewritten to a field of a generated serde struct, so it sees the captures
//! exactly as a `Fn` closure does (by place: `Copy` values copy, others are borrowed).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use proc_macro2::{Group, Ident, Spacing, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Expr, ExprClosure, Pat, Token, Type};

use crate::errors::Errors;
use crate::sig;

struct Capture {
    ident: Ident,
    ty: Type,
}

impl Parse for Capture {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let ident = input.parse()?;
        input.parse::<Token![:]>()?;
        let ty = input.parse()?;
        Ok(Capture { ident, ty })
    }
}

struct Input {
    /// `same_build` written before the closure: the explicit opt-in.
    same_build: bool,
    /// The `[name: Type, ...]` list, when written.
    list: Option<Vec<Capture>>,
    closure: ExprClosure,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let same_build = input.peek(syn::Ident) && input.fork().parse::<Ident>()? == "same_build";
        if same_build {
            input.parse::<Ident>()?;
        }
        let mut list = None;
        if input.peek(syn::token::Bracket) {
            let content;
            syn::bracketed!(content in input);
            list = Some(
                Punctuated::<Capture, Token![,]>::parse_terminated(&content)?
                    .into_iter()
                    .collect(),
            );
        }
        let closure = input.parse()?;
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the closure"));
        }
        Ok(Input {
            same_build,
            list,
            closure,
        })
    }
}

const USAGE: &str = "closure! takes a closure with typed parameters, preceded by the types of what it captures: \
                     `closure!([offset: u64] move |x: u64| x + offset)`";

pub(crate) fn expand(tokens: TokenStream) -> TokenStream {
    let input: Input = match syn::parse2(tokens.clone()) {
        Ok(input) => input,
        Err(err) => {
            let mut errors = Errors::default();
            errors.push(syn::Error::new(err.span(), format!("{err}; {USAGE}")));
            return errors.to_compile_errors();
        }
    };
    let mut errors = Errors::default();
    if input.same_build && input.list.is_some() {
        errors.spanned(
            &tokens,
            "a same-build closure takes no capture list: write either `same_build |..| ..` or `[name: Type] |..| ..`",
        );
        return errors.to_compile_errors();
    }
    if input.same_build || (input.list.is_none() && needs_same_build(&input.closure)) {
        return expand_same_build(&input.closure, errors);
    }
    let captures: &[Capture] = input.list.as_deref().unwrap_or(&[]);
    let closure = &input.closure;
    if let Some(token) = &closure.asyncness {
        errors.spanned(
            token,
            "async closures cannot be registered: use a plain closure",
        );
    }

    // Parameters: each must carry its type, which becomes the registered signature.
    let Params {
        patterns,
        types: arg_types,
        mut binders,
    } = params(closure, Untyped::Refuse, &mut errors);

    // Captures: what the body uses against what the caller declared.
    let declared: BTreeMap<String, &Capture> =
        captures.iter().map(|c| (c.ident.to_string(), c)).collect();
    let mut binder_scan = Binders(&mut binders);
    binder_scan.visit_expr(&closure.body);
    let mut uses = Uses {
        binders: &binders,
        declared: &declared,
        found: Vec::new(),
        seen: HashSet::new(),
    };
    uses.visit_expr(&closure.body);

    for capture in captures {
        sig::check_type(&capture.ty, "a captured variable", &mut errors);
        if let Some(inner) = rc_inner(&capture.ty) {
            errors.spanned(
                &capture.ty,
                format!(
                    "captured variable `{}` of type `{}` cannot travel: an `Rc` is neither `Send` nor serializable; \
                     capture an owned value (`{}`) or an `Arc` (`std::sync::Arc<{}>`)",
                    capture.ident,
                    sig::text(&capture.ty),
                    inner,
                    inner
                ),
            );
        }
        let name = capture.ident.to_string();
        if binders.contains(&name) {
            errors.spanned(
                &capture.ident,
                format!("the closure binds `{name}` again, hiding the captured `{name}`; rename the inner binding"),
            );
        } else if !uses.seen.contains(&name) {
            errors.spanned(
                &capture.ident,
                format!("`{name}` is listed as a capture but the closure does not use it; remove it from the list"),
            );
        }
    }
    for ident in &uses.found {
        if !declared.contains_key(&ident.to_string()) {
            errors.spanned(
                ident,
                format!(
                    "captured variable `{ident}` needs its type: list it before the closure, \
                     `closure!([{ident}: TYPE] ...)`; if `{ident}` is a function or a static, write `self::{ident}`"
                ),
            );
        }
    }
    if !errors.is_empty() {
        // `compile_error!` as the block's value has the error type, which unifies with
        // any type without making the code after it unreachable.
        let compile_errors = errors.to_compile_errors();
        return quote!({ #compile_errors });
    }

    let mut body = (*closure.body).clone();
    Rewrite {
        names: &declared.keys().cloned().collect(),
    }
    .visit_expr_mut(&mut body);

    let idents: Vec<&Ident> = captures.iter().map(|c| &c.ident).collect();
    let types: Vec<&Type> = captures.iter().map(|c| &c.ty).collect();
    // The captures struct is generic, so its derived serde impls are bounded on the
    // captured types instead of failing inside their bodies.
    let params: Vec<Ident> = (0..captures.len())
        .map(|i| quote::format_ident!("__DillyC{}", i))
        .collect();
    let inits = initializers(closure, idents.iter().copied());
    let args_tuple = sig::tuple_type(&arg_types);
    let (ret_arrow, ret_text) = match &closure.output {
        syn::ReturnType::Default => (quote!(), "_".to_owned()),
        syn::ReturnType::Type(arrow, ty) => (quote!(#arrow #ty), sig::text(ty)),
    };
    // The captured types as the entry's initializer names them: spanned at the
    // macro's call site, like the rest of its code, so that rustc sees every bound
    // on them at one span (and names resolve there, as written).
    let span = Span::call_site();
    let located: Vec<TokenStream> = types
        .iter()
        .map(|ty| respanned(quote!(#ty), span))
        .collect();
    let located_state = quote_spanned!(span=> __DillyCaptures<#(#located),*>);
    let state = quote!(__DillyCaptures<#(#types),*>);
    let lifted_with = |state: &TokenStream| {
        quote! {
            |__dilly_captures: &#state, (#(#patterns,)*): #args_tuple| #ret_arrow #body
        }
    };
    // In the entry's initializer (an item) and at the call site.
    let lifted = lifted_with(&located_state);
    let lifted_here = lifted_with(&state);

    let capture_text: Vec<String> = captures
        .iter()
        .map(|c| format!("{}: {}", c.ident, sig::text(&c.ty)))
        .collect();
    let signature = format!(
        "closure [{}] fn({}) -> {ret_text}",
        capture_text.join(", "),
        arg_types
            .iter()
            .map(sig::text)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let hash = fnv1a(sig::text(&tokens).as_bytes());
    let name = format!("::{{closure#{hash:016x}}}");
    let suffix = &name[2..];

    // Every bound on the captured types is stated in the entry's initializer, one
    // body, at one span (the call site): the capture checks come first, and rustc
    // reports each failing bound once, with their message. The code at the call
    // site makes the value through `make` and adds no bounds of its own; in a
    // generic function, the `static` is the one item that names a generic capture
    // type, so rustc's E0401 comes once.
    let entry = quote_spanned! {span=>
        {
            #(::dilly::__private::check_capture::<#located, __dilly_captures::#idents>();)*
            ::dilly::__private::closure_entry::<#located_state>(
                // Named by its module; by its enclosing function too where a
                // token-identical closure of another function shares that name
                // (see `Entry::name`).
                ::dilly::__private::scoped(
                    ::dilly::__private::func_entry::<#located_state>(
                        ::core::concat!(::core::module_path!(), #name),
                        #signature,
                        ::dilly::__private::Kind::Closure,
                        |state| ::dilly::__private::prepare_shared::<#located_state, #args_tuple, _, _>(state, #lifted),
                        || ::dilly::__private::shapes_of::<#located_state, #args_tuple, _, _>(&#lifted),
                    ),
                    ::core::module_path!(),
                    #suffix,
                    || ::core::any::type_name::<__DillyScope>(),
                    #hash,
                ),
                |state| ::dilly::__private::closure_prepared::<#located_state, #args_tuple, _, _>(&ENTRY.entry, state, #lifted),
            )
        }
    };
    quote! {{
        // One marker type per capture, named after it, so the check's message names it.
        #[allow(non_snake_case)]
        mod __dilly_captures {
            #(
                #[allow(non_camel_case_types)]
                pub(super) struct #idents {}
            )*
        }
        #[derive(::dilly::__private::serde::Serialize, ::dilly::__private::serde::Deserialize)]
        #[serde(crate = "::dilly::__private::serde")]
        #[allow(non_camel_case_types)]
        struct __DillyCaptures<#(#params),*> {
            #(#idents: #params,)*
        }
        struct __DillyScope;
        static ENTRY: ::dilly::__private::ClosureEntry<#located_state> = #entry;
        ::dilly::__register!(ENTRY.entry);
        ::dilly::__private::closure_value(
            &ENTRY.entry,
            (ENTRY.make)(__DillyCaptures { #(#idents: #inits,)* }),
            #lifted_here,
        )
    }}
}

/// `tokens` with every span set to `span`.
fn respanned(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respanned(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// The `T` of a capture written as `Rc<T>` (`std::rc::Rc<T>`, `alloc::rc::Rc<T>`).
fn rc_inner(ty: &Type) -> Option<String> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    let leading: Vec<String> = path
        .path
        .segments
        .iter()
        .rev()
        .skip(1)
        .map(|s| s.ident.to_string())
        .collect();
    let qualified_ok = leading.is_empty() || leading.first().is_some_and(|m| m == "rc");
    if last.ident != "Rc" || !qualified_ok {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
            Some(sig::text(&args.args[0]))
        }
        _ => None,
    }
}

/// What to do with a parameter whose type is not written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Untyped {
    /// By-name mode: the registered signature needs it; report it.
    Refuse,
    /// Same-build mode: leave it to inference (`_`).
    Infer,
}

/// A closure's parameters, split into patterns and types, and the names they bind.
struct Params {
    patterns: Vec<Pat>,
    types: Vec<Type>,
    binders: HashSet<String>,
}

fn params(closure: &ExprClosure, untyped: Untyped, errors: &mut Errors) -> Params {
    let mut out = Params {
        patterns: Vec::new(),
        types: Vec::new(),
        binders: HashSet::new(),
    };
    for param in &closure.inputs {
        // Untyped parameters bind too, so they are not also reported as captures.
        collect_binders(param, &mut out.binders);
        match param {
            Pat::Type(typed) => {
                sig::check_type(&typed.ty, "a closure parameter", errors);
                out.patterns.push((*typed.pat).clone());
                out.types.push((*typed.ty).clone());
            }
            other if untyped == Untyped::Infer => {
                out.patterns.push(other.clone());
                out.types.push(syn::parse_quote!(_));
            }
            other => errors.spanned(
                other,
                format!(
                    "closure parameter `{}` needs its type, e.g. `|{}: u64|`: the registered function needs a signature",
                    sig::text(other),
                    sig::text(other)
                ),
            ),
        }
    }
    out
}

/// `x` for a `move` closure, `Clone::clone(&x)` otherwise: the captures' initializers.
fn initializers<'a>(
    closure: &'a ExprClosure,
    idents: impl IntoIterator<Item = &'a Ident>,
) -> Vec<TokenStream> {
    idents
        .into_iter()
        .map(|ident| match closure.capture {
            Some(_) => quote!(#ident),
            None => quote!(::core::clone::Clone::clone(&#ident)),
        })
        .collect()
}

/// Identifiers named inside the format string of a `format!`-style macro
/// (`"{offset}"`, `"{x:>8}"`), minus those passed as named arguments.
fn inline_format_args(args: &Punctuated<Expr, Token![,]>) -> Vec<Ident> {
    let Some(lit) = args.iter().take(2).find_map(|arg| match arg {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => Some(lit),
        _ => None,
    }) else {
        return Vec::new();
    };
    let named: HashSet<String> = args
        .iter()
        .filter_map(|arg| match arg {
            Expr::Assign(assign) => match &*assign.left {
                Expr::Path(path) => path.path.get_ident().map(ToString::to_string),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let text = lit.value();
    let mut found: Vec<Ident> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                let name = inner.split(':').next().unwrap_or("").trim();
                let is_ident = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                if is_ident && !named.contains(name) && !found.iter().any(|f| f == name) {
                    found.push(Ident::new(name, lit.span()));
                }
            }
            _ => {}
        }
    }
    found
}

/// True when a closure without a capture list cannot be registered by name: it
/// captures variables (whose types are not written) or has untyped parameters.
fn needs_same_build(closure: &ExprClosure) -> bool {
    let untyped = closure.inputs.iter().any(|p| !matches!(p, Pat::Type(_)));
    untyped || !free_variables(closure).is_empty()
}

/// The free identifiers of a closure's body that look like captured variables.
fn free_variables(closure: &ExprClosure) -> Vec<Ident> {
    let mut binders = HashSet::new();
    for param in &closure.inputs {
        collect_binders(param, &mut binders);
    }
    Binders(&mut binders).visit_expr(&closure.body);
    let none = BTreeMap::new();
    let mut uses = Uses {
        binders: &binders,
        declared: &none,
        found: Vec::new(),
        seen: HashSet::new(),
    };
    uses.visit_expr(&closure.body);
    uses.found
}

/// `closure!` in same-build mode: the captures go into a generic struct whose
/// field types are inferred, and the body's code is named by its address in this
/// executable (`dilly::SameBuild`). Works in generic functions and with inferred
/// types; only the identical binary can call the value.
fn expand_same_build(closure: &ExprClosure, mut errors: Errors) -> TokenStream {
    if let Some(token) = &closure.asyncness {
        errors.spanned(token, "async closures cannot be sent: use a plain closure");
    }
    let Params {
        patterns,
        types: arg_types,
        mut binders,
    } = params(closure, Untyped::Infer, &mut errors);
    let captures = free_variables(closure);
    Binders(&mut binders).visit_expr(&closure.body);
    for ident in &captures {
        if binders.contains(&ident.to_string()) {
            errors.spanned(
                ident,
                format!("the closure binds `{ident}` again, hiding the captured `{ident}`; rename the inner binding"),
            );
        }
    }
    if !errors.is_empty() {
        let compile_errors = errors.to_compile_errors();
        return quote!({ #compile_errors });
    }

    let mut body = (*closure.body).clone();
    Rewrite {
        names: &captures.iter().map(ToString::to_string).collect(),
    }
    .visit_expr_mut(&mut body);
    let params: Vec<Ident> = (0..captures.len())
        .map(|i| quote::format_ident!("__DillyT{}", i))
        .collect();
    let inits = initializers(closure, &captures);
    let ret_arrow = match &closure.output {
        syn::ReturnType::Default => quote!(),
        syn::ReturnType::Type(arrow, ty) => quote!(#arrow #ty),
    };
    let infer = params.iter().map(|_| quote!(_));
    quote! {{
        #[derive(::dilly::__private::serde::Serialize, ::dilly::__private::serde::Deserialize)]
        #[serde(crate = "::dilly::__private::serde")]
        #[allow(non_camel_case_types)]
        struct __DillyCaptures<#(#params),*> {
            #(#captures: #params,)*
        }
        ::dilly::__private::same_build_value(
            __DillyCaptures { #(#captures: #inits,)* },
            |__dilly_captures: &__DillyCaptures<#(#infer),*>, (#(#patterns,)*): (#(#arg_types,)*)| #ret_arrow #body,
        )
    }}
}

/// FNV-1a 64, as in `dilly::SymbolId`: the closure's name hashes its tokens, so it is
/// stable while the closure's text is.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn collect_binders(pattern: &Pat, binders: &mut HashSet<String>) {
    Binders(binders).visit_pat(pattern);
}

/// Every name a pattern in the body binds (`let`, `match`, `for`, inner closures).
/// Scope is ignored on purpose: a name bound anywhere is treated as local everywhere,
/// and a capture that is also bound is reported instead of guessed at.
struct Binders<'a>(&'a mut HashSet<String>);

impl<'ast> Visit<'ast> for Binders<'_> {
    fn visit_pat_ident(&mut self, pat: &'ast syn::PatIdent) {
        self.0.insert(pat.ident.to_string());
        syn::visit::visit_pat_ident(self, pat);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// Free identifiers the body reads: candidates for captures.
struct Uses<'a> {
    binders: &'a HashSet<String>,
    declared: &'a BTreeMap<String, &'a Capture>,
    /// First use of each undeclared-or-declared free identifier, in order.
    found: Vec<Ident>,
    seen: HashSet<String>,
}

impl Uses<'_> {
    fn record(&mut self, ident: &Ident) {
        let name = ident.to_string();
        let looks_like_variable = name != "self"
            && name != "_"
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_lowercase() || c == '_');
        if looks_like_variable && !self.binders.contains(&name) && self.seen.insert(name) {
            self.found.push(ident.clone());
        }
    }

    fn scan_tokens(&mut self, tokens: TokenStream) {
        let mut after_dot = false;
        for tree in tokens {
            match &tree {
                TokenTree::Ident(ident)
                    if !after_dot && self.declared.contains_key(&ident.to_string()) =>
                {
                    self.record(ident);
                }
                TokenTree::Group(group) => self.scan_tokens(group.stream()),
                _ => {}
            }
            after_dot = matches!(&tree, TokenTree::Punct(p) if p.as_char() == '.');
        }
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Path(path) if path.qself.is_none() => {
                if let Some(ident) = path.path.get_ident() {
                    self.record(ident);
                }
            }
            // A called path is a function, not a captured variable, unless it is
            // listed as a capture.
            Expr::Call(call) if matches!(&*call.func, Expr::Path(_)) => {
                if let Expr::Path(path) = &*call.func
                    && let Some(ident) = path.path.get_ident()
                    && self.declared.contains_key(&ident.to_string())
                {
                    self.record(ident);
                }
                for arg in &call.args {
                    self.visit_expr(arg);
                }
            }
            _ => syn::visit::visit_expr(self, expr),
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        match mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            Ok(args) => {
                for ident in inline_format_args(&args) {
                    self.record(&ident);
                }
                args.iter().for_each(|arg| self.visit_expr(arg));
            }
            Err(_) => self.scan_tokens(mac.tokens.clone()),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// Rewrites each capture `x` to `__dilly_captures.x`.
struct Rewrite<'a> {
    names: &'a BTreeSet<String>,
}

impl Rewrite<'_> {
    fn is_capture(&self, ident: &Ident) -> bool {
        self.names.contains(&ident.to_string())
    }

    fn rewrite_tokens(&self, tokens: TokenStream) -> TokenStream {
        let mut out = TokenStream::new();
        let mut after_dot = false;
        for tree in tokens {
            let is_dot = matches!(&tree, TokenTree::Punct(p) if p.as_char() == '.' && p.spacing() == Spacing::Alone);
            match tree {
                TokenTree::Ident(ident) if !after_dot && self.is_capture(&ident) => {
                    let span = ident.span();
                    out.extend(quote_spanned!(span=> __dilly_captures.#ident));
                }
                TokenTree::Group(group) => {
                    let mut rewritten =
                        Group::new(group.delimiter(), self.rewrite_tokens(group.stream()));
                    rewritten.set_span(group.span());
                    out.extend([TokenTree::Group(rewritten)]);
                }
                other => out.extend([other]),
            }
            after_dot = is_dot;
        }
        out
    }
}

impl VisitMut for Rewrite<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        // A called capture `f(x)` becomes `(__dilly_captures.f)(x)`, not a method call.
        if let Expr::Call(call) = expr
            && let Expr::Path(path) = &*call.func
            && path.qself.is_none()
            && let Some(ident) = path.path.get_ident()
            && self.is_capture(ident)
        {
            let ident = ident.clone();
            let span = ident.span();
            *call.func = syn::parse_quote_spanned!(span=> (__dilly_captures.#ident));
            for arg in &mut call.args {
                self.visit_expr_mut(arg);
            }
            return;
        }
        if let Expr::Path(path) = expr
            && path.qself.is_none()
            && let Some(ident) = path.path.get_ident()
            && self.is_capture(ident)
        {
            let ident = ident.clone();
            let span = ident.span();
            *expr = syn::parse_quote_spanned!(span=> __dilly_captures.#ident);
            return;
        }
        syn::visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_field_value_mut(&mut self, field: &mut syn::FieldValue) {
        if field.colon_token.is_none()
            && let syn::Member::Named(ident) = &field.member
            && self.is_capture(ident)
        {
            field.colon_token = Some(Token![:](ident.span()));
        }
        syn::visit_mut::visit_field_value_mut(self, field);
    }

    fn visit_macro_mut(&mut self, mac: &mut syn::Macro) {
        let inline: Vec<Ident> = mac
            .parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated)
            .map(|args| inline_format_args(&args))
            .unwrap_or_default()
            .into_iter()
            .filter(|ident| self.is_capture(ident))
            .collect();
        let mut tokens = self.rewrite_tokens(std::mem::take(&mut mac.tokens));
        // `format!("{offset}")` names a capture inside the string, where it cannot be
        // rewritten: pass it as a named argument instead.
        for ident in inline {
            let ends_with_comma = matches!(
                tokens.clone().into_iter().last(),
                Some(TokenTree::Punct(p)) if p.as_char() == ','
            );
            if !ends_with_comma {
                tokens.extend(quote!(,));
            }
            let span = ident.span();
            tokens.extend(quote_spanned!(span=> #ident = __dilly_captures.#ident));
        }
        mac.tokens = tokens;
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
