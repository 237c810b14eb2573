//! Presence: who is in a channel, by a key of the app's choosing (a user id), with metadata:
//! Phoenix Presence, Laravel's presence channels.
//!
//! A channel turns it on with [`Authorizer::PRESENCE`](super::Authorizer::PRESENCE). A member
//! is tracked with [`ChannelContext::track`](super::ChannelContext::track) (in `joined`, say),
//! updated with [`ChannelContext::update_presence`](super::ChannelContext::update_presence),
//! and untracked when it leaves or disconnects. Several connections under one key are one
//! entry with several metas, each with its own `phx_ref`.
//!
//! The members of a presence channel get, in Phoenix's own payloads (so phoenix.js's
//! `Presence` syncs unchanged, and the other protocols get the same JSON as
//! `<channel>/presence_state` and `<channel>/presence_diff` events):
//! - `presence_state` after every join: `{"<key>": {"metas": [{"phx_ref": "...", ...}]}}`;
//! - `presence_diff` on every change: `{"joins": STATE, "leaves": STATE}`. An update is the
//!   new meta in `joins` (with `phx_ref_prev`, the ref it replaces) and the old one in
//!   `leaves`, in one diff.
//!
//! Across nodes the state is one: a [`Fanout`](super::Fanout) carries each node's changes to
//! the others and hands a node the whole state of a channel when it opens it
//! ([`LocalDelivery`](super::LocalDelivery)'s presence methods).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::member::MemberId;

/// The longest presence key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// Why a presence call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresenceError {
    /// The channel does not track presence ([`Authorizer::PRESENCE`](super::Authorizer::PRESENCE)
    /// is `false`).
    #[error("presence is not enabled for this channel")]
    NotEnabled,
    /// The member is not (or no longer) in the channel.
    #[error("not a member of this channel")]
    NotMember,
    /// The member is tracked in this channel already (update it instead).
    #[error("already tracked in this channel")]
    AlreadyTracked,
    /// The member is not tracked in this channel.
    #[error("not tracked in this channel")]
    NotTracked,
    /// The key is empty or longer than [`MAX_KEY_LEN`].
    #[error("invalid presence key: it must be 1 to 256 bytes")]
    InvalidKey,
    /// The metadata is not a JSON object (or did not serialize).
    #[error("presence metadata must serialize to a JSON object: {0}")]
    InvalidMeta(String),
    /// The other nodes' presence could not be read (the fan-out is unreachable).
    #[error("presence unavailable: {0}")]
    Unavailable(String),
}

/// One connection's entry under a key: the app's metadata and the `phx_ref` that names it
/// (`phx_ref_prev` too, after an update). Serializes as one JSON object, Phoenix's meta.
///
/// ```
/// use tidings_runtime::channels::PresenceMeta;
/// let meta: PresenceMeta =
///     serde_json::from_str(r#"{"phx_ref":"F1a2","online_at":1}"#).unwrap();
/// assert_eq!(meta.phx_ref(), "F1a2");
/// assert_eq!(meta.get("online_at"), Some(&serde_json::json!(1)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceMeta {
    phx_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phx_ref_prev: Option<String>,
    #[serde(flatten)]
    fields: Map<String, Value>,
}

impl PresenceMeta {
    /// The unique reference of this meta.
    pub fn phx_ref(&self) -> &str {
        &self.phx_ref
    }

    /// The reference this meta replaced, after an update.
    pub fn phx_ref_prev(&self) -> Option<&str> {
        self.phx_ref_prev.as_deref()
    }

    /// A field of the app's metadata.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The app's metadata (without the refs).
    pub fn fields(&self) -> &Map<String, Value> {
        &self.fields
    }
}

/// A channel's presence: every key with its metas (one per tracked connection), keys in
/// order. Serializes as Phoenix's state, `{"<key>": {"metas": [...]}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Presences(BTreeMap<String, Vec<PresenceMeta>>);

impl Presences {
    /// How many keys (users) are present.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nobody is present.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The metas of `key`, when it is present.
    pub fn get(&self, key: &str) -> Option<&[PresenceMeta]> {
        self.0.get(key).map(Vec::as_slice)
    }

    /// The keys present, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Every key with its metas, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[PresenceMeta])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    fn add(&mut self, key: &str, meta: PresenceMeta) {
        self.0.entry(key.to_owned()).or_default().push(meta);
    }

    /// The state made of `records`, each key's metas in `phx_ref` order.
    pub(crate) fn from_records(records: impl IntoIterator<Item = PresenceRecord>) -> Self {
        let mut state = Presences::default();
        for record in records {
            state.add(&record.key, record.meta);
        }
        for metas in state.0.values_mut() {
            metas.sort_by(|a, b| a.phx_ref.cmp(&b.phx_ref));
        }
        state
    }
}

