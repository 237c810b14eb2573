//! [`HttpServer`]: actix-web's server, with WebSockets that own their TCP connection.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::Framed;
use actix_http::body::MessageBody;
use actix_http::h1::Codec;
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_service::{IntoServiceFactory, Service, ServiceFactory};
use actix_web::dev::{AppConfig, Extensions, Server};
use actix_web::rt::net::TcpStream;
use futures_util::TryFutureExt as _;
use futures_util::future::{LocalBoxFuture, MapErr};

use super::takeover::take_over;
use super::tcp::{Ending, TcpHandle};
use crate::sync::lock;

/// The application's types, which the server only passes on.
type Types<I, S, B> = PhantomData<fn() -> (I, S, B)>;

/// A hook run as each connection opens, with its socket (a `TcpStream`) and its data.
type OnConnect = Arc<dyn Fn(&dyn Any, &mut Extensions) + Send + Sync>;

/// actix-web's `HttpServer`, with one difference: a WebSocket takes its TCP connection over.
///
/// With `actix_web::HttpServer`, an upgraded connection stays inside actix-http's dispatcher
/// for its whole life: its read and write buffers (8 KiB each, more after a burst), its timers
/// and its request state, and every byte written is copied into the dispatcher's buffer first.
/// This server runs the same [`App`](actix_web::App), routes, middleware and extractors, but a
/// request answered `101 Switching Protocols` hands the socket to the response: the body is
/// written straight to it, what the client sends is read as it comes, and no buffer is kept
/// while the connection is quiet. Any WebSocket handler that reads the request payload and
/// streams its response works here, not only tidings'.
///
/// The methods are `actix_web::HttpServer`'s (those that apply to plain HTTP/1.1 over TCP);
/// TLS and HTTP/2 are not served: put a proxy in front, or use actix-web's server. A
/// connection whose client stopped reading is ended without [`on_connect`](super::on_connect).
///
/// ```no_run
/// use actix_web::{App, web};
/// use tidings_runtime::engineio::HttpServer;
///
/// # async fn run() -> std::io::Result<()> {
/// HttpServer::new(|| App::new().route("/", web::get().to(|| async { "hello" })))
///     .tcp_nodelay(true)
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
pub struct HttpServer<F, I, S, B> {
    factory: F,
    builder: actix_server::ServerBuilder,
    config: Arc<Mutex<Config>>,
    addrs: Vec<SocketAddr>,
    backlog: u32,
    on_connect: Option<OnConnect>,
    _types: Types<I, S, B>,
}

impl<F, I, S, B> fmt::Debug for HttpServer<F, I, S, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("addrs", &self.addrs)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What each worker's HTTP service is built with.
#[derive(Debug, Clone)]
struct Config {
    host: Option<String>,
    keep_alive: KeepAlive,
    client_request_timeout: Duration,
    client_disconnect_timeout: Duration,
    tcp_nodelay: Option<bool>,
}

impl<F, I, S, B> HttpServer<F, I, S, B>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    B: MessageBody + 'static,
{
    /// A server that builds one application per worker thread with `factory`.
    pub fn new(factory: F) -> Self {
        HttpServer {
            factory,
            builder: actix_server::Server::build(),
            config: Arc::new(Mutex::new(Config {
                host: None,
                keep_alive: KeepAlive::default(),
                client_request_timeout: Duration::from_secs(5),
                client_disconnect_timeout: Duration::from_secs(1),
                tcp_nodelay: None,
            })),
            addrs: Vec::new(),
            backlog: 1024,
            on_connect: None,
            _types: PhantomData,
        }
    }

    /// How many worker threads (default: one per CPU).
    #[must_use]
    pub fn workers(mut self, num: usize) -> Self {
        self.builder = self.builder.workers(num);
        self
    }

