//! Settings of the Phoenix Channels endpoint, with Phoenix's own defaults where it has one.

use std::time::Duration;

use crate::origin::OriginPolicy;

/// Settings of a [`PhoenixServer`](super::PhoenixServer).
///
/// ```
/// use std::time::Duration;
/// use tidings_runtime::phoenix::PhoenixConfig;
/// let mut config = PhoenixConfig::default();
/// config.path = "/live".to_owned();
/// assert_eq!(config.idle_timeout, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PhoenixConfig {
    /// The mount path: phoenix.js's `new Socket("/socket")` reaches `/socket/websocket` and
    /// `/socket/longpoll`.
    pub path: String,
    /// Whether `<path>/websocket` is served.
    pub websocket: bool,
    /// Whether `<path>/longpoll` is served (phoenix.js falls back to it, and uses it where no
    /// `WebSocket` exists).
    pub longpoll: bool,
    /// The largest WebSocket message or LongPoll body accepted from a client, in bytes.
    pub max_payload: usize,
    /// How many frames may wait for a client before it counts as too slow and is closed.
    pub max_queued_frames: usize,
    /// How many bytes may wait for a client before it counts as too slow and is closed.
    pub max_queued_bytes: usize,
    /// A WebSocket that sends nothing for this long is closed (phoenix.js sends a heartbeat
    /// every 30 s; Phoenix's own timeout is 60 s).
    pub idle_timeout: Duration,
    /// How long a LongPoll request waits for messages before it is answered `204`.
    pub longpoll_window: Duration,
    /// A LongPoll session with no request for this long is closed (Phoenix: 1.5 windows).
    pub longpoll_timeout: Duration,
    /// The most lines one LongPoll upload may carry (phoenix.js sends at most 100).
    pub max_longpoll_lines: usize,
    /// Which web pages may connect (by default only the server's own origin).
    pub origins: OriginPolicy,
}

impl Default for PhoenixConfig {
    fn default() -> Self {
        PhoenixConfig {
            path: "/socket".to_owned(),
            websocket: true,
            longpoll: true,
            max_payload: 1_000_000,
            max_queued_frames: 4096,
            max_queued_bytes: 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
            longpoll_window: Duration::from_secs(10),
            longpoll_timeout: Duration::from_secs(15),
            max_longpoll_lines: 100,
            origins: OriginPolicy::default(),
        }
    }
}
