//! Ending the TCP connection under a WebSocket whose peer has stopped reading.
//!
//! A connection is written until the peer takes the bytes. When a session ends and its client
//! does not read (a slow consumer cut off, a dead peer), the close frame never leaves, and the
//! connection, its buffers and its file descriptor would stay until the peer goes away. So a
//! session keeps a weak handle on its connection's [`Ending`], and shortly after the session
//! ended, the connection is ended: on `tidings::HttpServer`, by telling the task that owns the
//! socket to let go of it; on actix-web's `HttpServer`, whose dispatcher owns the socket, by
//! shutting down a second handle on it that [`on_connect`] keeps.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Context;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use futures_util::task::AtomicWaker;

/// The way to end a connection from outside it: a duplicate of its socket's file descriptor
/// ([`on_connect`] on actix-web's `HttpServer`), or a signal to the task that owns the socket
/// ([`crate::engineio::HttpServer`]). It lives in the connection's data, so it goes with the
/// connection.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    socket: Option<socket2::Socket>,
    ended: AtomicBool,
    waker: AtomicWaker,
}

impl Ending {
    /// Ends the connection: its socket is shut down, or its owner told to let go of it.
    fn end(&self) {
        if let Some(socket) = &self.socket {
            let result = socket.shutdown(std::net::Shutdown::Both);
            tracing::debug!(?result, "connection shut down");
        }
        self.ended.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the connection was ended; if not, `cx` is woken when it is.
    pub(crate) fn poll_ended(&self, cx: &mut Context<'_>) -> bool {
        if self.ended.load(Ordering::Acquire) {
            return true;
        }
        self.waker.register(cx.waker());
        self.ended.load(Ordering::Acquire)
    }

    /// As [`Ending::poll_ended`], registering `cx` only when `registered` (what the last call
    /// registered, kept by the caller) would not wake the same task: the connection ends once,
    /// so a registration stays until then. Saves a task polled on every write two atomic
    /// instructions.
    pub(crate) fn poll_ended_with(
        &self,
        cx: &mut Context<'_>,
        registered: &mut Option<std::task::Waker>,
    ) -> bool {
        if self.ended.load(Ordering::Acquire) {
            return true;
        }
        if registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return false;
        }
        *registered = Some(cx.waker().clone());
        self.poll_ended(cx)
    }
}

/// The connection data entry that holds a connection's [`Ending`].
#[derive(Debug)]
pub(crate) struct TcpHandle(pub(crate) Arc<Ending>);

/// Keeps a handle on every new TCP connection so that the server can end a WebSocket whose
/// client has stopped reading (see the README, "Limits and failure behaviour"). Install it with
/// [`actix_web::HttpServer::on_connect`]; [`crate::engineio::HttpServer`] needs none (it owns
/// its WebSockets' sockets).
///
/// It costs each connection a second file descriptor (a duplicate; both close together).
/// Connections that are not plain TCP (TLS terminated by actix itself, Unix sockets) get no
/// handle: their sessions still end on time, but the TCP connection of a client that never
/// reads again stays until the client goes away.
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use tidings_runtime::engineio::on_connect;
///
/// # async fn run() -> std::io::Result<()> {
/// HttpServer::new(|| App::new())
///     .on_connect(on_connect)
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(stream) = connection.downcast_ref::<TcpStream>() else {
        return;
    };
    match socket2::SockRef::from(stream).try_clone() {
        Ok(socket) => {
            data.insert(TcpHandle(Arc::new(Ending {
                socket: Some(socket),
                ..Ending::default()
            })));
        }
        Err(err) => tracing::debug!(%err, "no second handle on a new connection's socket"),
    }
}

/// The socket under `req`'s connection, when [`on_connect`] kept a handle on it; it stays
/// usable only as long as the connection.
pub(crate) fn socket_of(req: &HttpRequest) -> Option<Weak<Ending>> {
    req.conn_data::<TcpHandle>()
        .map(|handle| Arc::downgrade(&handle.0))
}

/// Ends the connection `after` this long unless it has ended by then. Its pending write
/// then fails (or its owner lets go of it), so the connection's buffers go; the peer reads what
/// was sent, then the end of the stream.
pub(crate) fn end_after(ending: Weak<Ending>, after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(ending) = ending.upgrade() {
            tracing::debug!(?after, "connection still open after its session ended");
            ending.end();
        }
    });
}
