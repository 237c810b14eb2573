//! Session ids: 20 characters of URL-safe base64 over 15 random bytes, like the official server.

use std::fmt;

use base64::Engine as _;

/// The id of an Engine.IO session (and of a Socket.IO socket): 20 URL-safe base64 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; Sid::LEN]);

impl Sid {
    /// The length of every id, in characters.
    pub const LEN: usize = 20;

    /// A new random id.
    ///
    /// ```
    /// use tidings_runtime::engineio::Sid;
    /// assert_ne!(Sid::random(), Sid::random());
    /// assert_eq!(Sid::random().as_str().len(), 20);
    /// ```
    pub fn random() -> Self {
        let mut raw = [0u8; 15];
        // The OS random source failing is not something a peer can cause; fall back to a
        // time-and-counter mix rather than panic.
        if getrandom::fill(&mut raw).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            raw[..15].copy_from_slice(&nanos.to_le_bytes()[..15]);
        }
        let mut out = [0u8; Self::LEN];
        // 15 bytes always encode to exactly 20 characters without padding.
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(raw, &mut out)
            .unwrap_or(0);
        debug_assert_eq!(written, Self::LEN);
        Sid(out)
    }

    /// Parses an id sent by a client; `None` when it cannot be one of ours.
    ///
    /// ```
    /// use tidings_runtime::engineio::Sid;
    /// let sid = Sid::random();
    /// assert_eq!(Sid::parse(sid.as_str()), Some(sid));
    /// assert_eq!(Sid::parse("short"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let bytes: [u8; Self::LEN] = text.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            .then_some(Sid(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `parse`, produced by base64 in `random`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sid({})", self.as_str())
    }
}
