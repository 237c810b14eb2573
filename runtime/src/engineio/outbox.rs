//! A session's outbound queue: bounded in frames and in bytes, never waiting on the sending
//! side, and holding memory only while frames wait (an idle connection keeps nothing beyond
//! the queue's own cache line).
//!
//! Any number of senders push; one reader at a time takes frames out (the session hands out
//! that right: see `session::Reader`).
//!
//! Laid out for the broadcast. A broadcast queues one frame into each of thousands of queues
//! that the cores' caches have long lost, and each push takes the queue's lock: an atomic
//! instruction, which waits for every store before it to reach the cache. A push that writes
//! into a second cold line (a deep queue's next slot, a fresh allocation, the reader's waker
//! elsewhere) pays for that miss in full, once per delivery. So the lock, the newest frames
//! when they are consecutive broadcasts of one channel (a run in that channel's
//! [`Chunk`](super::chunk::Chunk)) and the reader's waker live in one line, which the lock has
//! just fetched: a broadcast that follows the previous one, however deep the queue, only moves
//! the run's end, and allocates nothing.
//!
//! The lock is a spin lock: taken with one atomic instruction and let go with a plain store.
//! `std::sync::Mutex` lets go with a second atomic instruction (it must learn whether a
//! thread sleeps on it), once more per delivery; that one was a quarter of a push's time. Every
//! critical section here is a few instructions that never wait (no user code, no I/O; at most
//! an allocation), so a thread that finds the lock taken, rare as it is (the writer's drain
//! against a broadcast from another thread), yields its core and tries again.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use spin::mutex::{SpinMutex, SpinMutexGuard};

use super::chunk::{Broadcast, CHUNK, Chunk};
use super::packet::{Frame, SharedText};

/// One queue, kept inside its session, in the first 56 bytes of a cache line (the session
/// puts its state byte in the rest: see `Session`).
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: SpinMutex<Queue, spin::relax::Yield>,
    limits: Compact,
}

/// [`Limits`] in half the room (a limit beyond `u32::MAX` is taken as `u32::MAX`).
#[derive(Debug, Clone, Copy)]
struct Compact {
    frames: u32,
    bytes: u32,
}

/// How much may wait in one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Frames (at least one).
    pub(crate) frames: usize,
    /// Bytes, as [`Frame::len`] counts them; a shared broadcast frame counts in full in every
    /// queue that holds it. A lone frame is always taken, whatever its size.
    pub(crate) bytes: usize,
}

/// The frames, oldest first: `rest` (when set), then `last`.
#[derive(Debug, Default)]
struct Queue {
    /// The newest frames, when they are consecutive broadcasts of one chunk.
    last: Option<Run>,
    /// Every older frame; `None` when there is none (never an empty box).
    rest: Option<Box<Rest>>,
    /// Wakes whichever transport is reading the queue, once, at the next push.
    waker: Option<Waker>,
}

/// Consecutive frames of one chunk: its places `from..to`, `bytes` long in all.
#[derive(Debug)]
struct Run {
    chunk: Arc<Chunk>,
    from: u8,
    to: u8,
    bytes: u32,
}

impl Run {
    fn new(broadcast: &Broadcast, len: usize) -> Option<Run> {
        Some(Run {
            chunk: broadcast.chunk().clone(),
            from: broadcast.at(),
            to: broadcast.at().checked_add(1)?,
            bytes: u32::try_from(len).ok()?,
        })
    }

    /// Takes `broadcast` in when it is the run's next frame.
    fn extend(&mut self, broadcast: &Broadcast, len: usize) -> bool {
        let bytes = u32::try_from(len)
            .ok()
            .and_then(|len| self.bytes.checked_add(len));
        match bytes {
            Some(bytes)
                if self.to == broadcast.at()
                    && usize::from(self.to) < CHUNK
                    && Arc::ptr_eq(&self.chunk, broadcast.chunk()) =>
            {
                self.to += 1;
                self.bytes = bytes;
                true
            }
            _ => false,
        }
    }

