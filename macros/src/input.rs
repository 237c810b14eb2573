//! Phases one and two of `#[channel]`: parse the attribute and the item into a syntactic
//! model, then validate it into a [`Channel`], collecting every error (each spanned on the
//! offending tokens) instead of stopping at the first.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{Ident, Item, Lit, LitStr, Type};

use crate::pattern::{Pattern, Segment};

/// The message for anything but a plain struct.
const NOT_A_PLAIN_STRUCT: &str = "#[channel] must be on a struct without generic parameters";

/// A validated `#[channel("...")] struct Name;`: all the expansion needs.
pub(crate) struct Channel {
    /// The struct's name, with the user's span.
    pub(crate) ident: Ident,
    /// The struct's name as text, without any `r#`.
    pub(crate) type_name: String,
    /// The pattern as written.
    pub(crate) pattern: String,
    /// The parsed pattern, for the generated `Display`.
    pub(crate) segments: Vec<Segment>,
    /// Typed parameters: when some field is named after a parameter, every parameter's field
    /// (name, type) in pattern order, and the other fields (filled with `Default`). `None` for
    /// a channel built with `Default` once.
    pub(crate) typed: Option<Typed>,
    /// Where the pattern literal is, for the generated strings.
    pub(crate) pattern_span: Span,
}

/// The fields of a channel whose parameters are typed.
pub(crate) struct Typed {
    /// One per parameter, in pattern order: the parameter's name, its field and type.
    pub(crate) params: Vec<(String, Ident, Type)>,
    /// The fields that are no parameter.
    pub(crate) others: Vec<Ident>,
}

/// Phase one: what was written, split but not judged.
pub(crate) struct Input {
    /// The attribute's arguments, split on top-level commas (a trailing comma is dropped).
    args: Vec<TokenStream>,
    /// Commas with nothing before them (`#[channel(, "a")]`).
    stray_commas: Vec<TokenTree>,
    /// The annotated item, or why it does not parse.
    item: syn::Result<Item>,
}

