//! A WebSocket that owns its TCP connection: actix-http's upgrade path hands over the socket
//! once the `101 Switching Protocols` is decided, and this module carries it from there.
//!
//! The request still goes through the application (its routes, middleware and extractors), with
//! a payload this module fills from the socket; the response's body is then written straight to
//! the socket. Nothing of actix-http's per-connection buffers stays: what the client sends is
//! read into a buffer on the stack and handed over as it comes, and what the body yields is
//! written as it is. Any handler that answers `101` with a streaming body and reads the request
//! payload works this way, tidings' own WebSockets and others alike.

use std::cell::RefCell;
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
    let payload: actix_http::BoxedPayloadStream = Box::pin(inbox.clone());
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
    let head = head.freeze();
    Ok(Some(Owned {
        io,
        body,
        inbox,
        ending,
        ending_waker: None,
        queued: head.len(),
        out: SmallVec::from_buf([head]),
        body_done: false,
        reading: true,
        read_armed: false,
        paused: false,
        closing: None,
    }))
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
                    self.inbox.finish(None, Some(cx));
                }
                Poll::Ready(Ok(_)) => {
                    self.inbox.push(read, Some(cx));
                    self.paused = self.inbox.len() >= INBOX_MAX;
                }
                Poll::Ready(Err(err)) => {
                    tracing::debug!(%err, "websocket read failed");
                    self.reading = false;
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
        // The body polls the inbox on every poll; its line, read now, arrives while the socket's
        // readiness is looked at.
        this.inbox.touch();
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
/// taken.
#[derive(Clone, Default)]
struct Inbox(Rc<RefCell<InboxState>>);

#[derive(Default)]
struct InboxState {
    chunks: VecDeque<Bytes>,
    len: usize,
    /// The client's side has ended (with an error, if it failed).
    end: Option<Option<io::Error>>,
    waker: Option<Waker>,
}

impl Inbox {
    /// Reads the inbox's first line, and nothing else.
    fn touch(&self) {
        std::hint::black_box(Rc::strong_count(&self.0));
    }

    fn len(&self) -> usize {
        self.0.borrow().len
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds bytes read. The reader is woken unless it runs in `current`'s task (which polls it
    /// next anyway).
    fn push(&self, bytes: Bytes, current: Option<&Context<'_>>) {
        let mut state = self.0.borrow_mut();
        state.len += bytes.len();
        state.chunks.push_back(bytes);
        state.wake(current);
    }

    /// The client's side has ended.
    fn finish(&self, err: Option<io::Error>, current: Option<&Context<'_>>) {
        let mut state = self.0.borrow_mut();
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

impl Stream for Inbox {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.0.borrow_mut();
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

    use super::*;

    /// Serves one connection whose first poll starts with `spent` units of the task's budget
    /// already used, the client's first bytes waiting; then checks that what the client sends
    /// next is read too.
    async fn budget_round(spent: usize) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let addr = listener.local_addr().unwrap_or_else(|err| panic!("{err}"));
        let mut client = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let (server, _) = listener
            .accept()
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        client
            .write_all(b"x")
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        server
            .readable()
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        let inbox = Inbox::default();
        let mut owned = Owned {
            io: server,
            // Writes back what the client sent.
            body: BoxBody::new(actix_web::body::BodyStream::new(inbox.clone())),
            inbox,
            ending: None,
            ending_waker: None,
            out: SmallVec::new(),
            queued: 0,
            body_done: false,
            reading: true,
            read_armed: false,
            paused: false,
            closing: None,
        };
        // Ready items, each of which takes one unit of budget to receive.
        let (tx, mut spend) = tokio::sync::mpsc::unbounded_channel();
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
        for sent in [b"x", b"y"] {
            if sent == b"y" {
                client
                    .write_all(sent)
                    .await
                    .unwrap_or_else(|err| panic!("{err}"));
            }
            let mut echoed = [0];
            tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed))
                .await
                .unwrap_or_else(|_| panic!("{spent} units spent: {sent:?} was never read"))
                .unwrap_or_else(|err| panic!("{err}"));
            assert_eq!(&echoed, sent);
        }
        task.abort();
    }

    /// A read that the task's budget stops between clearing the socket's readiness and
    /// registering for the next registers nothing: it must not be taken for registered (see
    /// [`Owned::read`]), or the client's next bytes are never read. Where the budget runs out
    /// depends on its size, so every amount spent up to more than a whole budget is tried.
    #[test]
    fn a_read_stopped_by_the_task_budget_is_not_taken_as_registered() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("{err}"));
        tokio::task::LocalSet::new().block_on(&runtime, async {
            for spent in 0..=160 {
                budget_round(spent).await;
            }
        });
    }
}
