//! The registry built from `#[channel]` registrations matches names and hands the params to
//! `pass`: joins go through a real `Hub`, and the authorizers record what they were given.

use std::sync::{Arc, Mutex};

use tidings::channels::{
    AppData, ChannelLimits, Hub, JoinError, Member, MemberId, MemberTag, Outgoing, Registry, Sink,
};
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
    fn deliver(&self, _message: &Outgoing, _tag: MemberTag) -> bool {
        true
    }
}

/// Joins a new member to `name` and waits for the verdict (members run their requests on a
/// Tokio task).
fn join(hub: &Arc<Hub>, name: &str) -> (Result<(), JoinError>, Vec<(String, String)>) {
    SEEN.lock().unwrap().clear();
    let member = Member::new(
        hub,
        MemberId::random().expect("OS randomness"),
        Handshake::default(),
        None,
        Arc::new(NoSink),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let result = runtime.block_on(async {
        member
            .join(name, None, 0, move |verdict| {
                // No reply from these channels: only whether the join went through.
                let _ = tx.send(verdict.map(|_reply| ()));
            })
            .unwrap();
        loop {
            match rx.try_recv() {
                Ok(verdict) => return verdict,
                Err(_) => tokio::task::yield_now().await,
            }
        }
    });
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
