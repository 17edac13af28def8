//! Exporting spans over OTLP: configured by the standard `OTEL_*`
//! variables, sent as HTTP/protobuf (`POST .../v1/traces`) or gRPC
//! (`TraceService/Export` over HTTP/2, plaintext), in batches, off the
//! path of any run: a destination that is slow or down loses spans
//! (counted), never time.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;

use super::trace::{Span, export_request};

/// Spans waiting to be sent, at most; more are dropped and counted.
pub const QUEUE: usize = 100_000;
/// Spans per request, at most.
const BATCH: usize = 512;
/// How long a batch waits to fill.
const LINGER: Duration = Duration::from_secs(1);
/// Tries of one batch, at most.
const TRIES: u32 = 3;

/// How spans are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`.
    HttpProtobuf,
    /// `grpc`.
    Grpc,
}

/// Where and how to export, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub protocol: Protocol,
    /// The whole URL requests go to (for gRPC, the server's `http://host:port`).
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    /// The resource's attributes: `service.name` first.
    pub resource: Vec<(String, String)>,
}

/// `%XX` escapes decoded (W3C Baggage, as `OTEL_*` lists use).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(n) = u8::from_str_radix(hex, 16)
        {
            out.push(n);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v,k2=v2`, trimmed and decoded; pairs without `=` are left out.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (percent_decoded(k), percent_decoded(v.trim())))
        })
        .collect()
}

impl Config {
    /// The configuration `var` (the environment) gives, `None` when
    /// traces are not asked for: neither `OTEL_EXPORTER_OTLP_ENDPOINT`,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` nor `OTEL_TRACES_EXPORTER=otlp`
    /// is set, or `OTEL_TRACES_EXPORTER=none`, or `OTEL_SDK_DISABLED=true`.
    ///
    /// # Errors
    ///
    /// A value Cairn does not support, said so (with what to use).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let exporter = set("OTEL_TRACES_EXPORTER");
        match exporter.as_deref().map(str::trim) {
            Some("none") => return Ok(None),
            None | Some("otlp") => {}
            Some(other) => {
                return Err(format!(
                    "OTEL_TRACES_EXPORTER={other} is not supported: Cairn exports traces over OTLP (`otlp`) or not at all (`none`)"
                ));
            }
        }
        let signal = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let general = set("OTEL_EXPORTER_OTLP_ENDPOINT");
        if signal.is_none() && general.is_none() && exporter.is_none() {
            return Ok(None);
        }
        let protocol = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
            .map(str::trim)
        {
            None | Some("http/protobuf") => Protocol::HttpProtobuf,
            Some("grpc") => Protocol::Grpc,
            Some(other) => {
                return Err(format!(
                    "OTLP protocol `{other}` is not supported: use `http/protobuf` (the default) or `grpc`"
                ));
            }
        };
        let endpoint = match (signal, general, protocol) {
            (Some(url), _, _) => url.trim().to_owned(),
            (None, Some(url), Protocol::HttpProtobuf) => {
                format!("{}/v1/traces", url.trim().trim_end_matches('/'))
            }
            (None, Some(url), Protocol::Grpc) => url.trim().trim_end_matches('/').to_owned(),
            (None, None, Protocol::HttpProtobuf) => "http://localhost:4318/v1/traces".to_owned(),
            (None, None, Protocol::Grpc) => "http://localhost:4317".to_owned(),
        };
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|_| format!("the OTLP endpoint `{endpoint}` is not a URL"))?;
        match (protocol, uri.scheme_str()) {
            (Protocol::HttpProtobuf, Some("http" | "https")) | (Protocol::Grpc, Some("http")) => {}
            (Protocol::Grpc, Some("https")) => {
                return Err(format!(
                    "gRPC over TLS (`{endpoint}`) is not built yet: use http/protobuf for an https endpoint, or a local collector over http://"
                ));
            }
            _ => {
                return Err(format!(
                    "the OTLP endpoint `{endpoint}` must start with http:// or https://"
                ));
            }
        }
        let mut headers = set("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|h| pairs(&h))
            .unwrap_or_default();
        headers.extend(
            set("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                .map(|h| pairs(&h))
                .unwrap_or_default(),
        );
        let millis = |name: &str| -> Result<Option<u64>, String> {
            set(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("{name}={v} is not a number of milliseconds"))
                })
                .transpose()
        };
        let timeout = millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")?
            .or(millis("OTEL_EXPORTER_OTLP_TIMEOUT")?)
            .unwrap_or(10_000);
        let mut resource: BTreeMap<String, String> = set("OTEL_RESOURCE_ATTRIBUTES")
            .map(|r| pairs(&r).into_iter().collect())
            .unwrap_or_default();
        let name = set("OTEL_SERVICE_NAME")
            .or_else(|| resource.remove("service.name"))
            .unwrap_or_else(|| "cairn".to_owned());
        resource.remove("service.name");
        resource
            .entry("service.version".to_owned())
            .or_insert_with(|| env!("CARGO_PKG_VERSION").to_owned());
        let resource = std::iter::once(("service.name".to_owned(), name))
            .chain(resource)
            .collect();
        Ok(Some(Self {
            protocol,
            endpoint,
            headers,
            timeout: Duration::from_millis(timeout.max(1)),
            resource,
        }))
    }
}

/// The queue the observer puts ended spans in.
pub type Spans = mpsc::Sender<Vec<Span>>;

