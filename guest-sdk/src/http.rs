//! Outgoing HTTP: a small blocking client over `wasi:http`.
//!
//! ```no_run
//! # fn main() -> cairn_guest::Result<()> {
//! use cairn_guest::{http, secret};
//!
//! // With `inject = { deploy_token = "headers" }` the task gets a
//! // placeholder, and the host writes the real token into the header, only
//! // for requests policy allows it in.
//! let token = secret("deploy_token")?;
//! let response = http::post("http://127.0.0.1:8787/deploy")
//!     .bearer(token.expose())
//!     .json(r#"{"version":"1.4.2"}"#)
//!     .send()?
//!     .error_for_status()?;
//! println!("{}", response.text()?);
//! # Ok(())
//! # }
//! ```
//!
//! A task reaches only the endpoints (`host:port`) its workflow declares in
//! `network`, and each request is put to policy (`connect`) as it is sent:
//! a refusal is [`HttpError::Denied`], and the run's audit log says which
//! rule decided. Redirects are followed (at most 5 by default), each hop a
//! new request the host checks like the first. Bodies are read whole; the
//! host bounds their size and the time of each request.

use core::fmt;
use std::time::Duration;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasip2::io::streams::StreamError;

/// An HTTP method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    /// Any other method, by name.
    Other(String),
}

impl Method {
    fn as_wasi(&self) -> WasiMethod {
        match self {
            Self::Get => WasiMethod::Get,
            Self::Head => WasiMethod::Head,
            Self::Post => WasiMethod::Post,
            Self::Put => WasiMethod::Put,
            Self::Patch => WasiMethod::Patch,
            Self::Delete => WasiMethod::Delete,
            Self::Options => WasiMethod::Options,
            Self::Other(name) => WasiMethod::Other(name.clone()),
        }
    }
}

/// Why a request did not produce a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The host refused to send it: the endpoint is not declared in the
    /// task's `network`, policy denies it, or the task used up its request
    /// budget. The text names the request; the audit log says why.
    Denied(String),
    /// The URL cannot be sent (not `http(s)://host[:port]/...`).
    InvalidUrl(String),
    /// More redirects than allowed; the text is the last location.
    TooManyRedirects(String),
    /// The response arrived but with a status that is not a success
    /// ([`Response::error_for_status`]).
    Status { status: u16, url: String },
    /// Sending or receiving failed (connection refused, timeout, body too
    /// large...): the host's error code.
    Failed { url: String, reason: String },
}

impl HttpError {
    /// Whether trying again later may succeed (connection problems,
    /// timeouts, 5xx and 429 statuses).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Failed { reason, .. } => {
                reason.contains("timeout")
                    || reason.contains("Timeout")
                    || reason.contains("ConnectionRefused")
                    || reason.contains("ConnectionTerminated")
            }
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(what) => write!(
                f,
                "request {what} denied by the host (not declared in `network`, or denied by \
                 policy; the run's audit log says which)"
            ),
            Self::InvalidUrl(url) => write!(f, "`{url}` is not an http(s) URL"),
            Self::TooManyRedirects(url) => write!(f, "too many redirects, the last to {url}"),
            Self::Status { status, url } => write!(f, "{url} answered {status}"),
            Self::Failed { url, reason } => write!(f, "request to {url} failed: {reason}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// A request to build and [`send`](Request::send).
#[derive(Debug, Clone)]
#[must_use = "a request does nothing until it is sent"]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    redirects: u8,
    timeout: Option<Duration>,
}

/// A `GET` request.
pub fn get(url: &str) -> Request {
    Request::new(Method::Get, url)
}

/// A `POST` request.
pub fn post(url: &str) -> Request {
    Request::new(Method::Post, url)
}

/// A `PUT` request.
pub fn put(url: &str) -> Request {
    Request::new(Method::Put, url)
}

/// A `DELETE` request.
pub fn delete(url: &str) -> Request {
    Request::new(Method::Delete, url)
}

impl Request {
    /// A request with this method to this URL.
    pub fn new(method: Method, url: &str) -> Self {
        Self {
            method,
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            redirects: 5,
            timeout: None,
        }
    }

