//! The heartbeat of every session of an engine, on one task: pings, pong deadlines, and the
//! clean-up of closed sessions (out of the table, the handler told, a stalled WebSocket's TCP
//! connection shut down).

use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use tokio::time::Instant;

use super::config::EngineConfig;
use super::error::CloseReason;
use super::packet::{Frame, Packet};
use super::server::{EngineHandler, EngineInner, Entry};
use super::session::{Session, TransportKind};
use super::sid::Sid;
use super::tcp;
use crate::sync::{lock, write};

/// What the heartbeat task works through on each tick.
pub(super) struct Heartbeat {
    watched: Vec<Watched>,
    /// Whether the task runs; it ends when nothing is left to watch, and the next session
    /// starts it again.
    running: bool,
}

impl Heartbeat {
    pub(super) fn new() -> Self {
        Heartbeat {
            watched: Vec::new(),
            running: false,
        }
    }
}

/// One open session, as the heartbeat sees it.
struct Watched {
    session: Arc<Session>,
    /// When the next ping is due, or, while a pong is awaited, when the wait ends.
    due: Instant,
    awaiting_pong: bool,
}

/// Puts a new session under the heartbeat, starting the heartbeat task if it is not running.
pub(super) fn watch<H: EngineHandler>(engine: &Arc<EngineInner<H>>, session: Arc<Session>) {
    let mut heartbeat = lock(&engine.heartbeat);
    heartbeat.watched.push(Watched {
        session,
        due: Instant::now() + engine.config.ping_interval,
        awaiting_pong: false,
    });
    if !heartbeat.running {
        heartbeat.running = true;
        tokio::spawn(run_heartbeat(engine.clone()));
    }
}

/// How often the heartbeat looks at its sessions: a tenth of the shorter of the ping interval
/// and timeout, between 5 ms and 500 ms (pings go out up to that much early; a session whose
/// pong is late is closed on time, by a wake-up at its deadline).
fn tick(config: &EngineConfig) -> Duration {
    (config.ping_interval.min(config.ping_timeout) / 10)
        .clamp(Duration::from_millis(5), Duration::from_millis(500))
}

/// The heartbeat of every session of an engine, on one task (not one per session): pings each
/// session one `ping_interval` after its handshake and then an interval after each pong, and
/// closes it when a pong is later than `ping_timeout`. It also cleans up closed sessions at
/// once: removes them from the table and tells the handler. It ends when no session is left.
async fn run_heartbeat<H: EngineHandler>(engine: Arc<EngineInner<H>>) {
    let mut running = Running {
        engine: &engine,
        armed: true,
    };
    let ping = Packet::Ping(ByteString::new()).encode();
    let tick = tick(&engine.config);
    let mut wake_at = Instant::now() + tick;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            () = engine.closing.wake.notified() => {}
        }
        let now = Instant::now();
        if now >= wake_at {
            let deadline = beat(&engine, now, tick, &ping);
            wake_at = deadline.map_or(now + tick, |deadline| deadline.min(now + tick));
        }
        for sid in engine.closing.take() {
            reap(&engine, sid);
        }
        let mut heartbeat = lock(&engine.heartbeat);
        // A session is queued in `closing` before it shows as closed, so an empty watch list
        // and an empty queue mean nothing is left to do.
        if heartbeat.watched.is_empty() && engine.closing.is_empty() {
            heartbeat.running = false;
            running.armed = false;
            return;
        }
    }
}

/// Marks the heartbeat task as gone when it is dropped unfinished (its runtime shut down), so
/// that the next session starts a new one.
struct Running<'a, H: EngineHandler> {
    engine: &'a EngineInner<H>,
    armed: bool,
}

impl<H: EngineHandler> Drop for Running<'_, H> {
    fn drop(&mut self) {
        if self.armed {
            lock(&self.engine.heartbeat).running = false;
        }
    }
}

/// One look at every watched session: pings the ones due before the next tick (a ping may go
/// up to a tick early, never late), closes the ones whose pong is late, and stops watching the
/// closed ones. Returns the earliest moment a pong still awaited is due, so that a silent
/// session is closed on time, not up to a tick late.
fn beat<H: EngineHandler>(
    engine: &EngineInner<H>,
    now: Instant,
    tick: Duration,
    ping: &Frame,
) -> Option<Instant> {
    let config = &engine.config;
    let mut heartbeat = lock(&engine.heartbeat);
    let mut earliest: Option<Instant> = None;
    heartbeat.watched.retain_mut(|watched| {
        let session = &watched.session;
        if session.is_closed() {
            return false;
        }
        if watched.awaiting_pong {
            if session.has_ponged() {
                watched.awaiting_pong = false;
                watched.due = now + config.ping_interval;
            } else if now >= watched.due {
                session.close(CloseReason::PingTimeout);
                return false;
            }
        } else if now + tick >= watched.due {
            session.clear_pong();
            if session.send(ping.clone()).is_err() {
                return false;
            }
            watched.awaiting_pong = true;
            watched.due = now + config.ping_timeout;
        }
        if watched.awaiting_pong {
            earliest = Some(earliest.map_or(watched.due, |e| e.min(watched.due)));
        }
        true
    });
    earliest
}

/// How long a WebSocket connection may stay open once its session has ended with nothing left
/// to write but the close frame; then its TCP connection is shut down (see [`tcp::on_connect`]).
/// When queued frames are still to go out, it gets the ping timeout (at least a second).
const CLOSE_LINGER: Duration = Duration::from_millis(500);

/// How long a polling session closed by the server waits for the poll that carries the close.
const POLL_CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Cleans up a closed session: out of the table, then the handler hears of it.
fn reap<H: EngineHandler>(engine: &Arc<EngineInner<H>>, sid: Sid) {
    let Some(entry) = engine.lookup(sid) else {
        return;
    };
    let session = &entry.session;
    // A polling client hears of a close from the server only through its next poll: keep the
    // session reachable a moment, so that poll gets the close packet, not "unknown sid".
    if session.transport() == TransportKind::Polling
        && session
            .close_reason()
            .is_some_and(CloseReason::awaits_delivery)
    {
        let grace = engine.config.ping_interval.min(POLL_CLOSE_GRACE);
        let engine = engine.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(grace, entry.session.close_delivered()).await;
            forget(&engine, &entry);
        });
    } else {
        forget(engine, &entry);
    }
}

fn forget<H: EngineHandler>(engine: &EngineInner<H>, entry: &Entry<H::State>) {
    let session = &entry.session;
    // A client that does not read would keep its WebSocket open for ever (actix-http writes
    // until the peer takes the bytes): what is left gets a while to leave, then the TCP
    // connection is shut down.
    if let Some(socket) = session.tcp() {
        let linger = if session
            .close_reason()
            .is_some_and(CloseReason::delivers_queued)
        {
            engine.config.ping_timeout.max(Duration::from_secs(1))
        } else {
            CLOSE_LINGER
        };
        tcp::end_after(socket.clone(), linger);
    }
    write(&engine.sessions).remove(&session.sid());
    let reason = session
        .close_reason()
        .cloned()
        .unwrap_or(CloseReason::TransportError);
    tracing::debug!(sid = %session.sid(), %reason, "session closed");
    engine.handler.on_close(session, &entry.state, &reason);
}
