//! Outgoing HTTP for tasks (`wasi:http/outgoing-handler`), one request at a
//! time through the host.
//!
//! A guest's request never leaves the sandbox on its own say-so. Each one is
//! checked, in this order, before a byte goes out: its endpoint (`host:port`)
//! must be declared in the task's `network`; the task must not have used up
//! its request budget; and the [`Gate`](super::Gate), if any, must allow it
//! (Cedar's `connect`, with method, host, port and path). Then the body is
//! read (bounded), secret placeholders are replaced for the hosts policy
//! allows for each secret, the request is sent with a time limit, and the
//! response is read whole (bounded), with injected secret values masked out
//! of it, before the guest sees any of it. Every request, allowed or not, ends
//! as an [`Exchange`]: kept in the attempt and handed to the caller's sink as
//! it happens. Redirects are not followed here: a redirect is a response, and
//! the next hop is a new request checked like any other.
//!
//! There is no other network: `wasi:sockets` is linked but refuses every
//! socket and lookup.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderValue};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::GateRequest;
use crate::name::Name;
use crate::secrets::{Redactor, SecretValue, contains, replace_all};

/// A network endpoint a task may reach: a host name or IPv4 address, and a
/// port. Host names compare case-insensitively (they are kept lowercase).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Host name or address, lowercase.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Why a string is not an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a network endpoint: write `host:port`, e.g. `api.example.com:443`")]
pub struct InvalidEndpoint(pub String);

impl FromStr for Endpoint {
    type Err = InvalidEndpoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidEndpoint(s.chars().take(100).collect());
        let (host, port) = s.rsplit_once(':').ok_or_else(invalid)?;
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        // Digits only: Rust's parser would take `+80`.
        let port = Some(port)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p != 0)
            .ok_or_else(invalid)?;
        if !host_ok {
            return Err(invalid());
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// An outgoing request as policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `GET`, `POST`...
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// Where the request goes.
    pub endpoint: Endpoint,
    /// The path, without the query (`/deploy`).
    pub path: String,
    /// The query, without `?` (may be empty).
    pub query: String,
}

impl fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}://{}{}",
            self.method, self.scheme, self.endpoint, self.path
        )
    }
}

/// A secret the host writes into a task's requests in place of its
/// placeholder: in headers always, in the body only when `body` is set.
#[derive(Debug, Clone)]
pub struct Injection {
    /// The value, which the guest never sees.
    pub value: SecretValue,
    /// Also replace the placeholder in request bodies.
    pub body: bool,
}

/// One request a task made, allowed or not, as it is recorded. Never holds
/// header values or bodies; known secret values are masked in the path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exchange {
    pub method: String,
    pub scheme: String,
    pub host: String,
    pub port: u16,
    /// Path and query, secrets masked.
    pub path: String,
    /// Whether the request was sent.
    pub allowed: bool,
    /// Why it was not sent, or why it failed.
    pub reason: Option<String>,
    /// The response status, when one arrived.
    pub status: Option<u16>,
    /// Request body bytes sent.
    pub sent: u64,
    /// Response body bytes received.
    pub received: u64,
    /// Secrets written into the request by the host.
    pub injected: Vec<String>,
    /// Secrets whose placeholder was sent as is: policy does not allow
    /// them for this request.
    pub withheld: Vec<String>,
    /// From the guest's call to the response's last byte.
    #[serde(serialize_with = "millis")]
    pub duration: Duration,
}

