//! [`Tidings`]: collects the channels, sets up Socket.IO, and mounts everything on an actix
//! app in one call.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;

use actix_web::web;

use crate::channels::{
    AppData, ChannelConfigError, ChannelLimits, ChannelRegistration, ConnectRefusal, Fanout,
    Handshake, HistoryLimits, Hub, Identity, Registry,
};
use crate::emitter::SocketEmitter;
use crate::engineio::CloseReason;
use crate::gateway::phoenix::PhoenixGateway;
use crate::gateway::plain::PlainGateway;
use crate::gateway::{self, ConnectHook};
use crate::phoenix::{PhoenixConfig, PhoenixServer};
use crate::plainws::{PlainConfig, PlainServer};
use crate::socketio::{SocketIo, SocketIoBuilder};
type Mount = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// A configuration mistake found by [`TidingsBuilder::build`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Two channels conflict, or a pattern is invalid.
    #[error(transparent)]
    Channels(#[from] ChannelConfigError),
}

impl From<BuildError> for std::io::Error {
    fn from(err: BuildError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, err)
    }
}

/// Connection state recovery (socket.io's `connectionStateRecovery`): a client whose
/// connection drops for a moment comes back with the same socket id, in the same channels
/// (without `pass` again), and gets every channel event it missed, in order, once each. See
/// [`TidingsBuilder::recovery`].
///
/// ```
/// use std::time::Duration;
/// use tidings_runtime::Recovery;
/// let recovery = Recovery::default()
///     .max_disconnection_duration(Duration::from_secs(60))
///     .max_events_per_channel(500)
///     .skip_connect_hook(false);
/// assert_eq!(recovery.history().max_age, Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    history: HistoryLimits,
    rerun_connect_hook: bool,
}

impl Recovery {
    /// How long a client may stay away and still come back (default 2 minutes); channel
    /// events are kept as long.
    pub fn max_disconnection_duration(mut self, duration: std::time::Duration) -> Self {
        self.history = self.history.max_age(duration);
        self
    }

    /// How many events each channel keeps (default 1000): a client that missed more is not
    /// recovered.
    pub fn max_events_per_channel(mut self, events: usize) -> Self {
        self.history = self.history.max_events(events);
        self
    }

    /// Whether a client that comes back skips the connect hook (default true, as socket.io's
    /// `skipMiddlewares`): it keeps the identity the hook gave it. With false, the hook runs
    /// again and may refuse it.
    pub fn skip_connect_hook(mut self, skip: bool) -> Self {
        self.rerun_connect_hook = !skip;
        self
    }

    /// The history limits in force.
    pub fn history(&self) -> &HistoryLimits {
        &self.history
    }
}

/// Builds [`Tidings`]; see [`Tidings::builder`].
pub struct TidingsBuilder {
    io: SocketIoBuilder,
    phoenix: PhoenixConfig,
    plain: Option<PlainConfig>,
    namespace: String,
    connect: Option<ConnectHook>,
    data: AppData,
    mounts: Vec<Mount>,
    limits: ChannelLimits,
    registrations: Option<Vec<&'static ChannelRegistration>>,
    fanout: Option<Arc<dyn Fanout>>,
    recovery: Option<Recovery>,
}

