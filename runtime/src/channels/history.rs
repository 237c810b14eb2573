//! Channel history, for connection state recovery: a client that drops for a moment comes
//! back to the same channels with every event it missed.
//!
//! With recovery on ([`HistoryLimits`] given to the hub), every broadcast gets an offset, one
//! counter for all channels of the node, so offsets order events across channels, and is kept
//! in its channel's log, bounded by count and age. A member whose connection ends for a reason
//! a client recovers from is *suspended*: its channels, assigns and identity are kept under a
//! key (Socket.IO's private session id) for the same age. When the client comes back with that
//! key and the offset of the last event it got, the member is restored: back in its channels
//! without `pass`, and every event of those channels after the offset is queued to it before
//! any new one, in offset order, once each. An offset older than what a log still holds is
//! answered honestly: not recovered.
//!
//! Recording and delivering an event happen under its channel's log lock, and a restore takes
//! the locks of all the member's channels while it rejoins them and collects the missed
//! events, so no event falls between the replay and the live stream, and none is in both.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::authorizer::Assigns;
use super::context::Identity;
use super::member::{MemberId, MemberTag};
use super::outgoing::Outgoing;
use crate::payload::Payload;
use crate::sync::lock;

/// How much history a node keeps for clients that come back.
///
/// ```
/// use std::time::Duration;
/// use tidings_runtime::channels::HistoryLimits;
/// let limits = HistoryLimits::default();
/// assert_eq!(limits.max_age, Duration::from_secs(120));
/// assert_eq!(limits.max_events, 1000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryLimits {
    /// How long a disconnected client may stay away and still recover; also how long events
    /// are kept (default 2 minutes, socket.io's default).
    pub max_age: Duration,
    /// The most events kept per channel (default 1000); a client that missed more is not
    /// recovered.
    pub max_events: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_age: Duration::from_secs(120),
            max_events: 1000,
        }
    }
}

impl HistoryLimits {
    /// Limits with this maximum disconnection duration (and event age).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Limits with this many events kept per channel (at least one).
    pub fn max_events(mut self, max_events: usize) -> Self {
        self.max_events = max_events.max(1);
        self
    }
}

/// One kept event: its name and arguments only (the channel is the log's; the encodings made
/// for delivery are not kept, a replay makes its own).
struct Entry {
    offset: u64,
    at: Instant,
    event: Box<str>,
    payload: Payload,
}

/// One channel's log.
struct Log {
    channel: Box<str>,
    entries: VecDeque<Entry>,
    /// The highest offset dropped from this log (0: none).
    evicted: u64,
}

impl Log {
    fn trim(&mut self, limits: &HistoryLimits, now: Instant) {
        while self.entries.len() > limits.max_events
            || self
                .entries
                .front()
                .is_some_and(|e| now.duration_since(e.at) > limits.max_age)
        {
            let Some(entry) = self.entries.pop_front() else {
                break;
            };
            self.evicted = entry.offset;
        }
    }

    /// The events after `since`, made again as events to deliver; `None` when some of them
    /// are gone.
    fn since(&self, since: u64) -> Option<impl Iterator<Item = (u64, Arc<Outgoing>)> + '_> {
        if self.evicted > since {
            return None;
        }
        let start = self.entries.partition_point(|e| e.offset <= since);
        Some(self.entries.range(start..).map(|e| {
            let message = Outgoing::new(&*self.channel, &*e.event, e.payload.clone());
            (e.offset, Arc::new(message.with_offset(e.offset)))
        }))
    }
}

/// A member whose connection ended for a reason its client recovers from.
pub(crate) struct Suspended {
    pub(crate) member: MemberId,
    pub(crate) identity: Option<Identity>,
    /// Its channels when its connection ended, each with the offset it joined at (to check
    /// that what it missed is still kept).
    starts: Vec<(String, u64)>,
    /// Where its memberships come from.
    pub(crate) comeback: Comeback,
    at: Instant,
}

