//! Session ids: 20 characters of URL-safe base64 over 15 random bytes, like the official server.

use std::fmt;

pub use crate::id::NoRandomness;

/// The id of an Engine.IO session (and of a Socket.IO socket): 20 URL-safe base64 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; Sid::LEN]);

impl Sid {
    /// The length of every id, in characters.
    pub const LEN: usize = crate::id::LEN;

    /// A new random id, from the OS random source.
    ///
    /// ```
    /// use tidings_runtime::engineio::Sid;
    /// # fn main() -> Result<(), tidings_runtime::engineio::NoRandomness> {
    /// assert_ne!(Sid::random()?, Sid::random()?);
    /// assert_eq!(Sid::random()?.as_str().len(), 20);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`NoRandomness`] when the OS random source fails: an id is a session's only credential
    /// on polling requests, so there is no guessable fallback; the connection is refused.
    pub fn random() -> Result<Self, NoRandomness> {
        crate::id::random().map(Sid)
    }

    /// Parses an id sent by a client; `None` when it cannot be one of ours.
    ///
    /// ```
    /// use tidings_runtime::engineio::Sid;
    /// # fn main() -> Result<(), tidings_runtime::engineio::NoRandomness> {
    /// let sid = Sid::random()?;
    /// assert_eq!(Sid::parse(sid.as_str()), Some(sid));
    /// assert_eq!(Sid::parse("short"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        crate::id::parse(text).map(Sid)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        crate::id::as_str(&self.0)
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
