//! WebSocket: a direct session, or the upgrade of a polling one (`2probe` / `3probe` / `5`).
//! One local task per connection reads frames from the client and writes the session's queue.

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason as WsClose};

use crate::engineio::error::{CloseReason, RequestError};
use crate::engineio::packet::{Frame, Packet};
use crate::engineio::server::{Engine, EngineHandler, Entry};
use crate::engineio::session::TransportKind;

/// How many queued frames the writer takes in one go before looking at the reader again.
const WRITE_BATCH: usize = 64;

/// How long a closing connection may take to flush what was queued and its close frame.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// Accepts a WebSocket: a new session when `entry` is `None`, else an upgrade of `entry`.
pub(crate) fn open<H: EngineHandler>(
    engine: &Engine<H>,
    req: &HttpRequest,
    body: web::Payload,
    entry: Option<Entry<H::State>>,
) -> Result<HttpResponse, RequestError> {
    let (response, ws, stream) =
        actix_ws::handle(req, body).map_err(|_| RequestError::BadRequest)?;
    let max = engine.config().max_payload;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let engine = engine.clone();
    match entry {
        None => {
            let (entry, open) = engine.create_session(req, TransportKind::WebSocket);
            actix_web::rt::spawn(async move {
                let mut ws = ws;
                if ws.text(open).await.is_err() {
                    entry.session.close(CloseReason::TransportError);
                    return;
                }
                run(engine, entry, ws, stream).await;
            });
        }
        Some(entry) => {
            actix_web::rt::spawn(async move {
                upgrade(engine, entry, ws, stream).await;
            });
        }
    }
    Ok(response)
}

/// Accepts the WebSocket handshake of a second WebSocket on an upgraded session, then closes it.
pub(crate) fn refuse(req: &HttpRequest, body: web::Payload) -> Result<HttpResponse, RequestError> {
    let (response, ws, _stream) =
        actix_ws::handle(req, body).map_err(|_| RequestError::BadRequest)?;
    actix_web::rt::spawn(async move {
        let _ = ws
            .close(Some(WsClose {
                code: CloseCode::Policy,
                description: Some("session already upgraded".to_owned()),
            }))
            .await;
    });
    Ok(response)
}

/// The upgrade handshake on a polling session; on success, hands over to [`run`].
async fn upgrade<H: EngineHandler>(
    engine: Engine<H>,
    entry: Entry<H::State>,
    mut ws: actix_ws::Session,
    mut stream: AggregatedMessageStream,
) {
    let session = entry.session.clone();
    let deadline = tokio::time::sleep(engine.config().upgrade_timeout);
    tokio::pin!(deadline);
    let mut probed = false;
    let upgraded = loop {
        let message = tokio::select! {
            message = stream.recv() => message,
            () = &mut deadline => break false,
            () = session.closed() => break false,
        };
        let Some(Ok(message)) = message else {
            break false;
        };
        match message {
            AggregatedMessage::Text(text) if &*text == "2probe" && !probed => {
                if !session.start_upgrade() || ws.text("3probe").await.is_err() {
                    break false;
                }
                probed = true;
            }
            AggregatedMessage::Text(text) if &*text == "5" && probed => break true,
            AggregatedMessage::Ping(bytes) => {
                let _ = ws.pong(&bytes).await;
            }
            _ => break false,
        }
    };
    if !upgraded {
        tracing::debug!(sid = %session.sid(), "upgrade abandoned");
        let _ = ws.close(None).await;
        return;
    }
    session.set_websocket();
    tracing::debug!(sid = %session.sid(), "upgraded to websocket");
    run(engine, entry, ws, stream).await;
}

/// Writes queued frames and reads client frames until either side ends the session.
async fn run<H: EngineHandler>(
    engine: Engine<H>,
    entry: Entry<H::State>,
    mut ws: actix_ws::Session,
    mut stream: AggregatedMessageStream,
) {
    let session = entry.session.clone();
    let mut rx = session.rx.lock().await;
    let closed = session.closed();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            message = stream.recv() => {
                let Some(message) = message else {
                    session.close(CloseReason::TransportClose);
                    break;
                };
                match message {
                    Ok(AggregatedMessage::Text(text)) => match Packet::decode_text(text, false) {
                        Ok(packet) => engine.on_packet(&entry, packet),
                        Err(err) => session.close(CloseReason::ParseError(err.to_string())),
                    },
                    Ok(AggregatedMessage::Binary(bytes)) => engine.on_packet(&entry, Packet::Binary(bytes)),
                    Ok(AggregatedMessage::Ping(bytes)) => {
                        let _ = ws.pong(&bytes).await;
                    }
                    Ok(AggregatedMessage::Pong(_)) => {}
                    Ok(AggregatedMessage::Close(_)) => session.close(CloseReason::TransportClose),
                    Err(actix_ws::ProtocolError::Overflow) => session.close(CloseReason::PayloadTooLarge),
                    Err(actix_ws::ProtocolError::Io(err)) if err.kind() == std::io::ErrorKind::InvalidData => {
                        session.close(CloseReason::ParseError("invalid UTF-8 in a text frame".to_owned()));
                    }
                    Err(err) => {
                        tracing::debug!(sid = %session.sid(), %err, "websocket error");
                        session.close(CloseReason::TransportError);
                    }
                }
            }
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                // A client that stops reading blocks the write; the session's close (queue
                // full, ping timeout) must still end this task.
                let written = tokio::select! {
                    written = write_batch(&mut ws, frame, &mut rx) => written,
                    () = &mut closed => break,
                };
                if written.is_err() {
                    session.close(CloseReason::TransportError);
                    break;
                }
            }
            () = &mut closed => break,
        }
        if session.is_closed() {
            break;
        }
    }
    // Deliver what was queued before the close, then say why we close; bounded in time, as
    // the client may not be reading at all.
    let reason = session
        .close_reason()
        .cloned()
        .unwrap_or(CloseReason::TransportClose);
    let writable = !matches!(
        reason,
        CloseReason::TransportClose | CloseReason::TransportError | CloseReason::QueueFull
    );
    let code = match &reason {
        CloseReason::PayloadTooLarge => CloseCode::Size,
        CloseReason::ParseError(reason) if reason.contains("UTF-8") => CloseCode::Invalid,
        CloseReason::ParseError(_) | CloseReason::ProtocolViolation(_) => CloseCode::Protocol,
        CloseReason::QueueFull => CloseCode::Policy,
        CloseReason::ServerShutdown => CloseCode::Away,
        _ => CloseCode::Normal,
    };
    let farewell = async move {
        if writable {
            while let Ok(frame) = rx.try_recv() {
                if write(&mut ws, frame).await.is_err() {
                    return;
                }
            }
        }
        let _ = ws
            .close(Some(WsClose {
                code,
                description: Some(reason.to_string()),
            }))
            .await;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, farewell).await;
}

/// Writes `first` and then whatever else is queued, up to [`WRITE_BATCH`] frames.
async fn write_batch(
    ws: &mut actix_ws::Session,
    first: Frame,
    rx: &mut tokio::sync::mpsc::Receiver<Frame>,
) -> Result<(), actix_ws::Closed> {
    write(ws, first).await?;
    for _ in 1..WRITE_BATCH {
        let Ok(frame) = rx.try_recv() else { break };
        write(ws, frame).await?;
    }
    Ok(())
}

async fn write(ws: &mut actix_ws::Session, frame: Frame) -> Result<(), actix_ws::Closed> {
    match frame {
        Frame::Text(text) => ws.text(text).await,
        Frame::Binary(bytes) => ws.binary(bytes).await,
    }
}
