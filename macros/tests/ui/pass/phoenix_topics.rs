//! Topics as Phoenix users write them, beside a path-style pattern.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use tidings::channels::Registry;
use tidings::{Authorizer, JoinContext, channel};

/// `room:lobby`, `room:42` ...
#[channel("room:*")]
#[derive(Default)]
pub struct RoomChannel;

impl Authorizer for RoomChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.param("*") == Some("lobby")
    }
}

/// Exactly `rooms:lobby`.
#[channel("rooms:lobby")]
#[derive(Default)]
pub struct LobbyChannel;

impl Authorizer for LobbyChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

/// `challenges:<id>`, the rest named.
#[channel("challenges:*id")]
#[derive(Default)]
pub struct ChallengeChannel;

impl Authorizer for ChallengeChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        join.param_as::<u64>("id").is_some()
    }
}

fn main() {
    let registry = Registry::from_inventory().expect("three channels, no conflict");
    assert_eq!(registry.len(), 3);
    assert!(registry.matches("room:lobby"));
    assert!(registry.matches("room:42"));
    assert!(registry.matches("rooms:lobby"));
    assert!(!registry.matches("rooms:other"));
    assert!(registry.matches("challenges:7"));
    assert!(!registry.matches("room:"));
    assert!(!registry.matches("lobby"));
}
