//! The `#[channel]` attribute of [tidings](https://docs.rs/tidings): declares a channel type and
//! registers it, with its name pattern, for the channel registry built at start-up.
//!
//! Use it through the facade, as `tidings::channel`:
//!
//! ```
//! use tidings::{channel, Authorizer, JoinContext};
//!
//! /// Chat rooms: `chats/1`, `chats/2` ...
//! #[channel("chats/:id")]
//! #[derive(Default)]
//! pub struct ChatChannel;
//!
//! impl Authorizer for ChatChannel {
//!     async fn pass(&self, join: &JoinContext<'_>) -> bool {
//!         join.param("id") == Some("1")
//!     }
//! }
//!
//! let registry = tidings::channels::Registry::from_inventory().expect("no conflicts");
//! assert!(registry.matches("chats/1"));
//! assert!(!registry.matches("chats"));
//! ```
//!
//! # Patterns
//!
//! Segments separated by `/`, with no leading, trailing or doubled `/`:
//!
//! | Segment | Matches | Example |
//! |---|---|---|
//! | literal | itself (`:` is plain text when not first) | `chats`, `rooms:lobby` |
//! | `:name` | exactly one segment, available as the param `name` | `chats/:id` |
//! | `*name` | the rest of the channel name, one or more segments; last only | `files/*path` |
//! | `prefix*` | Phoenix-style: names whose last part starts with `prefix`; the rest (one character or more, `/` included) is the param `*`, or `name` with `prefix*name`; last only | `room:*`, `challenges:*id` |
//!
//! Names look like Rust identifiers (`[A-Za-z_][A-Za-z0-9_]*`) and are unique in a pattern.
//! Patterns are checked at compile time: a mistake is a compile error on the string literal.
//!
//! # Requirements
//!
//! The attribute goes on a struct without generic parameters, which must implement
//! `tidings::Authorizer`, and either:
//!
//! - `Default`: the registry builds one value, and hooks read the params with
//!   `join.param("id")`; or
//! - **typed parameters**: fields named after the pattern's parameters, whose types implement
//!   `FromStr` and `Display`. A value is built from each concrete name (a name whose params do
//!   not parse is refused `invalid`), so `pass(&self, ..)` sees `self.id`; other fields get
//!   `Default::default()`. The struct then implements `Display` (its channel's name) and
//!   `ChannelName`, so `emitter.emit("message", ChatChannel { id: 1 }, &msg)` names its
//!   channel by value, and a typo is a compile error.
//!
//! ```
//! use tidings::{channel, Authorizer, JoinContext};
//!
//! #[channel("rooms/:id")]
//! pub struct RoomChannel {
//!     pub id: u64,
//! }
//!
//! impl Authorizer for RoomChannel {
//!     async fn pass(&self, _join: &JoinContext<'_>) -> bool {
//!         self.id < 100
//!     }
//! }
//!
//! assert_eq!(RoomChannel { id: 7 }.to_string(), "rooms/7");
//! ```
//!
//! ```compile_fail,E0277
//! #[tidings::channel("chats/:id")]
//! #[derive(Default)]
//! struct NoAuthorizer; // error: `NoAuthorizer` is a #[channel] but does not implement `tidings::Authorizer`
//! ```
//!
//! ```compile_fail
//! #[tidings::channel("chats//:id")] // error: empty segment after `chats/`
//! #[derive(Default)]
//! struct Broken;
//! ```
//!
//! # Expansion
//!
//! The struct is kept as written and followed by its registration:
//!
//! ```text
//! const _: () = {
//!     ::tidings::__private::inventory::submit! {
//!         ::tidings::__private::ChannelRegistration::new::<ChatChannel>("chats/:id", "ChatChannel")
//!     }
//! };
//! ```
//!
//! The first string is the pattern as written; the runtime translates it for its router, so
//! code compiled against this macro does not depend on the router's syntax. The generated code uses absolute paths
//! only, needs no dependency besides `tidings`, and compiles under `#![forbid(unsafe_code)]`
//! and `#![deny(missing_docs)]`. When the attribute is misused, the struct is still emitted
//! unchanged next to the errors, so the rest of the crate (and your IDE) still sees the type.

mod expand;
mod input;
mod pattern;

use proc_macro::TokenStream;

/// Declares a channel: `#[channel("pattern")]` on a struct implementing `tidings::Authorizer`
/// and `Default`.
///
/// See the [crate documentation](crate) for the pattern syntax.
#[proc_macro_attribute]
pub fn channel(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let input = input::parse(attr.into(), item.clone());
    match input::validate(input) {
        Ok(channel) => expand::expand(item, &channel),
        Err(errors) => expand::expand_errors(item, &errors),
    }
    .into()
}
