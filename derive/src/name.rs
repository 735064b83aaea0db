//! Names by where an item stands: a nested item's name includes its enclosing
//! function, read at run time, since a macro sees only the item it is applied to.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::closure::fnv1a;
use crate::sig;

/// How a registered item is named.
pub(crate) enum Naming<'a> {
    /// An explicit `name = "..."`: used as written.
    Explicit(&'a syn::LitStr),
    /// By where it stands: `suffix` (`helper`, `Local::go`) below the module, or
    /// below the enclosing function when nested in one.
    Scoped {
        /// The item's path within its scope.
        suffix: String,
        /// An expression of type `fn() -> &'static str`: the `type_name` of an item
        /// declared beside this one, whose last segment is dropped to get the scope.
        marker: TokenStream,
        /// The tokens that tell this item apart from a same-named one in another
        /// block of the same function.
        own_tokens: TokenStream,
    },
}

impl Naming<'_> {
    /// Wraps `entry` (a call of a `__private` entry constructor whose name is
    /// [`Naming::module_name`]) so that it is named by where it stands.
    pub(crate) fn wrap(&self, entry: TokenStream) -> TokenStream {
        match self {
            Naming::Explicit(_) => entry,
            Naming::Scoped {
                suffix,
                marker,
                own_tokens,
            } => {
                let tokens = fnv1a(sig::text(own_tokens).as_bytes());
                quote! {
                    ::dilly::__private::scoped(
                        #entry,
                        ::core::module_path!(),
                        #suffix,
                        #marker,
                        #tokens,
                    )
                }
            }
        }
    }

    /// The name given to the entry's constructor: the explicit name, or
    /// `module_path!()` + `::` + suffix, the name of an item directly in its module.
    pub(crate) fn module_name(&self) -> TokenStream {
        match self {
            Naming::Explicit(lit) => lit.to_token_stream(),
            Naming::Scoped { suffix, .. } => {
                let suffix = format!("::{suffix}");
                quote!(::core::concat!(::core::module_path!(), #suffix))
            }
        }
    }
}

/// `|| ::core::any::type_name_of_val(&item)`: the marker of an item named `item`.
pub(crate) fn marker_of(item: &syn::Ident) -> TokenStream {
    quote!(|| ::core::any::type_name_of_val(&#item))
}