/// Send what arrives on `spans` to `config`'s endpoint until the queue
/// closes; `lost` is told how many spans could not be delivered.
pub async fn export(
    config: Config,
    mut spans: mpsc::Receiver<Vec<Span>>,
    lost: impl Fn(usize) + Send,
) {
    let mut batch: Vec<Span> = Vec::new();
    loop {
        let more = if batch.is_empty() {
            spans.recv().await
        } else {
            match tokio::time::timeout(LINGER, spans.recv()).await {
                Ok(more) => more,
                Err(_) => Some(Vec::new()),
            }
        };
        let closed = more.is_none();
        batch.extend(more.unwrap_or_default());
        if batch.len() >= BATCH || (!batch.is_empty() && (closed || spans.is_empty())) {
            for chunk in batch.chunks(BATCH) {
                if let Err(why) = send(&config, chunk).await {
                    tracing::warn!(
                        target: "cairn::serve",
                        "OTLP export to {} failed, {} span(s) lost: {why}",
                        config.endpoint,
                        chunk.len()
                    );
                    lost(chunk.len());
                }
            }
            batch.clear();
        }
        if closed {
            return;
        }
    }
}

/// Send one batch, trying again on what is worth it.
async fn send(config: &Config, spans: &[Span]) -> Result<(), String> {
    let body = export_request(spans, &config.resource);
    let mut last = String::new();
    for attempt in 1..=TRIES {
        let result = match config.protocol {
            Protocol::HttpProtobuf => http_protobuf(config, body.clone()).await,
            Protocol::Grpc => grpc(config, &body).await,
        };
        match result {
            Ok(()) => return Ok(()),
            Err((why, retry)) => {
                last = why;
                if !retry {
                    break;
                }
            }
        }
        if attempt < TRIES {
            tokio::time::sleep(Duration::from_millis(500) * attempt).await;
        }
    }
    Err(last)
}

/// `POST` the request; `Err((why, worth trying again))`.
async fn http_protobuf(config: &Config, body: Vec<u8>) -> Result<(), (String, bool)> {
    let mut headers = vec![(
        "content-type".to_owned(),
        "application/x-protobuf".to_owned(),
    )];
    headers.extend(config.headers.iter().cloned());
    match super::send::post(&config.endpoint, &headers, body, config.timeout).await {
        Ok(answer) if (200..300).contains(&answer.status) => Ok(()),
        Ok(answer) => Err((
            format!("HTTP {}", answer.status),
            matches!(answer.status, 429 | 502 | 503 | 504),
        )),
        Err(why) => Err((why, true)),
    }
}

/// One unary gRPC call over HTTP/2 without TLS (prior knowledge).
async fn grpc(config: &Config, message: &[u8]) -> Result<(), (String, bool)> {
    use http_body_util::BodyExt as _;
    let uri: http::Uri = config
        .endpoint
        .parse()
        .map_err(|_| ("not a URL".to_owned(), false))?;
    let authority = uri
        .authority()
        .map(|a| {
            if a.port().is_some() {
                a.as_str().to_owned()
            } else {
                format!("{}:80", a.host())
            }
        })
        .ok_or(("no host".to_owned(), false))?;
    let call = async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| (format!("cannot connect to {authority}: {e}"), true))?;
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| (format!("HTTP/2: {e}"), true))?;
        let connection = tokio::spawn(connection);
        // A gRPC message: no compression, its length (big-endian), itself.
        let mut framed = Vec::with_capacity(message.len() + 5);
        framed.push(0);
        framed.extend_from_slice(
            &u32::try_from(message.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        framed.extend_from_slice(message);
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!(
                "http://{authority}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in &config.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let request = request
            .body(http_body_util::Full::new(bytes::Bytes::from(framed)))
            .map_err(|e| (e.to_string(), false))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| (format!("HTTP/2: {e}"), true))?;
        let head_status = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let http_status = response.status().as_u16();
        // A collector's answer is small; more than this is not read.
        let collected = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| (format!("the answer: {e}"), true))?;
        let trailer_status = collected
            .trailers()
            .and_then(|t| t.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        connection.abort();
        match head_status.or(trailer_status).as_deref() {
            Some("0") => Ok(()),
            // UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, DEADLINE_EXCEEDED.
            Some(code @ ("14" | "8" | "10" | "4")) => Err((format!("gRPC status {code}"), true)),
            Some(code) => Err((format!("gRPC status {code}"), false)),
            None => Err((
                format!("no gRPC status (HTTP {http_status})"),
                http_status >= 500,
            )),
        }
    };
    tokio::time::timeout(config.timeout, call)
        .await
        .map_err(|_| (format!("no answer within {:?}", config.timeout), true))?
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::observe::env_of as env;

    #[test]
    fn the_standard_variables_configure_the_exporter() {
        assert_eq!(Config::from_env(env(&[])).unwrap(), None);
        let c = Config::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer%20abc, x-team = ops",
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=ignored",
            ),
            ("OTEL_SERVICE_NAME", "cairn-prod"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.headers[0], ("authorization".into(), "Bearer abc".into()));
        assert_eq!(c.headers[1], ("x-team".into(), "ops".into()));
        assert_eq!(c.resource[0], ("service.name".into(), "cairn-prod".into()));
        assert!(
            c.resource
                .contains(&("deployment.environment".into(), "prod".into()))
        );
        assert_eq!(c.timeout, Duration::from_secs(10));

        let g = Config::from_env(env(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4317",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (g.protocol, g.endpoint.as_str()),
            (Protocol::Grpc, "http://127.0.0.1:4317")
        );
        assert_eq!(g.timeout, Duration::from_millis(2500));

        let off = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318")];
        for extra in [
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ] {
            assert_eq!(Config::from_env(env(&[off[0], extra])).unwrap(), None);
        }
        for bad in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
        ] {
            assert!(Config::from_env(env(&[off[0], bad])).is_err(), "{bad:?}");
        }
    }
}
