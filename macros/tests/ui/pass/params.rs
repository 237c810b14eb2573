//! Parameters, a literal ':' inside segments, a Phoenix-style wildcard, braces, raw
//! identifiers, a struct with a field that is no parameter, and a channel in a module, with
//! strict lints.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use tidings::channels::Registry;
use tidings::{Authorizer, JoinContext, channel};

/// Posts of a user.
#[channel("users/:user_id/posts/:post_id")]
#[derive(Default)]
pub struct PostChannel;

impl Authorizer for PostChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.param("user_id").is_some() && join.param("post_id").is_some()
    }
}

/// Channels in a module.
pub mod rooms {
    use tidings::{Authorizer, JoinContext};

    /// Phoenix-style names: ':' is text when not at the start of a segment, and `x*y` is a
    /// wildcard (names whose last part starts with `x`, the rest as `y`).
    #[tidings::channel("room:lobby/x*y")]
    #[derive(Default)]
    pub struct r#Lobby;

    impl Authorizer for Lobby {
        async fn pass(&self, _join: &JoinContext<'_>) -> bool {
            true
        }
    }

    /// Literal braces are escaped for the router.
    #[tidings::channel("{raw}/:id")]
    #[derive(Default)]
    pub(crate) struct Braces {
        _private: (),
    }

    impl Authorizer for Braces {
        async fn pass(&self, _join: &JoinContext<'_>) -> bool {
            true
        }
    }
}

fn main() {
    let registry = Registry::from_inventory().expect("no conflict");
    let mut patterns: Vec<_> = registry.patterns().collect();
    patterns.sort();
    assert_eq!(
        patterns,
        [
            ("Braces", "{raw}/:id"),
            ("Lobby", "room:lobby/x*y"),
            ("PostChannel", "users/:user_id/posts/:post_id"),
        ]
    );
    assert!(registry.matches("users/1/posts/2"));
    assert!(!registry.matches("users/1/posts"));
    assert!(!registry.matches("users/1/posts/2/3"));
    assert!(registry.matches("room:lobby/x*y"));
    assert!(registry.matches("room:lobby/xanything"));
    assert!(!registry.matches("room:lobby/y"));
    assert!(!registry.matches("room:other/x*y"));
    assert!(registry.matches("{raw}/7"));
    assert!(!registry.matches("raw/7"));
}
