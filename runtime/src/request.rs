//! What a client's opening HTTP request carried: headers, query string and address. Shared
//! (behind an `Arc`) by the Engine.IO session and the channel layer's view of a connection.
//!
//! A connection keeps this for its whole life, so it is stored compactly: the query string and
//! every header's name and value in one buffer of its own (not slices of actix's read buffer,
//! which would keep that buffer alive once actix moves on to a new one), preceded by where each
//! ends. The [`HeaderMap`] view is built the first time someone asks for it.

use std::sync::OnceLock;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

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
    /// `ends` little-endian `u32`s, then the text: the query string, then each header's name
    /// (lower case, as [`HeaderName`] keeps it) and value, back to back. The `u32`s say where
    /// in the text the query string ends, then where each header's name and value end.
    data: Box<[u8]>,
    /// How many `u32`s `data` starts with.
    ends: usize,
    /// The peer's address, when known.
    remote_addr: Option<std::net::SocketAddr>,
    /// The headers as a map, made on first use.
    map: OnceLock<Box<HeaderMap>>,
}

impl Clone for RequestInfo {
    fn clone(&self) -> Self {
        RequestInfo {
            data: self.data.clone(),
            ends: self.ends,
            remote_addr: self.remote_addr,
            map: OnceLock::new(),
        }
    }
}

impl RequestInfo {
    /// What `req` carried.
    pub fn from_request(req: &HttpRequest) -> Self {
        Self::build(
            || {
                req.headers()
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_bytes()))
            },
            req.query_string(),
            req.peer_addr(),
        )
    }

    /// A request made of `headers` (in order; a name may repeat), a raw query string and an
    /// address. Headers past 4 GiB of text in all (far beyond what any HTTP server reads) are
    /// left out.
    pub fn from_parts(
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        query: &str,
        remote_addr: Option<std::net::SocketAddr>,
    ) -> Self {
        let headers: Vec<(HeaderName, HeaderValue)> = headers.into_iter().collect();
        Self::build(
            || {
                headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_bytes()))
            },
            query,
            remote_addr,
        )
    }

    /// Copies the query and the headers into one buffer sized exactly (a first walk over
    /// `headers()` measures, the second copies).
    fn build<'a, I: Iterator<Item = (&'a str, &'a [u8])>>(
        headers: impl Fn() -> I,
        query: &str,
        remote_addr: Option<std::net::SocketAddr>,
    ) -> Self {
        const LIMIT: usize = u32::MAX as usize;
        let query = if query.len() > LIMIT { "" } else { query };
        let (mut size, mut count) = (query.len(), 0);
        for (name, value) in headers() {
            let next = size + name.len() + value.len();
            if next > LIMIT {
                break;
            }
            (size, count) = (next, count + 1);
        }
        let ends_len = 1 + 2 * count;
        let mut ends: SmallVec<[u32; 32]> = SmallVec::with_capacity(ends_len);
        let mut data = Vec::with_capacity(4 * ends_len + size);
        data.resize(4 * ends_len, 0);
        let text_start = data.len();
        // Every end fits a u32: the text was measured against LIMIT above.
        let mut mark =
            |data: &Vec<u8>| ends.push(u32::try_from(data.len() - text_start).unwrap_or(u32::MAX));
        data.extend_from_slice(query.as_bytes());
        mark(&data);
        for (name, value) in headers().take(count) {
            data.extend_from_slice(name.as_bytes());
            mark(&data);
            data.extend_from_slice(value);
            mark(&data);
        }
        for (slot, end) in data.chunks_exact_mut(4).zip(&ends) {
            slot.copy_from_slice(&end.to_le_bytes());
        }
        RequestInfo {
            data: data.into_boxed_slice(),
            ends: ends_len,
            remote_addr,
            map: OnceLock::new(),
        }
    }

    /// The `i`th end.
    fn end(&self, i: usize) -> u32 {
        self.data
            .get(4 * i..4 * i + 4)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }

    /// The bytes of the text from `start` to `end`.
    fn span(&self, start: u32, end: u32) -> &[u8] {
        let text = self.data.get(4 * self.ends..).unwrap_or_default();
        text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// Each header's name and value bytes, in the order they came.
    fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut start = self.end(0);
        (0..self.ends / 2).map(move |header| {
            let (name_end, value_end) = (self.end(1 + 2 * header), self.end(2 + 2 * header));
            let entry = (self.span(start, name_end), self.span(name_end, value_end));
            start = value_end;
            entry
        })
    }

    /// The request headers (cookies, user agent, authorization ...).
    pub fn headers(&self) -> &HeaderMap {
        self.map.get_or_init(|| {
            let mut map = HeaderMap::with_capacity(self.ends / 2);
            for (name, value) in self.entries() {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
                {
                    map.append(name, value);
                }
            }
            Box::new(map)
        })
    }

    /// A header's value (the first, when it repeats), when present and valid text. The name is
    /// matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.entries()
            .find(|(header, _)| header.eq_ignore_ascii_case(name.as_bytes()))
            .and_then(|(_, value)| std::str::from_utf8(value).ok())
    }

    /// The raw query string.
    pub fn query(&self) -> &str {
        std::str::from_utf8(self.span(0, self.end(0))).unwrap_or_default()
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
            .filter(|(header, _)| *header == header::COOKIE.as_str().as_bytes())
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

/// Why a request body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyError {
    /// It is (or says it is) longer than allowed.
    #[error("body too large")]
    TooLarge,
    /// The connection failed while it was read.
    #[error("body read failed")]
    Failed,
}

/// Reads `body` whole, refusing it as soon as it is known to be over `limit` bytes (by its
/// declared length, or as it arrives).
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut body: actix_web::web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, BodyError> {
    use futures_util::StreamExt as _;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|_| BodyError::Failed)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
