//! Phase three of `#[channel]`: turn a validated [`Channel`] into its registration.
//!
//! Pure: tokens in, tokens out. Every path is absolute (`::tidings::__private::...`), so the
//! generated code needs no `use` and no direct dependency on `inventory` in the user's crate.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::LitStr;

use crate::input::Channel;

/// The struct unchanged, then an anonymous `const` submitting its `ChannelRegistration`.
///
/// The type argument, and the path that carries the `Authorizer + Default` bounds, are spanned
/// on the struct's name: a struct that implements neither gets its errors there.
pub(crate) fn expand(item: TokenStream, channel: &Channel) -> TokenStream {
    let ident = &channel.ident;
    let pattern = LitStr::new(&channel.pattern, channel.pattern_span);
    let type_name = LitStr::new(&channel.type_name, ident.span());
    let register = quote_spanned! {ident.span()=>
        ::tidings::__private::ChannelRegistration::new::<#ident>
    };
    quote! {
        #item

        const _: () = {
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
