//! One HTTP(S) POST to a destination outside the process (a notification
//! endpoint; later OTLP and OpenLineage over HTTP), with wasmtime-wasi-
//! http's client, already in the tree for tasks: rustls with the webpki
//! roots. Bounded on every side: a time limit over the whole exchange and
//! a cap on the answer read; never a redirect followed.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;

/// Bytes of an answer read, at most (the rest is not waited for).
const ANSWER_BYTES: usize = 64 * 1024;

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The start of the body, for a message.
    pub body: Vec<u8>,
}

/// POST `body` to `url` (`http(s)://host:port/path`) with `headers`,
/// within `limit`.
///
/// # Errors
///
/// Why no answer came: the connection, TLS, or the time limit.
pub async fn post(
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
    limit: Duration,
) -> Result<Answer, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    let host = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| format!("`{url}` has no host"))?;
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(uri)
        .header(http::header::HOST, host)
        .header(http::header::CONTENT_LENGTH, body.len());
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let body = http_body_util::Full::new(Bytes::from(body))
        .map_err(|never: std::convert::Infallible| match never {});
    let request = request
        .body(body)
        .map_err(|e| format!("cannot make the request: {e}"))?;
    let options = wasmtime_wasi_http::RequestOptions {
        connect_timeout: Some(limit),
        first_byte_timeout: Some(limit),
        between_bytes_timeout: Some(limit),
    };
    let exchange = async {
        let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options))
            .await
            .map_err(|e| e.to_string())?;
        let io = tokio::spawn(io);
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut read = Vec::new();
        while read.len() < ANSWER_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        read.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) | None => break,
            }
        }
        read.truncate(ANSWER_BYTES);
        io.abort();
        Ok(Answer { status, body: read })
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| format!("no answer within {} s", limit.as_secs()))?
}
