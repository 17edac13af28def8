//! A small client of the service's API, for `cairn trigger` and
//! `cairn runs --server`: one HTTP/1.1 request per connection, JSON in
//! and out, with time limits. Plain `http://` only: put a TLS-terminating
//! proxy's clear side, or an SSH tunnel, on the other end.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a whole request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer read.
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not a server address like http://127.0.0.1:8080")]
    Url(String),
    #[error(
        "`{0}`: this client speaks plain http:// only; reach an https:// service through its proxy's or a tunnel's http:// side"
    )]
    Https(String),
    #[error("cannot reach {addr}: {message}; is `cairn serve` running there?")]
    Connect { addr: String, message: String },
    #[error("{addr}: {message}")]
    Http { addr: String, message: String },
    #[error("{addr} did not answer within {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout { addr: String },
}

/// An answer: its status and its body (JSON, or the body as a string).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The error message of an error answer, `{"error": {"message"}}`.
    #[must_use]
    pub fn message(&self) -> String {
        self.body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(|| self.body.to_string(), ToOwned::to_owned)
    }
}

/// `METHOD server + path`, with `token` as a bearer token and `body` as JSON.
///
/// # Errors
///
/// When no answer came; an error status is an answer.
pub async fn request(
    method: &str,
    server: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, ClientError> {
    let server = server.trim_end_matches('/');
    let authority = match server.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() && !rest.contains('/') => rest,
        Some(("https", _)) => return Err(ClientError::Https(server.to_owned())),
        _ => return Err(ClientError::Url(server.to_owned())),
    };
    let addr = authority.to_owned();
    tokio::time::timeout(REQUEST_TIMEOUT, send(method, &addr, path, token, body))
        .await
        .unwrap_or(Err(ClientError::Timeout { addr }))
}

async fn send(
    method: &str,
    addr: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, ClientError> {
    let connect = |message: String| ClientError::Connect {
        addr: addr.to_owned(),
        message,
    };
    let http = |message: String| ClientError::Http {
        addr: addr.to_owned(),
        message,
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| connect("timed out".to_owned()))?
        .map_err(|e| connect(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| http(e.to_string()))?;
    let driving = tokio::spawn(connection);
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr)
        .header(hyper::header::ACCEPT, "application/json");
    if body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    if let Some(token) = token {
        builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = builder
        .body(Full::new(bytes::Bytes::from(bytes)))
        .map_err(|e| http(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http(e.to_string()))?;
    let status = response.status().as_u16();
    let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER);
    let collected = limited
        .collect()
        .await
        .map_err(|e| http(e.to_string()))?
        .to_bytes();
    driving.abort();
    let body = serde_json::from_slice(&collected)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&collected).into_owned()));
    Ok(Answer { status, body })
}
