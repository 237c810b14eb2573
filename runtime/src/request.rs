//! What a client's opening HTTP request carried: headers, query string and address. Shared
//! (behind an `Arc`) by the Engine.IO session and the channel layer's view of a connection.

use actix_web::HttpRequest;
use actix_web::http::header::HeaderMap;

/// The opening request of a connection: headers, query string and peer address.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The request headers (cookies, user agent, authorization ...).
    pub headers: HeaderMap,
    /// The raw query string.
    pub query: String,
    /// The peer's address, when known.
    pub remote_addr: Option<std::net::SocketAddr>,
}

impl RequestInfo {
    /// What `req` carried; the headers are copied into a map of exactly their size.
    pub fn from_request(req: &HttpRequest) -> Self {
        let mut headers = HeaderMap::with_capacity(req.headers().len());
        for (name, value) in req.headers() {
            headers.append(name.clone(), value.clone());
        }
        RequestInfo {
            headers,
            query: req.query_string().to_owned(),
            remote_addr: req.peer_addr(),
        }
    }

    /// A header's value, when present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of one query parameter, percent-decoded.
    ///
    /// ```
    /// use tidings_runtime::engineio::Handshake;
    /// let handshake = Handshake { query: "EIO=4&token=a%20b".into(), ..Default::default() };
    /// assert_eq!(handshake.query_param("token").as_deref(), Some("a b"));
    /// assert_eq!(handshake.query_param("nope"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&self.query)
            .ok()?
            .into_iter()
            .find_map(|(key, value)| (key == name).then_some(value))
    }

    /// One cookie's value.
    ///
    /// ```
    /// use actix_web::http::header::{HeaderValue, COOKIE};
    /// use tidings_runtime::engineio::Handshake;
    /// let mut handshake = Handshake::default();
    /// handshake.headers.insert(COOKIE, HeaderValue::from_static("a=1; session=xyz"));
    /// assert_eq!(handshake.cookie("session"), Some("xyz"));
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all(actix_web::http::header::COOKIE)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find_map(|(key, value)| (key == name).then_some(value))
    }
}