/// Where a suspended member's memberships come from.
pub(crate) enum Comeback {
    /// This node: handed over once its `left` hooks have run, assigns and all.
    Here(Arc<Handover>),
    /// Another node of the cluster: the channels only, each joined again through `pass`
    /// (assigns and identity are values of that node's memory).
    Elsewhere(Vec<SessionChannel>),
}

/// A suspended member as every node of a cluster can read it: its id and channels.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ClusterSession {
    pub(crate) member: String,
    pub(crate) channels: Vec<SessionChannel>,
}

/// One channel of a [`ClusterSession`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SessionChannel {
    pub(crate) channel: String,
    /// The offset it joined at: nothing older is replayed.
    pub(crate) since: u64,
    /// Its join payload, for `pass`.
    pub(crate) payload: Option<Box<serde_json::value::RawValue>>,
}

/// A suspended member's memberships, handed over by its old connection's task once the
/// `left` hooks have run (a client may come back before they finish).
#[derive(Default)]
pub(crate) struct Handover {
    kept: Mutex<Option<Vec<Kept>>>,
    ready: tokio::sync::Notify,
}

impl Handover {
    /// Hands the memberships over.
    pub(crate) fn fill(&self, kept: Vec<Kept>) {
        *lock(&self.kept) = Some(kept);
        self.ready.notify_waiters();
    }

    /// The memberships, once handed over (`None` after `limit`).
    pub(crate) async fn wait(&self, limit: std::time::Duration) -> Option<Vec<Kept>> {
        let ready = self.ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        if let Some(kept) = lock(&self.kept).take() {
            return Some(kept);
        }
        tokio::time::timeout(limit, ready).await.ok()?;
        lock(&self.kept).take()
    }
}

/// A channel a suspended member was in: its assigns and membership tag there, and the offset
/// it joined at (nothing older is replayed to it).
pub(crate) struct Kept {
    pub(crate) channel: String,
    pub(crate) assigns: Assigns,
    pub(crate) tag: MemberTag,
    pub(crate) since: u64,
    pub(crate) payload: Option<Box<serde_json::value::RawValue>>,
}

/// The logs and the suspended members.
struct Inner {
    /// The next offset (offsets start at 1, so a client's 0 means "from the start").
    next: u64,
    logs: HashMap<String, Log>,
    suspended: HashMap<String, Suspended>,
    /// Suspended members a new connection has claimed, by member id, until it takes them.
    claimed: HashMap<MemberId, Suspended>,
    /// Records since the last sweep.
    since_sweep: u64,
    /// The highest offset dropped with a log the sweep removed: a log made again later starts
    /// from it, so it never claims to hold what its predecessor lost.
    forgotten: u64,
    /// The cluster keeps the history (offsets come from the fan-out): these logs only hold
    /// what this node received, to complete what is read from the cluster.
    cluster: bool,
    /// No client coming back from an offset below it is whole: an event was delivered here
    /// that no history holds (the fan-out could not take it).
    floor: u64,
}

impl Inner {
    fn log(&mut self, channel: &str) -> &mut Log {
        // A cluster's logs complete a read of the cluster's history, made after this node
        // listened to the channel: they vouch for nothing older by themselves.
        let forgotten = if self.cluster { 0 } else { self.forgotten };
        self.logs.entry(channel.to_owned()).or_insert_with(|| Log {
            channel: channel.into(),
            entries: VecDeque::new(),
            evicted: forgotten,
        })
    }

    /// Whether every event after `offset` (and after each channel's start) in these channels
    /// is still kept.
    fn covers(&mut self, starts: &[(String, u64)], offset: u64) -> bool {
        if offset < self.floor {
            return false;
        }
        if self.cluster {
            // The cluster's history decides, when the member is restored.
            return true;
        }
        starts
            .iter()
            .all(|(channel, since)| self.log(channel).since((*since).max(offset)).is_some())
    }