    /// The most connections waiting to be accepted (default 1024); set it before binding.
    #[must_use]
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self.builder = self.builder.backlog(backlog);
        self
    }

    /// The most connections each worker holds at once (default 25,000).
    #[must_use]
    pub fn max_connections(mut self, num: usize) -> Self {
        self.builder = self.builder.max_concurrent_connections(num);
        self
    }

    /// How long an idle keep-alive HTTP connection is kept (default 5 s).
    #[must_use]
    pub fn keep_alive(self, keep_alive: impl Into<KeepAlive>) -> Self {
        self.config().keep_alive = keep_alive.into();
        self
    }

    /// How long a client has to send a request's head (default 5 s).
    #[must_use]
    pub fn client_request_timeout(self, timeout: Duration) -> Self {
        self.config().client_request_timeout = timeout;
        self
    }

    /// How long a client has to close its side once the server has closed a connection
    /// (default 1 s).
    #[must_use]
    pub fn client_disconnect_timeout(self, timeout: Duration) -> Self {
        self.config().client_disconnect_timeout = timeout;
        self
    }

    /// Sets `TCP_NODELAY` on every connection: small frames leave at once, not after the
    /// previous one's acknowledgement (recommended for real-time traffic).
    #[must_use]
    pub fn tcp_nodelay(self, nodelay: bool) -> Self {
        self.config().tcp_nodelay = Some(nodelay);
        self
    }

    /// The host name the application sees when a request names none (default: the address
    /// bound).
    #[must_use]
    pub fn server_hostname(self, host: impl Into<String>) -> Self {
        self.config().host = Some(host.into());
        self
    }

    /// How long workers get to finish their connections on a graceful stop (default 30 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, seconds: u64) -> Self {
        self.builder = self.builder.shutdown_timeout(seconds);
        self
    }

    /// Do not stop on SIGINT, SIGTERM or SIGQUIT.
    #[must_use]
    pub fn disable_signals(mut self) -> Self {
        self.builder = self.builder.disable_signals();
        self
    }

    /// Runs `hook` as each connection opens, with its socket (a `TcpStream`) and the
    /// connection's data, as `actix_web::HttpServer::on_connect` does.
    #[must_use]
    pub fn on_connect<C>(mut self, hook: C) -> Self
    where
        C: Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static,
    {
        self.on_connect = Some(Arc::new(hook));
        self
    }

    /// Listens on every address `addrs` resolves to.
    ///
    /// # Errors
    /// When an address does not resolve or cannot be bound.
    pub fn bind(mut self, addrs: impl ToSocketAddrs) -> std::io::Result<Self> {
        for addr in addrs.to_socket_addrs()? {
            let listener = listener(addr, self.backlog)?;
            self = self.listen(listener)?;
        }
        Ok(self)
    }

    /// Listens on a socket already bound.
    ///
    /// # Errors
    /// When the socket's address cannot be read.
    pub fn listen(mut self, listener: TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        self.addrs.push(addr);
        let factory = self.factory.clone();
        let config = Arc::clone(&self.config);
        let on_connect = self.on_connect.clone();
        self.builder = self
            .builder
            .listen(format!("tidings-{addr}"), listener, move || {
                let config = lock(&config).clone();
                let host = config.host.clone().unwrap_or_else(|| addr.to_string());
                // `HttpServer` gives the application the same; `AppConfig::new` is private.
                let app_config = AppConfig::__priv_test_new(false, host, addr);
                let app = Rc::new(SharedApp {
                    factory: factory().into_factory(),
                    config: app_config,
                    service: tokio::sync::OnceCell::new(),
                });
                let on_connect = on_connect.clone();
                let mut service = HttpService::build()
                    .keep_alive(config.keep_alive)
                    .client_request_timeout(config.client_request_timeout)
                    .client_disconnect_timeout(config.client_disconnect_timeout)
                    .local_addr(addr)
                    .on_connect_ext(move |io: &TcpStream, data: &mut Extensions| {
                        data.insert(TcpHandle(Arc::new(Ending::default())));
                        if let Some(hook) = &on_connect {
                            hook(io, data);
                        }
                    });
                if let Some(nodelay) = config.tcp_nodelay {
                    service = service.tcp_nodelay(nodelay);
                }
                service
                    .upgrade(Takeover::<S, B>(Rc::clone(&app), PhantomData))
                    .finish(AppFactory(app))
                    .tcp()
            })?;
        Ok(self)
    }

    /// The addresses it listens on.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Starts the workers; the server runs until it is stopped (a signal, or its handle).
    pub fn run(self) -> Server {
        self.builder.run()
    }

    fn config(&self) -> std::sync::MutexGuard<'_, Config> {
        lock(&self.config)
    }
}