    /// Add a header (names are case-insensitive; repeat for several values).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// `Authorization: Bearer TOKEN`. With an injected secret, pass its
    /// placeholder: the host writes the value in.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// The request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// A JSON body, with `Content-Type: application/json`.
    pub fn json(self, json: impl Into<String>) -> Self {
        self.header("content-type", "application/json")
            .body(json.into().into_bytes())
    }

    /// Follow at most `n` redirects (0: return redirects as responses).
    pub fn max_redirects(mut self, n: u8) -> Self {
        self.redirects = n;
        self
    }

    /// Ask for a shorter time limit than the host's (it never grants longer).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Send the request and read the whole response, following redirects.
    ///
    /// # Errors
    ///
    /// [`HttpError`]: denied by the host, an invalid URL, too many
    /// redirects, or a failure to send or receive.
    pub fn send(self) -> Result<Response, HttpError> {
        let mut request = self;
        let mut hops = 0u8;
        loop {
            let response = request.send_once()?;
            let location = response
                .header("location")
                .filter(|_| matches!(response.status, 301 | 302 | 303 | 307 | 308));
            let Some(location) = location else {
                return Ok(response);
            };
            if request.redirects == 0 {
                return Ok(response);
            }
            if hops >= request.redirects {
                return Err(HttpError::TooManyRedirects(location.to_owned()));
            }
            hops += 1;
            let next = resolve(&request.url, location);
            // 303, and 301/302 after a POST, turn into a GET without a body,
            // as browsers and most clients do.
            if response.status == 303
                || (matches!(response.status, 301 | 302) && request.method == Method::Post)
            {
                request.method = Method::Get;
                request.body.clear();
                request
                    .headers
                    .retain(|(n, _)| n != "content-type" && n != "content-length");
            }
            // Credentials do not follow a redirect to another endpoint.
            if authority_of(&next) != authority_of(&request.url) {
                request
                    .headers
                    .retain(|(n, _)| n != "authorization" && n != "cookie");
            }
            request.url = next;
        }
    }

    fn send_once(&self) -> Result<Response, HttpError> {
        let url = Url::parse(&self.url).ok_or_else(|| HttpError::InvalidUrl(self.url.clone()))?;
        let failed = |reason: String| HttpError::Failed {
            url: self.url.clone(),
            reason,
        };
        let entries: Vec<(String, Vec<u8>)> = self.headers.clone();
        let headers =
            Fields::from_list(&entries).map_err(|e| failed(format!("invalid header: {e:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let invalid = |_| HttpError::InvalidUrl(self.url.clone());
        outgoing
            .set_method(&self.method.as_wasi())
            .map_err(invalid)?;
        outgoing
            .set_scheme(Some(&if url.https {
                Scheme::Https
            } else {
                Scheme::Http
            }))
            .map_err(invalid)?;
        outgoing
            .set_authority(Some(url.authority))
            .map_err(invalid)?;
        outgoing
            .set_path_with_query(Some(url.path_and_query))
            .map_err(invalid)?;
        let body = outgoing
            .body()
            .map_err(|()| failed("the request body is unavailable".into()))?;
        let options = self.timeout.map(|t| {
            let options = RequestOptions::new();
            let nanos = u64::try_from(t.as_nanos()).unwrap_or(u64::MAX);
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let future =
            outgoing_handler::handle(outgoing, options).map_err(|code| self.error(&code))?;
        // The host reads the body while we write it; if it refused the
        // request, writing fails and the response says why.
        let written = write_body(&body, &self.body);
        let finished = OutgoingBody::finish(body, None);
        let incoming = loop {
            if let Some(result) = future.get() {
                break result
                    .map_err(|()| failed("the response was already taken".into()))?
                    .map_err(|code| self.error(&code))?;
            }
            future.subscribe().block();
        };
        written.map_err(failed)?;
        finished.map_err(|code| self.error(&code))?;

        let status = incoming.status();
        let headers = incoming
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        let body = incoming
            .consume()
            .map_err(|()| failed("the response body is unavailable".into()))?;
        let bytes = read_body(&body).map_err(failed)?;
        let _trailers = IncomingBody::finish(body);
        drop(incoming);
        Ok(Response {
            status,
            headers,
            body: bytes,
            url: self.url.clone(),
        })
    }

    fn error(&self, code: &ErrorCode) -> HttpError {
        match code {
            ErrorCode::HttpRequestDenied => {
                HttpError::Denied(format!("{} {}", method_name(&self.method), self.url))
            }
            ErrorCode::HttpRequestUriInvalid => HttpError::InvalidUrl(self.url.clone()),
            other => HttpError::Failed {
                url: self.url.clone(),
                reason: format!("{other:?}"),
            },
        }
    }
}

fn method_name(method: &Method) -> &str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Patch => "PATCH",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other(name) => name,
    }
}

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    let stream = body
        .write()
        .map_err(|()| "the request body stream is unavailable".to_owned())?;
    for chunk in bytes.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| format!("cannot write the request body: {e:?}"))?;
    }
    Ok(())
}

