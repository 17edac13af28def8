//! A stand-in deployment API for the CI/CD example.
//!
//! ```text
//! DEPLOY_API_TOKEN=... deploy-api [--port 8787] [--fail-deploys]
//! ```
//!
//! `POST /v1/TARGET/deployments` deploys (201), `POST /v1/TARGET/rollbacks`
//! rolls back (200), `GET /v1/TARGET/deployments` lists; every call needs
//! `Authorization: Bearer $DEPLOY_API_TOKEN`. With `--fail-deploys`, every
//! deployment fails (500), so the workflow's rollback path runs. Each call
//! is printed on stdout; the token never is.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use deploy_api::{Handler, Request, Response};

fn main() {
    let mut port = 8787u16;
    let mut fail = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => exit("--port needs a port number"),
            },
            "--fail-deploys" => fail = true,
            "-h" | "--help" => {
                println!(
                    "usage: DEPLOY_API_TOKEN=TOKEN deploy-api [--port PORT] [--fail-deploys]"
                );
                return;
            }
            other => exit(&format!("unknown argument `{other}` (see --help)")),
        }
    }
    let Ok(token) = std::env::var("DEPLOY_API_TOKEN") else {
        exit("set DEPLOY_API_TOKEN to the token callers must present");
    };
    let listener = TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| exit(&format!("cannot listen on 127.0.0.1:{port}: {e}")));
    println!("deploy-api listening on http://127.0.0.1:{port}");
    let api = Api {
        token,
        fail,
        deployments: Mutex::new(Vec::new()),
    };
    let handler: Handler = Arc::new(move |request: &Request| {
        let response = api.handle(request);
        println!(
            "deploy-api: {} {} -> {}",
            request.method, request.target, response.status
        );
        response
    });
    deploy_api::serve(&listener, &handler);
}

fn exit(message: &str) -> ! {
    eprintln!("deploy-api: {message}");
    std::process::exit(2)
}

struct Api {
    token: String,
    fail: bool,
    deployments: Mutex<Vec<String>>,
}

impl Api {
    fn handle(&self, request: &Request) -> Response {
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
