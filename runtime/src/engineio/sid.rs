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

    /// A new random id.
    ///
    /// ```
    /// use tidings_runtime::engineio::Sid;
    /// assert_ne!(Sid::random(), Sid::random());
    /// assert_eq!(Sid::random().as_str().len(), 20);
    /// ```
    pub fn random() -> Self {
        let raw = random_bytes();
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

/// How many ids one read of the OS random source serves.
const IDS_PER_READ: usize = 256;

thread_local! {
    /// Random bytes from the OS, read for [`IDS_PER_READ`] ids at once: one system call per
    /// 256 ids instead of one per id. Bytes are zeroed as they are handed out.
    static POOL: RefCell<([u8; 15 * IDS_PER_READ], usize)> =
        const { RefCell::new(([0; 15 * IDS_PER_READ], 15 * IDS_PER_READ)) };
}

/// 15 bytes from the OS random source (through this thread's pool).
fn random_bytes() -> [u8; 15] {
    POOL.with_borrow_mut(|(pool, used)| {
        if *used + 15 > pool.len() {
            // The OS random source failing is not something a peer can cause; fall back to a
            // time-and-counter mix rather than panic.
            if getrandom::fill(pool).is_err() {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                for (i, chunk) in pool.chunks_mut(15).enumerate() {
                    let mixed = nanos
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        .wrapping_add(i as u128);
                    chunk.copy_from_slice(&mixed.to_le_bytes()[..15]);
                }
            }
            *used = 0;
        }
        let mut raw = [0u8; 15];
        let taken = &mut pool[*used..*used + 15];
        raw.copy_from_slice(taken);
        taken.fill(0);
        *used += 15;
        raw
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
        let ids: std::collections::HashSet<Sid> =
            (0..IDS_PER_READ * 4 + 7).map(|_| Sid::random()).collect();
        assert_eq!(ids.len(), IDS_PER_READ * 4 + 7);
        assert!(ids.iter().all(|id| Sid::parse(id.as_str()) == Some(*id)));
    }
}
