//! Which web pages may connect: the origin policy that every gateway applies to a request
//! before it creates anything, and the CORS answers of HTTP long-polling.
//!
//! A browser attaches its cookies to a WebSocket or polling request whatever page makes it, and
//! says which page that is in the `Origin` header. Checking that header is what keeps a page on
//! another site from connecting as its visitor (cross-site WebSocket hijacking). Clients that are
//! not browsers send no `Origin` (or any they like): the check protects browsers and their
//! users, not the server; authenticate connections for that.

use std::fmt;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder};

/// Which pages may connect, and what long-polling answers to pages of other origins (CORS).
///
/// - [`OriginPolicy::same_host`] (the default): a browser request whose `Origin` is not the
///   server's own (the scheme's host and port that the request's `Host` header names) is
///   refused with HTTP 403.
/// - [`OriginPolicy::allow`]: the server's own origin and these (exact, or `*.` wildcard
///   subdomains, as Phoenix's `check_origin`).
/// - [`OriginPolicy::any`]: every origin (the explicit opt-out).
/// - [`OriginPolicy::predicate`]: the app decides.
///
/// Requests without an `Origin` header (clients that are not browsers) always pass.
///
/// ```
/// use tidings_runtime::origin::OriginPolicy;
///
/// let policy = OriginPolicy::allow(["https://app.example.com", "https://*.example.org"])
///     .unwrap()
///     .with_credentials(true);
/// assert!(policy.allows(Some("https://app.example.com"), Some("rt.example.com")));
/// assert!(policy.allows(Some("https://eu.example.org"), Some("rt.example.com")));
/// assert!(policy.allows(Some("https://rt.example.com"), Some("rt.example.com")), "its own");
/// assert!(!policy.allows(Some("https://evil.example"), Some("rt.example.com")));
/// assert!(policy.allows(None, Some("rt.example.com")), "not a browser");
/// ```
#[derive(Clone, Default)]
pub struct OriginPolicy {
    allowed: Allowed,
    credentials: bool,
}

#[derive(Clone, Default)]
enum Allowed {
    #[default]
    SameHost,
    List(Vec<OriginPattern>),
    Any,
    Predicate(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl fmt::Debug for OriginPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed: &dyn fmt::Debug = match &self.allowed {
            Allowed::SameHost => &"same host",
            Allowed::List(list) => list,
            Allowed::Any => &"any",
            Allowed::Predicate(_) => &"predicate",
        };
        f.debug_struct("OriginPolicy")
            .field("allowed", allowed)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// An allowed origin that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid allowed origin {origin:?}: {why}")]
pub struct InvalidOrigin {
    origin: String,
    why: &'static str,
}

/// One allowed origin: `scheme://host[:port]`, the host maybe `*.domain`, the scheme maybe left
/// out (`//host`: any scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OriginPattern {
    scheme: Option<String>,
    host: String,
    /// `host` is a domain whose subdomains match (from `*.domain`).
    subdomains: bool,
    port: Option<u16>,
}

/// An origin as a browser sends it, lower case, its port left out when it is the scheme's own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin<'a> {
    scheme: String,
    host: &'a str,
    port: Option<u16>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Splits `host[:port]` (IPv6 in brackets); `None` when the port is not a number.
fn split_authority(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => (
            &authority[..colon],
            Some(authority[colon + 1..].parse().ok()?),
        ),
        _ => (authority, None),
    };
    (!host.is_empty()).then_some((host, port))
}

