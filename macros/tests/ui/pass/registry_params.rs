//! The registry built from `#[channel]` registrations matches names and hands the params to
//! `pass`: joins go through a real `Hub`, and the authorizers record what they were given.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use tidings::channels::{AppData, ChannelLimits, Hub, JoinError, Outgoing, Peer, Registry, Sink};
use tidings::engineio::Sid;
use tidings::{Authorizer, Handshake, JoinContext, channel};

/// The params the last `pass` saw.
static SEEN: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn record(join: &JoinContext<'_>) {
    *SEEN.lock().unwrap() = join.params().to_vec();
}

#[channel("chats/:id")]
#[derive(Default)]
struct ChatChannel;

impl Authorizer for ChatChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        record(join);
        join.param("id") == Some("1")
    }
}

#[channel("files/*path")]
#[derive(Default)]
struct FileChannel;

impl Authorizer for FileChannel {
    async fn pass(&self, join: &JoinContext<'_>) -> bool {
        record(join);
        true
    }
}

struct NoSink;

impl Sink for NoSink {
    fn deliver(&self, _message: &Outgoing) -> bool {
        true
    }
}

/// Runs a future that never waits on anything external (as joins here do).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

fn join(hub: &Hub, name: &str) -> (Result<(), JoinError>, Vec<(String, String)>) {
    SEEN.lock().unwrap().clear();
    let peer = Arc::new(Peer::new(
        Sid::random().expect("OS randomness"),
        Handshake::default(),
        None,
        Arc::new(NoSink),
    ));
    let result = block_on(hub.join(&peer, name, None));
    let seen = SEEN.lock().unwrap().clone();
    (result, seen)
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn main() {
    let registry = Registry::from_inventory().expect("no conflict");
    assert_eq!(registry.len(), 2);
    assert!(registry.matches("chats/1"));
    assert!(!registry.matches("chats"));
    assert!(!registry.matches("chats/1/2"));
    assert!(registry.matches("files/a/b"));
    assert!(!registry.matches("files"));

    let hub = Hub::new(registry, AppData::default(), ChannelLimits::default(), None);
    assert_eq!(join(&hub, "chats/1"), (Ok(()), params(&[("id", "1")])));
    assert_eq!(
        join(&hub, "chats/2"),
        (Err(JoinError::Unauthorized), params(&[("id", "2")]))
    );
    assert_eq!(
        join(&hub, "chats"),
        (Err(JoinError::UnknownChannel), vec![])
    );
    assert_eq!(
        join(&hub, "chats/1/2"),
        (Err(JoinError::UnknownChannel), vec![])
    );
    assert_eq!(
        join(&hub, "files/a/b"),
        (Ok(()), params(&[("path", "a/b")]))
    );
}
