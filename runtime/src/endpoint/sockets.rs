//! The sockets of an endpoint, and the one task that watches them all: it closes the ones
//! whose client went silent (asking for a WebSocket ping first where the protocol has one),
//! and cleans up the closed ones (out of the table, a stalled TCP connection shut down, the
//! owner told).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use crate::engineio::{
    CloseReason, Closing, Limits, NoRandomness, Session, Sid, TransportKind, tcp,
};
use crate::sync::{lock, read, write};

/// Milliseconds since this process's first call, plus one: the clock of socket liveness
/// (never 0, which [`Clock`] keeps for "never pinged").
pub(crate) fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// When a socket's client was last heard from, and when it was last pinged.
#[derive(Debug)]
pub(crate) struct Clock {
    heard: AtomicU64,
    /// 0 until the first ping.
    pinged: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            heard: AtomicU64::new(now_ms()),
            pinged: AtomicU64::new(0),
        }
    }
}

impl Clock {
    /// The client was heard from now.
    pub(crate) fn heard(&self) {
        self.heard.store(now_ms(), Ordering::Relaxed);
    }

    /// How long the client has been silent, at `now`.
    pub(crate) fn silent(&self, now: u64) -> u64 {
        now.saturating_sub(self.heard.load(Ordering::Relaxed))
    }

    /// Whether a ping went out since the client was last heard from. A ping is asked for only
    /// after some silence, so it is always later than the last word heard; an answer in the
    /// same millisecond (loopback) counts as heard after it.
    pub(crate) fn pinged_since_heard(&self) -> bool {
        self.pinged.load(Ordering::Relaxed) > self.heard.load(Ordering::Relaxed)
    }

    /// A ping goes out now.
    pub(crate) fn pinged(&self) {
        self.pinged.store(now_ms(), Ordering::Relaxed);
    }
}

/// What the watcher does with a socket on one of its looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Nothing.
    Alive,
    /// Its connection should send a WebSocket ping.
    Ping,
    /// Silent too long: closed with [`CloseReason::PingTimeout`].
    Dead,
}

/// A socket as the watcher sees it.
pub(crate) trait Watched: Send + Sync + 'static {
    /// Its session (queue, close, TCP handle).
    fn session(&self) -> &Arc<Session>;

    /// What the watcher should do with it at `now` ([`now_ms`]).
    fn liveness(&self, now: u64) -> Liveness;

    /// Asks its connection to send a WebSocket ping.
    fn request_ping(&self) {}

    /// How long it stays reachable after the server closed it, for its client to take what
    /// was queued (a LongPoll session's next poll); `None`: forgotten at once.
    fn close_grace(&self) -> Option<Duration> {
        None
    }
}

/// An endpoint: its table, and what it does when a socket is gone.
pub(crate) trait Owner: Send + Sync + 'static {
    /// Its sockets.
    type Socket: Watched;
    /// What the layer above keeps per socket.
    type State: Send + Sync + 'static;

    /// The table.
    fn sockets(&self) -> &Sockets<Self::Socket, Self::State>;

    /// How often the watcher looks at every socket.
    fn tick(&self) -> Duration;

    /// A socket closed and left the table; called once.
    fn closed(&self, socket: &Arc<Self::Socket>, state: &Self::State, reason: &CloseReason);
}

/// A socket and what the layer above keeps for it.
pub(crate) struct Entry<T, S> {
    pub(crate) socket: Arc<T>,
    pub(crate) state: Arc<S>,
}

impl<T, S> Clone for Entry<T, S> {
    fn clone(&self) -> Self {
        Entry {
            socket: self.socket.clone(),
            state: self.state.clone(),
        }
    }
}

/// The sockets of one endpoint, by id.
pub(crate) struct Sockets<T, S> {
    map: RwLock<HashMap<Sid, Entry<T, S>>>,
    /// Sockets closed and waiting for the watcher to clean them up.
    closing: Arc<Closing>,
    /// Whether the watcher task runs.
    watching: Mutex<bool>,
}

impl<T: Watched, S> Default for Sockets<T, S> {
    fn default() -> Self {
        Sockets {
            map: RwLock::new(HashMap::new()),
            closing: Arc::default(),
            watching: Mutex::new(false),
        }
    }
}