impl Exchange {
    /// A request not (yet) sent, with nothing known of its outcome.
    fn unsent(method: &str, scheme: &str, host: &str, port: u16, path: String) -> Self {
        Self {
            method: method.to_owned(),
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
            path,
            allowed: false,
            reason: None,
            status: None,
            sent: 0,
            received: 0,
            injected: Vec::new(),
            withheld: Vec::new(),
            duration: Duration::ZERO,
        }
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Receives each [`Exchange`] as it ends.
pub type ExchangeSink = Arc<dyn Fn(&Exchange) + Send + Sync>;

/// Bounds on a task's HTTP use, per attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Requests per attempt (denied ones count too).
    pub requests: u32,
    /// Bytes in one request body.
    pub request_bytes: u64,
    /// Bytes in one response body.
    pub response_bytes: u64,
    /// From sending a request to its response's last byte.
    pub timeout: Duration,
}

/// The `wasi:http` hooks of one attempt: the only way out of its sandbox.
pub(crate) struct Egress(Arc<Shared>);

/// What every request of an attempt is checked and rewritten with.
pub(crate) struct Shared {
    network: Vec<Endpoint>,
    /// Secret name → its placeholder and injection.
    placeholders: BTreeMap<Name, (String, Injection)>,
    gate: Option<Arc<dyn super::Gate>>,
    limits: HttpLimits,
    /// Masks secrets the task read, in recorded paths.
    redactor: Arc<Redactor>,
    /// Masks injectable secrets in responses.
    responses: Redactor,
    count: AtomicU32,
    exchanges: Mutex<Vec<Exchange>>,
    denials: Mutex<Vec<String>>,
    sink: Option<ExchangeSink>,
}

/// The setup of an attempt's egress.
pub(crate) struct EgressPlan {
    pub(crate) network: Vec<Endpoint>,
    pub(crate) placeholders: BTreeMap<Name, (String, Injection)>,
    pub(crate) gate: Option<Arc<dyn super::Gate>>,
    pub(crate) limits: HttpLimits,
    pub(crate) redactor: Arc<Redactor>,
    pub(crate) sink: Option<ExchangeSink>,
}

impl Egress {
    pub(crate) fn new(plan: EgressPlan) -> Self {
        let responses = Redactor::new(plan.placeholders.values().map(|(_, i)| &i.value));
        Self(Arc::new(Shared {
            network: plan.network,
            placeholders: plan.placeholders,
            gate: plan.gate,
            limits: plan.limits,
            redactor: plan.redactor,
            responses,
            count: AtomicU32::new(0),
            exchanges: Mutex::new(Vec::new()),
            denials: Mutex::new(Vec::new()),
            sink: plan.sink,
        }))
    }