    fn len(&self) -> usize {
        usize::from(self.to - self.from)
    }

    fn is_empty(&self) -> bool {
        self.from == self.to
    }

    /// Hands the run's frames to `each` (with `queued`, counted down), until the run is empty
    /// or `each` returns `false`; how many it took, and whether `each` asked for more.
    ///
    /// The same walk as [`Run::take_front`]'s, written out: the drain's loop, built on
    /// `take_front`, measured 8 % more CPU per delivery in fan-out 1k (alternating runs).
    #[inline]
    fn take_while(
        &mut self,
        mut queued: usize,
        each: &mut impl FnMut(Taken<'_>, usize) -> bool,
    ) -> (usize, bool) {
        let Run {
            chunk,
            from,
            to,
            bytes,
        } = self;
        let first = *from;
        while *from < *to {
            let at = usize::from(*from);
            *from += 1;
            // Placed before the broadcast was handed to any queue: always there.
            let Some(shared) = chunk.get(at) else {
                continue;
            };
            let len = u32::try_from(shared.text().len()).unwrap_or(u32::MAX);
            *bytes = bytes.saturating_sub(len);
            let go_on = each(Taken::Lent(shared), queued);
            queued = queued.saturating_sub(1);
            if !go_on {
                return (usize::from(*from - first), false);
            }
        }
        (usize::from(*from - first), true)
    }

    /// Takes the first frame, lent from the chunk; `None` once the run is empty. An emptied
    /// run stays (its chunk holds what was lent) until [`Queue::tidy`].
    fn take_front(&mut self) -> Option<&Arc<SharedText>> {
        let Run {
            chunk,
            from,
            to,
            bytes,
        } = self;
        let chunk: &Arc<Chunk> = chunk;
        while *from < *to {
            let at = usize::from(*from);
            *from += 1;
            // Placed before the broadcast was handed to any queue: always there.
            if let Some(shared) = chunk.get(at) {
                let len = u32::try_from(shared.text().len()).unwrap_or(u32::MAX);
                *bytes = bytes.saturating_sub(len);
                return Some(shared);
            }
        }
        None
    }
}

/// A frame as the reader takes it: a broadcast's frame lent out of its chunk while the queue
/// is locked (whoever keeps it clones it; writing it out needs only its bytes), or a frame
/// handed over.
#[derive(Debug)]
pub(crate) enum Taken<'a> {
    Lent(&'a Arc<SharedText>),
    Frame(Frame),
}

impl Taken<'_> {
    /// As [`Frame::len`].
    pub(crate) fn len(&self) -> usize {
        match self {
            Taken::Lent(shared) => shared.text().len(),
            Taken::Frame(frame) => frame.len(),
        }
    }

    /// The frame, to keep.
    pub(crate) fn into_frame(self) -> Frame {
        match self {
            Taken::Lent(shared) => Frame::Shared(Arc::clone(shared)),
            Taken::Frame(frame) => frame,
        }
    }
}

/// An entry behind the newest run.
#[derive(Debug)]
enum Entry {
    Frame(Frame),
    Run(Run),
}

/// Frames older than the newest run: how many, and how many bytes they hold.
#[derive(Debug, Default)]
struct Rest {
    entries: VecDeque<Entry>,
    frames: usize,
    bytes: usize,
}

impl Rest {
    fn push_back(&mut self, entry: Entry) {
        let (frames, bytes) = match &entry {
            Entry::Frame(frame) => (1, frame.len()),
            Entry::Run(run) => (run.len(), run.bytes as usize),
        };
        self.frames += frames;
        self.bytes += bytes;
        self.entries.push_back(entry);
    }

