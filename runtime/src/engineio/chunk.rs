//! A channel's recent broadcast frames, kept side by side, so that a connection's queue can
//! hold a run of them as one entry.
//!
//! Why: a broadcast queues one frame into each of thousands of queues, under each queue's
//! lock. A lock is an atomic instruction, which waits for every store before it: a frame
//! stored into a slot the caches have lost (a deep queue's next slot, a fresh allocation) costs
//! a full memory round trip, member after member. Frames of one channel, encoded one way,
//! reach every member in the same order, so they are kept once, in a [`Chunk`], and a queue
//! that already ends with the previous one only moves the end of its run: a store into the
//! queue's own line, which the broadcast read just before.
//!
//! Chunks are found by channel and encoding in a process-wide table of weak references: a
//! chunk lives while an event or a queue holds one of its frames, and its frames go together,
//! so a queue that lags keeps at most the rest of its chunk (63 frames) alive with it. Two channels that happen to
//! share a table slot (a hash collision) share chunks, which only makes their runs shorter.

use std::any::TypeId;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};

use super::packet::{Frame, SharedText};
use crate::sync::lock;

/// How many frames one chunk holds.
pub(crate) const CHUNK: usize = 64;

/// Locks the table is split over, so that emits to different channels rarely wait on each
/// other.
const SHARDS: usize = 16;

/// Up to [`CHUNK`] consecutive broadcast frames of one channel and one encoding. Boxed: the
/// table's weak reference keeps the chunk's small header after the last frame went, not its
/// places.
pub(crate) struct Chunk {
    frames: Box<[OnceLock<Arc<SharedText>>; CHUNK]>,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk").finish_non_exhaustive()
    }
}

impl Chunk {
    /// The frame at `at`, once it is placed there.
    pub(crate) fn get(&self, at: usize) -> Option<&Arc<SharedText>> {
        self.frames.get(at)?.get()
    }
}

/// A broadcast frame at its place in its channel's current chunk; what a broadcast hands to
/// every member's queue ([`Session::send_placed`](super::Session::send_placed)).
#[derive(Debug, Clone)]
pub(crate) struct Broadcast {
    chunk: Arc<Chunk>,
    at: u8,
    frame: Arc<SharedText>,
}

/// A channel event's frame as a gateway queues it: placed among the channel's broadcasts
/// when it is a text frame made ready for many WebSockets ([`Frame::shared`]), else the frame
/// itself (a binary one, say).
#[derive(Debug, Clone)]
pub(crate) enum Placed {
    Broadcast(Broadcast),
    Frame(Frame),
}

impl Placed {
    /// `frame`, a broadcast to `channel` in the encoding named by `encoding`, placed after the
    /// channel's previous one when it can be ([`Broadcast::new`]).
    pub(crate) fn new(encoding: TypeId, channel: &str, frame: Frame) -> Placed {
        match frame {
            Frame::Shared(shared) => Placed::Broadcast(Broadcast::new(encoding, channel, shared)),
            other => Placed::Frame(other),
        }
    }

    /// The frame, for a queue of its own (frames held for a join's reply).
    pub(crate) fn frame(&self) -> Frame {
        match self {
            Placed::Broadcast(broadcast) => Frame::Shared(broadcast.frame().clone()),
            Placed::Frame(frame) => frame.clone(),
        }
    }
}

/// One channel's current chunk in the table, and where its next frame goes.
struct Shelf {
    chunk: Weak<Chunk>,
    next: usize,
}

/// A shard of the table: shelves by hash of (encoding, channel), and the size at which dead
/// shelves are swept out next.
#[derive(Default)]
struct Shard {
    shelves: HashMap<u64, Shelf>,
    sweep_at: usize,
}

static TABLE: LazyLock<(std::hash::RandomState, [Mutex<Shard>; SHARDS])> =
    LazyLock::new(Default::default);

