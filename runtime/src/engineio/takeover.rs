//! A WebSocket that owns its TCP connection: actix-http's upgrade path hands over the socket
//! once the `101 Switching Protocols` is decided, and this module carries it from there.
//!
//! The request still goes through the application (its routes, middleware and extractors), with
//! a payload this module fills from the socket; the response's body is then written straight to
//! the socket. Nothing of actix-http's per-connection buffers stays: what the client sends is
//! read into a buffer on the stack and handed over as it comes, and what the body yields is
//! written as it is. Any handler that answers `101` with a streaming body and reads the request
//! payload works this way, tidings' own WebSockets and others alike.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_codec::Framed;
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::error::PayloadError;
use actix_http::h1::{Codec, Message};
use actix_http::{ConnectionType, Payload, Request, Response, StatusCode};
use actix_web::rt::net::TcpStream;
use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::Stream;
use smallvec::SmallVec;
use tokio::io::{AsyncWrite as _, Interest, ReadBuf};

use super::tcp::{Ending, TcpHandle};

/// The most bytes read from the client and not yet taken by the body; reading pauses beyond it.
const INBOX_MAX: usize = 64 * 1024;

/// The most bytes taken from the body before they are written (in one call).
const WRITE_MAX: usize = 64 * 1024;

/// The most chunks one write call takes.
const WRITE_SLICES: usize = 64;

/// How many bytes one read takes from the socket (a buffer on the stack).
const READ_CHUNK: usize = 8 * 1024;

/// After the body has ended and the write side is shut, how long the client gets to close its
/// side (its remaining bytes are read and dropped) before the socket closes.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Answers an upgrade request: the application decides; a `101` takes the connection over.
///
/// The future fails when writing the response's head fails (the client is gone).
pub(crate) fn take_over<T, B>(
    app: Rc<T>,
    req: Request,
    framed: Framed<TcpStream, Codec>,
) -> TakeOver<impl Future<Output = Result<Option<Owned>, actix_web::Error>>>
where
    T: actix_web::dev::Service<Request> + 'static,
    T::Response: Into<Response<B>>,
    T::Error: Into<actix_web::Error>,
    B: MessageBody + 'static,
{
    TakeOver::Handshake(Box::pin(handshake(app, req, framed)))
}

/// An upgrade request's connection: the handshake (the request, actix-http's codec and
/// buffers, the application's future) in a box of its own, then the connection, in a task of
/// its own on the same thread.
///
/// Why a task: actix-server polls a connection through its service's future, actix-http's
/// dispatcher and this one; every wake of a WebSocket that writes a frame would go through
/// them, a few cache lines each that a broadcast to thousands of connections finds cold. This
/// future only waits for the connection's task to end (so that the worker still counts the
/// connection, and its shutdown still ends it: dropped, this future aborts the task).
pub(crate) enum TakeOver<F> {
    Handshake(Pin<Box<F>>),
    Running(Running),
}

/// The task of an upgraded connection, aborted when dropped.
pub(crate) struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<F> Future for TakeOver<F>
where
    F: Future<Output = Result<Option<Owned>, actix_web::Error>>,
{
    type Output = Result<(), actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this {
                TakeOver::Handshake(handshake) => match handshake.as_mut().poll(cx) {
                    Poll::Ready(Ok(Some(owned))) => {
                        *this = TakeOver::Running(Running(tokio::task::spawn_local(owned)));
                    }
                    Poll::Ready(Ok(None)) => return Poll::Ready(Ok(())),
                    Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                    Poll::Pending => return Poll::Pending,
                },
                TakeOver::Running(running) => {
                    return Pin::new(&mut running.0).poll(cx).map(|ended| {
                        // Not cancelled (only dropping this future aborts the task): a panic.
                        if let Err(err) = ended {
                            tracing::error!(%err, "websocket connection task failed");
                        }
                        Ok(())
                    });
                }
            }
        }
    }
}