impl Serialize for Presences {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Entry<'a> {
            metas: &'a [PresenceMeta],
        }
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, metas) in &self.0 {
            map.serialize_entry(key, &Entry { metas })?;
        }
        map.end()
    }
}

/// A change of a channel's presence, as members receive it (`presence_diff`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PresenceDiff {
    /// The metas that came (an update's new meta among them).
    pub joins: Presences,
    /// The metas that went (an update's old meta among them).
    pub leaves: Presences,
}

impl PresenceDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.joins.is_empty() && self.leaves.is_empty()
    }
}

/// One tracked connection, as nodes exchange them: its key and meta.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceRecord {
    /// The app's key (a user id).
    pub key: String,
    /// The meta, `phx_ref` included.
    pub meta: PresenceMeta,
}

/// Presence records, each with the id of the node that tracks it.
pub type NodeRecords = Vec<(String, PresenceRecord)>;

/// A change made on one node, for the other nodes: metas that came and metas that went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PresenceChange {
    /// The concrete channel name.
    pub channel: String,
    /// Tracked (or updated: the new meta).
    pub joins: Vec<PresenceRecord>,
    /// Untracked (or updated: the old meta).
    pub leaves: Vec<PresenceRecord>,
}

/// Where a record lives: this node (with the member that holds it) or another node.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    Local(MemberId),
    Remote(Arc<str>),
}

#[derive(Debug)]
struct Record {
    /// Insertion order, so a key's metas list in the order they came.
    seq: u64,
    key: String,
    meta: PresenceMeta,
    origin: Origin,
}

/// One channel's presence on this node: its own members' records and the other nodes'.
#[derive(Debug)]
pub(crate) struct ChannelPresence {
    records: HashMap<String, Record>,
    by_member: HashMap<MemberId, String>,
    next_seq: u64,
    /// The other nodes' records are in (true at once without a fan-out).
    synced: bool,
    ready: Arc<Notify>,
}

impl ChannelPresence {
    pub(crate) fn new(synced: bool) -> Self {
        ChannelPresence {
            records: HashMap::new(),
            by_member: HashMap::new(),
            next_seq: 0,
            synced,
            ready: Arc::new(Notify::new()),
        }
    }

    /// The state, keys in order, each key's metas in the order they came.
    pub(crate) fn list(&self) -> Presences {
        let mut records: Vec<&Record> = self.records.values().collect();
        records.sort_unstable_by_key(|r| r.seq);
        let mut state = Presences::default();
        for record in records {
            state.add(&record.key, record.meta.clone());
        }
        state
    }