    fn pop_front(&mut self) -> Option<Taken<'_>> {
        // Runs emptied by earlier calls go first (the frames they lent are given back by now).
        while matches!(self.entries.front(), Some(Entry::Run(run)) if run.is_empty()) {
            self.entries.pop_front();
        }
        let taken = if matches!(self.entries.front()?, Entry::Frame(_)) {
            match self.entries.pop_front() {
                Some(Entry::Frame(frame)) => Taken::Frame(frame),
                _ => return None,
            }
        } else {
            match self.entries.front_mut() {
                Some(Entry::Run(run)) => Taken::Lent(run.take_front()?),
                _ => return None,
            }
        };
        self.frames -= 1;
        self.bytes -= taken.len();
        Some(taken)
    }
}

impl Queue {
    /// Takes the oldest frame. What it empties stays until [`Queue::tidy`], which every
    /// reading call runs before it lets go of the lock.
    fn pop_front(&mut self) -> Option<Taken<'_>> {
        if let Some(rest) = self.rest.as_deref_mut()
            && rest.frames > 0
        {
            return rest.pop_front();
        }
        self.last.as_mut()?.take_front().map(Taken::Lent)
    }

    /// Hands frames to `each` (with how many are queued, itself included), oldest first,
    /// until the queue is empty or `each` returns `false`. Runs are read place by place in a
    /// loop of their own: nothing is handed back and forth per frame but the frame.
    fn take_while(&mut self, mut each: impl FnMut(Taken<'_>, usize) -> bool) {
        let mut queued = self.len();
        if let Some(rest) = self.rest.as_deref_mut() {
            while let Some(entry) = rest.entries.front_mut() {
                match entry {
                    Entry::Run(run) => {
                        let before = run.bytes;
                        let (taken, go_on) = run.take_while(queued, &mut each);
                        queued = queued.saturating_sub(taken);
                        rest.frames -= taken;
                        rest.bytes -= (before - run.bytes) as usize;
                        if run.is_empty() {
                            rest.entries.pop_front();
                        }
                        if !go_on {
                            return;
                        }
                    }
                    Entry::Frame(_) => {
                        let Some(taken) = rest.pop_front() else {
                            return;
                        };
                        let go_on = each(taken, queued);
                        queued = queued.saturating_sub(1);
                        if !go_on {
                            return;
                        }
                    }
                }
            }
        }
        if let Some(run) = &mut self.last {
            run.take_while(queued, &mut each);
        }
    }

    /// Lets go of what the frames taken have emptied: an emptied queue gives its memory back
    /// at once, so an idle connection keeps none.
    fn tidy(&mut self) {
        if self.rest.as_ref().is_some_and(|rest| rest.frames == 0) {
            self.rest = None;
        }
        if self.last.as_ref().is_some_and(Run::is_empty) {
            self.last = None;
        }
    }

    /// The box of older frames, with the newest run moved into it.
    fn settle_last(&mut self) -> &mut Rest {
        let rest = self.rest.get_or_insert_with(Box::default);
        if let Some(run) = self.last.take()
            && !run.is_empty()
        {
            rest.push_back(Entry::Run(run));
        }
        rest
    }

    /// Queues `frame` behind the others.
    fn push_back(&mut self, frame: Frame) {
        self.settle_last().push_back(Entry::Frame(frame));
    }

    /// Queues a broadcast frame behind the others: in place when it follows the newest run.
    fn push_broadcast(&mut self, broadcast: &Broadcast, len: usize) {
        if let Some(last) = &mut self.last
            && last.extend(broadcast, len)
        {
            return;
        }
        match Run::new(broadcast, len) {
            Some(run) => {
                if self.last.is_some() {
                    self.settle_last();
                }
                self.last = Some(run);
            }
            None => self.push_back(Frame::Shared(broadcast.frame().clone())),
        }
    }

    fn len(&self) -> usize {
        self.last.as_ref().map_or(0, Run::len) + self.rest.as_ref().map_or(0, |rest| rest.frames)
    }

    fn is_empty(&self) -> bool {
        self.last.is_none() && self.rest.is_none()
    }

    fn bytes(&self) -> usize {
        self.last.as_ref().map_or(0, |last| last.bytes as usize)
            + self.rest.as_ref().map_or(0, |rest| rest.bytes)
    }

    /// Whether `count` more frames of `bytes` bytes in all stay within `limits`.
    fn fits(&self, count: usize, bytes: usize, limits: Compact) -> bool {
        self.len() + count <= limits.frames as usize
            && (self.is_empty() || self.bytes() + bytes <= limits.bytes as usize)
    }

    /// Registers `waker` for the next push; returns the waker it replaces, to be dropped once
    /// the lock is let go.
    fn register(&mut self, waker: &Waker) -> Option<Waker> {
        match &self.waker {
            Some(current) if current.will_wake(waker) => None,
            _ => self.waker.replace(waker.clone()),
        }
    }
}

