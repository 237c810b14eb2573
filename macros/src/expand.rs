//! Phase three of `#[channel]`: turn a validated [`Channel`] into its registration.
//!
//! Pure: tokens in, tokens out. Every path is absolute (`::tidings::__private::...`), so the
//! generated code needs no `use` and no direct dependency on `inventory` in the user's crate.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::LitStr;
use syn::spanned::Spanned as _;

use crate::input::Channel;
use crate::pattern::Segment;

/// The struct unchanged, then an anonymous `const` submitting its `ChannelRegistration`; for a
/// channel with typed parameters also its `FromParams`, `Display` and `ChannelName`.
///
/// The type argument, and the path that carries the `Authorizer + Default` bounds, are spanned
/// on the struct's name: a struct that implements neither gets its errors there.
pub(crate) fn expand(item: TokenStream, channel: &Channel) -> TokenStream {
    let ident = &channel.ident;
    let pattern = LitStr::new(&channel.pattern, channel.pattern_span);
    let type_name = LitStr::new(&channel.type_name, ident.span());
    let Some(typed) = &channel.typed else {
        let register = quote_spanned! {ident.span()=>
            ::tidings::__private::ChannelRegistration::new::<#ident>
        };
        return quote! {
            #item

            const _: () = {
                ::tidings::__private::inventory::submit! {
                    #register(#pattern, #type_name)
                }
            };
        };
    };
    let register = quote_spanned! {ident.span()=>
        ::tidings::__private::ChannelRegistration::typed::<#ident>
    };
    let fields = typed.params.iter().map(|(name, field, ty)| {
        let name = LitStr::new(name, channel.pattern_span);
        let parse = quote_spanned! {ty.span()=> ::tidings::__private::param::<#ty> };
        quote! { #field: #parse(params, #name)? }
    });
    let others = typed.others.iter().map(|field| {
        quote_spanned! {field.span()=> #field: ::core::default::Default::default() }
    });
    let display = channel.segments.iter().enumerate().map(|(index, segment)| {
        let slash = (index > 0).then(|| quote! { f.write_str("/")?; });
        // `self.field` formatted, spanned on the field's type (where a missing `Display` is).
        let show = |name: &str| {
            typed
                .params
                .iter()
                .find(|(param, _, _)| param == name)
                .map(|(_, field, ty)| {
                    quote_spanned! {ty.span()=> ::core::fmt::Display::fmt(&self.#field, f)?; }
                })
        };
        let body = match segment {
            Segment::Literal(text) => {
                let text = LitStr::new(text, channel.pattern_span);
                quote! { f.write_str(#text)?; }
            }
            Segment::Param(name) | Segment::CatchAll(name) => show(name).unwrap_or_default(),
            Segment::Wildcard { prefix, name } => {
                let prefix = LitStr::new(prefix, channel.pattern_span);
                let field = name.as_deref().and_then(show).unwrap_or_default();
                quote! {
                    f.write_str(#prefix)?;
                    #field
                }
            }
        };
        quote! { #slash #body }
    });
    quote! {
        #item

        const _: () = {
            impl ::tidings::__private::FromParams for #ident {
                fn from_params(
                    params: &[(::std::string::String, ::std::string::String)],
                ) -> ::core::result::Result<Self, ::tidings::__private::ParamError> {
                    ::core::result::Result::Ok(Self {
                        #(#fields,)*
                        #(#others,)*
                    })
                }
            }

            impl ::core::fmt::Display for #ident {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    #(#display)*
                    ::core::result::Result::Ok(())
                }
            }

            impl ::tidings::__private::ChannelName for #ident {
                fn channel_name(&self) -> ::std::borrow::Cow<'_, str> {
                    ::std::borrow::Cow::Owned(::std::string::ToString::to_string(self))
                }
            }

            ::tidings::__private::inventory::submit! {
                #register(#pattern, #type_name)
            }
        };
    }
}

/// What an invalid `#[channel]` leaves behind: the item unchanged, so the type still exists for
/// the rest of the crate (and for IDEs), followed by every error.
pub(crate) fn expand_errors(item: TokenStream, errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    quote! {
        #item
        #errors
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;
    use crate::input::{parse, validate};

    #[test]
    fn registers_the_struct() {
        let item = quote!(
            #[derive(Default)]
            pub struct ChatChannel;
        );
        let channel = validate(parse(quote!("chats/:id"), item.clone()));
        let expanded = channel.map(|c| expand(item, &c).to_string());
        let expected = quote! {
            #[derive(Default)]
            pub struct ChatChannel;

            const _: () = {
                ::tidings::__private::inventory::submit! {
                    ::tidings::__private::ChannelRegistration::new::<ChatChannel>(
                        "chats/:id", "ChatChannel"
                    )
                }
            };
        };
        assert_eq!(expanded.ok(), Some(expected.to_string()));
    }

    #[test]
    fn errors_keep_the_item() {
        let item = quote!(
            struct Kept;
        );
        let errors = validate(parse(quote!(""), item.clone())).err();
        let expanded = errors.map(|e| expand_errors(item, &e).to_string());
        assert!(
            expanded.is_some_and(|e| e.starts_with("struct Kept ;") && e.contains("compile_error"))
        );
    }
}