    /// How many keys are present.
    pub(crate) fn count(&self) -> usize {
        let mut keys: Vec<&str> = self.records.values().map(|r| r.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    }

    /// `None` once synced; else what to wait on.
    pub(crate) fn pending(&self) -> Option<Arc<Notify>> {
        (!self.synced).then(|| self.ready.clone())
    }

    fn insert(&mut self, key: String, meta: PresenceMeta, origin: Origin) -> bool {
        if self.records.contains_key(&meta.phx_ref) {
            return false;
        }
        if let Origin::Local(member) = &origin {
            self.by_member.insert(*member, meta.phx_ref.clone());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.records.insert(
            meta.phx_ref.clone(),
            Record {
                seq,
                key,
                meta,
                origin,
            },
        );
        true
    }

    fn remove(&mut self, phx_ref: &str) -> Option<Record> {
        let record = self.records.remove(phx_ref)?;
        if let Origin::Local(member) = &record.origin {
            self.by_member.remove(member);
        }
        Some(record)
    }

    /// Tracks `member` under `key`.
    pub(crate) fn track(
        &mut self,
        member: MemberId,
        key: String,
        fields: Map<String, Value>,
    ) -> Result<Change, PresenceError> {
        if self.by_member.contains_key(&member) {
            return Err(PresenceError::AlreadyTracked);
        }
        let meta = PresenceMeta {
            phx_ref: new_ref(),
            phx_ref_prev: None,
            fields,
        };
        let mut change = Change::default();
        change.join(&key, &meta);
        self.insert(key, meta, Origin::Local(member));
        Ok(change)
    }

    /// Replaces `member`'s meta: a new ref, the old one as `phx_ref_prev`.
    pub(crate) fn update(
        &mut self,
        member: MemberId,
        fields: Map<String, Value>,
    ) -> Result<Change, PresenceError> {
        let old_ref = self
            .by_member
            .get(&member)
            .cloned()
            .ok_or(PresenceError::NotTracked)?;
        let old = self.remove(&old_ref).ok_or(PresenceError::NotTracked)?;
        let meta = PresenceMeta {
            phx_ref: new_ref(),
            phx_ref_prev: Some(old_ref),
            fields,
        };
        let mut change = Change::default();
        change.join(&old.key, &meta);
        change.leave(&old.key, &old.meta);
        self.insert(old.key, meta, Origin::Local(member));
        Ok(change)
    }

    /// Untracks `member`; `None` when it was not tracked.
    pub(crate) fn untrack(&mut self, member: MemberId) -> Option<Change> {
        let phx_ref = self.by_member.get(&member)?.clone();
        let old = self.remove(&phx_ref)?;
        let mut change = Change::default();
        change.leave(&old.key, &old.meta);
        Some(change)
    }

    /// Applies another node's change; returns what actually changed here.
    pub(crate) fn apply_remote(&mut self, node: &str, change: &PresenceChange) -> PresenceDiff {
        let node: Arc<str> = node.into();
        let mut diff = PresenceDiff::default();
        for record in &change.joins {
            if self.insert(
                record.key.clone(),
                record.meta.clone(),
                Origin::Remote(node.clone()),
            ) {
                diff.joins.add(&record.key, record.meta.clone());
            }
        }
        for record in &change.leaves {
            let theirs = self
                .records
                .get(&record.meta.phx_ref)
                .is_some_and(|r| r.origin == Origin::Remote(node.clone()));
            if theirs && let Some(old) = self.remove(&record.meta.phx_ref) {
                diff.leaves.add(&old.key, old.meta);
            }
        }
        diff
    }

    /// Replaces the other nodes' records with `records` (each with its node), marks the
    /// channel synced; returns what changed here.
    pub(crate) fn reset_remote(&mut self, records: Vec<(String, PresenceRecord)>) -> PresenceDiff {
        let mut diff = PresenceDiff::default();
        let incoming: HashMap<&str, ()> = records
            .iter()
            .map(|(_, r)| (r.meta.phx_ref.as_str(), ()))
            .collect();
        let gone: Vec<String> = self
            .records
            .iter()
            .filter(|(phx_ref, r)| {
                matches!(r.origin, Origin::Remote(_)) && !incoming.contains_key(phx_ref.as_str())
            })
            .map(|(phx_ref, _)| phx_ref.clone())
            .collect();
        for phx_ref in gone {
            if let Some(old) = self.remove(&phx_ref) {
                diff.leaves.add(&old.key, old.meta);
            }
        }
        for (node, record) in records {
            let meta = record.meta.clone();
            if self.insert(record.key.clone(), record.meta, Origin::Remote(node.into())) {
                diff.joins.add(&record.key, meta);
            }
        }
        self.synced = true;
        self.ready.notify_waiters();
        diff
    }

    /// Removes every record of `node`; returns what changed.
    pub(crate) fn remove_node(&mut self, node: &str) -> PresenceDiff {
        let gone: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| matches!(&r.origin, Origin::Remote(n) if &**n == node))
            .map(|(phx_ref, _)| phx_ref.clone())
            .collect();
        let mut diff = PresenceDiff::default();
        for phx_ref in gone {
            if let Some(old) = self.remove(&phx_ref) {
                diff.leaves.add(&old.key, old.meta);
            }
        }
        diff
    }

    /// Adds the nodes this copy holds records of to `nodes`.
    pub(crate) fn remote_nodes(&self, nodes: &mut std::collections::BTreeSet<Arc<str>>) {
        for record in self.records.values() {
            if let Origin::Remote(node) = &record.origin
                && !nodes.contains(node)
            {
                nodes.insert(node.clone());
            }
        }
    }

    /// This node's own records, as joins.
    pub(crate) fn local(&self) -> Vec<PresenceRecord> {
        let mut records: Vec<&Record> = self
            .records
            .values()
            .filter(|r| matches!(r.origin, Origin::Local(_)))
            .collect();
        records.sort_unstable_by_key(|r| r.seq);
        records
            .into_iter()
            .map(|r| PresenceRecord {
                key: r.key.clone(),
                meta: r.meta.clone(),
            })
            .collect()
    }

    /// Marks the channel synced (the fan-out gave up on the other nodes' state, or has none).
    pub(crate) fn mark_synced(&mut self) {
        self.synced = true;
        self.ready.notify_waiters();
    }
}

/// A change made on this node: for its members (`diff`) and for the other nodes (`records`).
#[derive(Debug, Default)]
pub(crate) struct Change {
    pub(crate) diff: PresenceDiff,
    pub(crate) joins: Vec<PresenceRecord>,
    pub(crate) leaves: Vec<PresenceRecord>,
}

impl Change {
    fn join(&mut self, key: &str, meta: &PresenceMeta) {
        self.diff.joins.add(key, meta.clone());
        self.joins.push(PresenceRecord {
            key: key.to_owned(),
            meta: meta.clone(),
        });
    }

