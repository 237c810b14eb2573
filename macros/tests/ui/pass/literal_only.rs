//! A channel whose pattern has no parameters, in a crate with strict lints.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use tidings::channels::Registry;
use tidings::{Authorizer, JoinContext, channel};

/// The lobby, a single channel.
#[channel("lobby")]
#[derive(Default)]
pub struct LobbyChannel;

impl Authorizer for LobbyChannel {
    async fn pass(&self, _join: &JoinContext<'_>) -> bool {
        true
    }
}

fn main() {
    let registry = Registry::from_inventory().expect("one channel, no conflict");
    assert_eq!(registry.len(), 1);
    assert_eq!(
        registry.patterns().collect::<Vec<_>>(),
        [("LobbyChannel", "lobby")]
    );
    assert!(registry.matches("lobby"));
    assert!(!registry.matches("lobby/1"));
    assert!(!registry.matches("lobbyx"));
}
