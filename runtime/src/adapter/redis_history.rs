//! Channel history in Redis Streams, for connection state recovery across nodes.
//!
//! With recovery on ([`Fanout::keep_history`](crate::channels::Fanout::keep_history)), Redis
//! orders every emit of the cluster. The publishing node runs one script per emit that:
//!
//! 1. gives the event the next id of the cluster, `<ms>-<n>`: Redis's clock in milliseconds,
//!    and a sequence within the millisecond; never lower than the last id given
//!    (`<prefix>history-last`), so ids only grow, across all channels;
//! 2. appends it to its channel's stream, `<prefix>history:<channel>` (field `e`, the
//!    envelope), dropping the oldest entry with `XDEL` once the stream holds the most events a
//!    channel keeps (so Redis's `max-deleted-entry-id` says what went), and makes the stream
//!    expire once no event came for the maximum disconnection duration;
//! 3. publishes the envelope, prefixed with its id, on the channel's Redis channel.
//!
//! Every node, the publishing one included, delivers each event when its publication arrives,
//! with its id as the offset: one order, one offset per event, on every node. The offset a
//! client sees is the id packed into a number, `(ms - 2024-01-01) << 12 | n` (at most 4096
//! events per millisecond: the script moves on to the next millisecond after that), so
//! offsets compare across channels and nodes and stay below 2^53, exact in JavaScript.
//!
//! A client that comes back from offset `o` (on any node) gets what a second script reads: the
//! events of each of its channels after `o`, and whether that is all of them. It is not when
//! the history began after `o` (`<prefix>history-start`, the first id since Redis started
//! empty: a restart loses the streams), when `o` is older than the maximum disconnection
//! duration, or when an event after `o` was dropped from the stream. A stream that expired held
//! nothing newer than the duration, so its absence means "nothing missed" for an `o` within it.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<prefix>history:<channel>` | stream | the channel's events, id → `e`: the envelope |
//! | `<prefix>history-last` | string | the last id given |
//! | `<prefix>history-start` | string | the first id given since Redis started empty |

use std::time::Duration;

use bytes::Bytes;

use crate::channels::Outgoing;

/// The first bytes of a publication of a recorded event: `TDG`, version 3; then the id, `;`,
/// and the version 2 envelope.
pub(super) const MAGIC: &[u8; 4] = b"TDG\x03";

/// Bits of an offset that hold the sequence within a millisecond.
const SEQ_BITS: u32 = 12;
/// Bits of an offset that hold the millisecond: with [`SEQ_BITS`], 53 (JavaScript's exact
/// integers), until 2093.
const MS_BITS: u32 = 41;
/// Offsets count milliseconds from 2024-01-01T00:00:00Z.
const EPOCH_MS: u64 = 1_704_067_200_000;

/// Gives an event its id, keeps it in its channel's stream and publishes it.
///
/// KEYS: last id, the stream, the start. ARGV: the Redis channel, the envelope, the most
/// events kept, the stream's lifetime in ms, the publication prefix.
pub(super) const EMIT_SCRIPT: &str = r"
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = 0
local last = redis.call('GET', KEYS[1])
if last then
  local lms, ln = string.match(last, '^(%d+)-(%d+)$')
  lms = tonumber(lms)
  if ms <= lms then
    ms = lms
    n = tonumber(ln) + 1
    if n >= 4096 then
      ms = lms + 1
      n = 0
    end
  end
end
local id = string.format('%d-%d', ms, n)
if not last then
  redis.call('SET', KEYS[3], id)
end
redis.call('SET', KEYS[1], id)
local keep = tonumber(ARGV[3])
local len = redis.call('XLEN', KEYS[2])
while len >= keep and len > 0 do
  local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
  redis.call('XDEL', KEYS[2], oldest[1][1])
  len = len - 1
end
redis.call('XADD', KEYS[2], id, 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[1], ARGV[5] .. id .. ';' .. ARGV[2])
return id
";