/// Parses the attribute arguments and the item; never fails, errors wait for [`validate`].
pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> Input {
    let mut args = Vec::new();
    let mut stray_commas = Vec::new();
    let mut current = TokenStream::new();
    for token in attr {
        match &token {
            TokenTree::Punct(punct) if punct.as_char() == ',' => {
                if current.is_empty() {
                    stray_commas.push(token);
                } else {
                    args.push(std::mem::take(&mut current));
                }
            }
            _ => current.extend([token]),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    Input {
        args,
        stray_commas,
        item: syn::parse2(item),
    }
}

/// Errors gathered across the checks, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Validates the parsed input: exactly one string literal holding a valid pattern, on a struct
/// without generic parameters.
///
/// # Errors
/// Every problem found, combined into one [`syn::Error`].
pub(crate) fn validate(input: Input) -> syn::Result<Channel> {
    let mut errors = Errors::default();
    // In source order: the attribute, its pattern, then the item.
    let literal = pattern_literal(&input, &mut errors);
    let pattern = literal.and_then(|literal| {
        let source = literal.value();
        match Pattern::parse(&source) {
            Ok(pattern) => Some((literal, source, pattern)),
            Err(problems) => {
                for problem in problems {
                    errors.push(syn::Error::new(literal.span(), problem));
                }
                None
            }
        }
    });
    let strukt = struct_item(input.item, &mut errors);
    let typed = match (&strukt, &pattern) {
        (Some(strukt), Some((literal, _, pattern))) => typed(strukt, pattern, literal, &mut errors),
        _ => None,
    };
    errors.finish()?;
    match (strukt, pattern) {
        (Some(strukt), Some((literal, source, pattern))) => Ok(Channel {
            type_name: strukt.ident.unraw().to_string(),
            ident: strukt.ident,
            pattern: source,
            segments: pattern.segments().to_vec(),
            typed,
            pattern_span: literal.span(),
        }),
        // Every path that leaves one of them out pushed an error.
        _ => Err(syn::Error::new(Span::call_site(), "invalid #[channel]")),
    }
}

/// The single string literal argument, or `None` after pushing why not.
fn pattern_literal(input: &Input, errors: &mut Errors) -> Option<LitStr> {
    for comma in &input.stray_commas {
        errors.push(syn::Error::new_spanned(
            comma,
            "unexpected ','; #[channel] takes one pattern string, like #[channel(\"chats/:id\")]",
        ));
    }
    let Some((first, rest)) = input.args.split_first() else {
        if input.stray_commas.is_empty() {
            errors.push(syn::Error::new(
                Span::call_site(),
                "#[channel] needs a pattern string, like #[channel(\"chats/:id\")]",
            ));
        }
        return None;
    };
    if !rest.is_empty() {
        let extra: TokenStream = rest.iter().flat_map(|arg| arg.clone()).collect();
        errors.push(syn::Error::new_spanned(
            extra,
            "#[channel] takes exactly one argument, the pattern string; remove this one",
        ));
    }
    match syn::parse2::<LitStr>(first.clone()) {
        Ok(literal) if literal.suffix().is_empty() => Some(literal),
        Ok(literal) => {
            errors.push(syn::Error::new(
                literal.span(),
                "the channel pattern must be a string literal without a suffix",
            ));
            None
        }
        Err(_) => {
            let found = match syn::parse2::<Lit>(first.clone()) {
                Ok(Lit::ByteStr(_) | Lit::CStr(_)) => "; write it as a plain \"...\" string",
                _ => "",
            };
            errors.push(syn::Error::new_spanned(
                first,
                format!(
                    "the channel pattern must be a string literal, like #[channel(\"chats/:id\")]{found}"
                ),
            ));
            None
        }
    }
}

/// The typed parameters of `strukt`, when some named field is called after a parameter of
/// `pattern`; then every parameter needs a field (errors pushed otherwise).
fn typed(
    strukt: &syn::ItemStruct,
    pattern: &Pattern,
    literal: &LitStr,
    errors: &mut Errors,
) -> Option<Typed> {
    let syn::Fields::Named(fields) = &strukt.fields else {
        return None;
    };
    let names: Vec<Option<&str>> = pattern.segments().iter().map(Segment::name).collect();
    let is_param = |field: &Ident| names.contains(&Some(field.unraw().to_string().as_str()));
    if !fields
        .named
        .iter()
        .filter_map(|f| f.ident.as_ref())
        .any(is_param)
    {
        return None;
    }
    let mut params = Vec::new();
    for segment in pattern.segments() {
        match segment {
            Segment::Literal(_) => {}
            Segment::Wildcard { name: None, .. } => errors.push(syn::Error::new(
                literal.span(),
                format!(
                    "the wildcard of `{}` has no name, so no field can hold it: name it, like \"room:*id\"",
                    strukt.ident
                ),
            )),
            Segment::Param(name)
            | Segment::CatchAll(name)
            | Segment::Wildcard {
                name: Some(name), ..
            } => {
                let field = fields.named.iter().find(|f| {
                    f.ident
                        .as_ref()
                        .is_some_and(|ident| ident.unraw() == name.as_str())
                });
                match field.and_then(|f| f.ident.clone().map(|ident| (ident, f.ty.clone()))) {
                    Some((ident, ty)) => params.push((name.clone(), ident, ty)),
                    None => errors.push(syn::Error::new(
                        literal.span(),
                        format!(
                            "parameter `{name}` has no field in `{}`: a channel with typed parameters has a field for each (`{name}: T`, T: FromStr + Display)",
                            strukt.ident
                        ),
                    )),
                }
            }
        }
    }
    let others = fields
        .named
        .iter()
        .filter_map(|f| f.ident.clone())
        .filter(|ident| !is_param(ident))
        .collect();
    Some(Typed { params, others })
}

/// The struct, or `None` after pushing why this item cannot be a channel.
fn struct_item(item: syn::Result<Item>, errors: &mut Errors) -> Option<syn::ItemStruct> {
    let item = match item {
        Ok(item) => item,
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let head = match item {
        Item::Struct(item) if item.generics.params.is_empty() => return Some(item),
        Item::Struct(item) => item.generics.to_token_stream(),
        Item::Enum(item) => head(item.enum_token, &item.ident),
        Item::Union(item) => head(item.union_token, &item.ident),
        Item::Fn(item) => head(item.sig.fn_token, &item.sig.ident),
        Item::Trait(item) => head(item.trait_token, &item.ident),
        Item::Type(item) => head(item.type_token, &item.ident),
        Item::Mod(item) => head(item.mod_token, &item.ident),
        other => other.into_token_stream(),
    };
    errors.push(syn::Error::new_spanned(head, NOT_A_PLAIN_STRUCT));
    None
}

/// `keyword Name`, to span an error on an item's head rather than its whole body.
fn head(keyword: impl ToTokens, ident: &Ident) -> TokenStream {
    let mut tokens = keyword.into_token_stream();
    ident.to_tokens(&mut tokens);
    tokens
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn messages(attr: TokenStream, item: TokenStream) -> Result<Channel, Vec<String>> {
        validate(parse(attr, item)).map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn valid_channel() {
        let channel = messages(
            quote!("chats/:id"),
            quote!(
                pub struct r#Chat;
            ),
        );
        let channel = channel.map_err(|e| e.join("\n"));
        assert_eq!(
            channel.map(|c| (c.type_name, c.pattern)),
            Ok(("Chat".into(), "chats/:id".into()))
        );
    }

    #[test]
    fn trailing_comma_is_fine() {
        assert!(
            messages(
                quote!("a",),
                quote!(
                    struct A;
                )
            )
            .is_ok()
        );
    }

    #[test]
    fn every_error_is_reported() {
        let errors = messages(
            quote!(1, "x"),
            quote!(
                enum E {}
            ),
        )
        .err();
        assert_eq!(
            errors,
            Some(vec![
                "#[channel] takes exactly one argument, the pattern string; remove this one"
                    .to_owned(),
                "the channel pattern must be a string literal, like #[channel(\"chats/:id\")]"
                    .to_owned(),
                NOT_A_PLAIN_STRUCT.to_owned(),
            ])
        );
        let errors = messages(
            quote!("/a//:1"),
            quote!(
                struct S<T>(T);
            ),
        )
        .err();
        assert_eq!(errors.map(|e| e.len()), Some(4));
    }

    #[test]
    fn argument_mistakes() {
        let first = |attr| {
            messages(
                attr,
                quote!(
                    struct S;
                ),
            )
            .err()
            .map(|e| e[0].clone())
        };
        assert_eq!(
            first(quote!()),
            Some("#[channel] needs a pattern string, like #[channel(\"chats/:id\")]".into())
        );
        assert!(first(quote!(b"a")).is_some_and(|m| m.ends_with("plain \"...\" string")));
        assert!(first(quote!(chats / :id)).is_some_and(|m| m.contains("string literal")));
        assert!(first(quote!(, "a")).is_some_and(|m| m.starts_with("unexpected ','")));
        assert!(first(quote!("a" x)).is_some_and(|m| m.contains("string literal")));
    }
}
