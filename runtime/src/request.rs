//! What a client's opening HTTP request carried: headers, query string and address. Shared
//! (behind an `Arc`) by the Engine.IO session and the channel layer's view of a connection.
//!
//! A connection keeps this for its whole life, so it is stored compactly: every header value
//! and the query string in one buffer of its own (not slices of actix's read buffer, which
//! would keep that buffer alive once actix moves on to a new one), and the names beside
//! them. The [`HeaderMap`] view is built the first time someone asks for it.

use std::sync::OnceLock;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use bytes::{BufMut as _, Bytes, BytesMut};

/// The opening request of a connection: headers, query string and peer address.
///
/// ```
/// use actix_web::http::header::{HeaderName, HeaderValue, COOKIE};
/// use tidings_runtime::engineio::Handshake;
///
/// let handshake = Handshake::from_parts(
///     [(COOKIE, HeaderValue::from_static("a=1; session=xyz"))],
///     "EIO=4&token=a%20b",
///     None,
/// );
/// assert_eq!(handshake.cookie("session"), Some("xyz"));
/// assert_eq!(handshake.header("Cookie"), Some("a=1; session=xyz"));
/// assert_eq!(handshake.query(), "EIO=4&token=a%20b");
/// assert_eq!(handshake.headers().len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct RequestInfo {
    /// The query string, then every header value, back to back.
    text: Bytes,
    /// Where the query string ends in `text`.
    query_end: usize,
    /// Each header's name and the end of its value in `text` (values follow one another).
    names: Box<[(HeaderName, usize)]>,
    /// The peer's address, when known.
    remote_addr: Option<std::net::SocketAddr>,
    /// The headers as a map, made on first use.
    map: OnceLock<HeaderMap>,
}

impl Clone for RequestInfo {
    fn clone(&self) -> Self {
        RequestInfo {
            text: self.text.clone(),
            query_end: self.query_end,
            names: self.names.clone(),
            remote_addr: self.remote_addr,
            map: OnceLock::new(),
        }
    }
}

impl RequestInfo {
    /// What `req` carried.
    pub fn from_request(req: &HttpRequest) -> Self {
        Self::from_parts(
            req.headers()
                .iter()
                .map(|(name, value)| (name.clone(), value.clone())),
            req.query_string(),
            req.peer_addr(),
        )
    }

    /// A request made of `headers` (in order; a name may repeat), a raw query string and an
    /// address.
    pub fn from_parts(
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        query: &str,
        remote_addr: Option<std::net::SocketAddr>,
    ) -> Self {
        let headers: Vec<(HeaderName, HeaderValue)> = headers.into_iter().collect();
        let size = query.len() + headers.iter().map(|(_, v)| v.len()).sum::<usize>();
        let mut text = BytesMut::with_capacity(size);
        text.put_slice(query.as_bytes());
        let query_end = text.len();
        let names = headers
            .into_iter()
            .map(|(name, value)| {
                text.put_slice(value.as_bytes());
                (name, text.len())
            })
            .collect();
        RequestInfo {
            text: text.freeze(),
            query_end,
            names,
            remote_addr,
            map: OnceLock::new(),
        }
    }

    /// Each header's name and value bytes, in the order they came.
    fn entries(&self) -> impl Iterator<Item = (&HeaderName, &[u8])> {
        let mut start = self.query_end;
        self.names.iter().map(move |(name, end)| {
            let end = *end;
            let value = self.text.get(start..end).unwrap_or_default();
            start = end;
            (name, value)
        })
    }

    /// The request headers (cookies, user agent, authorization ...).
    pub fn headers(&self) -> &HeaderMap {
        self.map.get_or_init(|| {
            let mut map = HeaderMap::with_capacity(self.names.len());
            for (name, value) in self.entries() {
                // `slice_ref` shares `text` (an empty value needs no sharing).
                if let Ok(value) = HeaderValue::from_maybe_shared(self.text.slice_ref(value)) {
                    map.append(name.clone(), value);
                }
            }
            map
        })
    }

    /// A header's value (the first, when it repeats), when present and valid text. The name is
    /// matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.entries()
            .find(|(header, _)| header.as_str().eq_ignore_ascii_case(name))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// The raw query string.
    pub fn query(&self) -> &str {
        std::str::from_utf8(self.text.get(..self.query_end).unwrap_or_default()).unwrap_or_default()
    }

    /// The peer's address, when known.
    pub fn remote_addr(&self) -> Option<std::net::SocketAddr> {
        self.remote_addr
    }

    /// The value of one query parameter, percent-decoded.
    ///
    /// ```
    /// use tidings_runtime::engineio::Handshake;
    /// let handshake = Handshake::from_parts([], "EIO=4&token=a%20b", None);
    /// assert_eq!(handshake.query_param("token").as_deref(), Some("a b"));
    /// assert_eq!(handshake.query_param("nope"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(self.query())
            .ok()?
            .into_iter()
            .find_map(|(key, value)| (key == name).then_some(value))
    }

    /// One cookie's value.
    ///
    /// ```
    /// use actix_web::http::header::{HeaderValue, COOKIE};
    /// use tidings_runtime::engineio::Handshake;
    /// let handshake = Handshake::from_parts(
    ///     [(COOKIE, HeaderValue::from_static("a=1; session=xyz"))],
    ///     "",
    ///     None,
    /// );
    /// assert_eq!(handshake.cookie("session"), Some("xyz"));
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.entries()
            .filter(|(header, _)| *header == header::COOKIE)
            .filter_map(|(_, value)| std::str::from_utf8(value).ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find_map(|(key, value)| (key == name).then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_headers_keep_their_order_and_the_map_has_them_all() {
        let request = RequestInfo::from_parts(
            [
                (header::HOST, HeaderValue::from_static("example.test")),
                (header::COOKIE, HeaderValue::from_static("a=1")),
                (
                    HeaderName::from_static("x-custom"),
                    HeaderValue::from_static("v"),
                ),
                (header::COOKIE, HeaderValue::from_static("b=2")),
            ],
            "EIO=4",
            None,
        );
        assert_eq!(request.query(), "EIO=4");
        assert_eq!(request.header("host"), Some("example.test"));
        assert_eq!(request.header("X-Custom"), Some("v"));
        assert_eq!(request.header("cookie"), Some("a=1"));
        assert_eq!(request.cookie("b"), Some("2"));
        assert_eq!(request.header("missing"), None);
        let map = request.headers();
        assert_eq!(map.len(), 4);
        let cookies: Vec<_> = map.get_all(header::COOKIE).collect();
        assert_eq!(
            cookies,
            [
                &HeaderValue::from_static("a=1"),
                &HeaderValue::from_static("b=2")
            ]
        );
        assert_eq!(request.clone().headers().len(), 4);
    }

    #[test]
    fn an_empty_request_has_nothing() {
        let request = RequestInfo::default();
        assert_eq!(request.query(), "");
        assert_eq!(request.header("host"), None);
        assert!(request.headers().is_empty());
        assert_eq!(request.remote_addr(), None);
    }
}
