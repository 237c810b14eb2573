//! Gateways: each binds one wire protocol to the channel layer, turning its frames into
//! join / leave / event / disconnect calls on the [`crate::channels::Hub`] and encoding the
//! hub's outgoing events once for all its connections.

mod joins;
pub(crate) mod phoenix;
pub(crate) mod plain;
pub(crate) mod socketio;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::channels::{ConnectRefusal, Handshake, Identity};

/// The application's connect hook: from a connection's handshake to its identity, or a
/// refusal. Every gateway runs it for its connections.
pub(crate) type ConnectHook = Arc<
    dyn Fn(Handshake) -> Pin<Box<dyn Future<Output = Result<Identity, ConnectRefusal>> + Send>>
        + Send
        + Sync,
>;

/// A payload as one JSON value, for protocols whose events carry one: a lone value as it is,
/// several as an array, bytes as base64 text (a lone binary value as `{"binary": "<base64>"}`);
/// `None` when there is nothing.
pub(crate) fn json_payload(
    payload: &crate::payload::Payload,
) -> Option<Box<serde_json::value::RawValue>> {
    use base64::Engine as _;
    let base64 = |bytes: &bytes::Bytes| base64::engine::general_purpose::STANDARD.encode(bytes);
    if let Some(bytes) = payload.as_binary() {
        return Some(crate::payload::binary_as_json(bytes));
    }
    let render = |bytes: &bytes::Bytes| serde_json::Value::String(base64(bytes));
    match payload.len() {
        0 => None,
        1 if payload.attachments().is_empty() => payload.arg(0).map(ToOwned::to_owned),
        1 => payload
            .to_json_with(0, render)
            .and_then(|value| serde_json::value::to_raw_value(&value).ok()),
        len => {
            let values: Vec<serde_json::Value> = (0..len)
                .filter_map(|index| payload.to_json_with(index, render))
                .collect();
            serde_json::value::to_raw_value(&values).ok()
        }
    }
}

/// How the end of a connection without Engine.IO (Phoenix, plain WebSocket) reads in the
/// channel layer.
pub(crate) fn disconnect(reason: &crate::engineio::CloseReason) -> crate::channels::Disconnect {
    use crate::channels::Disconnect;
    use crate::engineio::CloseReason;
    match reason {
        CloseReason::TransportClose => Disconnect::ClientLeft,
        CloseReason::PingTimeout => Disconnect::Timeout,
        CloseReason::ParseError(_)
        | CloseReason::InvalidUtf8
        | CloseReason::ProtocolViolation(_)
        | CloseReason::UnsupportedData(_)
        | CloseReason::PayloadTooLarge => Disconnect::InvalidInput,
        CloseReason::QueueFull => Disconnect::SlowConsumer,
        CloseReason::ForcedClose | CloseReason::Refused(_) => Disconnect::ServerClosed,
        CloseReason::ServerShutdown => Disconnect::ServerShutdown,
        _ => Disconnect::TransportError,
    }
}

/// Runs the connect hook (if any) on a new connection's handshake: its member id (the
/// connection's id) and identity, or the hook's refusal.
pub(crate) async fn identify(
    hook: Option<ConnectHook>,
    handshake: &Handshake,
    id: crate::engineio::Sid,
) -> Result<(crate::channels::MemberId, Option<Identity>), ConnectRefusal> {
    let identity = match hook {
        Some(hook) => Some(hook(handshake.clone()).await?),
        None => None,
    };
    let member = id.as_str().parse().map_err(|_| {
        // Both are 20 URL-safe characters from the same source; this cannot happen.
        tracing::error!(%id, "connection id is not a member id");
        ConnectRefusal::new("server error")
    })?;
    Ok((member, identity))
}