    /// The requests made so far and the refusals among them, taken.
    pub(crate) fn take(&self) -> (Vec<Exchange>, Vec<String>) {
        let exchanges = std::mem::take(
            &mut *self
                .0
                .exchanges
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let denials = std::mem::take(
            &mut *self
                .0
                .denials
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        (exchanges, denials)
    }
}

/// A placeholder for secret `name`: recognisable, and unique to the attempt.
pub(crate) fn placeholder(name: &Name) -> String {
    let mut nonce = [0u8; 12];
    // Without randomness the placeholder is still unique enough to find;
    // it was never secret.
    let _ = getrandom::fill(&mut nonce);
    let hex: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    format!("cairn-secret-{name}-{hex}")
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ),
    HttpError,
>;

impl WasiHttpHooks for Egress {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let shared = Arc::clone(&self.0);
        Box::new(async move { shared.exchange(request, options).await })
    }
}

/// Why a request did not complete; the error the guest gets with it.
struct Refusal {
    reason: String,
    error: HttpError,
    /// Whether the request was sent before it failed.
    sent: bool,
}

impl Refusal {
    fn denied(reason: String) -> Self {
        Self {
            reason,
            error: HttpError::HttpRequestDenied,
            sent: false,
        }
    }
}

impl Shared {
    async fn exchange(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> Sent {
        let started = Instant::now();
        // Every request counts, refused ones too, since each is recorded.
        // Past the budget, only the first is recorded: a guest looping on
        // refused requests cannot flood the audit log.
        let number = self.count.fetch_add(1, Ordering::Relaxed);
        if number > self.limits.requests {
            return Err(HttpError::HttpRequestDenied);
        }
        let over_budget = number == self.limits.requests;
        let (mut parts, body) = request.into_parts();
        let target = match target(&parts) {
            // Policy decides on, and the audit log records, the path with
            // the secrets the task read masked: the same text.
            Ok(mut target) => {
                target.path = self.redactor.mask_str(&target.path);
                target.query = self.redactor.mask_str(&target.query);
                target
            }
            Err(reason) => {
                // Recorded with what can be told of it.
                let uri = &parts.uri;
                let mut exchange = Exchange::unsent(
                    parts.method.as_str(),
                    uri.scheme_str().unwrap_or_default(),
                    uri.host().unwrap_or_default(),
                    uri.port_u16().unwrap_or(0),
                    self.redactor.mask_str(&uri.to_string()),
                );
                exchange.reason = Some(reason);
                exchange.duration = started.elapsed();
                self.push_denial(format!(
                    "request {} denied: {}",
                    exchange.path,
                    exchange.reason.as_deref().unwrap_or_default()
                ));
                self.finish(exchange);
                return Err(HttpError::HttpRequestUriInvalid);
            }
        };
        let mut exchange = Exchange::unsent(
            &target.method,
            &target.scheme,
            &target.endpoint.host,
            target.endpoint.port,
            self.redactor.mask_str(
                parts
                    .uri
                    .path_and_query()
                    .map_or("/", http::uri::PathAndQuery::as_str),
            ),
        );
        let result = self
            .send(
                &target,
                &mut parts,
                body,
                options,
                &mut exchange,
                over_budget,
            )
            .await;
        exchange.duration = started.elapsed();
        match result {
            Ok(response) => {
                self.finish(exchange);
                Ok((response, Box::new(async { Ok(()) })))
            }
            Err(refusal) => {
                exchange.allowed = refusal.sent;
                if !refusal.sent {
                    self.push_denial(format!(
                        "request {} denied: {}",
                        exchange_target(&exchange),
                        refusal.reason
                    ));
                }
                exchange.reason = Some(refusal.reason);
                self.finish(exchange);
                Err(refusal.error)
            }
        }
    }

    async fn send(
        &self,
        target: &HttpTarget,
        parts: &mut http::request::Parts,
        body: WasiBody,
        options: Option<RequestOptions>,
        exchange: &mut Exchange,
        over_budget: bool,
    ) -> Result<http::Response<WasiBody>, Refusal> {
        if over_budget {
            return Err(Refusal::denied(format!(
                "the task may make at most {} requests per attempt",
                self.limits.requests
            )));
        }
        if ambiguous(&target.path) {
            return Err(Refusal::denied(format!(
                "the path `{}` has dot segments, backslashes or encoded `.`, `/` or `\\`, \
                 which a server may resolve to another path than policy sees",
                target.path
            )));
        }
        if !self.network.contains(&target.endpoint) {
            let declared = if self.network.is_empty() {
                "the task declares no `network`".to_owned()
            } else {
                let list: Vec<String> = self.network.iter().map(ToString::to_string).collect();
                format!("the task's `network` is [{}]", list.join(", "))
            };
            return Err(Refusal::denied(format!(
                "`{}` is not declared in the task's `network` ({declared})",
                target.endpoint
            )));
        }
        self.check(GateRequest::Connect(target.clone()))
            .await
            .map_err(|why| Refusal::denied(format!("denied by policy: {why}")))?;

        let mut body = read_body(body, self.limits.request_bytes)
            .await
            .map_err(|e| Refusal {
                reason: e.to_string(),
                error: e.into_error(HttpError::HttpRequestBodySize(Some(
                    self.limits.request_bytes,
                ))),
                sent: false,
            })?;
        self.inject(target, parts, &mut body, exchange).await;
        self.propagate(target, parts).await;
        exchange.sent = body.len() as u64;
        exchange.allowed = true;

        let uri = format!(
            "{}://{}{}",
            target.scheme,
            target.endpoint,
            parts
                .uri
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str)
        );
        parts.uri = uri.parse().map_err(|_| Refusal {
            reason: "the request's URL is invalid".to_owned(),
            error: HttpError::HttpRequestUriInvalid,
            sent: false,
        })?;
        parts.headers.remove(CONTENT_LENGTH);
        if !body.is_empty() || !matches!(target.method.as_str(), "GET" | "HEAD" | "DELETE") {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let request = http::Request::from_parts(parts.clone(), full(body));
        // The host's limit bounds the whole exchange; shorter timeouts the
        // guest asked for apply within it.
        let limit = self.limits.timeout;
        let options = options.unwrap_or_default();
        let timed_out = |_| Refusal {
            reason: format!("no complete response within {limit:?}"),
            error: HttpError::HttpResponseTimeout,
            sent: true,
        };
        let (response, body) = tokio::time::timeout(limit, self.receive(request, options))
            .await
            .map_err(timed_out)??;
        exchange.status = Some(response.status().as_u16());
        exchange.received = body.len() as u64;
        let (mut head, ()) = response.into_parts();
        // What an allowed host sends back must not hand the guest a value
        // it was given only as a placeholder.
        let body = self.responses.mask(&body);
        for value in head.headers.values_mut() {
            let masked = self.responses.mask(value.as_bytes());
            if masked != value.as_bytes()
                && let Ok(masked) = HeaderValue::from_bytes(&masked)
            {
                *value = masked;
            }
        }
        head.headers.remove(CONTENT_LENGTH);
        head.headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        Ok(http::Response::from_parts(head, full(body)))
    }

    /// Send `request` and read its whole response, bounded.
    async fn receive(
        &self,
        request: http::Request<WasiBody>,
        options: RequestOptions,
    ) -> Result<(http::Response<()>, Vec<u8>), Refusal> {
        let failed = |e: HttpError| Refusal {
            reason: format!("the request failed: {e}"),
            error: e,
            sent: true,
        };
        let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options))
            .await
            .map_err(failed)?;
        // The connection's I/O runs beside the body read; dropped with it.
        let io = AbortOnDrop(tokio::spawn(io));
        let (head, body) = response.into_parts();
        let limit = self.limits.response_bytes;
        let body = read_body(body.boxed_unsync(), limit)
            .await
            .map_err(|e| Refusal {
                reason: e.to_string(),
                error: e.into_error(HttpError::HttpResponseBodySize(Some(limit))),
                sent: true,
            })?;
        drop(io);
        Ok((http::Response::from_parts(head, ()), body))
    }