    fn leave(&mut self, key: &str, meta: &PresenceMeta) {
        self.diff.leaves.add(key, meta.clone());
        self.leaves.push(PresenceRecord {
            key: key.to_owned(),
            meta: meta.clone(),
        });
    }

    pub(crate) fn for_nodes(self, channel: &str) -> (PresenceDiff, PresenceChange) {
        (
            self.diff,
            PresenceChange {
                channel: channel.to_owned(),
                joins: self.joins,
                leaves: self.leaves,
            },
        )
    }
}

/// The app's metadata as a JSON object, without the refs it may not set.
pub(crate) fn meta_fields<T: Serialize + ?Sized>(
    meta: &T,
) -> Result<Map<String, Value>, PresenceError> {
    match serde_json::to_value(meta) {
        Ok(Value::Object(mut fields)) => {
            fields.remove("phx_ref");
            fields.remove("phx_ref_prev");
            Ok(fields)
        }
        Ok(other) => Err(PresenceError::InvalidMeta(format!(
            "got {}",
            match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            }
        ))),
        Err(err) => Err(PresenceError::InvalidMeta(err.to_string())),
    }
}

/// Checks a presence key.
pub(crate) fn check_key(key: &str) -> Result<(), PresenceError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(PresenceError::InvalidKey);
    }
    Ok(())
}

