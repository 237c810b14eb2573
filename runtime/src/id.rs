//! Random ids: 20 characters of URL-safe base64 over 15 bytes from the OS random source, read
//! for many ids at once. Engine.IO session ids and channel member ids are made of them.

use std::cell::RefCell;

use base64::Engine as _;

/// The length of every id, in characters.
pub(crate) const LEN: usize = 20;

/// The OS random source failed, so no unguessable id could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OS random source failed")]
pub struct NoRandomness;

/// A new id from the OS random source; no guessable fallback.
pub(crate) fn random() -> Result<[u8; LEN], NoRandomness> {
    let raw = random_bytes()?;
    let mut out = [0u8; LEN];
    // 15 bytes always encode to exactly 20 characters without padding.
    let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(raw, &mut out)
        .unwrap_or(0);
    debug_assert_eq!(written, LEN);
    Ok(out)
}

/// `text` as an id, when it has the length and alphabet of one.
pub(crate) fn parse(text: &str) -> Option<[u8; LEN]> {
    let bytes: [u8; LEN] = text.as_bytes().try_into().ok()?;
    bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        .then_some(bytes)
}

/// An id as text (only ASCII is ever stored: checked in `parse`, made by base64 in `random`).
pub(crate) fn as_str(id: &[u8; LEN]) -> &str {
    std::str::from_utf8(id).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_unique_across_pool_refills_and_parse_back() {
        let ids: std::collections::HashSet<[u8; LEN]> = (0..IDS_PER_READ * 4 + 7)
            .filter_map(|_| random().ok())
            .collect();
        assert_eq!(ids.len(), IDS_PER_READ * 4 + 7);
        assert!(ids.iter().all(|id| parse(as_str(id)) == Some(*id)));
        assert_eq!(parse("short"), None);
        assert_eq!(parse("01234567890123456789"), parse("01234567890123456789"));
        assert_eq!(parse("0123456789012345678."), None);
    }
}
