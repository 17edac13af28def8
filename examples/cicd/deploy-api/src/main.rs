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
use std::sync::Arc;

use deploy_api::{DeployApi, Handler, Request};

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
                println!("usage: DEPLOY_API_TOKEN=TOKEN deploy-api [--port PORT] [--fail-deploys]");
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
    let api = DeployApi::new(token, fail);
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