impl std::fmt::Debug for TidingsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TidingsBuilder")
            .field("namespace", &self.namespace)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl TidingsBuilder {
    /// Adjusts the Socket.IO server (ping interval and timeout, max payload, path ...).
    pub fn socketio(mut self, configure: impl FnOnce(SocketIoBuilder) -> SocketIoBuilder) -> Self {
        self.io = configure(self.io);
        self
    }

    /// Adjusts the Phoenix Channels endpoint (mount path, transports, timeouts, limits). By
    /// default phoenix.js reaches the channels at `/socket` over WebSocket and LongPoll; turn
    /// both off to serve Socket.IO only.
    ///
    /// ```no_run
    /// use tidings_runtime::Tidings;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let tidings = Tidings::builder()
    ///     .phoenix(|phoenix| phoenix.path = "/live".to_owned()) // new Socket("/live")
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn phoenix(mut self, configure: impl FnOnce(&mut PhoenixConfig)) -> Self {
        configure(&mut self.phoenix);
        self
    }

    /// Adjusts the plain WebSocket endpoint (mount path, pings, limits). By default clients
    /// with no library reach the channels at `/ws` and `/ws/<channel>`.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tidings_runtime::Tidings;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let tidings = Tidings::builder()
    ///     .plain_websocket(|ws| ws.ping_interval = Duration::from_secs(10))
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn plain_websocket(mut self, configure: impl FnOnce(&mut PlainConfig)) -> Self {
        if let Some(config) = &mut self.plain {
            configure(config);
        }
        self
    }

    /// Serves no plain WebSocket endpoint.
    pub fn without_plain_websocket(mut self) -> Self {
        self.plain = None;
        self
    }

    /// Which web pages may connect, over every protocol (default: only the server's own
    /// origin; requests without an `Origin`, from clients that are not browsers, always pass),
    /// and the CORS answers of long-polling to pages of other allowed origins.
    ///
    /// ```no_run
    /// use tidings_runtime::{Tidings, origin::OriginPolicy};
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let tidings = Tidings::builder()
    ///     .origins(OriginPolicy::allow(["https://app.example.com"]).map_err(std::io::Error::other)?)
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn origins(mut self, policy: crate::origin::OriginPolicy) -> Self {
        self.phoenix.origins = policy.clone();
        if let Some(plain) = &mut self.plain {
            plain.origins = policy.clone();
        }
        self.io = self.io.origins(policy);
        self
    }

    /// The Socket.IO namespace the channels live in (default `/`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Authenticates every connection from its handshake (a token in `auth` or the query, a
    /// cookie ...). `Ok(identity)` stores the identity for `JoinContext::identity`;
    /// `Err(refusal)` reaches the client as a `connect_error` with the refusal's message.
    pub fn authenticate<F, Fut, I>(mut self, hook: F) -> Self
    where
        F: Fn(Handshake) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<I, ConnectRefusal>> + Send + 'static,
        I: Any + Send + Sync,
    {
        let hook = Arc::new(hook);
        self.connect = Some(Arc::new(move |handshake| {
            let hook = hook.clone();
            Box::pin(async move { hook(handshake).await.map(Identity::new) })
        }));
        self
    }

    /// Shares actix app data with the app (like `App::app_data`) and with every authorizer
    /// (`JoinContext::app_data::<T>()`).
    pub fn app_data<T: Any + Send + Sync>(mut self, data: web::Data<T>) -> Self {
        self.data.insert(data.clone());
        self.mounts
            .push(Arc::new(move |cfg: &mut web::ServiceConfig| {
                cfg.app_data(data.clone());
            }));
        self
    }

    /// Turns on connection state recovery over Socket.IO: the official client (4.6+) sends
    /// its private session id and the offset of the last channel event it got when it
    /// reconnects; within `recovery`'s limits it keeps its socket id and channels and gets
    /// what it missed (`socket.recovered` is true). Channel events then carry their offset as
    /// their last argument. Off by default. The history is this node's: a client that comes
    /// back to another node gets a fresh session.
    ///
    /// ```
    /// use tidings_runtime::{Recovery, Tidings};
    /// let builder = Tidings::builder().recovery(Recovery::default());
    /// ```
    pub fn recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = Some(recovery);
        self
    }

    /// Limits on subscriptions and names (defaults in [`ChannelLimits`]).
    pub fn limits(mut self, limits: ChannelLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Fans emits out to other nodes through `fanout` (the Redis adapter, for instance); by
    /// default one process needs nothing else.
    pub fn fanout(mut self, fanout: Arc<dyn Fanout>) -> Self {
        self.fanout = Some(fanout);
        self
    }

    /// Scales out through Redis: an emit on any node reaches the channel's members on every
    /// node connected to the Redis server at `url` (`redis://host:port`, with an optional
    /// `:password@` and `/db`). Needs the cargo feature `redis`.
    ///
    /// The node starts even when Redis is down and connects in the background. While Redis is
    /// unreachable, emits still reach this node's members and return
    /// [`EmitError::Fanout`](crate::channels::EmitError::Fanout); the adapter reconnects by
    /// itself. For a custom channel prefix, give a [`RedisFanout`](crate::adapter::RedisFanout) to
    /// [`TidingsBuilder::fanout`] instead.
    ///
    /// ```no_run
    /// use tidings_runtime::Tidings;
    ///
    /// # fn main() -> std::io::Result<()> {
    /// let tidings = Tidings::builder()
    ///     .redis("redis://127.0.0.1:6379")?
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`RedisFanoutError::InvalidUrl`](crate::adapter::RedisFanoutError::InvalidUrl) when
    /// `url` is not a Redis URL (it converts into `std::io::Error` for `?`).
    #[cfg(feature = "redis")]
    pub fn redis(self, url: &str) -> Result<Self, crate::adapter::RedisFanoutError> {
        let fanout = crate::adapter::RedisFanout::new(url)?;
        Ok(self.fanout(Arc::new(fanout)))
    }

    /// Uses exactly these channels instead of every `#[channel]` in the binary.
    pub fn channels(mut self, registrations: Vec<&'static ChannelRegistration>) -> Self {
        self.registrations = Some(registrations);
        self
    }

    /// Collects the channels into one router and sets up the server.
    ///
    /// # Errors
    /// [`BuildError::Channels`] when two channel patterns conflict (naming both types).
    pub fn build(self) -> Result<Tidings, BuildError> {
        let registry = match self.registrations {
            Some(registrations) => Registry::from_registrations(registrations)?,
            None => Registry::from_inventory()?,
        };
        if registry.is_empty() {
            tracing::warn!(
                "no #[channel] registered: channel types in a library crate that this binary never references are not linked in"
            );
        } else {
            tracing::info!(
                count = registry.len(),
                patterns = ?registry.patterns().map(|(_, p)| p).collect::<Vec<_>>(),
                "channels registered"
            );
        }
        let hub = Hub::with_history(
            registry,
            self.data,
            self.limits,
            self.fanout,
            self.recovery.as_ref().map(|r| r.history.clone()),
        );
        let io = self.io.build();
        let attach_hub = hub.clone();
        let ns = io.ns(self.namespace, move |socket| {
            gateway::socketio::attach(&attach_hub, &socket)
        });
        if let Some(recovery) = &self.recovery {
            let claim_hub = hub.clone();
            let confirm_hub = hub.clone();
            let rerun = recovery.rerun_connect_hook;
            ns.recovery(
                move |pid, offset| gateway::socketio::claim(&claim_hub, pid, offset, rerun),
                move |sid, offset| gateway::socketio::confirm(&confirm_hub, sid, offset),
            );
        }
        let phoenix = (self.phoenix.websocket || self.phoenix.longpoll).then(|| {
            PhoenixServer::new(
                self.phoenix,
                PhoenixGateway {
                    hub: hub.clone(),
                    connect: self.connect.clone(),
                },
            )
        });
        let plain = self.plain.map(|config| {
            PlainServer::new(
                config,
                PlainGateway {
                    hub: hub.clone(),
                    connect: self.connect.clone(),
                },
            )
        });
        if let Some(hook) = self.connect {
            ns.guard(move |socket| {
                let hook = hook.clone();
                async move {
                    let identity = hook(gateway::socketio::handshake(&socket)).await?;
                    socket.insert_extension(identity);
                    Ok(())
                }
            });
        }
        let emitter = SocketEmitter::new(hub.clone());
        Ok(Tidings {
            io,
            phoenix,
            plain,
            hub,
            emitter,
            mounts: self.mounts,
        })
    }
}