impl Broadcast {
    /// Places `frame`, a broadcast to `channel` in the encoding named by `encoding`, after the
    /// channel's previous one.
    pub(crate) fn new(encoding: TypeId, channel: &str, frame: Arc<SharedText>) -> Broadcast {
        let (hasher, shards) = &*TABLE;
        let key = hasher.hash_one((encoding, channel));
        // The low bits pick the shard; the map hashes the whole key again.
        let shard = &shards[(key as usize) % SHARDS];
        let mut shard = lock(shard);
        let live = shard
            .shelves
            .get_mut(&key)
            .filter(|shelf| shelf.next < CHUNK)
            .and_then(|shelf| Some((shelf.chunk.upgrade()?, shelf)));
        let (chunk, at) = match live {
            Some((chunk, shelf)) => {
                let at = shelf.next;
                shelf.next += 1;
                (chunk, at)
            }
            None => {
                let chunk = Arc::new(Chunk {
                    frames: Box::new(std::array::from_fn(|_| OnceLock::new())),
                });
                let shelf = Shelf {
                    chunk: Arc::downgrade(&chunk),
                    next: 1,
                };
                if shard.shelves.insert(key, shelf).is_none() {
                    sweep(&mut shard);
                }
                (chunk, 0)
            }
        };
        drop(shard);
        // Each place is handed out once, under the lock: it is empty.
        let _ = chunk.frames[at].set(frame.clone());
        Broadcast {
            chunk,
            // `at` < CHUNK, which fits.
            at: u8::try_from(at).unwrap_or(u8::MAX),
            frame,
        }
    }

    /// The frame.
    pub(crate) fn frame(&self) -> &Arc<SharedText> {
        &self.frame
    }

    pub(crate) fn chunk(&self) -> &Arc<Chunk> {
        &self.chunk
    }

    /// Its place in the chunk.
    pub(crate) fn at(&self) -> u8 {
        self.at
    }
}

/// Drops the shelves of chunks that are gone, once the shard has doubled since the last sweep.
fn sweep(shard: &mut Shard) {
    if shard.shelves.len() < shard.sweep_at {
        return;
    }
    shard
        .shelves
        .retain(|_, shelf| shelf.chunk.strong_count() > 0);
    shard.sweep_at = (2 * shard.shelves.len()).max(64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Arc<SharedText> {
        match Frame::message(s).shared() {
            Frame::Shared(shared) => shared,
            _ => unreachable!("a text frame is shared"),
        }
    }

    #[test]
    fn frames_of_one_channel_sit_side_by_side_until_the_chunk_is_full() {
        struct Enc;
        let channel = "chunk-test/side-by-side";
        let first = Broadcast::new(TypeId::of::<Enc>(), channel, text("0"));
        let mut kept = vec![first.clone()];
        for n in 1..CHUNK {
            let next = Broadcast::new(TypeId::of::<Enc>(), channel, text(&n.to_string()));
            assert!(Arc::ptr_eq(next.chunk(), first.chunk()));
            assert_eq!(usize::from(next.at()), n);
            assert_eq!(next.chunk().get(n), Some(next.frame()));
            kept.push(next);
        }
        let past = Broadcast::new(TypeId::of::<Enc>(), channel, text("past"));
        assert!(!Arc::ptr_eq(past.chunk(), first.chunk()), "a new chunk");
        assert_eq!(past.at(), 0);
        // Another channel, or another encoding of this one, has chunks of its own.
        let other = Broadcast::new(TypeId::of::<Enc>(), "chunk-test/other", text("o"));
        assert!(!Arc::ptr_eq(other.chunk(), past.chunk()));
        struct Other;
        let encoded = Broadcast::new(TypeId::of::<Other>(), channel, text("e"));
        assert!(!Arc::ptr_eq(encoded.chunk(), past.chunk()));
    }

    #[test]
    fn a_chunk_nobody_holds_is_gone_and_the_channel_starts_a_new_one() {
        struct Enc;
        let channel = "chunk-test/gone";
        let first = Broadcast::new(TypeId::of::<Enc>(), channel, text("a"));
        let weak = Arc::downgrade(first.chunk());
        drop(first);
        assert_eq!(weak.strong_count(), 0, "nothing keeps frames nobody holds");
        let next = Broadcast::new(TypeId::of::<Enc>(), channel, text("b"));
        assert_eq!(next.at(), 0);
    }
}