/// Reads the history of channels after an id each.
///
/// KEYS: the start, then the streams. ARGV: the id after which to read, per stream. Answers
/// the start (empty when none), Redis's time in ms, then per stream its highest deleted id
/// and its entries after the id.
pub(super) const READ_SCRIPT: &str = r"
local now = redis.call('TIME')
local out = { redis.call('GET', KEYS[1]) or '', tostring(tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) }
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local info = redis.call('XINFO', 'STREAM', KEYS[i])
    local deleted = '0-0'
    for j = 1, #info, 2 do
      if info[j] == 'max-deleted-entry-id' then
        deleted = info[j + 1]
      end
    end
    out[#out + 1] = { deleted, redis.call('XRANGE', KEYS[i], '(' .. ARGV[i - 1], '+') }
  else
    out[#out + 1] = { '0-0', {} }
  end
end
return out
";

/// A stream id, `<ms>-<n>`, as an offset; `None` when it is not one.
pub(super) fn offset_of(id: &str) -> Option<u64> {
    let (ms, n) = id.split_once('-')?;
    let (ms, n) = (ms.parse::<u64>().ok()?, n.parse::<u64>().ok()?);
    if (ms, n) == (0, 0) {
        return Some(0);
    }
    let ms = ms.checked_sub(EPOCH_MS)?;
    if ms >= 1 << MS_BITS || n >= 1 << SEQ_BITS {
        return None;
    }
    Some(ms << SEQ_BITS | n)
}

/// An offset as a stream id (0, "nothing yet", is `0-0`).
pub(super) fn id_of(offset: u64) -> String {
    if offset == 0 {
        return "0-0".to_owned();
    }
    format!("{}-{}", millis_of(offset), offset & ((1 << SEQ_BITS) - 1))
}

/// The millisecond (since 1970) an offset was given at.
fn millis_of(offset: u64) -> u64 {
    (offset >> SEQ_BITS) + EPOCH_MS
}

/// Splits a recorded publication into its offset and its version 2 envelope.
pub(super) fn split_published(raw: &[u8]) -> Option<(u64, &[u8])> {
    let rest = raw.strip_prefix(MAGIC.as_slice())?;
    let end = rest.iter().position(|b| *b == b';')?;
    let id = std::str::from_utf8(&rest[..end]).ok()?;
    Some((offset_of(id)?, &rest[end + 1..]))
}

/// What one channel's history answered: its events after the offset asked, or `None` when
/// some are gone.
pub(super) type ChannelEvents = Option<Vec<(u64, Outgoing)>>;

/// Reads the answer of [`READ_SCRIPT`] for `asked` (channel and offset, in the order the
/// streams were given), decoding the envelopes with `decode`. Each channel's events are
/// `None` when the history does not hold everything after its offset.
pub(super) fn read_answer(
    answer: ::redis::Value,
    asked: &[(String, u64)],
    max_age: Duration,
    decode: impl Fn(Bytes) -> Option<Outgoing>,
) -> Result<Vec<ChannelEvents>, String> {
    use ::redis::Value;
    let bad = || "unexpected answer from the history script".to_owned();
    let Value::Array(items) = answer else {
        return Err(bad());
    };
    let text = |value: &Value| -> Option<String> {
        match value {
            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
            Value::SimpleString(s) => Some(s.clone()),
            Value::Int(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let mut items = items.into_iter();
    let start = items.next().as_ref().and_then(text).ok_or_else(bad)?;
    let now = items
        .next()
        .as_ref()
        .and_then(text)
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or_else(bad)?;
    let start = offset_of(&start);
    let oldest = now.saturating_sub(u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX));
    let mut out = Vec::with_capacity(asked.len());
    for (item, (_, from)) in items.zip(asked) {
        let Value::Array(parts) = item else {
            return Err(bad());
        };
        let mut parts = parts.into_iter();
        let deleted = parts
            .next()
            .as_ref()
            .and_then(text)
            .and_then(|d| offset_of(&d))
            .ok_or_else(bad)?;
        let Some(Value::Array(entries)) = parts.next() else {
            return Err(bad());
        };
        // Everything after `from` is there: the history began at or before it, it is within
        // the duration, and nothing after it was dropped.
        let whole = start.is_some_and(|start| *from >= start)
            && millis_of(*from) >= oldest
            && deleted <= *from;
        if !whole {
            out.push(None);
            continue;
        }
        let mut events = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(entry) = entry else {
                return Err(bad());
            };
            let mut entry = entry.into_iter();
            let id = entry.next().as_ref().and_then(text).ok_or_else(bad)?;
            let offset = offset_of(&id).ok_or_else(bad)?;
            let Some(Value::Array(fields)) = entry.next() else {
                return Err(bad());
            };
            let body = match fields.get(1) {
                Some(Value::BulkString(body)) => Bytes::copy_from_slice(body),
                _ => return Err(bad()),
            };
            match decode(body) {
                Some(message) => events.push((offset, message)),
                // Not ours after all: the history cannot vouch for this channel.
                None => {
                    events.clear();
                    break;
                }
            }
        }
        out.push(Some(events));
    }
    if out.len() != asked.len() {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_offsets_convert_both_ways_and_keep_their_order() {
        let a = offset_of("1795870582403-0").unwrap_or_default();
        let b = offset_of("1795870582403-7").unwrap_or_default();
        let c = offset_of("1795870582404-0").unwrap_or_default();
        assert!(0 < a && a < b && b < c);
        assert_eq!(id_of(b), "1795870582403-7");
        assert_eq!(offset_of(&id_of(c)), Some(c));
        assert_eq!(offset_of("0-0"), Some(0));
        assert!(c < 1 << 53, "exact in JavaScript");
        assert_eq!(id_of(0), "0-0");
        for bad in [
            "",
            "12",
            "a-1",
            "1-",
            "-1",
            "1795870582403-4096",
            "99999999999999999-0",
            "1000-0",
        ] {
            assert_eq!(offset_of(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_recorded_publication_splits_into_offset_and_envelope() {
        let raw = b"TDG\x031795870582403-2;TDG\x02rest";
        let (offset, rest) = split_published(raw).unwrap_or((0, b""));
        assert_eq!(id_of(offset), "1795870582403-2");
        assert_eq!(rest, b"TDG\x02rest");
        assert!(split_published(b"TDG\x02whatever").is_none());
        assert!(split_published(b"TDG\x03no-separator").is_none());
        assert!(split_published(b"TDG\x03x-1;body").is_none());
    }

    fn answer(start: &str, now: u64, streams: Vec<(&str, Vec<(&str, &str)>)>) -> ::redis::Value {
        use ::redis::Value;
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let mut items = vec![bulk(start), bulk(&now.to_string())];
        for (deleted, entries) in streams {
            let entries = entries
                .into_iter()
                .map(|(id, body)| {
                    Value::Array(vec![bulk(id), Value::Array(vec![bulk("e"), bulk(body)])])
                })
                .collect();
            items.push(Value::Array(vec![bulk(deleted), Value::Array(entries)]));
        }
        Value::Array(items)
    }

    fn decode(body: Bytes) -> Option<Outgoing> {
        let text = std::str::from_utf8(&body).ok()?.to_owned();
        let payload = crate::payload::Payload::from_value(&text).ok()?;
        Some(Outgoing::new("c", "e", payload))
    }

    #[test]
    fn the_history_answers_only_what_it_holds_whole() {
        let max_age = Duration::from_secs(120);
        let now = 1_795_870_582_403;
        let at = |ms: u64, n: u64| offset_of(&format!("{ms}-{n}")).unwrap_or_default();
        let asked = vec![
            // After the start, nothing dropped: both events.
            ("a".to_owned(), at(now - 10, 0)),
            // Before the history began (Redis restarted since).
            ("b".to_owned(), at(now - 60_000, 0)),
            // An event after it was dropped.
            ("c".to_owned(), at(now - 5, 0)),
            // Older than the duration.
            ("d".to_owned(), at(now - 200_000, 0)),
            // A stream that expired or never was: nothing missed.
            ("e".to_owned(), at(now - 20, 0)),
        ];
        let start = format!("{}-0", now - 50_000);
        let a1 = format!("{}-0", now - 9);
        let a2 = format!("{}-1", now - 9);
        let deleted_c = format!("{}-0", now - 4);
        let value = answer(
            &start,
            now,
            vec![
                ("0-0", vec![(a1.as_str(), "one"), (a2.as_str(), "two")]),
                ("0-0", vec![]),
                (deleted_c.as_str(), vec![]),
                ("0-0", vec![]),
                ("0-0", vec![]),
            ],
        );
        let out = read_answer(value, &asked, max_age, decode).unwrap_or_default();
        assert_eq!(out.len(), 5);
        let offsets: Vec<Option<Vec<u64>>> = out
            .iter()
            .map(|c| c.as_ref().map(|e| e.iter().map(|(o, _)| *o).collect()))
            .collect();
        assert_eq!(
            offsets,
            vec![
                Some(vec![at(now - 9, 0), at(now - 9, 1)]),
                None,
                None,
                None,
                Some(vec![]),
            ]
        );
        // No start at all (nothing recorded since Redis started empty): nothing is whole.
        let value = answer("", now, vec![("0-0", vec![])]);
        let out = read_answer(value, &asked[..1], max_age, decode).unwrap_or_default();
        assert!(matches!(out.as_slice(), [None]));
        // A malformed answer is an error, not an empty history.
        assert!(read_answer(::redis::Value::Nil, &asked, max_age, decode).is_err());
    }
}
