//! A tiny blocking HTTP/1.1 server: one thread per connection, one request
//! per connection (`Connection: close`), bodies by `Content-Length` only.
//!
//! Enough to stand in for a deployment API in the CI/CD example and to give
//! Cairn's tests a real server on 127.0.0.1; not for anything else.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

/// Largest request head or body accepted, in bytes.
const MAX: usize = 16 * 1024 * 1024;

/// A request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lowercase, values as text.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (lowercase).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    #[must_use]
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// The value of query parameter `name`, if present.
    #[must_use]
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with this status and body.
    #[must_use]
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// With one more header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Handles one request.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serve `listener` forever, each connection on its own thread.
pub fn serve(listener: &TcpListener, handler: &Handler) {
    for stream in listener.incoming().flatten() {
        let handler = Arc::clone(handler);
        std::thread::spawn(move || {
            if let Err(error) = answer(stream, &handler) {
                eprintln!("deploy-api: {error}");
            }
        });
    }
}

fn answer(stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let response = match read_request(&mut reader) {
        Ok(request) => handler(&request),
        Err(error) => Response::new(400, format!("bad request: {error}\n")),
    };
    write_response(stream, &response)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Read one request from `reader`.
///
/// # Errors
///
/// When the connection fails or the request is malformed or too large.
pub fn read_request(reader: &mut impl BufRead) -> std::io::Result<Request> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(invalid("no request line"));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = Vec::new();
    let mut head = line.len();
    loop {
        line.clear();
        head += reader.read_line(&mut line)?;
        if head > MAX {
            return Err(invalid("request head too large"));
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if length > MAX {
        return Err(invalid("request body too large"));
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

fn write_response(mut stream: TcpStream, response: &Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        201 => "Created",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        response.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

/// The stand-in deployment API (see `main.rs` for its routes).
#[derive(Debug)]
pub struct DeployApi {
    token: String,
    fail: bool,
    deployments: std::sync::Mutex<Vec<String>>,
}

impl DeployApi {
    /// An API that accepts `Bearer TOKEN`, and fails every deployment when
    /// `fail` is set.
    #[must_use]
    pub fn new(token: String, fail: bool) -> Self {
        Self {
            token,
            fail,
            deployments: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Answer one request.
    #[must_use]
    pub fn handle(&self, request: &Request) -> Response {
        let expected = format!("Bearer {}", self.token);
        if request.header("authorization") != Some(expected.as_str()) {
            return json(401, r#"{"error":"a valid bearer token is required"}"#);
        }
        let parts: Vec<&str> = request.path().split('/').collect();
        let (Some(target), Some(what)) = (parts.get(2), parts.get(3)) else {
            return json(404, r#"{"error":"no such endpoint"}"#);
        };
        if parts.len() != 4 || parts.get(1) != Some(&"v1") {
            return json(404, r#"{"error":"no such endpoint"}"#);
        }
        let mut deployments = self
            .deployments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (request.method.as_str(), *what) {
            ("POST", "deployments") if self.fail => json(
                500,
                &format!(r#"{{"error":"deployment to {target} failed its health check"}}"#),
            ),
            ("POST", "deployments") => {
                let body = String::from_utf8_lossy(&request.body).into_owned();
                deployments.push(body.clone());
                json(
                    201,
                    &format!(
                        r#"{{"id":{},"target":"{target}","status":"live","request":{body}}}"#,
                        deployments.len()
                    ),
                )
            }
            ("POST", "rollbacks") => json(
                200,
                &format!(r#"{{"target":"{target}","status":"rolled back"}}"#),
            ),
            ("GET", "deployments") => json(200, &format!("[{}]", deployments.join(","))),
            _ => json(404, r#"{"error":"no such endpoint"}"#),
        }
    }
}

fn json(status: u16, body: &str) -> Response {
    Response::new(status, body).header("content-type", "application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_request() {
        let raw = b"POST /v1/deployments?env=staging HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nAuthorization: Bearer t\r\n\r\nbody";
        let request = read_request(&mut &raw[..]).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path(), "/v1/deployments");
        assert_eq!(request.query("env"), Some("staging"));
        assert_eq!(request.header("authorization"), Some("Bearer t"));
        assert_eq!(request.body, b"body");
    }
}