/// Real-time channels on an actix app: the registry of `#[channel]` types, the Socket.IO
/// server, and the [`SocketEmitter`]. Cheap to clone; mount with [`Tidings::configure`].
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use tidings_runtime::Tidings;
///
/// # async fn run() -> std::io::Result<()> {
/// let tidings = Tidings::builder().build()?;
/// HttpServer::new(move || App::new().configure(tidings.configure()))
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct Tidings {
    io: SocketIo,
    phoenix: Option<PhoenixServer<PhoenixGateway>>,
    plain: Option<PlainServer<PlainGateway>>,
    hub: Arc<Hub>,
    emitter: SocketEmitter,
    mounts: Vec<Mount>,
}

impl std::fmt::Debug for Tidings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tidings")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl Tidings {
    /// A builder that will collect every `#[channel]` of the binary.
    pub fn builder() -> TidingsBuilder {
        TidingsBuilder {
            io: SocketIo::builder(),
            phoenix: PhoenixConfig::default(),
            plain: Some(PlainConfig::default()),
            namespace: "/".to_owned(),
            connect: None,
            data: AppData::default(),
            mounts: Vec::new(),
            limits: ChannelLimits::default(),
            registrations: None,
            fanout: None,
            recovery: None,
        }
    }

    /// Mounts the Socket.IO, Phoenix and plain WebSocket endpoints, the [`SocketEmitter`] and the app data on an
    /// actix app.
    pub fn configure(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let io = self.io.configure();
        let phoenix = self.phoenix.as_ref().map(PhoenixServer::configure);
        let plain = self.plain.as_ref().map(PlainServer::configure);
        let emitter = web::Data::new(self.emitter.clone());
        let mounts = self.mounts.clone();
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(emitter.clone());
            for mount in &mounts {
                mount(cfg);
            }
            io(cfg);
            if let Some(phoenix) = &phoenix {
                phoenix(cfg);
            }
            if let Some(plain) = &plain {
                plain(cfg);
            }
        }
    }

    /// Closes every connection properly: WebSocket clients get what was already queued and a
    /// close frame (1001, `server shutting down`), polling clients a close packet (Phoenix
    /// LongPoll clients: what was queued, then `410`, and they reconnect).
    pub fn shutdown(&self) {
        self.io.close_all();
        if let Some(phoenix) = &self.phoenix {
            phoenix.close_all(CloseReason::ServerShutdown);
        }
        if let Some(plain) = &self.plain {
            plain.close_all(CloseReason::ServerShutdown);
        }
    }

    /// How many client connections are open, over every protocol.
    pub fn connection_count(&self) -> usize {
        self.io.connection_count()
            + self.phoenix.as_ref().map_or(0, PhoenixServer::socket_count)
            + self.plain.as_ref().map_or(0, PlainServer::socket_count)
    }

    /// Runs `server` until SIGINT or SIGTERM, then [`Tidings::shutdown`]s every connection,
    /// waits (at most `grace`) for them to go, and stops the server gracefully.
    ///
    /// Build the server with `.disable_signals()` so that this, not actix, handles the signals.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use actix_web::{App, HttpServer};
    /// use tidings_runtime::Tidings;
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let tidings = Tidings::builder().build()?;
    /// let app = tidings.clone();
    /// let server = HttpServer::new(move || App::new().configure(app.configure()))
    ///     .disable_signals()
    ///     .bind(("127.0.0.1", 8080))?
    ///     .run();
    /// tidings.run_until_stopped(server, Duration::from_secs(5)).await
    /// # }
    /// ```
    ///
    /// # Errors
    /// What the server itself fails with.
    pub async fn run_until_stopped(
        &self,
        server: actix_web::dev::Server,
        grace: std::time::Duration,
    ) -> std::io::Result<()> {
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        tokio::select! {
            result = &mut server => return result,
            () = shutdown_signal() => {}
        }
        tracing::info!(
            connections = self.connection_count(),
            "shutting down: closing every connection"
        );
        self.shutdown();
        let deadline = tokio::time::Instant::now() + grace;
        while self.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let stop = handle.stop(true);
        let (result, ()) = tokio::join!(server, stop);
        result
    }

    /// The emitter, for background tasks.
    pub fn emitter(&self) -> SocketEmitter {
        self.emitter.clone()
    }

    /// The Socket.IO server underneath (to add raw namespaces).
    pub fn io(&self) -> &SocketIo {
        &self.io
    }

    /// The channel layer (counts for tests and metrics).
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = actix_web::rt::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = actix_web::rt::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_web::rt::signal::ctrl_c().await;
    }
}