impl<'a> Origin<'a> {
    /// Reads an `Origin` header value (`null` and anything malformed give `None`).
    fn parse(value: &'a str) -> Option<Origin<'a>> {
        let (scheme, authority) = value.split_once("://")?;
        if authority.contains(['/', '?', '#', '@']) {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let (host, port) = split_authority(authority)?;
        let port = port.filter(|&p| Some(p) != default_port(&scheme));
        Some(Origin { scheme, host, port })
    }
}

impl OriginPattern {
    fn parse(text: &str) -> Result<OriginPattern, InvalidOrigin> {
        let invalid = |why| InvalidOrigin {
            origin: text.to_owned(),
            why,
        };
        let (scheme, authority) = match text.split_once("//") {
            Some(("", authority)) => (None, authority),
            Some((scheme, authority)) => {
                let scheme = scheme
                    .strip_suffix(':')
                    .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
                    .ok_or_else(|| invalid("expected scheme://host[:port] or //host[:port]"))?;
                (Some(scheme.to_ascii_lowercase()), authority)
            }
            None => return Err(invalid("expected scheme://host[:port] or //host[:port]")),
        };
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(invalid("an origin has no path, query or credentials"));
        }
        let (host, port) =
            split_authority(authority).ok_or_else(|| invalid("missing host or bad port"))?;
        let (host, subdomains) = match host.strip_prefix("*.") {
            Some(domain) => (domain, true),
            None => (host, false),
        };
        if host.is_empty() || host.contains('*') {
            return Err(invalid(
                "a wildcard is allowed only as the first label, `*.`",
            ));
        }
        let port = port.filter(|&p| scheme.as_deref().and_then(default_port) != Some(p));
        Ok(OriginPattern {
            scheme,
            host: host.to_ascii_lowercase(),
            subdomains,
            port,
        })
    }

    fn matches(&self, origin: &Origin<'_>) -> bool {
        let host = origin.host.to_ascii_lowercase();
        let host_matches = if self.subdomains {
            host.strip_suffix(&self.host)
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.'))
        } else {
            host == self.host
        };
        host_matches
            && self.scheme.as_ref().is_none_or(|s| *s == origin.scheme)
            && self.port == origin.port
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judgement {
    Own,
    Allowed,
    Refused,
}

/// What the policy says of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No `Origin` (not a browser), or the server's own origin: nothing to add.
    Own,
    /// An allowed page of another origin: long-polling answers carry CORS headers for it.
    CrossOrigin(HeaderValue),
    /// Refused (HTTP 403), with the origin for the log.
    Refused(String),
}

impl OriginPolicy {
    /// Only the server's own origin (the default).
    pub fn same_host() -> Self {
        OriginPolicy::default()
    }

    /// The server's own origin and these: `https://app.example.com`, `http://127.0.0.1:8081`,
    /// `https://*.example.com` (its subdomains, not itself), `//app.example.com` (any scheme).
    /// A port left out means the scheme's own port.
    ///
    /// # Errors
    /// [`InvalidOrigin`] for an entry that is not `scheme://host[:port]` or `//host[:port]`.
    pub fn allow<I, S>(origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let list = origins
            .into_iter()
            .map(|origin| OriginPattern::parse(origin.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(OriginPolicy {
            allowed: Allowed::List(list),
            credentials: false,
        })
    }

    /// Every origin: any web page may connect as its visitor. Only for servers that
    /// authenticate by token, never by cookie.
    pub fn any() -> Self {
        OriginPolicy {
            allowed: Allowed::Any,
            credentials: false,
        }
    }

    /// The app decides from the `Origin` header's value (the server's own origin always passes).
    ///
    /// ```
    /// use tidings_runtime::origin::OriginPolicy;
    /// let policy = OriginPolicy::predicate(|origin| origin.ends_with(".internal.example"));
    /// assert!(policy.allows(Some("https://ops.internal.example"), Some("rt.example.com")));
    /// assert!(!policy.allows(Some("https://evil.example"), Some("rt.example.com")));
    /// ```
    pub fn predicate(allow: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        OriginPolicy {
            allowed: Allowed::Predicate(Arc::new(allow)),
            credentials: false,
        }
    }

    /// Whether long-polling lets pages of other allowed origins send their cookies
    /// (`Access-Control-Allow-Credentials: true`; clients set `withCredentials: true`). Off by
    /// default, as socket.io's `cors` option. The allowed origin is always echoed, never `*`.
    pub fn with_credentials(mut self, credentials: bool) -> Self {
        self.credentials = credentials;
        self
    }

    /// Whether a request with this `Origin` header, to a server its `Host` header names, may
    /// connect.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        self.judge(origin, host) != Judgement::Refused
    }

    /// What the policy says of a request with these headers.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Verdict {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Verdict::Own;
        };
        // A value that is not text (never sent by a browser) matches nothing but `any`.
        let value = origin.to_str().unwrap_or("");
        match self.judge(Some(value), text(header::HOST)) {
            Judgement::Own => Verdict::Own,
            Judgement::Allowed => Verdict::CrossOrigin(origin.clone()),
            Judgement::Refused => Verdict::Refused(value.to_owned()),
        }
    }

    fn judge(&self, origin: Option<&str>, host: Option<&str>) -> Judgement {
        let Some(value) = origin else {
            return Judgement::Own;
        };
        let parsed = Origin::parse(value);
        if let (Some(origin), Some(host)) = (&parsed, host.and_then(split_authority)) {
            let (host, port) = host;
            let port = port.filter(|&p| Some(p) != default_port(&origin.scheme));
            if origin.host.eq_ignore_ascii_case(host) && origin.port == port {
                return Judgement::Own;
            }
        }
        let allowed = match &self.allowed {
            Allowed::SameHost => false,
            Allowed::Any => true,
            Allowed::Predicate(allow) => allow(value),
            Allowed::List(list) => parsed
                .as_ref()
                .is_some_and(|origin| list.iter().any(|pattern| pattern.matches(origin))),
        };
        if allowed {
            Judgement::Allowed
        } else {
            Judgement::Refused
        }
    }

    /// Adds the CORS headers of an answer to an allowed page of another origin.
    pub(crate) fn cors_headers(&self, origin: &HeaderValue, response: &mut HttpResponse) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// The answer to a CORS preflight (`OPTIONS`) from an allowed page of another origin: the
    /// methods of long-polling, and the headers the page asked for.
    pub(crate) fn preflight(&self, origin: &HeaderValue, request: &HeaderMap) -> HttpResponse {
        let mut builder: HttpResponseBuilder = HttpResponse::NoContent();
        builder
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
        if let Some(asked) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            builder.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone()));
        }
        let mut response = builder.finish();
        self.cors_headers(origin, &mut response);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Option<&str> = Some("127.0.0.1:8080");

    #[test]
    fn by_default_only_the_servers_own_origin_and_non_browsers_pass() {
        let policy = OriginPolicy::same_host();
        assert!(policy.allows(None, HOST));
        assert!(policy.allows(Some("http://127.0.0.1:8080"), HOST));
        assert!(policy.allows(Some("HTTP://127.0.0.1:8080"), HOST));
        assert!(
            !policy.allows(Some("http://127.0.0.1:8081"), HOST),
            "another port"
        );
        assert!(
            !policy.allows(Some("http://localhost:8080"), HOST),
            "another host"
        );
        assert!(!policy.allows(Some("null"), HOST));
        assert!(
            !policy.allows(Some("http://127.0.0.1:8080"), None),
            "no Host"
        );
        // Default ports: the browser leaves them out of Origin, the Host header may carry them.
        let host = Some("example.com:443");
        assert!(policy.allows(Some("https://example.com"), host));
        assert!(policy.allows(Some("https://example.com:443"), Some("example.com")));
        assert!(
            !policy.allows(Some("http://example.com"), host),
            "port 80 is not 443"
        );
        assert!(policy.allows(Some("http://[::1]:8080"), Some("[::1]:8080")));
        assert!(!policy.allows(Some("http://[::1]:8081"), Some("[::1]:8080")));
    }

    #[test]
    fn allowed_origins_exact_wildcard_and_any_scheme() {
        let policy = OriginPolicy::allow([
            "http://127.0.0.1:8081",
            "https://*.example.com",
            "//app.example.org",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(policy.allows(Some("http://127.0.0.1:8081"), HOST));
        assert!(
            policy.allows(Some("http://127.0.0.1:8080"), HOST),
            "its own"
        );
        assert!(!policy.allows(Some("http://127.0.0.1:8082"), HOST));
        assert!(
            !policy.allows(Some("https://127.0.0.1:8081"), HOST),
            "another scheme"
        );
        assert!(policy.allows(Some("https://a.example.com"), HOST));
        assert!(policy.allows(Some("https://a.b.example.com"), HOST));
        assert!(
            !policy.allows(Some("https://example.com"), HOST),
            "not the domain itself"
        );
        assert!(!policy.allows(Some("https://evilexample.com"), HOST));
        assert!(
            !policy.allows(Some("http://a.example.com"), HOST),
            "https only"
        );
        assert!(
            !policy.allows(Some("https://a.example.com:8443"), HOST),
            "port 443 only"
        );
        assert!(policy.allows(Some("http://app.example.org"), HOST));
        assert!(policy.allows(Some("https://app.example.org"), HOST));
        assert!(!policy.allows(Some("null"), HOST));
        assert!(!policy.allows(Some("https://app.example.org/path"), HOST));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in [
            "example.com",
            "https://",
            "https://a.*.com",
            "https://ex*.com",
            "https://example.com/path",
            "https://example.com:http",
            "://example.com",
        ] {
            assert!(OriginPolicy::allow([bad]).is_err(), "{bad} accepted");
        }
        assert!(OriginPolicy::allow(["https://example.com/"]).is_ok());
    }

    #[test]
    fn any_and_predicate() {
        assert!(OriginPolicy::any().allows(Some("https://anywhere.example"), HOST));
        assert!(OriginPolicy::any().allows(Some("null"), HOST));
        let policy = OriginPolicy::predicate(|origin| origin == "https://ok.example");
        assert!(policy.allows(Some("https://ok.example"), HOST));
        assert!(!policy.allows(Some("https://no.example"), HOST));
    }

    #[test]
    fn check_reads_the_headers_and_echoes_the_origin() {
        let policy = OriginPolicy::allow(["http://127.0.0.1:8081"])
            .unwrap_or_else(|e| panic!("{e}"))
            .with_credentials(true);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(policy.check(&headers), Verdict::Own);
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert_eq!(policy.check(&headers), Verdict::Own);
        let foreign = HeaderValue::from_static("http://127.0.0.1:8081");
        headers.insert(header::ORIGIN, foreign.clone());
        assert_eq!(
            policy.check(&headers),
            Verdict::CrossOrigin(foreign.clone())
        );
        let mut response = HttpResponse::Ok().finish();
        policy.cors_headers(&foreign, &mut response);
        assert_eq!(
            response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some(&foreign)
        );
        assert_eq!(
            response
                .headers()
                .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
                .map(HeaderValue::as_bytes),
            Some(&b"true"[..])
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:9"),
        );
        assert_eq!(
            policy.check(&headers),
            Verdict::Refused("http://127.0.0.1:9".to_owned())
        );
    }
}
