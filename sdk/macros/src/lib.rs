//! The `#[wisp_sdk::action]` attribute (re-exported by `wisp-sdk`; depend on that crate).
//!
//! It expands, at compile time only, into the program's `fn main()` that calls
//! `wisp_sdk::__private::run` with the user's function: read stdin, deserialize the parameters,
//! call, print the result line. The user's function is kept as an ordinary function (renamed
//! to `__wisp_action_main` when it is itself called `main`), so it stays unit-testable.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType, Type, parse_macro_input};

/// Turns `fn main(params: P) -> Result<T, E>` (or `-> T`, or `fn main() -> ...`) into a wisp
/// action's entry point. `P: DeserializeOwned`, `T: Serialize`, `E: Into<wisp_sdk::Error>`.
#[proc_macro_attribute]
pub fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[wisp_sdk::action] takes no arguments")
            .to_compile_error()
            .into();
    }
    let function = parse_macro_input!(item as ItemFn);
    match expand(function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(mut function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &function.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "a wisp action is synchronous: remove `async`",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a wisp action cannot be generic",
        ));
    }
    if sig.inputs.len() > 1 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a wisp action takes at most one argument: its parameters (any DeserializeOwned type)",
        ));
    }
    let params_ty: proc_macro2::TokenStream = match sig.inputs.first() {
        None => quote!(::wisp_sdk::__private::IgnoredAny),
        Some(FnArg::Typed(arg)) => {
            let ty = &arg.ty;
            quote!(#ty)
        }
        Some(FnArg::Receiver(r)) => {
            return Err(syn::Error::new(
                r.span(),
                "a wisp action is a free function, not a method",
            ));
        }
    };

    if function.sig.ident == "main" {
        function.sig.ident = format_ident!("__wisp_action_main");
        function.attrs.push(syn::parse_quote!(#[doc(hidden)]));
    }
    let user = &function.sig.ident;
    let call = if function.sig.inputs.is_empty() {
        quote!(#user())
    } else {
        quote!(#user(__wisp_params))
    };
    let span = match &function.sig.output {
        ReturnType::Default => Span::call_site(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let body = if returns_result(&function.sig.output) {
        quote_spanned!(span=> #call.map_err(::wisp_sdk::__private::into_error))
    } else {
        quote_spanned!(span=> ::wisp_sdk::__private::ok(#call))
    };

    Ok(quote! {
        #function

        fn main() {
            ::wisp_sdk::__private::run(|__wisp_params: #params_ty| #body);
        }
    })
}

/// Whether the declared return type is a `Result` (by its last path segment, so
/// `wisp_sdk::Result<T>` and `std::result::Result<T, E>` both count).
fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
    }
}
