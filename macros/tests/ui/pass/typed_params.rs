//! Channels whose parameters are typed fields: built from each concrete name, named by value,
//! with strict lints.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use tidings::__private::FromParams;
use tidings::channels::Registry;
use tidings::{Authorizer, JoinContext, channel};

/// `chats/<number>`.
#[channel("chats/:id")]
pub struct ChatChannel {
    /// The chat's number.
    pub id: u64,
}

impl Authorizer for ChatChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        self.id < 100
    }
}

/// Phoenix-style `room:<slug>`, the wildcard named, and a field that is no parameter.
#[channel("room:*slug")]
pub struct RoomChannel {
    /// What follows `room:`.
    pub slug: String,
    /// Filled with `Default`.
    pub visits: u32,
}

impl Authorizer for RoomChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        !self.slug.is_empty() && self.visits == 0
    }
}

/// `files/<path...>`, the catch-all as a field, and a raw identifier.
#[channel("users/:type/files/*path")]
pub struct FileChannel {
    /// The user kind.
    pub r#type: String,
    /// The rest.
    pub path: String,
}

impl Authorizer for FileChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn main() {
    let registry = Registry::from_inventory().expect("no conflict");
    assert_eq!(registry.len(), 3);
    assert!(registry.matches("chats/7"));
    assert!(registry.matches("room:lobby"));
    assert!(registry.matches("users/admin/files/a/b"));

    let chat = ChatChannel::from_params(&params(&[("id", "7")])).expect("7 is a u64");
    assert_eq!(chat.id, 7);
    assert_eq!(chat.to_string(), "chats/7");
    assert!(ChatChannel::from_params(&params(&[("id", "seven")])).is_err());

    let room = RoomChannel::from_params(&params(&[("slug", "lobby")])).expect("a string");
    assert_eq!((room.slug.as_str(), room.visits), ("lobby", 0));
    assert_eq!(room.to_string(), "room:lobby");

    let file = FileChannel {
        r#type: "admin".to_owned(),
        path: "a/b".to_owned(),
    };
    assert_eq!(file.to_string(), "users/admin/files/a/b");
}
