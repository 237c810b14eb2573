//! `tidings::HttpServer` with requests that are not tidings': a WebSocket handler of the
//! application's own (its body written to the socket, its payload read from it), an upgrade
//! request the application refuses, and plain HTTP on the same connection as before.
//!
//! The client is a bare TCP socket, so that every byte on the wire is checked.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use support::{HttpServerKind, InProcess, Workers};

/// Answers `101` and sends back, as they come, the bytes the client sends after the upgrade.
async fn raw_echo(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    match actix_http::ws::handshake(req.head()) {
        Ok(mut response) => {
            let body = actix_web::body::BodyStream::new(payload);
            response
                .message_body(actix_web::body::BoxBody::new(body))
                .map_or_else(
                    |_| HttpResponse::InternalServerError().finish(),
                    HttpResponse::from,
                )
        }
        Err(err) => HttpResponse::BadRequest().body(err.to_string()),
    }
}

/// An upgrade request refused with a body.
async fn refused() -> HttpResponse {
    HttpResponse::Forbidden().body("no upgrade for you")
}

fn server() -> InProcess {
    let tidings = tidings::Tidings::builder()
        .build()
        .expect("no channel cannot conflict");
    InProcess::start_on(HttpServerKind::Tidings, tidings, |cfg| {
        cfg.route("/echo", web::get().to(raw_echo))
            .route("/refused", web::get().to(refused))
            .route("/hello", web::get().to(|| async { "hello" }));
    })
}

fn connect(server: &InProcess) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", server.port)).expect("the server listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout can be set");
    BufReader::new(stream)
}

/// A new connection that sent a WebSocket upgrade request for `path`, then `after` in the same
/// write; the head of the answer read.
fn upgrade(
    server: &InProcess,
    path: &str,
    after: &[u8],
) -> (BufReader<TcpStream>, String, Vec<(String, String)>) {
    let mut reader = connect(server);
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(after);
    reader.get_mut().write_all(&request).expect("written");
    let (status, headers) = read_head(&mut reader);
    (reader, status, headers)
}

/// The status line and headers of a response (lower-case names).
fn read_head(reader: &mut BufReader<TcpStream>) -> (String, Vec<(String, String)>) {
    let mut status = String::new();
    reader.read_line(&mut status).expect("a status line");
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header");
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    (status.trim_end().to_owned(), headers)
}

/// Shuts the client's side of an upgraded connection (its echo body ends with its payload),
/// then reads until the server closes; what came meanwhile.
fn end_from_the_client(reader: &mut BufReader<TcpStream>) -> Vec<u8> {
    reader
        .get_mut()
        .shutdown(std::net::Shutdown::Write)
        .expect("shut down");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("the server closes");
    rest
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn an_applications_own_websocket_handler_owns_the_connection() {
    let server = server();
    // The request and the first bytes after it in one write: they reach the handler too.
    let (mut reader, status, headers) = upgrade(&server, "/echo", b"early ");
    assert!(status.starts_with("HTTP/1.1 101"), "status {status:?}");
    assert_eq!(
        header(&headers, "sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert_eq!(header(&headers, "transfer-encoding"), None);
    assert_eq!(header(&headers, "content-length"), None);
    reader.get_mut().write_all(b"then late").expect("written");
    let mut echoed = vec![0u8; "early then late".len()];
    reader.read_exact(&mut echoed).expect("the bytes come back");
    assert_eq!(echoed, b"early then late");
    // The client ends its side: the handler's payload ends, so does its body, and the server
    // closes the connection.
    let rest = end_from_the_client(&mut reader);
    assert!(rest.is_empty(), "nothing more: {rest:?}");
    assert!(server.is_running());
}

#[test]
fn a_refused_upgrade_gets_the_whole_answer_then_the_end_of_the_connection() {
    let server = server();
    let (mut reader, status, headers) = upgrade(&server, "/refused", b"");
    assert!(status.starts_with("HTTP/1.1 403"), "status {status:?}");
    assert_eq!(header(&headers, "content-length"), Some("18"));
    assert_eq!(header(&headers, "connection"), Some("close"));
    let mut body = String::new();
    reader
        .read_to_string(&mut body)
        .expect("the body, then the end");
    assert_eq!(body, "no upgrade for you");

    // A path with no route: 404, whole.
    let (mut reader, status, _) = upgrade(&server, "/nowhere", b"");
    assert!(status.starts_with("HTTP/1.1 404"), "status {status:?}");
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).expect("then the end");
}

#[test]
fn plain_requests_keep_their_connection() {
    let server = server();
    let mut reader = connect(&server);
    for _ in 0..3 {
        reader
            .get_mut()
            .write_all(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("written");
        let (status, headers) = read_head(&mut reader);
        assert!(status.starts_with("HTTP/1.1 200"), "status {status:?}");
        assert_eq!(header(&headers, "content-length"), Some("5"));
        let mut body = [0u8; 5];
        reader.read_exact(&mut body).expect("the body");
        assert_eq!(&body, b"hello");
    }
}

/// An upgraded connection still counts against the worker's `max_connections` for as long as
/// it is open (its task is its own, but the worker waits for it).
#[test]
fn an_upgraded_connection_counts_until_it_ends() {
    let tidings = tidings::Tidings::builder()
        .build()
        .expect("no channel cannot conflict");
    let workers = Workers {
        count: 1,
        max_connections: 2,
    };
    let server = InProcess::start_with(HttpServerKind::Tidings, workers, tidings, |cfg| {
        cfg.route("/echo", web::get().to(raw_echo))
            .route("/hello", web::get().to(|| async { "hello" }));
    });
    let (mut first, status, _) = upgrade(&server, "/echo", b"");
    assert!(status.starts_with("HTTP/1.1 101"), "status {status:?}");
    let (_second, status, _) = upgrade(&server, "/echo", b"");
    assert!(status.starts_with("HTTP/1.1 101"), "status {status:?}");

    // Both upgraded connections are open: a third waits to be accepted.
    let mut third = connect(&server);
    third
        .get_mut()
        .write_all(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("written");
    third
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("a timeout can be set");
    let mut byte = [0u8; 1];
    let waited = third.get_mut().read(&mut byte);
    assert!(
        waited.as_ref().is_err_and(|err| matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        "answered while two upgraded connections were open: {waited:?}"
    );

    // One of them ends: the third is accepted and answered.
    end_from_the_client(&mut first);
    third
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a timeout can be set");
    let (status, _) = read_head(&mut third);
    assert!(status.starts_with("HTTP/1.1 200"), "status {status:?}");
}
