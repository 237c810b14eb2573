//! A second handle on the TCP connection under a WebSocket, so that the server can end a
//! connection whose peer has stopped reading.
//!
//! actix-http's dispatcher writes a response body until the peer takes it. When a session ends
//! and its client does not read (a slow consumer cut off, a dead peer), the close frame never
//! leaves, and the dispatcher would keep the connection, its buffers and its file descriptor
//! until the peer goes away. With [`on_connect`] installed on the `HttpServer`, the WebSocket
//! transport shuts such a connection down shortly after its session ended.

use std::any::Any;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;

/// The connection's socket, a duplicate of its file descriptor; it lives in the connection's
/// data, so it is closed with the connection.
#[derive(Debug)]
struct TcpHandle(Arc<socket2::Socket>);

/// Keeps a handle on every new TCP connection so that the server can end a WebSocket whose
/// client has stopped reading (see the README, "Limits and failure behaviour"). Install it with
/// [`actix_web::HttpServer::on_connect`].
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
            data.insert(TcpHandle(Arc::new(socket)));
        }
        Err(err) => tracing::debug!(%err, "no second handle on a new connection's socket"),
    }
}

/// The socket under `req`'s connection, when [`on_connect`] kept a handle on it; it stays
/// usable only as long as the connection.
pub(crate) fn socket_of(req: &HttpRequest) -> Option<Weak<socket2::Socket>> {
    req.conn_data::<TcpHandle>()
        .map(|handle| Arc::downgrade(&handle.0))
}

/// Shuts the connection down `after` this long unless it has ended by then. Its pending write
/// then fails, so actix-http's dispatcher lets go of it; the peer reads what was sent, then
/// the end of the stream.
pub(crate) fn end_after(socket: Weak<socket2::Socket>, after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        if let Some(socket) = socket.upgrade() {
            let result = socket.shutdown(std::net::Shutdown::Both);
            tracing::debug!(
                ?after,
                ?result,
                "connection still open after its session ended: shut down"
            );
        }
    });
}