/// Why frames were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

impl Outbox {
    /// A queue within `limits`.
    pub(crate) fn new(limits: Limits) -> Outbox {
        Outbox {
            queue: SpinMutex::new(Queue::default()),
            limits: Compact {
                frames: u32::try_from(limits.frames.max(1)).unwrap_or(u32::MAX),
                bytes: u32::try_from(limits.bytes).unwrap_or(u32::MAX),
            },
        }
    }

    fn queue(&self) -> SpinMutexGuard<'_, Queue> {
        self.queue.lock()
    }

    /// Reads the queue's cache line without taking the lock (see `Session::touch`).
    pub(crate) fn touch(&self) -> bool {
        self.queue.is_locked()
    }

    /// Queues every frame of `frames`, or none when they do not all fit.
    pub(crate) fn push_all(
        &self,
        frames: impl ExactSizeIterator<Item = Frame>,
    ) -> Result<(), Full> {
        // Collected (inline: binary packets have few parts) so that their bytes are known
        // before any of them is queued, and outside the lock.
        let count = frames.len();
        let frames: smallvec::SmallVec<[Frame; 4]> = frames.collect();
        let bytes = frames.iter().map(Frame::len).sum();
        self.enqueue(count, bytes, |queue| {
            for frame in frames {
                queue.push_back(frame);
            }
        })
    }

    /// Queues a broadcast frame, unless the queue is full.
    pub(crate) fn push_broadcast(&self, broadcast: &Broadcast) -> Result<(), Full> {
        let len = broadcast.frame().text().len();
        self.enqueue(1, len, |queue| queue.push_broadcast(broadcast, len))
    }

    /// Queues one frame, unless the queue is full.
    pub(crate) fn push(&self, frame: Frame) -> Result<(), Full> {
        self.enqueue(1, frame.len(), |queue| queue.push_back(frame))
    }

    /// Runs `push` (`count` frames, `bytes` long) under the lock when they fit, then wakes the
    /// reader.
    fn enqueue(
        &self,
        count: usize,
        bytes: usize,
        push: impl FnOnce(&mut Queue),
    ) -> Result<(), Full> {
        let waker = {
            let mut queue = self.queue();
            if !queue.fits(count, bytes, self.limits) {
                return Err(Full);
            }
            push(&mut queue);
            queue.waker.take()
        };
        wake(waker);
        Ok(())
    }
}

/// Wakes the reader of a queue that was just given frames, through its thread's pacer.
fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        super::pacer::wake(waker);
    }
}

/// The reading side: one reader at a time (the waker registered is the last reader's).
impl Outbox {
    /// The next frame, if one is queued.
    pub(crate) fn try_recv(&self) -> Option<Frame> {
        let mut queue = self.queue();
        let frame = queue.pop_front().map(Taken::into_frame);
        queue.tidy();
        frame
    }