/// The application's answer to an upgrade request, written; the connection, when it is a `101`.
async fn handshake<T, B>(
    app: Rc<T>,
    req: Request,
    mut framed: Framed<TcpStream, Codec>,
) -> Result<Option<Owned>, actix_web::Error>
where
    T: actix_web::dev::Service<Request>,
    T::Response: Into<Response<B>>,
    T::Error: Into<actix_web::Error>,
    B: MessageBody + 'static,
{
    let ending = req.conn_data::<TcpHandle>().map(|handle| handle.0.clone());
    let inbox = Inbox::default();
    let stream = inbox.stream();
    let stream_at = stream.address();
    let payload: actix_http::BoxedPayloadStream = stream;
    let (req, _) = req.replace_payload(Payload::Stream { payload });
    let response: Response<BoxBody> = match app.call(req).await {
        Ok(response) => response.into().map_into_boxed_body(),
        Err(err) => err.into().into(),
    };
    let (mut head, body) = response.into_parts();
    if head.status() != StatusCode::SWITCHING_PROTOCOLS {
        // Not upgraded (refused, not found): the answer goes whole, then the connection ends.
        let bytes = actix_http::body::to_bytes(body)
            .await
            .unwrap_or_else(|err| {
                tracing::debug!(%err, "body of an upgrade request's answer failed");
                Bytes::new()
            });
        head.head_mut().set_connection_type(ConnectionType::Close);
        let size = BodySize::Sized(bytes.len() as u64);
        Pin::new(&mut framed).write(Message::Item((head, size)))?;
        if !bytes.is_empty() {
            Pin::new(&mut framed).write(Message::Chunk(Some(bytes)))?;
        }
        Pin::new(&mut framed).write(Message::Chunk(None))?;
        poll_fn(|cx| Pin::new(&mut framed).flush(cx)).await?;
        poll_fn(|cx| Pin::new(&mut framed).close(cx)).await?;
        return Ok(None);
    }
    // Encoded, not written: the head leaves with the body's first bytes (a handshake's first
    // message is usually ready), in one write and one segment.
    Pin::new(&mut framed).write(Message::Item((head, BodySize::Stream)))?;
    let (io, read_buf, head) = socket_of(framed);
    if !read_buf.is_empty() {
        // What the client sent right after its request.
        inbox.push(read_buf.freeze(), None);
    }
    Ok(Some(Owned::new(
        io,
        body,
        inbox,
        stream_at,
        ending,
        head.freeze(),
    )))
}

/// The socket of `framed`, what was read from it and not decoded, and what was encoded and not
/// written; actix-http's codec goes here (unmoved fields of a value destructured in place would
/// stay until the end of the connection's future).
fn socket_of(framed: Framed<TcpStream, Codec>) -> (TcpStream, BytesMut, BytesMut) {
    let parts = framed.into_parts();
    (parts.io, parts.read_buf, parts.write_buf)
}