    /// Replace each placeholder in the request with its secret where policy
    /// allows that secret for this request; elsewhere the placeholder goes
    /// out as it is.
    async fn inject(
        &self,
        target: &HttpTarget,
        parts: &mut http::request::Parts,
        body: &mut Vec<u8>,
        exchange: &mut Exchange,
    ) {
        for (name, (placeholder, injection)) in &self.placeholders {
            let needle = placeholder.as_bytes();
            let in_headers = parts
                .headers
                .values()
                .any(|v| contains(v.as_bytes(), needle));
            let in_body = injection.body && contains(body, needle);
            if !in_headers && !in_body {
                continue;
            }
            let request = GateRequest::InjectSecret {
                name: name.to_string(),
                target: target.clone(),
            };
            if self.check(request).await.is_err() {
                exchange.withheld.push(name.to_string());
                continue;
            }
            let value = injection.value.expose().as_bytes();
            for header in parts.headers.values_mut() {
                if contains(header.as_bytes(), needle)
                    && let Ok(replaced) =
                        HeaderValue::from_bytes(&replace_all(header.as_bytes(), needle, value))
                {
                    let mut replaced = replaced;
                    replaced.set_sensitive(true);
                    *header = replaced;
                }
            }
            if in_body {
                *body = replace_all(body, needle, value);
            }
            exchange.injected.push(name.to_string());
        }
    }

    /// Add the attempt's trace context (`traceparent`) to the request where
    /// policy allows it for this request, in place of any the task set.
    async fn propagate(&self, target: &HttpTarget, parts: &mut http::request::Parts) {
        let Some(context) = self.gate.as_ref().and_then(|g| g.trace_context()) else {
            return;
        };
        let Ok(value) = HeaderValue::from_str(&context) else {
            return;
        };
        if self
            .check(GateRequest::PropagateTrace(target.clone()))
            .await
            .is_ok()
        {
            parts.headers.insert("traceparent", value);
        }
    }

    /// Ask the gate, if any, on a blocking thread (Cedar may recurse deeply).
    async fn check(&self, request: GateRequest) -> Result<(), String> {
        let Some(gate) = self.gate.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || gate.check(&request))
            .await
            .unwrap_or_else(|e| Err(format!("the policy check failed: {e}")))
    }