fn read_body(body: &IncomingBody) -> Result<Vec<u8>, String> {
    let stream = body
        .stream()
        .map_err(|()| "the response body stream is unavailable".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("cannot read the response: {}", e.to_debug_string()));
            }
        }
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercase, in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// The URL that answered (after redirects).
    pub url: String,
}

impl Response {
    /// Whether the status is 2xx.
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive), if it is text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| core::str::from_utf8(v).ok())
    }

    /// The body as UTF-8 text.
    ///
    /// # Errors
    ///
    /// When the body is not valid UTF-8.
    pub fn text(&self) -> Result<&str, core::str::Utf8Error> {
        core::str::from_utf8(&self.body)
    }

    /// The response, or [`HttpError::Status`] if its status is not 2xx.
    ///
    /// # Errors
    ///
    /// [`HttpError::Status`] for any status outside 200-299.
    pub fn error_for_status(self) -> Result<Self, HttpError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(HttpError::Status {
                status: self.status,
                url: self.url,
            })
        }
    }
}

/// The parts of an `http(s)` URL a request needs.
struct Url<'a> {
    https: bool,
    authority: &'a str,
    path_and_query: &'a str,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Option<Self> {
        let (https, rest) = if let Some(rest) = strip_prefix_ci(url, "https://") {
            (true, rest)
        } else {
            (false, strip_prefix_ci(url, "http://")?)
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let tail = tail.split('#').next().unwrap_or_default();
        if authority.is_empty() {
            return None;
        }
        let path_and_query = if tail.is_empty() { "/" } else { tail };
        Some(Self {
            https,
            authority,
            path_and_query,
        })
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

fn authority_of(url: &str) -> Option<String> {
    Url::parse(url).map(|u| u.authority.to_ascii_lowercase())
}

/// Where a `Location` points, from the URL that answered.
fn resolve(base: &str, location: &str) -> String {
    if Url::parse(location).is_some() {
        return location.to_owned();
    }
    let Some(url) = Url::parse(base) else {
        return location.to_owned();
    };
    let scheme = if url.https { "https" } else { "http" };
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{}{location}", url.authority);
    }
    let dir = url
        .path_and_query
        .split('?')
        .next()
        .and_then(|p| p.rsplit_once('/'))
        .map_or("", |(dir, _)| dir);
    format!("{scheme}://{}{dir}/{location}", url.authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = Url::parse("HTTPS://api.example.com:8443/v1/x?y=1#frag").unwrap();
        assert!(u.https);
        assert_eq!(u.authority, "api.example.com:8443");
        assert_eq!(u.path_and_query, "/v1/x?y=1");
        let u = Url::parse("http://h").unwrap();
        assert_eq!(u.path_and_query, "/");
        assert!(Url::parse("ftp://h/").is_none());
        assert!(Url::parse("http:///x").is_none());
    }

    #[test]
    fn resolves_locations() {
        let base = "http://a:1/x/y?q";
        assert_eq!(resolve(base, "http://b:2/z"), "http://b:2/z");
        assert_eq!(resolve(base, "/z"), "http://a:1/z");
        assert_eq!(resolve(base, "//b:2/z"), "http://b:2/z");
        assert_eq!(resolve(base, "z"), "http://a:1/x/z");
    }
}
