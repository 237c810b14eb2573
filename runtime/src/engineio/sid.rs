//! Session ids: 20 characters of URL-safe base64 over 15 random bytes, like the official server.

use std::cell::RefCell;
use std::fmt;

use base64::Engine as _;

/// The id of an Engine.IO session (and of a Socket.IO socket): 20 URL-safe base64 characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid([u8; Sid::LEN]);

impl Sid {
    /// The length of every id, in characters.
    pub const LEN: usize = 20;

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
        let raw = random_bytes()?;
        let mut out = [0u8; Self::LEN];
        // 15 bytes always encode to exactly 20 characters without padding.
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(raw, &mut out)
            .unwrap_or(0);
        debug_assert_eq!(written, Self::LEN);
        Ok(Sid(out))
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

/// How many ids one read of the OS random source serves.
const IDS_PER_READ: usize = 256;

thread_local! {
    /// Random bytes from the OS, read for [`IDS_PER_READ`] ids at once: one system call per
    /// 256 ids instead of one per id. Bytes are zeroed as they are handed out.
    static POOL: RefCell<([u8; 15 * IDS_PER_READ], usize)> =
        const { RefCell::new(([0; 15 * IDS_PER_READ], 15 * IDS_PER_READ)) };
}

/// The OS random source failed, so no unguessable id could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OS random source failed")]
pub struct NoRandomness;

/// 15 bytes from the OS random source (through this thread's pool).
fn random_bytes() -> Result<[u8; 15], NoRandomness> {
    POOL.with_borrow_mut(|(pool, used)| {
        if *used + 15 > pool.len() {
            getrandom::fill(pool).map_err(|err| {
                tracing::error!(%err, "the OS random source failed: refusing new connections");
                NoRandomness
            })?;
            *used = 0;
        }
        let mut raw = [0u8; 15];
        let taken = &mut pool[*used..*used + 15];
        raw.copy_from_slice(taken);
        taken.fill(0);
        *used += 15;
        Ok(raw)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_unique_across_pool_refills() {
        let ids: std::collections::HashSet<Sid> = (0..IDS_PER_READ * 4 + 7)
            .filter_map(|_| Sid::random().ok())
            .collect();
        assert_eq!(ids.len(), IDS_PER_READ * 4 + 7);
        assert!(ids.iter().all(|id| Sid::parse(id.as_str()) == Some(*id)));
    }
}