    fn push_denial(&self, message: String) {
        self.denials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
    }

    fn finish(&self, exchange: Exchange) {
        if let Some(sink) = &self.sink {
            sink(&exchange);
        }
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(exchange);
    }
}

fn exchange_target(e: &Exchange) -> String {
    format!(
        "{} {}://{}:{}{}",
        e.method, e.scheme, e.host, e.port, e.path
    )
}

/// Aborts a spawned task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The request's target, as the connection will be made: scheme, host and
/// port from its URL (default ports filled in), method, path and query.
fn target(parts: &http::request::Parts) -> Result<HttpTarget, String> {
    let uri = &parts.uri;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        Some(other) => return Err(format!("scheme `{other}` is not supported (http, https)")),
        None => return Err("the URL has no scheme".to_owned()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| "the URL has no host".to_owned())?;
    if authority.as_str().contains('@') {
        return Err("user names and passwords in URLs are not supported".to_owned());
    }
    let host = authority.host();
    if host.is_empty() || host.starts_with('[') {
        return Err("the host must be a name or an IPv4 address".to_owned());
    }
    let port = authority
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let endpoint: Endpoint = format!("{host}:{port}")
        .parse()
        .map_err(|e: InvalidEndpoint| e.to_string())?;
    Ok(HttpTarget {
        method: parts.method.as_str().to_owned(),
        scheme: scheme.to_owned(),
        endpoint,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
    })
}

/// Whether a server could read `path` as another path than it is: `.` or
/// `..` segments, backslashes, or `.`, `/`, `\` percent-encoded.
fn ambiguous(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.contains('\\')
        || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e))
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// Why a body could not be read.
enum BodyError {
    TooLarge(u64),
    Failed(HttpError),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(limit) => write!(f, "the body is larger than {limit} bytes"),
            Self::Failed(e) => write!(f, "the body could not be read: {e}"),
        }
    }
}

impl BodyError {
    fn into_error(self, too_large: HttpError) -> HttpError {
        match self {
            Self::TooLarge(_) => too_large,
            Self::Failed(e) => e,
        }
    }
}

fn full(bytes: Vec<u8>) -> WasiBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A whole body, refusing more than `limit` bytes.
async fn read_body(mut body: WasiBody, limit: u64) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Failed)?;
        if let Ok(data) = frame.into_data() {
            if (bytes.len() as u64).saturating_add(data.len() as u64) > limit {
                return Err(BodyError::TooLarge(limit));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_normalize() {
        let e: Endpoint = "API.Example.com:443".parse().unwrap();
        assert_eq!(e.to_string(), "api.example.com:443");
        for bad in [
            "example.com",
            ":80",
            "a:0",
            "a:70000",
            "a b:80",
            "user@h:80",
            "[::1]:80",
            "a:+80",
            "a:",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }

    fn parts(uri: &str) -> http::request::Parts {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri(uri)
            .body(())
            .unwrap()
            .into_parts();
        parts
    }

    #[test]
    fn targets_fill_default_ports_and_split_the_query() {
        let t = target(&parts("https://Api.Example.com/v1/deploy?env=staging")).unwrap();
        assert_eq!(t.endpoint.to_string(), "api.example.com:443");
        assert_eq!(t.path, "/v1/deploy");
        assert_eq!(t.query, "env=staging");
        assert_eq!(t.method, "POST");
        let t = target(&parts("http://127.0.0.1/")).unwrap();
        assert_eq!(t.endpoint.port, 80);
        assert!(target(&parts("http://user:pw@127.0.0.1:80/")).is_err());
        assert!(target(&parts("ftp://127.0.0.1/")).is_err());
        for path in [
            "/v1/staging/../production/deploy",
            "/v1/staging/%2e%2e/production",
            "/v1/staging/%2E%2E/production",
            "/v1/staging%2fx",
            "/v1/./x",
            "/v1/staging/..",
            "/v1\\x",
        ] {
            assert!(ambiguous(path), "{path}");
        }
        assert!(!ambiguous("/v1/a.b/c..d/"));
    }
}