/// An upgraded connection: the socket, the body writing to it, the payload reading from it.
pub(crate) struct Owned {
    io: TcpStream,
    body: BoxBody,
    inbox: Inbox,
    /// The address of the inbox's stream (see [`InboxStream::address`]).
    stream_at: usize,
    /// Known since the inbox was last looked at: it is empty and open, and its stream is
    /// alive, as long as this many streams have been dropped on this thread. Lets a poll that
    /// read nothing answer the stream's poll without its two allocations (see [`Quiet`]).
    quiet: Option<u64>,
    ending: Option<Arc<Ending>>,
    /// The waker `ending` has (see [`Ending::poll_ended_with`]).
    ending_waker: Option<Waker>,
    /// What the body gave and the socket has not taken yet, in order (one chunk inline: when
    /// emits come one at a time, a write usually carries one).
    out: SmallVec<[Bytes; 1]>,
    /// The bytes in `out`.
    queued: usize,
    /// The body has ended.
    body_done: bool,
    /// The client's side is open.
    reading: bool,
    /// The last read ended with the task registered for the socket's next read readiness (see
    /// [`Owned::read`]).
    read_armed: bool,
    /// Reading stopped because the body had not taken what was read.
    paused: bool,
    /// The body has ended and the write side is shut: the client's last bytes are read and
    /// dropped until it closes its side, or this fires.
    closing: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Owned {
    /// A connection writing `head` (encoded, not yet written; may be empty), then `body`, to
    /// `io`, what is read from `io` going into `inbox`, whose stream lives at `stream_at`.
    fn new(
        io: TcpStream,
        body: BoxBody,
        inbox: Inbox,
        stream_at: usize,
        ending: Option<Arc<Ending>>,
        head: Bytes,
    ) -> Self {
        let queued = head.len();
        let out = if head.is_empty() {
            SmallVec::new()
        } else {
            SmallVec::from_buf([head])
        };
        Owned {
            io,
            body,
            inbox,
            stream_at,
            quiet: None,
            ending,
            ending_waker: None,
            queued,
            out,
            body_done: false,
            reading: true,
            read_armed: false,
            paused: false,
            closing: None,
        }
    }

    /// Reads what the client sent into the inbox, until the socket has nothing more or the
    /// inbox is full.
    ///
    /// The inbox is looked at only when something was read: a connection woken to write finds
    /// the socket empty, and its inbox (an allocation of its own) stays out of the cache.
    ///
    /// Nor does such a wake register the task for the socket again. The runtime marks the
    /// socket readable before it takes the registered waker to wake it, and only this read
    /// clears the mark, always followed by a new registration; so while the mark is clear,
    /// the registration from the last read still stands. Checking the mark is one load, where
    /// a read that finds nothing takes the registration's lock to store the waker again.
    fn read(&mut self, cx: &mut Context<'_>) {
        if self.read_armed {
            if self.io.try_io(Interest::READABLE, || Ok(())).is_err() {
                return;
            }
            self.read_armed = false;
        }
        // Not zeroed: a read only hands out what the socket filled.
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        while self.reading && !self.paused {
            let mut read = Bytes::new();
            match self.poll_read(cx, &mut buf, |bytes| read = Bytes::copy_from_slice(bytes)) {
                Poll::Ready(Ok(0)) => {
                    self.reading = false;
                    self.quiet = None;
                    self.inbox.finish(None, Some(cx));
                }
                Poll::Ready(Ok(_)) => {
                    self.quiet = None;
                    self.inbox.push(read, Some(cx));
                    self.paused = self.inbox.len() >= INBOX_MAX;
                }
                Poll::Ready(Err(err)) => {
                    tracing::debug!(%err, "websocket read failed");
                    self.reading = false;
                    self.quiet = None;
                    self.inbox.finish(Some(err), Some(cx));
                }
                Poll::Pending => {
                    // Registered, unless the task's budget ran out: the read then stopped
                    // before the socket and registered nothing (the task is woken to go on).
                    self.read_armed = tokio::task::coop::has_budget_remaining();
                    return;
                }
            }
        }
    }

    /// One read from the socket into `buf`; what it read goes to `take` (when not empty).
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
        take: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::uninit(buf);
        match tokio::io::AsyncRead::poll_read(Pin::new(&mut self.io), cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled();
                if !read.is_empty() {
                    take(read);
                }
                Poll::Ready(Ok(read.len()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The body has ended: the client's side is read to its end (or for a grace period),
    /// what it sends dropped.
    fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        loop {
            match self.poll_read(cx, &mut buf, |_| {}) {
                Poll::Ready(Ok(0) | Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(_)) => {}
                Poll::Pending => break,
            }
        }
        match &mut self.closing {
            Some(deadline) => deadline.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Future for Owned {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if (this.ending_waker.is_none() || !this.out.is_empty()) && this.ended(cx) {
            return Poll::Ready(());
        }
        if this.closing.is_some() {
            return this.poll_closing(cx);
        }
        this.read(cx);
        // Whether the body answered `Pending` in this poll: it is then registered to wake the
        // task, and polling it again after a write would only find the same nothing (a pass
        // over its input and its queue per write).
        let mut waiting = false;
        loop {
            if !waiting {
                waiting = this.fill(cx);
            }
            if this.out.is_empty() {
                if this.body_done {
                    // Everything is written: say so, and let the client close its side.
                    let _ = Pin::new(&mut this.io).poll_shutdown(cx);
                    this.closing = Some(Box::pin(tokio::time::sleep(CLOSE_GRACE)));
                    return this.poll_closing(cx);
                }
                if this.paused && this.inbox.len() < INBOX_MAX {
                    // The body took what was waiting: read on.
                    this.paused = false;
                    this.read(cx);
                    if !this.inbox.is_empty() {
                        waiting = false;
                        continue;
                    }
                }
                // Keep no list while there is nothing to write.
                if this.out.spilled() {
                    this.out = SmallVec::new();
                }
                return Poll::Pending;
            }
            match this.write(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => {
                    tracing::debug!(%err, "websocket write failed");
                    return Poll::Ready(());
                }
                Poll::Pending if this.ended(cx) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Owned {
    /// Whether the connection was ended from outside: its session closed and the client does
    /// not read, so a write stays blocked (see `tcp`). Registers the task to be woken when it
    /// is, at its first poll; after that the flag is read only while a write is blocked (at the
    /// start of a poll and when a write blocks), the one state its end is for. A connection
    /// woken to write then leaves the flag's line alone.
    fn ended(&mut self, cx: &mut Context<'_>) -> bool {
        self.ending
            .as_ref()
            .is_some_and(|ending| ending.poll_ended_with(cx, &mut self.ending_waker))
    }

    /// Takes what the body has to write, up to [`WRITE_MAX`] bytes; `true` when the body
    /// answered `Pending` (it has nothing more until it wakes the task).
    fn fill(&mut self, cx: &mut Context<'_>) -> bool {
        let quiet = (self.quiet == Some(DROPPED.get())).then(|| Quiet::enter(self.stream_at, cx));
        let waiting = self.poll_body(cx);
        drop(quiet);
        // Counted after the body's poll: a stream it dropped is seen by this check.
        let dropped = DROPPED.get();
        if waiting && self.quiet != Some(dropped) {
            self.quiet = self.inbox.is_quiet().then_some(dropped);
        }
        waiting
    }

    /// [`Owned::fill`], without what it knows about the inbox.
    fn poll_body(&mut self, cx: &mut Context<'_>) -> bool {
        while !self.body_done && self.queued < WRITE_MAX {
            match Pin::new(&mut self.body).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    self.queued += chunk.len();
                    self.out.push(chunk);
                }
                Poll::Ready(Some(Err(err))) => {
                    tracing::debug!(%err, "websocket body failed");
                    self.out.clear();
                    self.queued = 0;
                    self.body_done = true;
                }
                Poll::Ready(None) => self.body_done = true,
                Poll::Pending => return true,
            }
        }
        false
    }

    /// Writes what is queued, in one call, as far as the socket takes it.
    ///
    /// A lone chunk (the usual case: a drain copies several frames into one) goes with a plain
    /// `send`; the kernel's vectored write takes another path (through the file layer) that
    /// costs it more per call, about 8 % of a paced broadcast's kernel time on loopback.
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wrote = if let [chunk] = self.out.as_slice() {
            Pin::new(&mut self.io).poll_write(cx, chunk)
        } else {
            // Only as many slices as there are chunks are filled in.
            let slices: SmallVec<[IoSlice<'_>; WRITE_SLICES]> = self
                .out
                .iter()
                .take(WRITE_SLICES)
                .map(|chunk| IoSlice::new(chunk))
                .collect();
            Pin::new(&mut self.io).poll_write_vectored(cx, &slices)
        };
        let mut written = match wrote {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        };
        self.queued -= written;
        let mut done = 0;
        for chunk in &mut self.out {
            if written >= chunk.len() {
                written -= chunk.len();
                done += 1;
            } else {
                chunk.advance(written);
                break;
            }
        }
        self.out.drain(..done);
        Poll::Ready(Ok(()))
    }
}

/// The request payload of an upgraded connection: what was read from the socket and not yet
/// taken. The connection holds this end; the application reads the other, [`InboxStream`].
#[derive(Clone, Default)]
struct Inbox(Rc<InboxShared>);

#[derive(Default)]
struct InboxShared {
    state: RefCell<InboxState>,
    /// The stream has been dropped.
    stream_gone: Cell<bool>,
}

#[derive(Default)]
struct InboxState {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// The client's side has ended (with an error, if it failed).
    end: Option<Option<io::Error>>,
    waker: Option<Waker>,
}

impl Inbox {
    /// The inbox's stream, in the box the request's payload is.
    fn stream(&self) -> Pin<Box<InboxStream>> {
        Box::pin(InboxStream(self.clone()))
    }

    fn len(&self) -> usize {
        self.0.state.borrow().len
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nothing waits in the inbox, the client's side is open and the stream is alive: until
    /// something is added or a stream is dropped, polling the stream finds nothing.
    fn is_quiet(&self) -> bool {
        let state = self.0.state.borrow();
        state.len == 0 && state.end.is_none() && !self.0.stream_gone.get()
    }

    /// Adds bytes read. The reader is woken unless it runs in `current`'s task (which polls it
    /// next anyway).
    fn push(&self, bytes: Bytes, current: Option<&Context<'_>>) {
        let mut state = self.0.state.borrow_mut();
        state.len += bytes.len();
        state.chunks.push_back(bytes);
        state.wake(current);
    }

    /// The client's side has ended.
    fn finish(&self, err: Option<io::Error>, current: Option<&Context<'_>>) {
        let mut state = self.0.state.borrow_mut();
        state.end = Some(err);
        state.wake(current);
    }
}

impl InboxState {
    fn wake(&mut self, current: Option<&Context<'_>>) {
        let theirs = self
            .waker
            .as_ref()
            .is_some_and(|waker| !current.is_some_and(|cx| waker.will_wake(cx.waker())));
        if theirs && let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

thread_local! {
    /// While a connection polls its body knowing its inbox quiet: the address of the inbox's
    /// stream and the connection's waker (see [`Quiet`]); zeros otherwise.
    static QUIET: Cell<(usize, WakerId)> = const { Cell::new((0, (0, 0))) };
    /// How many inbox streams have been dropped on this thread.
    static DROPPED: Cell<u64> = const { Cell::new(0) };
}

/// Who a waker wakes, as [`Waker::will_wake`] compares it: its data and its vtable.
type WakerId = (usize, usize);

fn waker_id(waker: &Waker) -> WakerId {
    (
        waker.data() as usize,
        std::ptr::from_ref(waker.vtable()) as usize,
    )
}

/// A connection's poll of its body while its inbox is known quiet.
///
/// A connection woken to write finds the socket empty, and its body then polls the request
/// payload only to find nothing: two allocations of their own (the payload's box and the
/// inbox), cold when a broadcast wakes thousands of connections one after another. While this
/// lasts, the inbox's stream, polled from the connection's own task, answers `Pending` without
/// looking at either. That is the answer it would give: the connection saw the inbox empty and
/// open, and added nothing since; it polls the body after anything it adds. The stream is
/// known by its box's address and the task by its waker; and no stream has been dropped since,
/// so no other stream has taken that address.
struct Quiet;

impl Quiet {
    fn enter(stream_at: usize, cx: &Context<'_>) -> Quiet {
        QUIET.set((stream_at, waker_id(cx.waker())));
        Quiet
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        QUIET.set((0, (0, 0)));
    }
}

/// The application's end of an [`Inbox`]: the request's payload.
struct InboxStream(Inbox);

impl InboxStream {
    /// Where the stream lives (it is pinned in its box).
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

impl Drop for InboxStream {
    /// Another stream may take this one's address: no quiet poll, now or later, takes it for
    /// this one (the connection checks its inbox again once a stream has been dropped).
    fn drop(&mut self) {
        self.0.0.stream_gone.set(true);
        DROPPED.set(DROPPED.get().wrapping_add(1));
        QUIET.set((0, (0, 0)));
    }
}

impl Stream for InboxStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if QUIET.get() == (self.address(), waker_id(cx.waker())) {
            #[cfg(test)]
            tests::QUIET_POLLS.set(tests::QUIET_POLLS.get() + 1);
            return Poll::Pending;
        }
        let mut state = self.0.0.state.borrow_mut();
        if let Some(bytes) = state.chunks.pop_front() {
            state.len -= bytes.len();
            if state.chunks.is_empty() {
                // Keep no ring buffer while the client is quiet.
                state.chunks = VecDeque::new();
            }
            return Poll::Ready(Some(Ok(bytes)));
        }
        match &mut state.end {
            Some(err) => Poll::Ready(err.take().map(|err| Err(PayloadError::Io(err)))),
            None => {
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|waker| waker.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    use super::*;

    thread_local! {
        /// How many polls of an inbox stream were answered from [`QUIET`] on this thread.
        pub(super) static QUIET_POLLS: Cell<u64> = const { Cell::new(0) };
    }

    /// A client and the server's end of its connection.
    async fn connected() -> (tokio::net::TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let addr = listener.local_addr().unwrap_or_else(|err| panic!("{err}"));
        let client = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let (server, _) = listener
            .accept()
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        (client, server)
    }

    /// A connection on `server` whose body `body` makes from its inbox's stream.
    fn owned<B>(server: TcpStream, body: impl FnOnce(Pin<Box<InboxStream>>) -> B) -> Owned
    where
        B: MessageBody + 'static,
    {
        let inbox = Inbox::default();
        let stream = inbox.stream();
        let stream_at = stream.address();
        Owned::new(
            server,
            BoxBody::new(body(stream)),
            inbox,
            stream_at,
            None,
            Bytes::new(),
        )
    }

    /// Reads `expected` from the client, failing after a few seconds.
    async fn expect(client: &mut tokio::net::TcpStream, expected: &[u8], what: &str) {
        let mut got = vec![0; expected.len()];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{what}: {expected:?} never arrived"))
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(got, expected, "{what}");
    }

    async fn send(client: &mut tokio::net::TcpStream, bytes: &[u8]) {
        client
            .write_all(bytes)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
    }

    fn local_runtime(test: impl Future<Output = ()>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("{err}"));
        tokio::task::LocalSet::new().block_on(&runtime, test);
    }

    /// Serves one connection whose first poll starts with `spent` units of the task's budget
    /// already used, the client's first bytes waiting; then checks that what the client sends
    /// next is read too.
    async fn budget_round(spent: usize) {
        let (mut client, server) = connected().await;
        send(&mut client, b"x").await;
        server
            .readable()
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        // Writes back what the client sent.
        let mut owned = owned(server, actix_web::body::BodyStream::new);
        // Ready items, each of which takes one unit of budget to receive.
        let (tx, mut spend) = unbounded_channel();
        for _ in 0..spent {
            let _ = tx.send(());
        }
        let mut first = true;
        let task = tokio::task::spawn_local(poll_fn(move |cx| {
            if std::mem::take(&mut first) {
                while spend.poll_recv(cx).is_ready() {}
            }
            Pin::new(&mut owned).poll(cx)
        }));
        let what = format!("{spent} units spent");
        expect(&mut client, b"x", &what).await;
        send(&mut client, b"y").await;
        expect(&mut client, b"y", &what).await;
        task.abort();
    }

    /// A read that the task's budget stops between clearing the socket's readiness and
    /// registering for the next registers nothing: it must not be taken for registered (see
    /// [`Owned::read`]), or the client's next bytes are never read. Where the budget runs out
    /// depends on its size, so every amount spent up to more than a whole budget is tried.
    #[test]
    fn a_read_stopped_by_the_task_budget_is_not_taken_as_registered() {
        local_runtime(async {
            for spent in 0..=160 {
                budget_round(spent).await;
            }
        });
    }

    /// A body that echoes its payload and writes what `pushes` brings (a server's own messages).
    fn echo_and_push(
        mut payload: Pin<Box<InboxStream>>,
        mut pushes: UnboundedReceiver<Bytes>,
    ) -> impl MessageBody + 'static {
        actix_web::body::BodyStream::new(futures_util::stream::poll_fn(move |cx| {
            if let Poll::Ready(Some(pushed)) = pushes.poll_recv(cx) {
                return Poll::Ready(Some(Ok(pushed)));
            }
            payload.as_mut().poll_next(cx)
        }))
    }

    /// A connection woken to write, with nothing read, answers its body's poll of the payload
    /// from what it knows ([`Quiet`]); what the client sends after that is still read and
    /// reaches the body at once, however the two alternate.
    #[test]
    fn a_quiet_inbox_is_answered_without_looking_and_input_still_arrives() {
        local_runtime(async {
            let (mut client, server) = connected().await;
            let (push, pushes) = unbounded_channel();
            let owned = owned(server, |payload| echo_and_push(payload, pushes));
            let task = tokio::task::spawn_local(owned);
            QUIET_POLLS.set(0);
            for round in 0..40 {
                let what = format!("round {round}");
                let _ = push.send(Bytes::from_static(b"s"));
                expect(&mut client, b"s", &what).await;
                if round % 3 != 0 {
                    let _ = push.send(Bytes::from_static(b"t"));
                    expect(&mut client, b"t", &what).await;
                }
                send(&mut client, b"c").await;
                expect(&mut client, b"c", &what).await;
            }
            // The pushes found the inbox quiet (not merely never looked at it).
            assert!(QUIET_POLLS.get() >= 40, "{} quiet polls", QUIET_POLLS.get());
            task.abort();
        });
    }

    /// Drops `payload` and makes streams of `spare` until the allocator hands one the dropped
    /// one's address (it may first hand out blocks freed before); the others go to `kept`,
    /// alive, so that no drop of theirs is seen.
    fn replace(
        payload: Pin<Box<InboxStream>>,
        spare: &Inbox,
        kept: &mut Vec<Pin<Box<InboxStream>>>,
    ) -> Pin<Box<InboxStream>> {
        const TRIES: usize = 256;
        kept.reserve(TRIES);
        let at = payload.address();
        drop(payload);
        for _ in 0..TRIES {
            let stream = spare.stream();
            if stream.address() == at {
                return stream;
            }
            kept.push(stream);
        }
        panic!("no new stream got the dropped one's address: this test shows nothing");
    }

    /// Where a [`Swapping`] body's payload is replaced.
    #[derive(Clone, Copy, Debug)]
    enum Swap {
        /// In the connection's poll, which then polls the new stream.
        InPoll,
        /// In another task, which hands the new stream back for a later poll.
        Elsewhere,
    }

    /// A body that echoes its payload and, told to, reads another inbox (that of `spare`)
    /// whose stream has taken the first stream's address.
    struct Swapping {
        payload: Option<Pin<Box<InboxStream>>>,
        kept: Vec<Pin<Box<InboxStream>>>,
        spare: Option<Inbox>,
        swap: Swap,
        told: UnboundedReceiver<()>,
        /// `Elsewhere`: the other task's end, and the new stream coming back from it.
        away: tokio::sync::mpsc::UnboundedSender<Pin<Box<InboxStream>>>,
        back: UnboundedReceiver<Pin<Box<InboxStream>>>,
    }

    impl Stream for Swapping {
        type Item = Result<Bytes, PayloadError>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = self.get_mut();
            if this.told.poll_recv(cx).is_ready()
                && let Some(payload) = this.payload.take()
            {
                match (this.swap, this.spare.take()) {
                    (Swap::InPoll, Some(spare)) => {
                        this.payload = Some(replace(payload, &spare, &mut this.kept));
                    }
                    _ => {
                        let _ = this.away.send(payload);
                    }
                }
            }
            if let Poll::Ready(Some(payload)) = this.back.poll_recv(cx) {
                this.payload = Some(payload);
            }
            match &mut this.payload {
                Some(payload) => payload.as_mut().poll_next(cx),
                None => Poll::Pending,
            }
        }
    }

    /// A stream dropped while its connection knows its inbox quiet, and another at the same
    /// address polled by the connection, in the poll of the drop or after a drop elsewhere:
    /// the other is looked at (its bytes are written), not answered from the dropped one's
    /// quiet.
    #[test]
    fn a_stream_at_a_dropped_streams_address_is_not_taken_for_it() {
        local_runtime(async {
            for swap in [Swap::InPoll, Swap::Elsewhere] {
                let (mut client, server) = connected().await;
                let spare = Inbox::default();
                spare.push(Bytes::from_static(b"z"), None);
                let (tell, told) = unbounded_channel();
                let (away, mut arrived) = unbounded_channel::<Pin<Box<InboxStream>>>();
                let (give_back, back) = unbounded_channel();
                let elsewhere = spare.clone();
                let other = tokio::task::spawn_local(async move {
                    let mut kept = Vec::new();
                    if let Some(payload) = arrived.recv().await {
                        let _ = give_back.send(replace(payload, &elsewhere, &mut kept));
                    }
                    // Alive, with what it kept, until the test aborts it.
                    std::future::pending::<()>().await;
                });
                let owned = owned(server, |payload| {
                    actix_web::body::BodyStream::new(Swapping {
                        payload: Some(payload),
                        kept: Vec::new(),
                        spare: Some(spare),
                        swap,
                        told,
                        away,
                        back,
                    })
                });
                let task = tokio::task::spawn_local(owned);
                // The inbox is seen quiet once the client's byte has been echoed.
                send(&mut client, b"c").await;
                expect(&mut client, b"c", "echo").await;
                let before = QUIET_POLLS.get();
                let _ = tell.send(());
                let what = format!("the new stream's bytes ({swap:?})");
                expect(&mut client, b"z", &what).await;
                assert_eq!(QUIET_POLLS.get(), before, "{what}: answered from quiet");
                task.abort();
                other.abort();
            }
        });
    }
}
