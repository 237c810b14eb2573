//! HTTP long-polling: a GET waits for queued frames, a POST carries packets from the client.

use actix_web::{HttpRequest, HttpResponse};

use crate::engineio::error::{CloseReason, RequestError};
use crate::engineio::packet::{Frame, Packet};
use crate::engineio::payload::{decode_payload, encode_payload};
use crate::engineio::server::{Engine, EngineHandler, Entry};
use crate::engineio::session::Session;
use crate::request::{BodyError, read_body};

pub(crate) fn text_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=UTF-8")
        .body(body)
}

/// Answers a GET: waits for at least one frame (or the session's end, or an upgrade), then
/// returns everything queued, up to about `max_payload` bytes.
pub(crate) async fn poll<H: EngineHandler>(
    engine: &Engine<H>,
    entry: Entry<H::State>,
) -> Result<HttpResponse, RequestError> {
    let session = &entry.session;
    let Some(mut rx) = session.try_reader() else {
        session.close(CloseReason::ProtocolViolation("overlapping polls"));
        return Err(RequestError::BadRequest);
    };
    let mut frames = Vec::new();
    if !session.is_upgrading() && !session.is_closed() {
        tokio::select! {
            biased;
            frame = rx.recv() => frames.push(frame),
            () = session.closed() => {}
            () = session.upgrade_started() => {}
        }
    }
    let limit = engine.config().max_payload;
    let mut size: usize = frames.iter().map(Frame::len).sum();
    while size < limit {
        let Some(frame) = rx.try_recv() else { break };
        size += frame.len();
        frames.push(frame);
    }
    if frames.is_empty() {
        if session.close_reason() == Some(&CloseReason::TransportClose) {
            // The client closed the session itself (a close packet): its pending poll ends
            // with a noop, as the reference server answers; the next one is refused.
            frames.push(Packet::Noop.encode());
        } else if session.is_closed() {
            // The close goes alone, after everything queued was delivered: clients drop
            // messages that share a payload with the close (socket.io-client hands them over
            // on the next tick, when the socket is already disconnected), and the official
            // server, too, flushes its buffer before it sends the close.
            frames.push(Packet::Close.encode());
            session.mark_close_delivered();
        } else {
            frames.push(Packet::Noop.encode());
        }
    }
    tracing::trace!(sid = %session.sid(), frames = frames.len(), closed = session.is_closed(), "poll answered");
    Ok(text_response(encode_payload(&frames)))
}

/// Answers a POST: reads the body (at most `max_payload` bytes), decodes it and hands every
/// packet to the engine, in order.
pub(crate) async fn receive<H: EngineHandler>(
    engine: &Engine<H>,
    entry: Entry<H::State>,
    req: &HttpRequest,
    body: actix_web::web::Payload,
) -> Result<HttpResponse, RequestError> {
    let session = &entry.session;
    if !session.start_posting() {
        session.close(CloseReason::ProtocolViolation("overlapping data requests"));
        return Err(RequestError::BadRequest);
    }
    struct Posting<'a>(&'a Session);
    impl Drop for Posting<'_> {
        fn drop(&mut self) {
            self.0.end_posting();
        }
    }
    let _posting = Posting(session);

    let buf = match read_body(req, body, engine.config().max_payload).await {
        Ok(buf) => buf,
        Err(BodyError::TooLarge) => return Ok(HttpResponse::PayloadTooLarge().finish()),
        Err(BodyError::Failed) => {
            session.close(CloseReason::TransportError);
            return Err(RequestError::BadRequest);
        }
    };
    let packets = match decode_payload(buf) {
        Ok(packets) => packets,
        Err(err) => {
            tracing::debug!(sid = %session.sid(), %err, "bad polling payload");
            session.close(CloseReason::ParseError(err.to_string()));
            return Err(RequestError::BadRequest);
        }
    };
    for packet in packets {
        engine.on_packet(&entry, packet);
    }
    Ok(HttpResponse::Ok().content_type("text/html").body("ok"))
}