    fn sweep(&mut self, limits: &HistoryLimits) {
        let now = Instant::now();
        let mut forgotten = self.forgotten;
        self.logs.retain(|_, log| {
            log.trim(limits, now);
            if log.entries.is_empty() {
                forgotten = forgotten.max(log.evicted);
                return false;
            }
            true
        });
        self.forgotten = forgotten;
        self.suspended
            .retain(|_, s| now.duration_since(s.at) <= limits.max_age);
        self.claimed
            .retain(|_, s| now.duration_since(s.at) <= limits.max_age);
        self.since_sweep = 0;
    }
}

thread_local! {
    /// This thread holds the order lock (a `handle_out` that broadcasts while its event is
    /// delivered runs inside the same turn).
    static ORDERING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The turn of one recorded delivery (or one restore); nothing when this thread has it.
pub(crate) struct Turn<'a>(Option<MutexGuard<'a, ()>>);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if self.0.is_some() {
            ORDERING.with(|held| held.set(false));
        }
    }
}

/// The history of one node's channels, and its suspended members.
pub(crate) struct History {
    limits: HistoryLimits,
    /// Held while an event is recorded and delivered, and while a member is restored: every
    /// member gets the node's recorded events in offset order, and a restore cuts cleanly
    /// between the replay and the live stream.
    order: Mutex<()>,
    inner: Mutex<Inner>,
}

/// How many records between two sweeps of the logs of other channels.
const SWEEP_EVERY: u64 = 4096;

impl History {
    pub(crate) fn new(limits: HistoryLimits) -> Self {
        History {
            limits,
            order: Mutex::new(()),
            inner: Mutex::new(Inner {
                next: 1,
                logs: HashMap::new(),
                suspended: HashMap::new(),
                claimed: HashMap::new(),
                since_sweep: 0,
                forgotten: 0,
                cluster: false,
                floor: 0,
            }),
        }
    }

    /// A history whose offsets the cluster gives ([`History::record_at`]); its logs hold what
    /// this node received, to complete what is read from the cluster
    /// ([`History::merge_cluster`]).
    pub(crate) fn for_cluster(limits: HistoryLimits) -> Self {
        let history = History::new(limits);
        lock(&history.inner).cluster = true;
        history
    }

    /// The limits it keeps to.
    pub(crate) fn limits(&self) -> &HistoryLimits {
        &self.limits
    }