/// A fresh `phx_ref`: 16 URL-safe characters from the time in nanoseconds, this process's
/// random tag and a counter, unique across nodes as Phoenix's are.
fn new_ref() -> String {
    use base64::Engine as _;
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    static TAG: std::sync::OnceLock<[u8; 2]> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| {
        let mut tag = [0u8; 2];
        // Without OS randomness the tag is zero: refs stay unique within the process, and
        // across processes by their nanosecond time.
        let _ = getrandom::fill(&mut tag);
        tag
    });
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(&nanos.to_be_bytes());
    raw[8..10].copy_from_slice(tag);
    raw[10..].copy_from_slice(&(count as u16).to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member() -> MemberId {
        MemberId::random().unwrap_or_else(|e| panic!("{e}"))
    }

    fn fields(value: Value) -> Map<String, Value> {
        meta_fields(&value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn json_of<T: Serialize>(value: &T) -> Value {
        serde_json::to_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn refs_are_16_url_safe_characters_and_unique() {
        let refs: std::collections::HashSet<String> = (0..10_000).map(|_| new_ref()).collect();
        assert_eq!(refs.len(), 10_000);
        for r in refs.iter().take(10) {
            assert_eq!(r.len(), 16);
            assert!(
                r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            );
        }
    }

    #[test]
    fn two_connections_of_one_key_are_one_entry_with_two_metas() {
        let mut channel = ChannelPresence::new(true);
        let (a, b) = (member(), member());
        channel
            .track(a, "alice".into(), fields(json!({"tab": 1})))
            .unwrap_or_else(|e| panic!("{e}"));
        channel
            .track(b, "alice".into(), fields(json!({"tab": 2})))
            .unwrap_or_else(|e| panic!("{e}"));
        let state = channel.list();
        assert_eq!(state.len(), 1);
        assert_eq!(channel.count(), 1);
        let metas = state.get("alice").unwrap_or_default();
        assert_eq!(metas.len(), 2);
        assert_eq!(metas[0].get("tab"), Some(&json!(1)));
        assert_eq!(metas[1].get("tab"), Some(&json!(2)));
        let wire = json_of(&state);
        assert_eq!(wire["alice"]["metas"][1]["tab"], json!(2));
        assert_eq!(
            wire["alice"]["metas"][0]["phx_ref"],
            json!(metas[0].phx_ref())
        );
        assert!(wire["alice"]["metas"][0].get("phx_ref_prev").is_none());
    }

    #[test]
    fn tracking_twice_is_refused_and_untrack_gives_the_leave() {
        let mut channel = ChannelPresence::new(true);
        let a = member();
        let change = channel
            .track(a, "u1".into(), fields(json!({})))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(change.diff.joins.len(), 1);
        assert!(change.diff.leaves.is_empty());
        assert_eq!(
            channel.track(a, "u1".into(), fields(json!({}))).err(),
            Some(PresenceError::AlreadyTracked)
        );
        let gone = channel.untrack(a).unwrap_or_else(|| panic!("tracked"));
        assert_eq!(gone.diff.leaves.get("u1").map(<[_]>::len), Some(1));
        assert!(channel.list().is_empty());
        assert!(channel.untrack(a).is_none());
    }

    #[test]
    fn an_update_joins_the_new_meta_with_its_prev_and_leaves_the_old() {
        let mut channel = ChannelPresence::new(true);
        let a = member();
        let first = channel
            .track(a, "u1".into(), fields(json!({"status": "away"})))
            .unwrap_or_else(|e| panic!("{e}"));
        let old_ref = first.joins[0].meta.phx_ref().to_owned();
        let update = channel
            .update(a, fields(json!({"status": "here", "phx_ref": "forged"})))
            .unwrap_or_else(|e| panic!("{e}"));
        let wire = json_of(&update.diff);
        assert_eq!(wire["leaves"]["u1"]["metas"][0]["phx_ref"], json!(old_ref));
        assert_eq!(
            wire["joins"]["u1"]["metas"][0]["phx_ref_prev"],
            json!(old_ref)
        );
        assert_eq!(wire["joins"]["u1"]["metas"][0]["status"], json!("here"));
        assert_ne!(wire["joins"]["u1"]["metas"][0]["phx_ref"], json!("forged"));
        assert_eq!(channel.list().get("u1").map(<[_]>::len), Some(1));
        assert_eq!(
            channel.update(member(), fields(json!({}))).err(),
            Some(PresenceError::NotTracked)
        );
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert!(matches!(
            meta_fields(&json!([1, 2])),
            Err(PresenceError::InvalidMeta(_))
        ));
        assert!(matches!(
            meta_fields(&"text"),
            Err(PresenceError::InvalidMeta(_))
        ));
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        assert!(check_key("user:1").is_ok());
    }

    #[test]
    fn remote_changes_apply_once_and_a_node_going_takes_its_records() {
        let mut channel = ChannelPresence::new(false);
        assert!(channel.pending().is_some());
        let local = member();
        channel
            .track(local, "me".into(), fields(json!({})))
            .unwrap_or_else(|e| panic!("{e}"));
        let record = |key: &str, r: &str| PresenceRecord {
            key: key.into(),
            meta: PresenceMeta {
                phx_ref: r.into(),
                phx_ref_prev: None,
                fields: Map::new(),
            },
        };
        let diff = channel.reset_remote(vec![
            ("n1".into(), record("bob", "r1")),
            ("n2".into(), record("eve", "r2")),
        ]);
        assert!(channel.pending().is_none());
        assert_eq!(diff.joins.len(), 2);
        let change = PresenceChange {
            channel: "c".into(),
            joins: vec![record("bob", "r1"), record("carol", "r3")],
            leaves: vec![],
        };
        let diff = channel.apply_remote("n1", &change);
        assert_eq!(diff.joins.keys().collect::<Vec<_>>(), ["carol"]);
        // A leave naming a ref of another node's is not this node's to remove.
        let forged = PresenceChange {
            channel: "c".into(),
            joins: vec![],
            leaves: vec![record("eve", "r2")],
        };
        assert!(channel.apply_remote("n1", &forged).is_empty());
        let diff = channel.remove_node("n1");
        assert_eq!(diff.leaves.keys().collect::<Vec<_>>(), ["bob", "carol"]);
        assert_eq!(channel.list().keys().collect::<Vec<_>>(), ["eve", "me"]);
        // A new snapshot without eve removes her; this node's own record stays.
        let diff = channel.reset_remote(vec![]);
        assert_eq!(diff.leaves.keys().collect::<Vec<_>>(), ["eve"]);
        assert_eq!(channel.list().keys().collect::<Vec<_>>(), ["me"]);
        assert_eq!(channel.local().len(), 1);
    }
}
