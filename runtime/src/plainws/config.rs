//! Settings of the plain WebSocket endpoint.

use std::time::Duration;

use crate::origin::OriginPolicy;

/// Settings of a [`PlainServer`](super::PlainServer).
///
/// ```
/// use std::time::Duration;
/// use tidings_runtime::plainws::PlainConfig;
/// let mut config = PlainConfig::default();
/// config.ping_interval = Duration::from_secs(10);
/// assert_eq!(config.path, "/ws");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlainConfig {
    /// Where it answers: `<path>` (multiplexed) and `<path>/<channel>` (bound to one channel).
    pub path: String,
    /// A client silent this long gets a WebSocket ping.
    pub ping_interval: Duration,
    /// A client that stays silent this long after the ping is closed.
    pub ping_timeout: Duration,
    /// The largest message accepted from a client, in bytes (a bigger one closes with 1009).
    pub max_payload: usize,
    /// How many frames may wait for a client before it counts as too slow and is closed.
    pub max_queued_frames: usize,
    /// How many bytes may wait for a client before it counts as too slow and is closed.
    pub max_queued_bytes: usize,
    /// Which web pages may connect (by default only the server's own origin).
    pub origins: OriginPolicy,
}

impl Default for PlainConfig {
    fn default() -> Self {
        PlainConfig {
            path: "/ws".to_owned(),
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            max_queued_frames: 4096,
            max_queued_bytes: 1024 * 1024,
            origins: OriginPolicy::default(),
        }
    }
}