    /// The next frame, or `Pending` with the task registered to be woken by the next push.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Frame> {
        let replaced = {
            let mut queue = self.queue();
            if let Some(frame) = queue.pop_front().map(Taken::into_frame) {
                queue.tidy();
                return Poll::Ready(frame);
            }
            queue.register(cx.waker())
        };
        drop(replaced);
        Poll::Pending
    }

    /// Hands queued frames to `each` (with how many are queued, itself included), oldest first
    /// and under one lock, until the queue is empty or `each` returns `false`; a broadcast's
    /// frame is lent (see [`Taken`]). `Ready(true)` when frames are left, `Ready(false)` when
    /// all were taken, `Pending` (the task registered for the next push) when none was queued.
    pub(crate) fn poll_drain(
        &self,
        cx: &mut Context<'_>,
        each: impl FnMut(Taken<'_>, usize) -> bool,
    ) -> Poll<bool> {
        let replaced = {
            let mut queue = self.queue();
            if !queue.is_empty() {
                queue.take_while(each);
                queue.tidy();
                return Poll::Ready(!queue.is_empty());
            }
            queue.register(cx.waker())
        };
        drop(replaced);
        Poll::Pending
    }

    /// Waits for the next frame.
    pub(crate) async fn recv(&self) -> Frame {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize) -> Limits {
        Limits {
            frames: max,
            bytes: usize::MAX,
        }
    }

    #[test]
    fn bounded_all_or_nothing_and_in_order() {
        let outbox = Outbox::new(frames(3));
        let frame = |n: u8| Frame::Binary(vec![n].into());
        assert_eq!(outbox.push_all([frame(1), frame(2)].into_iter()), Ok(()));
        assert_eq!(outbox.push_all([frame(3), frame(4)].into_iter()), Err(Full));
        assert_eq!(outbox.push_all([frame(3)].into_iter()), Ok(()));
        assert_eq!(outbox.try_recv(), Some(frame(1)));
        assert_eq!(outbox.try_recv(), Some(frame(2)));
        assert_eq!(outbox.try_recv(), Some(frame(3)));
        assert_eq!(outbox.try_recv(), None);
    }

    #[test]
    fn an_emptied_queue_gives_its_memory_back() {
        let outbox = Outbox::new(frames(1000));
        outbox
            .push_all(
                (0..100u8)
                    .map(|n| Frame::Binary(vec![n].into()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            )
            .unwrap_or_else(|_| panic!("room for 100"));
        while outbox.try_recv().is_some() {}
        assert!(outbox.queue().rest.is_none());
    }

    #[test]
    fn drain_hands_frames_over_in_order_and_stops_when_asked() {
        let outbox = Outbox::new(frames(8));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let frame = |n: u8| Frame::Binary(vec![n].into());
        assert_eq!(outbox.poll_drain(&mut cx, |_, _| true), Poll::Pending);
        for n in 1..=3 {
            assert_eq!(outbox.push(frame(n)), Ok(()));
        }
        let mut seen = Vec::new();
        let left = outbox.poll_drain(&mut cx, |frame, queued| {
            seen.push((frame.into_frame(), queued));
            seen.len() < 2
        });
        assert_eq!(left, Poll::Ready(true));
        assert_eq!(seen, vec![(frame(1), 3), (frame(2), 2)]);
        seen.clear();
        let left = outbox.poll_drain(&mut cx, |frame, queued| {
            seen.push((frame.into_frame(), queued));
            true
        });
        assert_eq!(left, Poll::Ready(false));
        assert_eq!(seen, vec![(frame(3), 1)]);
        assert!(outbox.queue().rest.is_none());
    }

    #[test]
    fn the_queue_fits_one_cache_line_with_room_for_a_byte() {
        // The lock, the newest run, the waker and the limits must share the line the lock
        // fetches, with the session's state byte (the session puts the queue at the start of
        // a line: see its layout test).
        assert!(std::mem::size_of::<Outbox>() < 64);
    }

    /// A broadcast of `text` to `channel`, placed among that channel's broadcasts.
    fn broadcast(channel: &str, text: &str) -> Broadcast {
        struct Test;
        match Frame::message(text).shared() {
            Frame::Shared(shared) => {
                Broadcast::new(std::any::TypeId::of::<Test>(), channel, shared)
            }
            _ => panic!("a text frame is shared"),
        }
    }

    fn shared(broadcast: &Broadcast) -> Frame {
        Frame::Shared(broadcast.frame().clone())
    }

    #[test]
    fn consecutive_broadcasts_make_one_run_in_place() {
        let outbox = Outbox::new(frames(1000));
        let sent: Vec<Broadcast> = (0..CHUNK + 3)
            .map(|n| broadcast("outbox-test/run", &n.to_string()))
            .collect();
        for (n, b) in sent.iter().enumerate() {
            assert_eq!(outbox.push_broadcast(b), Ok(()));
            if n < CHUNK {
                assert!(outbox.queue().rest.is_none(), "one run, nothing boxed");
            }
        }
        // The chunk filled up: the first run went behind the box, the next one is in place.
        assert_eq!(outbox.queue().len(), CHUNK + 3);
        assert_eq!(
            outbox.queue().bytes(),
            sent.iter().map(|b| b.frame().text().len()).sum::<usize>()
        );
        for b in &sent {
            assert_eq!(outbox.try_recv(), Some(shared(b)));
        }
        assert_eq!(outbox.try_recv(), None);
        assert!(outbox.queue().is_empty());
        assert_eq!(outbox.queue().bytes(), 0);
    }

    #[test]
    fn a_drain_lends_broadcast_frames_and_lets_go_of_emptied_runs() {
        let outbox = Outbox::new(frames(1000));
        let own = Frame::Binary(vec![7].into());
        // Two runs (the chunk's end splits them), an own frame, then a run again.
        let sent: Vec<Broadcast> = (0..CHUNK + 2)
            .map(|n| broadcast("outbox-test/lend", &n.to_string()))
            .collect();
        for b in &sent[..CHUNK + 1] {
            assert_eq!(outbox.push_broadcast(b), Ok(()));
        }
        assert_eq!(outbox.push(own.clone()), Ok(()));
        assert_eq!(outbox.push_broadcast(&sent[CHUNK + 1]), Ok(()));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut seen = Vec::new();
        let left = outbox.poll_drain(&mut cx, |next, _| {
            let lent = matches!(next, Taken::Lent(_));
            seen.push((lent, next.into_frame()));
            true
        });
        assert_eq!(left, Poll::Ready(false));
        let mut expected: Vec<(bool, Frame)> = sent[..CHUNK + 1]
            .iter()
            .map(|b| (true, shared(b)))
            .collect();
        expected.push((false, own));
        expected.push((true, shared(&sent[CHUNK + 1])));
        assert_eq!(
            seen, expected,
            "broadcasts lent, own frames handed over, in order"
        );
        let queue = outbox.queue();
        assert!(queue.rest.is_none() && queue.last.is_none(), "nothing kept");
        assert_eq!((queue.len(), queue.bytes()), (0, 0));
    }

    #[test]
    fn drains_that_stop_anywhere_keep_the_order_and_the_counts() {
        // 1 to 7 frames per drain: between them, every stride stops inside runs, at their
        // ends (64 and 66 frames in), on the own frame and around it.
        for per in 1..=7 {
            drain_in_pieces(per);
        }
    }

    fn drain_in_pieces(per: usize) {
        let outbox = Outbox::new(frames(1000));
        let own = Frame::Binary(vec![9].into());
        let channel = format!("outbox-test/pieces-{per}");
        // A run behind the box (the chunk's end splits it), an own frame, a run in place.
        let sent: Vec<Broadcast> = (0..CHUNK + 6)
            .map(|n| broadcast(&channel, &n.to_string()))
            .collect();
        for b in &sent[..CHUNK + 2] {
            assert_eq!(outbox.push_broadcast(b), Ok(()));
        }
        assert_eq!(outbox.push(own.clone()), Ok(()));
        for b in &sent[CHUNK + 2..] {
            assert_eq!(outbox.push_broadcast(b), Ok(()));
        }
        let mut expected: Vec<Frame> = sent[..CHUNK + 2].iter().map(shared).collect();
        expected.push(own);
        expected.extend(sent[CHUNK + 2..].iter().map(shared));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut seen = Vec::new();
        loop {
            let before = seen.len();
            let left = outbox.poll_drain(&mut cx, |next, queued| {
                // How many are queued, this one included, counts down frame by frame.
                assert_eq!(queued, expected.len() - seen.len());
                seen.push(next.into_frame());
                seen.len() - before < per
            });
            assert_eq!(
                seen.len() - before,
                per.min(expected.len() - before),
                "{per} per drain: stopped when asked"
            );
            let rest: usize = expected[seen.len()..].iter().map(Frame::len).sum();
            let queue = outbox.queue();
            assert_eq!(
                (queue.len(), queue.bytes()),
                (expected.len() - seen.len(), rest),
                "{per} per drain: counts after {} frames",
                seen.len()
            );
            drop(queue);
            match left {
                Poll::Ready(true) => {}
                Poll::Ready(false) => break,
                Poll::Pending => panic!("frames were queued"),
            }
        }
        assert_eq!(seen, expected, "{per} per drain");
        let queue = outbox.queue();
        assert!(queue.rest.is_none() && queue.last.is_none(), "nothing kept");
    }

    #[test]
    fn a_run_emptied_by_a_drain_that_stopped_early_goes_on() {
        let outbox = Outbox::new(frames(1000));
        let sent: Vec<Broadcast> = (0..4)
            .map(|n| broadcast("outbox-test/early", &n.to_string()))
            .collect();
        for b in &sent[..2] {
            assert_eq!(outbox.push_broadcast(b), Ok(()));
        }
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut seen = Vec::new();
        // Stops at the run's last frame: the emptied run must not stay as an entry.
        let left = outbox.poll_drain(&mut cx, |next, _| {
            seen.push(next.into_frame());
            seen.len() < 2
        });
        assert_eq!(left, Poll::Ready(false));
        assert!(outbox.queue().last.is_none());
        for b in &sent[2..] {
            assert_eq!(outbox.push_broadcast(b), Ok(()));
        }
        while let Some(frame) = outbox.try_recv() {
            seen.push(frame);
        }
        assert_eq!(seen, sent.iter().map(shared).collect::<Vec<_>>());
        assert!(outbox.queue().is_empty());
    }

    #[test]
    fn broadcasts_and_own_frames_leave_in_the_order_queued() {
        let outbox = Outbox::new(frames(20));
        let own = |n: u8| Frame::Binary(vec![n].into());
        let (a1, a2) = (
            broadcast("outbox-test/a", "a1"),
            broadcast("outbox-test/a", "a2"),
        );
        let b1 = broadcast("outbox-test/b", "b1");
        let a3 = broadcast("outbox-test/a", "a3");
        let skipped = broadcast("outbox-test/a", "not for this queue");
        let a5 = broadcast("outbox-test/a", "a5");
        assert_eq!(outbox.push_broadcast(&a1), Ok(()));
        assert_eq!(outbox.push(own(1)), Ok(()));
        assert_eq!(outbox.push_broadcast(&a2), Ok(()));
        assert_eq!(outbox.push_broadcast(&b1), Ok(()));
        assert_eq!(outbox.push_broadcast(&a3), Ok(()));
        // A frame of the channel this queue did not get: the next one starts a new run.
        assert_eq!(outbox.push_broadcast(&a5), Ok(()));
        assert_eq!(outbox.push(own(2)), Ok(()));
        assert_eq!(outbox.try_recv(), Some(shared(&a1)));
        // Taking from the front while the newest run grows.
        let a6 = broadcast("outbox-test/a", "a6");
        let queued = [own(1), shared(&a2), shared(&b1), shared(&a3), shared(&a5)];
        let mut left = Vec::new();
        for frame in queued {
            assert_eq!(outbox.try_recv(), Some(frame.clone()));
            left.push(frame);
        }
        assert_eq!(outbox.push_broadcast(&a6), Ok(()));
        assert_eq!(outbox.try_recv(), Some(own(2)));
        assert_eq!(outbox.try_recv(), Some(shared(&a6)));
        assert_eq!(outbox.try_recv(), None);
        assert!(outbox.queue().rest.is_none());
        drop(skipped);
    }

    #[test]
    fn a_run_counts_in_the_bounds() {
        let first = broadcast("outbox-test/bounds", "12345678");
        let len = first.frame().text().len();
        let outbox = Outbox::new(Limits {
            frames: 2,
            bytes: 2 * len,
        });
        assert_eq!(outbox.push_broadcast(&first), Ok(()));
        assert_eq!(outbox.queue().bytes(), len);
        let second = broadcast("outbox-test/bounds", "12345678");
        assert_eq!(outbox.push_broadcast(&second), Ok(()));
        let third = broadcast("outbox-test/bounds", "12345678");
        assert_eq!(
            outbox.push_broadcast(&third),
            Err(Full),
            "two frames at most"
        );
        assert_eq!(outbox.try_recv(), Some(shared(&first)));
        assert_eq!(outbox.queue().bytes(), len);
        let over = Frame::Binary(vec![0; len + 1].into());
        assert_eq!(outbox.push(over), Err(Full), "one byte over");
    }

    #[test]
    fn push_refuses_beyond_the_bound() {
        let outbox = Outbox::new(frames(2));
        let frame = |n: u8| Frame::Binary(vec![n].into());
        assert_eq!(outbox.push(frame(1)), Ok(()));
        assert_eq!(outbox.push(frame(2)), Ok(()));
        assert_eq!(outbox.push(frame(3)), Err(Full));
    }

    #[test]
    fn bytes_are_bounded_too_and_counted_back_as_frames_leave() {
        let outbox = Outbox::new(Limits {
            frames: 100,
            bytes: 10,
        });
        let frame = |n: usize| Frame::Binary(vec![0; n].into());
        // A lone frame is always taken, even one beyond the bound.
        assert_eq!(outbox.push(frame(25)), Ok(()));
        assert_eq!(outbox.push(frame(1)), Err(Full));
        assert_eq!(outbox.try_recv(), Some(frame(25)));
        assert_eq!(outbox.push(frame(6)), Ok(()));
        assert_eq!(outbox.push(frame(4)), Ok(()));
        assert_eq!(outbox.push(frame(1)), Err(Full), "11 bytes would wait");
        assert_eq!(outbox.push_all([frame(1)].into_iter()), Err(Full));
        assert_eq!(outbox.try_recv(), Some(frame(6)));
        assert_eq!(
            outbox.push_all([frame(3), frame(3)].into_iter()),
            Ok(()),
            "4 + 3 + 3 bytes fit"
        );
        assert_eq!(outbox.queue().bytes(), 10);
        while outbox.try_recv().is_some() {}
        assert_eq!(outbox.queue().bytes(), 0);
    }

    #[test]
    fn a_shared_frame_counts_in_full_in_every_queue() {
        let shared = Frame::message(&"x".repeat(99)).shared();
        let limits = Limits {
            frames: 100,
            bytes: 250,
        };
        let (a, b) = (Outbox::new(limits), Outbox::new(limits));
        for _ in 0..2 {
            assert_eq!(a.push(shared.clone()), Ok(()));
            assert_eq!(b.push(shared.clone()), Ok(()));
        }
        assert_eq!(a.push(shared.clone()), Err(Full));
        assert_eq!(b.push(shared), Err(Full));
    }

    #[tokio::test]
    async fn recv_wakes_on_push() {
        let outbox = std::sync::Arc::new(Outbox::new(frames(4)));
        let reader = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.recv().await }
        });
        tokio::task::yield_now().await;
        outbox
            .push_all([Frame::message("hi")].into_iter())
            .unwrap_or_else(|_| panic!("room"));
        let frame = reader.await.unwrap_or_else(|e| panic!("reader: {e}"));
        assert_eq!(frame, Frame::message("hi"));
    }
}