/// A listening socket on `addr` that accepts up to `backlog` waiting connections.
fn listener(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// One worker's application, built once and shared by its plain requests and its upgrades.
struct SharedApp<S: ServiceFactory<Request, Config = AppConfig>> {
    factory: S,
    config: AppConfig,
    service: tokio::sync::OnceCell<Rc<S::Service>>,
}

impl<S> SharedApp<S>
where
    S: ServiceFactory<Request, Config = AppConfig>,
    S::InitError: fmt::Debug,
{
    async fn service(&self) -> Result<Rc<S::Service>, ()> {
        self.service
            .get_or_try_init(|| async {
                self.factory
                    .new_service(self.config.clone())
                    .await
                    .map(Rc::new)
                    .map_err(|err| tracing::error!(?err, "the application failed to start"))
            })
            .await
            .cloned()
    }
}

/// The worker's application, for plain requests.
struct AppFactory<S: ServiceFactory<Request, Config = AppConfig>>(Rc<SharedApp<S>>);

impl<S> ServiceFactory<Request> for AppFactory<S>
where
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error>,
    S::InitError: fmt::Debug,
{
    type Response = S::Response;
    type Error = actix_web::Error;
    type Config = ();
    type Service = AppService<S::Service>;
    type InitError = ();
    type Future = LocalBoxFuture<'static, Result<Self::Service, ()>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let app = Rc::clone(&self.0);
        Box::pin(async move { app.service().await.map(AppService) })
    }
}

/// The worker's application, shared.
struct AppService<T>(Rc<T>);

impl<T> Service<Request> for AppService<T>
where
    T: Service<Request>,
    T::Error: Into<actix_web::Error>,
{
    type Response = T::Response;
    type Error = actix_web::Error;
    type Future = MapErr<T::Future, fn(T::Error) -> actix_web::Error>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&self, req: Request) -> Self::Future {
        self.0.call(req).map_err(Into::into)
    }
}

/// The worker's upgrades: the application decides, a `101` takes the connection over.
struct Takeover<S: ServiceFactory<Request, Config = AppConfig>, B>(
    Rc<SharedApp<S>>,
    PhantomData<fn() -> B>,
);

impl<S, B> ServiceFactory<(Request, Framed<TcpStream, Codec>)> for Takeover<S, B>
where
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error>,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>>,
    B: MessageBody + 'static,
{
    type Response = ();
    type Error = actix_web::Error;
    type Config = ();
    type Service = TakeoverService<S::Service, B>;
    type InitError = ();
    type Future = LocalBoxFuture<'static, Result<Self::Service, ()>>;

    fn new_service(&self, (): ()) -> Self::Future {
        let app = Rc::clone(&self.0);
        Box::pin(async move {
            app.service().await.map(|app| TakeoverService {
                app,
                _body: PhantomData,
            })
        })
    }
}

/// Takes upgraded connections over.
struct TakeoverService<T, B> {
    app: Rc<T>,
    _body: PhantomData<fn() -> B>,
}

impl<T, B> Service<(Request, Framed<TcpStream, Codec>)> for TakeoverService<T, B>
where
    T: Service<Request> + 'static,
    T::Response: Into<Response<B>>,
    T::Error: Into<actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = ();
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<(), actix_web::Error>>;

    actix_service::always_ready!();

    fn call(&self, (req, framed): (Request, Framed<TcpStream, Codec>)) -> Self::Future {
        Box::pin(take_over(Rc::clone(&self.app), req, framed))
    }
}
