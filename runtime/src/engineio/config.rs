//! Engine.IO settings, with the official server's defaults.

use std::time::Duration;

use crate::origin::OriginPolicy;

/// Settings of an Engine.IO server. The defaults are the official server's.
///
/// ```
/// use std::time::Duration;
/// use tidings_runtime::engineio::EngineConfig;
/// let mut config = EngineConfig::default();
/// config.ping_interval = Duration::from_secs(10);
/// assert_eq!(config.ping_timeout, Duration::from_secs(20));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// Where the server answers, `/socket.io/` for Socket.IO, `/engine.io/` for a bare server.
    pub path: String,
    /// How long between two pings.
    pub ping_interval: Duration,
    /// How long a pong may take after a ping before the session is closed.
    pub ping_timeout: Duration,
    /// The largest HTTP body or WebSocket message accepted from a client, in bytes.
    pub max_payload: usize,
    /// How long a client may take between the probe and the upgrade packet.
    pub upgrade_timeout: Duration,
    /// How many frames may wait for a client before it counts as too slow and is closed.
    pub max_queued_frames: usize,
    /// How many bytes may wait for a client before it counts as too slow and is closed (a
    /// broadcast counts in full for every connection it waits for; one frame is always
    /// taken, whatever its size).
    pub max_queued_bytes: usize,
    /// Whether clients may use HTTP long-polling.
    pub allow_polling: bool,
    /// Whether clients may use WebSocket (directly, or by upgrading from polling).
    pub allow_websocket: bool,
    /// Which web pages may connect (by default only the server's own origin), and the CORS
    /// answers of long-polling to pages of other allowed origins.
    pub origins: OriginPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: "/engine.io/".to_owned(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload: 1_000_000,
            upgrade_timeout: Duration::from_millis(10_000),
            max_queued_frames: 4096,
            max_queued_bytes: 1024 * 1024,
            allow_polling: true,
            allow_websocket: true,
            origins: OriginPolicy::default(),
        }
    }
}
