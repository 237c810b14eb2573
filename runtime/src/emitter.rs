//! [`SocketEmitter`]: the handle request handlers and background tasks use to push events
//! into channels.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, dev::Payload as HttpPayload, web};
use serde::Serialize;

use crate::channels::{ChannelName, EmitError, Hub, MemberId, PresenceError, Presences};
use crate::payload::Payload;

/// Pushes events to the members of channels. Take it as a handler argument, or clone it into
/// a background task; it never blocks on a slow client.
///
/// ```no_run
/// use actix_web::{post, web, HttpResponse};
/// use tidings_runtime::SocketEmitter;
///
/// #[post("/chat")]
/// async fn store(emitter: SocketEmitter, body: web::Json<String>) -> actix_web::Result<HttpResponse> {
///     emitter.emit("message", "chats/1", &body.into_inner())?; // clients get "chats/1/message"
///     Ok(HttpResponse::NoContent().finish())
/// }
/// ```
#[derive(Clone, Debug)]
pub struct SocketEmitter {
    hub: Arc<Hub>,
}

impl SocketEmitter {
    pub(crate) fn new(hub: Arc<Hub>) -> Self {
        SocketEmitter { hub }
    }

    /// Emits `event` to every member of `channel`: they receive `<channel>/<event>` with
    /// `payload` (any `Serialize`; [`crate::Binary`] values inside go as binary attachments).
    /// Returns how many connections on this node it was queued for (with recovery on and
    /// Redis, where Redis orders every event before any node delivers it: how many this node
    /// has in the channel).
    ///
    /// `channel` is a name (`"chats/1"`) or a value of a `#[channel]` type with typed
    /// parameters (`ChatChannel { id: 1 }`), which names its channel.
    ///
    /// # Errors
    /// [`EmitError::UnknownChannel`] when no `#[channel]` pattern matches `channel`,
    /// [`EmitError::InvalidEvent`] for an empty event name or one with `/`,
    /// [`EmitError::Payload`] when `payload` does not serialize.
    pub fn emit<T: Serialize + ?Sized>(
        &self,
        event: &str,
        channel: impl ChannelName,
        payload: &T,
    ) -> Result<usize, EmitError> {
        // Not through `to()`: a borrowed name is used as it is, not copied.
        let payload = Payload::from_serialize(payload)?;
        self.hub
            .broadcast(&channel.channel_name(), event, payload, None)
    }

    /// Targets `channel`, for options such as [`EmitTo::except`].
    pub fn to(&self, channel: impl ChannelName) -> EmitTo<'_> {
        EmitTo {
            emitter: self,
            channel: channel.channel_name().into_owned(),
            except: Except::Nobody,
        }
    }

    /// Who is in `channel` (a presence channel: see
    /// [`Authorizer::PRESENCE`](crate::channels::Authorizer::PRESENCE)), on every node: for
    /// a handler answering "who is online".
    ///
    /// ```no_run
    /// use actix_web::{get, HttpResponse};
    /// use tidings_runtime::SocketEmitter;
    ///
    /// #[get("/online")]
    /// async fn online(emitter: SocketEmitter) -> actix_web::Result<HttpResponse> {
    ///     let presences = emitter
    ///         .presence("room:lobby")
    ///         .await
    ///         .map_err(actix_web::error::ErrorServiceUnavailable)?;
    ///     Ok(HttpResponse::Ok().json(presences.keys().collect::<Vec<_>>()))
    /// }
    /// ```
    ///
    /// # Errors
    /// [`PresenceError::Unavailable`] when the channel has no member on this node and the
    /// other nodes' presence cannot be read (Redis down).
    pub async fn presence(&self, channel: impl ChannelName) -> Result<Presences, PresenceError> {
        self.hub.presence_everywhere(&channel.channel_name()).await
    }

    /// The channel layer behind this emitter (counts, registry).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// An emit to one channel, with options.
#[derive(Debug)]
#[must_use = "an EmitTo does nothing until .emit() is called"]
pub struct EmitTo<'a> {
    emitter: &'a SocketEmitter,
    channel: String,
    /// The member left out: none, this one, or text that is no member id (an error at emit).
    except: Except,
}

#[derive(Debug, Clone, Copy)]
enum Except {
    Nobody,
    Member(MemberId),
    Invalid,
}

impl EmitTo<'_> {
    /// Leaves out the member with this id (the sender, usually: over Socket.IO the client's
    /// `socket.id`). Text that is not a member id makes the emit fail with
    /// [`EmitError::InvalidMemberId`] rather than leave out nobody.
    pub fn except(mut self, member: &str) -> Self {
        self.except = member.parse().map_or(Except::Invalid, Except::Member);
        self
    }

    /// Leaves out this member.
    pub fn except_member(mut self, member: MemberId) -> Self {
        self.except = Except::Member(member);
        self
    }

    /// Emits `event` with `payload`; see [`SocketEmitter::emit`].
    ///
    /// # Errors
    /// As [`SocketEmitter::emit`], and [`EmitError::InvalidMemberId`] when
    /// [`EmitTo::except`] was given text that is no member id.
    pub fn emit<T: Serialize + ?Sized>(self, event: &str, payload: &T) -> Result<usize, EmitError> {
        let except = match self.except {
            Except::Nobody => None,
            Except::Member(member) => Some(member),
            Except::Invalid => return Err(EmitError::InvalidMemberId),
        };
        let payload = Payload::from_serialize(payload)?;
        self.emitter
            .hub
            .broadcast(&self.channel, event, payload, except)
    }
}

/// The reason an emitter could not be extracted: `Tidings::configure` was not mounted.
#[derive(Debug, thiserror::Error)]
#[error("no SocketEmitter in this app: mount tidings with App::configure(tidings.configure())")]
pub struct MissingEmitter;

impl actix_web::ResponseError for MissingEmitter {}

impl FromRequest for SocketEmitter {
    type Error = MissingEmitter;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut HttpPayload) -> Self::Future {
        ready(
            req.app_data::<web::Data<SocketEmitter>>()
                .map(|data| data.get_ref().clone())
                .ok_or(MissingEmitter),
        )
    }
}
