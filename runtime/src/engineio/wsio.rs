//! The WebSocket plumbing that Engine.IO and Phoenix connections share: whole messages read
//! out of the client's frames (continuations put together, pings answered, a size bound), and
//! the close frame that says why a connection ends.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::ws::{self, CloseCode, Codec, Item, Message, ProtocolError};
use actix_web::web;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream as _;
use tokio_util::codec::Decoder as _;

use super::error::CloseReason;
use super::outbox::Taken;
use super::packet::{Frame, encode_websocket};

/// One whole message from the client.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A text message (valid UTF-8).
    Text(ByteString),
    /// A binary message.
    Binary(Bytes),
    /// A pong (the answer to a ping of the server's).
    Pong,
}

/// Reads whole messages from a WebSocket's request payload.
#[derive(Debug)]
pub(crate) struct MessageReader {
    codec: Codec,
    /// Bytes from the client not yet decoded.
    input: BytesMut,
    /// A message arriving in continuation frames: whether it is text, and its bytes so far.
    /// Boxed: rare, and the connection lives long.
    partial: Option<Box<(bool, BytesMut)>>,
    max: usize,
}

impl MessageReader {
    /// A reader of messages of at most `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        MessageReader {
            codec: Codec::new().max_size(max),
            input: BytesMut::new(),
            partial: None,
            max,
        }
    }

    /// The next whole message. Pongs to the client's pings go into `output`. `Err` when the
    /// connection ends: the client closed it (a close frame, the end of the stream), the
    /// transport failed, or the client broke the protocol.
    pub(crate) fn poll_next(
        &mut self,
        payload: &mut web::Payload,
        cx: &mut Context<'_>,
        output: &mut Output,
    ) -> Poll<Result<Incoming, CloseReason>> {
        loop {
            match self.decode(output) {
                Ok(Some(message)) => return Poll::Ready(Ok(message)),
                Ok(None) => {}
                Err(reason) => return Poll::Ready(Err(reason)),
            }
            match Pin::new(&mut *payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.input.extend_from_slice(&chunk),
                Poll::Ready(Some(Err(err))) => {
                    tracing::debug!(%err, "websocket read failed");
                    return Poll::Ready(Err(CloseReason::TransportError));
                }
                Poll::Ready(None) => return Poll::Ready(Err(CloseReason::TransportClose)),
                Poll::Pending => {
                    // Keep no read buffer while the client is quiet.
                    if self.input.is_empty() {
                        self.input = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    /// The next complete message in the bytes read so far, continuations put together.
    fn decode(&mut self, output: &mut Output) -> Result<Option<Incoming>, CloseReason> {
        loop {
            if self.input.is_empty() {
                // The usual case (a writer's poll): no call into the codec.
                return Ok(None);
            }
            let frame = match self.codec.decode(&mut self.input) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(err) => return Err(protocol_reason(err)),
            };
            let (text, bytes) = match frame {
                ws::Frame::Text(bytes) => (true, bytes),
                ws::Frame::Binary(bytes) => (false, bytes),
                ws::Frame::Ping(bytes) => {
                    encode_websocket(output.buffer(), Message::Pong(bytes));
                    continue;
                }
                ws::Frame::Pong(_) => return Ok(Some(Incoming::Pong)),
                ws::Frame::Close(_) => return Err(CloseReason::TransportClose),
                ws::Frame::Continuation(item) => match (item, self.partial.as_deref_mut()) {
                    (Item::FirstText(bytes), None) => {
                        self.partial = Some(Box::new((true, BytesMut::from(&bytes[..]))));
                        continue;
                    }
                    (Item::FirstBinary(bytes), None) => {
                        self.partial = Some(Box::new((false, BytesMut::from(&bytes[..]))));
                        continue;
                    }
                    (Item::Continue(bytes), Some((_, so_far))) => {
                        if so_far.len() + bytes.len() > self.max {
                            return Err(CloseReason::PayloadTooLarge);
                        }
                        so_far.extend_from_slice(&bytes);
                        continue;
                    }
                    (Item::Last(bytes), Some((_, so_far))) => {
                        if so_far.len() + bytes.len() > self.max {
                            return Err(CloseReason::PayloadTooLarge);
                        }
                        so_far.extend_from_slice(&bytes);
                        let Some((text, so_far)) = self.partial.take().map(|p| *p) else {
                            continue;
                        };
                        (text, so_far.freeze())
                    }
                    _ => {
                        return Err(CloseReason::ProtocolViolation(
                            "continuation frame out of order",
                        ));
                    }
                },
            };
            return if text {
                ByteString::try_from(bytes)
                    .map(|text| Some(Incoming::Text(text)))
                    .map_err(|_| CloseReason::InvalidUtf8)
            } else {
                Ok(Some(Incoming::Binary(bytes)))
            };
        }
    }
}

/// The close reason for a frame the codec refused.
fn protocol_reason(err: ProtocolError) -> CloseReason {
    match err {
        ProtocolError::Overflow => CloseReason::PayloadTooLarge,
        ProtocolError::Io(_) => CloseReason::TransportError,
        other => CloseReason::ParseError(other.to_string()),
    }
}

/// The WebSocket close code that goes with `reason`, as an Engine.IO server sends it.
pub(crate) fn close_code(reason: &CloseReason) -> CloseCode {
    match reason {
        CloseReason::PayloadTooLarge => CloseCode::Size,
        CloseReason::InvalidUtf8 => CloseCode::Invalid,
        CloseReason::ParseError(_) | CloseReason::ProtocolViolation(_) => CloseCode::Protocol,
        CloseReason::QueueFull | CloseReason::Refused(_) => CloseCode::Policy,
        CloseReason::UnsupportedData(_) => CloseCode::Unsupported,
        CloseReason::ServerShutdown => CloseCode::Away,
        _ => CloseCode::Normal,
    }
}

/// The most bytes of text a close frame carries (a control frame's payload is at most 125
/// bytes, two of them the code).
const CLOSE_TEXT: usize = 123;

/// Appends the close frame for `reason` with `code` (none when the transport failed: nobody
/// would read it). A long reason is cut to what a close frame can carry, on a character
/// boundary.
fn write_close(out: &mut BytesMut, reason: &CloseReason, code: CloseCode) {
    if !matches!(reason, CloseReason::TransportError) {
        let mut text = reason.to_string();
        if text.len() > CLOSE_TEXT {
            let mut end = CLOSE_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        encode_websocket(
            out,
            Message::Close(Some(ws::CloseReason {
                code,
                description: Some(text),
            })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A broadcast frame alone in the queue is handed over as it is; frames queued together
    /// leave in one chunk, in order, whatever their kind.
    #[tokio::test]
    async fn queued_frames_leave_together_in_order_and_a_lone_one_as_it_is() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let session = super::super::Session::detached(16);
                let mut reader = session
                    .try_reader()
                    .unwrap_or_else(|| panic!("the queue's reader"));
                let waker = futures_util::task::noop_waker();
                let mut cx = Context::from_waker(&waker);
                let mut output = Output::default();
                let encoding = std::any::TypeId::of::<Output>();
                let broadcast = |text: &str| {
                    let placed = super::super::Placed::new(
                        encoding,
                        "tests/output",
                        Frame::message(text).shared(),
                    );
                    assert!(session.send_placed(&placed).is_ok());
                    match placed {
                        super::super::Placed::Broadcast(broadcast) => broadcast,
                        super::super::Placed::Frame(_) => panic!("a text frame is placed"),
                    }
                };

                let lone = broadcast("one");
                output.drain(&mut reader, &mut cx);
                let chunk = output.next_chunk().unwrap_or_else(|| panic!("a chunk"));
                assert_eq!(
                    chunk.as_ptr(),
                    lone.frame().websocket().as_ptr(),
                    "not copied"
                );
                assert!(output.next_chunk().is_none());

                let (two, three) = (broadcast("two"), broadcast("three"));
                assert!(session.send(Frame::message("four")).is_ok());
                let five = broadcast("five");
                output.drain(&mut reader, &mut cx);
                let mut expected = BytesMut::new();
                for shared in [two.frame(), three.frame()] {
                    expected.extend_from_slice(shared.websocket());
                }
                write_frame(&mut expected, Frame::message("four"));
                expected.extend_from_slice(five.frame().websocket());
                assert_eq!(output.next_chunk(), Some(expected.freeze()));
                assert!(output.is_empty());

                // A lone frame not yet handed over goes first when more follow.
                let six = broadcast("six");
                output.drain(&mut reader, &mut cx);
                let seven = broadcast("seven");
                output.drain(&mut reader, &mut cx);
                let mut expected = BytesMut::new();
                for shared in [six.frame(), seven.frame()] {
                    expected.extend_from_slice(shared.websocket());
                }
                assert_eq!(output.next_chunk(), Some(expected.freeze()));
            })
            .await;
    }

    #[test]
    fn a_long_close_reason_is_cut_to_fit_a_control_frame() {
        let mut out = BytesMut::new();
        let reason = CloseReason::ParseError("é".repeat(100));
        write_close(&mut out, &reason, CloseCode::Protocol);
        // FIN + close opcode, then a one-byte length: the payload fits a control frame.
        assert_eq!(out[0], 0x88);
        let len = usize::from(out[1]);
        assert!(len <= 125, "close payload of {len} bytes");
        assert_eq!(out.len(), 2 + len);
        assert!(
            std::str::from_utf8(&out[4..]).is_ok(),
            "cut on a character boundary"
        );
    }
}

/// Appends one queued frame.
fn write_frame(out: &mut BytesMut, frame: Frame) {
    match frame {
        Frame::Text(text) => encode_websocket(out, Message::Text(text)),
        Frame::Binary(bytes) => encode_websocket(out, Message::Binary(bytes)),
        Frame::Shared(shared) => out.extend_from_slice(shared.websocket()),
    }
}

/// Readies `out` for a frame of about `each` bytes with `queued` frames to come, itself
/// included: room for the batch at once (not a growth step per frame), the frame kept whole
/// so far put first.
#[inline]
fn make_room(out: &mut BytesMut, ready: &mut Option<Bytes>, each: usize, queued: usize) {
    if out.is_empty() {
        let each = ready.as_ref().map_or(0, Bytes::len).max(each);
        out.reserve((each * (queued + 1)).min(WRITE_CHUNK));
    }
    if let Some(first) = ready.take() {
        out.extend_from_slice(&first);
    }
}

/// How many queued frames one poll encodes before handing them to the dispatcher.
const WRITE_BATCH: usize = 64;

/// Stop adding frames to one chunk once it is this big (the dispatcher buffers 32 KiB).
const WRITE_CHUNK: usize = 16 * 1024;

/// What a connection has for actix-http's dispatcher to write: encoded frames, or a
/// broadcast's shared frame handed over as it is when it is all there is to write.
#[derive(Debug, Default)]
pub(crate) struct Output {
    out: BytesMut,
    ready: Option<Bytes>,
}

impl Output {
    /// The buffer to encode frames into directly (a shared frame waiting is put first).
    pub(crate) fn buffer(&mut self) -> &mut BytesMut {
        if let Some(first) = self.ready.take() {
            self.out.extend_from_slice(&first);
        }
        &mut self.out
    }

    /// Takes queued frames out of `queue`, up to a batch; asks to be polled again when more
    /// are waiting.
    pub(crate) fn drain(&mut self, queue: &mut super::session::Reader, cx: &mut Context<'_>) {
        super::pacer::start_here();
        let (out, ready) = (&mut self.out, &mut self.ready);
        let mut taken = 0;
        let drained = queue.poll_drain(cx, |next, queued| {
            // The only frame to write: kept whole, to be handed over as it is.
            let alone = queued == 1 && out.is_empty() && ready.is_none();
            match next {
                Taken::Lent(shared) if alone => *ready = Some(shared.websocket().clone()),
                // Copied out of the chunk: no count taken on the frame.
                Taken::Lent(shared) => {
                    let bytes = shared.websocket();
                    make_room(out, ready, bytes.len(), queued);
                    out.extend_from_slice(bytes);
                }
                Taken::Frame(Frame::Shared(shared)) if alone => {
                    *ready = Some(shared.websocket().clone());
                }
                Taken::Frame(frame) => {
                    make_room(out, ready, frame.len() + 14, queued);
                    write_frame(out, frame);
                }
            }
            taken += 1;
            taken < WRITE_BATCH && out.len() < WRITE_CHUNK
        });
        if drained == Poll::Ready(true) {
            // More is queued: come back once this chunk is taken.
            cx.waker().wake_by_ref();
        }
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.out.is_empty() && self.ready.is_none()
    }

    /// What is ready for the dispatcher, if anything.
    pub(crate) fn next_chunk(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            self.ready.take()
        } else {
            Some(self.out.split().freeze())
        }
    }

    /// The last bytes of a connection whose session has closed: what its queue still holds,
    /// unless the reason says the client will not read it, then the close frame, with the code
    /// `code` gives the reason.
    pub(crate) fn close(
        &mut self,
        session: &super::Session,
        queue: Option<&mut super::session::Reader>,
        code: impl FnOnce(&CloseReason) -> CloseCode,
    ) {
        let reason = session
            .close_reason()
            .cloned()
            .unwrap_or(CloseReason::TransportClose);
        let out = self.buffer();
        if let Some(queue) = queue
            && reason.delivers_queued()
        {
            while let Some(frame) = queue.try_recv() {
                write_frame(out, frame);
            }
        }
        write_close(out, &reason, code(&reason));
    }

    /// Lets go of the write buffer while there is nothing to write.
    pub(crate) fn release(&mut self) {
        if self.out.is_empty() {
            self.out = BytesMut::new();
        }
    }
}