impl<T: Watched, S: Send + Sync + 'static> Sockets<T, S> {
    /// A session for a new socket of this table, opened by `req`: it reports its close here,
    /// for the watcher to clean it up.
    pub(crate) fn session(
        &self,
        req: &actix_web::HttpRequest,
        transport: TransportKind,
        limits: Limits,
    ) -> Result<Arc<Session>, NoRandomness> {
        let request = Arc::new(crate::request::RequestInfo::from_request(req));
        Session::new(request, transport, limits, self.closing.clone()).map(Arc::new)
    }

    /// How many there are (closed ones not yet cleaned up included).
    pub(crate) fn len(&self) -> usize {
        read(&self.map).len()
    }

    /// Every socket.
    pub(crate) fn all(&self) -> Vec<Arc<T>> {
        read(&self.map).values().map(|e| e.socket.clone()).collect()
    }

    /// The open socket with this id.
    pub(crate) fn open(&self, id: &str) -> Option<Entry<T, S>> {
        self.any(id)
            .filter(|entry| !entry.socket.session().is_closed())
    }

    /// The socket with this id, open or closed but not yet cleaned up.
    pub(crate) fn any(&self, id: &str) -> Option<Entry<T, S>> {
        let id = Sid::parse(id)?;
        read(&self.map).get(&id).cloned()
    }
}

/// Puts a new socket in `owner`'s table, under the watcher (started unless it runs).
pub(crate) fn admit<O: Owner>(owner: &Arc<O>, entry: Entry<O::Socket, O::State>) {
    let sockets = owner.sockets();
    let id = entry.socket.session().sid();
    write(&sockets.map).insert(id, entry);
    let mut watching = lock(&sockets.watching);
    if !*watching {
        *watching = true;
        tokio::spawn(watcher(owner.clone()));
    }
}

/// One task for every socket of an endpoint: every tick, the liveness of each; at once, the
/// clean-up of every closed one. It ends when no socket is left; the next one starts it again.
async fn watcher<O: Owner>(owner: Arc<O>) {
    let tick = owner.tick();
    let sockets = owner.sockets();
    let mut next_look = tokio::time::Instant::now() + tick;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_look) => {}
            () = sockets.closing.wake.notified() => {}
        }
        if tokio::time::Instant::now() >= next_look {
            next_look = tokio::time::Instant::now() + tick;
            let now = now_ms();
            let mut dead = Vec::new();
            for entry in read(&sockets.map).values() {
                match entry.socket.liveness(now) {
                    Liveness::Alive => {}
                    Liveness::Ping => entry.socket.request_ping(),
                    Liveness::Dead => dead.push(entry.socket.clone()),
                }
            }
            for socket in dead {
                tracing::debug!(id = %socket.session().sid(), "client silent too long: closing");
                socket.session().close(CloseReason::PingTimeout);
            }
        }
        for id in sockets.closing.take() {
            reap(&owner, id);
        }
        let mut watching = lock(&sockets.watching);
        if read(&sockets.map).is_empty() && sockets.closing.is_empty() {
            *watching = false;
            return;
        }
    }
}

/// How long a closed WebSocket's TCP connection may stay open with nothing left to write;
/// then it is shut down (with queued frames still to go, a second).
const CLOSE_LINGER: Duration = Duration::from_millis(500);

/// Cleans up a closed socket, at once or after its grace (closed by the server, waiting for
/// its client to take what was queued).
fn reap<O: Owner>(owner: &Arc<O>, id: Sid) {
    let Some(entry) = read(&owner.sockets().map).get(&id).cloned() else {
        return;
    };
    let session = entry.socket.session();
    let grace = entry.socket.close_grace().filter(|_| {
        session
            .close_reason()
            .is_some_and(CloseReason::awaits_delivery)
    });
    match grace {
        Some(grace) => {
            let owner = owner.clone();
            tokio::spawn(async move {
                let session = entry.socket.session();
                let _ = tokio::time::timeout(grace, session.close_delivered()).await;
                forget(&*owner, id);
            });
        }
        None => forget(&**owner, id),
    }
}

/// Out of the table, the TCP connection given a moment to take what is left, then the owner
/// hears of it.
fn forget<O: Owner>(owner: &O, id: Sid) {
    let Some(entry) = write(&owner.sockets().map).remove(&id) else {
        return;
    };
    let session = entry.socket.session();
    let reason = session
        .close_reason()
        .cloned()
        .unwrap_or(CloseReason::TransportError);
    if let Some(socket) = session.tcp() {
        let linger = if reason.delivers_queued() {
            Duration::from_secs(1)
        } else {
            CLOSE_LINGER
        };
        tcp::end_after(socket.clone(), linger);
    }
    tracing::debug!(id = %id, %reason, "socket closed");
    owner.closed(&entry.socket, &entry.state, &reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_clock_has_not_pinged_even_in_the_first_millisecond() {
        let clock = Clock::default();
        assert!(
            !clock.pinged_since_heard(),
            "a fresh socket must get its first ping"
        );
        std::thread::sleep(Duration::from_millis(2));
        clock.pinged();
        assert!(clock.pinged_since_heard());
        // The pong of a loopback client often comes back within the same millisecond.
        clock.heard();
        assert!(
            !clock.pinged_since_heard(),
            "heard after the ping: the next one is due"
        );
    }
}