    /// Waits for the turn to record and deliver (or restore); held until dropped.
    pub(crate) fn turn(&self) -> Turn<'_> {
        if ORDERING.with(std::cell::Cell::get) {
            return Turn(None);
        }
        let guard = lock(&self.order);
        ORDERING.with(|held| held.set(true));
        Turn(Some(guard))
    }

    /// Gives `message` the next offset and keeps it in its channel's log. Call it in a
    /// [`History::turn`], and deliver the event before the turn ends.
    pub(crate) fn record(&self, message: Outgoing) -> Arc<Outgoing> {
        let offset = lock(&self.inner).next;
        self.record_at(message, offset)
    }

    /// Keeps `message` at `offset`, which the cluster gave it (offsets only grow). Call it in
    /// a [`History::turn`], and deliver the event before the turn ends.
    pub(crate) fn record_at(&self, message: Outgoing, offset: u64) -> Arc<Outgoing> {
        let mut inner = lock(&self.inner);
        inner.next = inner.next.max(offset + 1);
        let message = Arc::new(message.with_offset(offset));
        let now = Instant::now();
        let log = inner.log(message.channel());
        log.entries.push_back(Entry {
            offset,
            at: now,
            event: message.event().into(),
            payload: message.payload().clone(),
        });
        log.trim(&self.limits, now);
        inner.since_sweep += 1;
        if inner.since_sweep >= SWEEP_EVERY {
            inner.sweep(&self.limits);
        }
        message
    }

    /// The latest offset given (0 before the first). Read in a [`History::turn`], every event
    /// up to it has been delivered.
    pub(crate) fn last(&self) -> u64 {
        lock(&self.inner).next - 1
    }

    /// Keeps a member's channels under `key` until it comes back or the age limit passes.
    pub(crate) fn suspend(
        &self,
        key: String,
        member: MemberId,
        identity: Option<Identity>,
        starts: Vec<(String, u64)>,
    ) -> Arc<Handover> {
        let handover = Arc::new(Handover::default());
        let mut inner = lock(&self.inner);
        inner.sweep(&self.limits);
        inner.suspended.insert(
            key,
            Suspended {
                member,
                identity,
                starts,
                comeback: Comeback::Here(handover.clone()),
                at: Instant::now(),
            },
        );
        handover
    }

    /// Takes in a member suspended on another node of the cluster, claimed there for a
    /// connection coming back here ([`History::take`] it by its id).
    pub(crate) fn adopt(&self, member: MemberId, channels: Vec<SessionChannel>) {
        let mut inner = lock(&self.inner);
        inner.claimed.insert(
            member,
            Suspended {
                member,
                identity: None,
                starts: channels
                    .iter()
                    .map(|c| (c.channel.clone(), c.since))
                    .collect(),
                comeback: Comeback::Elsewhere(channels),
                at: Instant::now(),
            },
        );
    }

    /// Forgets the member suspended under `key` here: the cluster says it was claimed
    /// elsewhere (or is gone).
    pub(crate) fn forget(&self, key: &str) {
        lock(&self.inner).suspended.remove(key);
    }

    /// Claims the member suspended under `key` for a connection coming back from `offset`,
    /// when it can: it is there, not too old, and no event after `offset` has left the logs of
    /// its channels. Its id when so (then [`History::take`] it by that id); a second claim of
    /// the same key finds nothing.
    pub(crate) fn claim(&self, key: &str, offset: u64) -> Option<MemberId> {
        let mut inner = lock(&self.inner);
        if offset >= inner.next {
            return None;
        }
        let entry = inner.suspended.get(key)?;
        if entry.at.elapsed() > self.limits.max_age {
            return None;
        }
        let starts = entry.starts.clone();
        if !inner.covers(&starts, offset) {
            return None;
        }
        let entry = inner.suspended.remove(key)?;
        let member = entry.member;
        inner.claimed.insert(member, entry);
        Some(member)
    }

    /// Whether the claimed member `member` can still come back from `offset`; when not, the
    /// claim is dropped.
    pub(crate) fn confirm(&self, member: MemberId, offset: u64) -> bool {
        let mut inner = lock(&self.inner);
        let Some(entry) = inner.claimed.get(&member) else {
            return false;
        };
        let fresh = entry.at.elapsed() <= self.limits.max_age;
        let starts = entry.starts.clone();
        let covered = fresh && inner.covers(&starts, offset);
        if !covered {
            inner.claimed.remove(&member);
        }
        covered
    }

    /// Takes the claimed member `member`, when it is there and not too old.
    pub(crate) fn take(&self, member: MemberId) -> Option<Suspended> {
        let suspended = lock(&self.inner).claimed.remove(&member)?;
        (suspended.at.elapsed() <= self.limits.max_age).then_some(suspended)
    }

    /// An event was delivered here that no history holds: no client coming back from before
    /// it is whole.
    pub(crate) fn unrecorded(&self) {
        let mut inner = lock(&self.inner);
        inner.floor = inner.next;
    }

    /// The events of each channel after its offset, in offset order, each with its channel's
    /// index in `channels`; `None` when some are gone. Call it in a [`History::turn`].
    pub(crate) fn missed(&self, channels: &[(&str, u64)]) -> Option<Vec<(usize, Arc<Outgoing>)>> {
        let mut inner = lock(&self.inner);
        if channels.iter().any(|(_, since)| *since < inner.floor) {
            return None;
        }
        let mut missed = Vec::new();
        for (at, (channel, since)) in channels.iter().enumerate() {
            let events = inner.log(channel).since(*since)?;
            missed.extend(events.map(|(o, m)| (o, at, m)));
        }
        missed.sort_unstable_by_key(|(o, _, _)| *o);
        Some(missed.into_iter().map(|(_, at, m)| (at, m)).collect())
    }

    /// What each channel missed after its offset, from what the cluster's history held when
    /// read (`read`, per channel in the order of `channels`) and what this node received
    /// since, in offset order, each with its channel's index in `channels`, once each.
    /// `None` when some are gone. Call it in a [`History::turn`].
    pub(crate) fn merge_cluster(
        &self,
        channels: &[(&str, u64)],
        read: Vec<Option<Vec<(u64, Outgoing)>>>,
    ) -> Option<Vec<(usize, Arc<Outgoing>)>> {
        let mut inner = lock(&self.inner);
        if read.len() != channels.len() || channels.iter().any(|(_, s)| *s < inner.floor) {
            return None;
        }
        let mut missed = Vec::new();
        for (at, ((channel, since), events)) in channels.iter().zip(read).enumerate() {
            let events = events?;
            let mut last = *since;
            for (offset, message) in events {
                if offset > *since {
                    last = last.max(offset);
                    missed.push((offset, at, Arc::new(message.with_offset(offset))));
                }
            }
            // What came after the read: this node has listened since before it.
            let after = inner.log(channel).since(last)?;
            missed.extend(after.map(|(o, m)| (o, at, m)));
        }
        missed.sort_by_key(|(o, _, _)| *o);
        missed.dedup_by_key(|(o, _, _)| *o);
        Some(missed.into_iter().map(|(_, at, m)| (at, m)).collect())
    }

    /// Drops what is older than the age limit.
    #[cfg(test)]
    pub(crate) fn sweep(&self) {
        lock(&self.inner).sweep(&self.limits);
    }

    #[cfg(test)]
    fn covers_for_test(&self, starts: &[(String, u64)], offset: u64) -> bool {
        lock(&self.inner).covers(starts, offset)
    }

    /// How many members are suspended.
    #[cfg(test)]
    pub(crate) fn suspended_count(&self) -> usize {
        lock(&self.inner).suspended.len()
    }

    /// How many events are kept, all channels together.
    #[cfg(test)]
    pub(crate) fn event_count(&self) -> usize {
        lock(&self.inner)
            .logs
            .values()
            .map(|l| l.entries.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;

    fn event(channel: &str, n: u32) -> Outgoing {
        Outgoing::new(
            channel,
            "tick",
            Payload::from_value(&n).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn offsets(events: Option<Vec<(usize, Arc<Outgoing>)>>) -> Option<Vec<(usize, u64)>> {
        events.map(|events| {
            events
                .iter()
                .map(|(at, m)| (*at, m.offset().unwrap_or_default()))
                .collect()
        })
    }

    #[test]
    fn offsets_order_events_across_channels_and_missed_merges_them() {
        let history = History::new(HistoryLimits::default());
        for n in 0..3 {
            let _turn = history.turn();
            let m = history.record(event("a", n));
            assert_eq!(m.offset(), Some(u64::from(2 * n + 1)));
            history.record(event("b", n));
        }
        assert_eq!(
            offsets(history.missed(&[("a", 2), ("b", 2)])),
            Some(vec![(0, 3), (1, 4), (0, 5), (1, 6)])
        );
        assert_eq!(offsets(history.missed(&[("b", 5)])), Some(vec![(0, 6)]));
        assert_eq!(offsets(history.missed(&[("a", 6)])), Some(vec![]));
        assert_eq!(offsets(history.missed(&[("quiet", 0)])), Some(vec![]));
    }

    #[test]
    fn a_cluster_read_is_completed_by_what_came_after_it_once_each_in_order() {
        let history = History::for_cluster(HistoryLimits::default());
        // Received here (this node listened since before the read): 20 and 30 in `a`, 25 in
        // `b`; 20 was also in the read.
        for (channel, offset) in [("a", 20), ("b", 25), ("a", 30)] {
            let _turn = history.turn();
            let kept = history.record_at(event(channel, 0), offset);
            assert_eq!(kept.offset(), Some(offset));
        }
        assert_eq!(history.last(), 30);
        let read = vec![
            Some(vec![(12, event("a", 0)), (20, event("a", 0))]),
            Some(vec![(15, event("b", 0))]),
        ];
        assert_eq!(
            offsets(history.merge_cluster(&[("a", 10), ("b", 10)], read)),
            Some(vec![(0, 12), (1, 15), (0, 20), (1, 25), (0, 30)])
        );
        // What the read says is gone is gone, whatever this node holds.
        let read = vec![None, Some(Vec::new())];
        assert_eq!(
            offsets(history.merge_cluster(&[("a", 10), ("b", 10)], read)),
            None
        );
        // A channel this node holds nothing of, with nothing in the read: nothing missed.
        assert_eq!(
            offsets(history.merge_cluster(&[("quiet", 10)], vec![Some(Vec::new())])),
            Some(vec![])
        );
        // Claims leave the decision to the read of the cluster's history, at the restore.
        assert!(history.covers_for_test(&[("a".into(), 0)], 1));
    }

    #[test]
    fn an_event_kept_nowhere_ends_recovery_from_before_it() {
        let history = History::for_cluster(HistoryLimits::default());
        history.record_at(event("a", 0), 5);
        history.unrecorded();
        assert_eq!(
            offsets(history.merge_cluster(&[("a", 5)], vec![Some(Vec::new())])),
            None,
            "a client at 5 may have missed it"
        );
        history.record_at(event("a", 0), 9);
        assert_eq!(
            offsets(history.merge_cluster(&[("a", 9)], vec![Some(Vec::new())])),
            Some(vec![]),
            "a client that got a later event did not"
        );
        let local = History::new(HistoryLimits::default());
        local.record(event("a", 0));
        local.unrecorded();
        assert_eq!(offsets(local.missed(&[("a", 1)])), None);
    }

    #[test]
    fn a_turn_is_taken_once_per_thread() {
        let history = History::new(HistoryLimits::default());
        let outer = history.turn();
        // A broadcast inside a delivery (handle_out) does not wait on its own thread's turn.
        let inner = history.turn();
        drop(inner);
        drop(outer);
        let again = history.turn();
        drop(again);
    }

    #[test]
    fn a_log_past_its_count_says_so_instead_of_leaving_a_gap() {
        let history = History::new(HistoryLimits::default().max_events(2));
        for n in 0..5 {
            history.record(event("a", n));
        }
        assert_eq!(
            offsets(history.missed(&[("a", 3)])),
            Some(vec![(0, 4), (0, 5)])
        );
        assert_eq!(
            offsets(history.missed(&[("a", 2)])),
            None,
            "offset 3 is gone"
        );
    }

    #[test]
    fn events_and_suspended_members_older_than_the_age_limit_go() {
        let history = History::new(HistoryLimits::default().max_age(Duration::from_millis(30)));
        history.record(event("a", 1));
        let id = MemberId::random().unwrap_or_else(|e| panic!("{e}"));
        history.suspend("pid".into(), id, None, vec![("a".into(), 0)]);
        assert_eq!(history.claim("other", 1), None);
        assert_eq!(history.claim("pid", 99), None, "an offset never given");
        assert_eq!(history.claim("pid", 1), Some(id));
        assert_eq!(history.claim("pid", 1), None, "claimed once");
        assert!(history.take(id).is_some());
        assert!(history.take(id).is_none());
        history.suspend("pid".into(), id, None, vec![("a".into(), 0)]);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(history.claim("pid", 1), None, "too old");
        history.sweep();
        assert_eq!(history.suspended_count(), 0);
        assert_eq!(history.event_count(), 0);
        // Made again, the log does not claim what the dropped one lost.
        assert_eq!(offsets(history.missed(&[("a", 0)])), None);
    }
}
