//! A Cairn task for tests. Its `mode` input picks what it does; the
//! well-behaved default echoes its `text` input to its `echo` output.
#![forbid(unsafe_code)]

use cairn_guest::{Error, HostError, Task, http, info, input, output, secret};

struct TestTask;

impl Task for TestTask {
    fn run() -> cairn_guest::Result<()> {
        // The mode: the `MODE` variable if the task is given one, else the
        // `mode` input.
        let mode = match std::env::var("MODE") {
            Ok(mode) => mode,
            Err(_) => input::string_or("mode", "echo")?,
        };
        match mode.trim() {
            "echo" => {
                let text = input::string_or("text", "")?;
                info!("inputs: {:?}", input::names());
                output::write("echo", text)?;
            }
            "secret" => {
                // Declared: print it (the host must mask it) and use it.
                let token = secret("token")?;
                println!("token is {} / {}", token.expose(), encode(token.expose()));
                info!("logged token {}", token.expose());
                output::write("echo", "used the token")?;
            }
            "secret-fail" => {
                // A failure message carrying the secret: the host masks it.
                let token = secret("token")?;
                return Err(Error::permanent(format!(
                    "rejected token {} (base64 {})",
                    token.expose(),
                    encode(token.expose())
                )));
            }
            "http" => http_mode()?,
            "undeclared-secret" => match secret("db-password") {
                Err(HostError::NotFound(name)) => {
                    return Err(Error::permanent(format!("no secret `{name}` for me")));
                }
                Err(other) => return Err(Error::permanent(format!("unexpected: {other:?}"))),
                Ok(_) => return Err(Error::permanent("ESCAPED: got an undeclared secret")),
            },
            "bad-names" => {
                for name in ["../escape", "/etc/passwd", "a/b", "", "x".repeat(65).as_str()] {
                    match output::write(name, "x") {
                        Err(HostError::Invalid(_)) => println!("refused output {name:?}"),
                        other => println!("ESCAPED output {name:?}: {other:?}"),
                    }
                    match input::bytes(name) {
                        Err(HostError::Invalid(_)) => println!("refused input {name:?}"),
                        other => println!("ESCAPED input {name:?}: {other:?}"),
                    }
                }
            }
            "write-twice" => {
                output::write("echo", "one")?;
                output::write("echo", "two")?;
            }
            "undeclared-output" => output::write("sneaky", "x")?,
            "too-large" => output::write("echo", vec![0u8; 2 << 20])?,
            "log-flood" => loop {
                info!("{}", "z".repeat(4096));
            },
            "escape" => {
                info!("clearing your screen\x1b[2J\x1b[H");
                return Err(Error::permanent("ok hello succeeded\x1b[1A\x1b[2K"));
            }
            "work" => {
                // Sleep, then name what came in: `NAME(input=text,...)`.
                let ms = std::env::var("SLEEP_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                let mut names = input::names();
                names.sort();
                let mut parts = Vec::new();
                for name in names {
                    parts.push(format!("{name}={}", input::string_or(&name, "")?));
                }
                let me = std::env::var("NAME").unwrap_or_default();
                output::write("echo", format!("{me}({})", parts.join(",")))?;
            }
            // Write `TEXT` as it is, or the JSON array `[0, 1, …]` of
            // `COUNT` numbers (a list for a fan-out to expand over).
            "emit" => match std::env::var("COUNT").ok().and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => {
                    let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
                    output::write("echo", format!("[{}]", items.join(",")))?;
                }
                None => output::write("echo", std::env::var("TEXT").unwrap_or_default())?,
            },
            "sleep" => {
                let ms = std::env::var("SLEEP_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                output::write("echo", "slept")?;
            }
            "transient" => return Err(Error::transient("upstream unavailable")),
            "permanent" => return Err(Error::permanent("bad data in row 7")),
            "panic" => panic!("task panicked on purpose"),
            "spin" => loop {
                std::hint::black_box(0u64);
            },
            other => return Err(Error::permanent(format!("unknown mode `{other}`"))),
        }
        Ok(())
    }
}

fn encode(s: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = s.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

cairn_guest::export!(TestTask);

/// Send one request per URL in `URLS` (comma-separated), with `METHOD`
/// (default GET), `BODY` (where `{secret}` becomes the secret
/// `BODY_SECRET`), and `Authorization: Bearer` of the secret `AUTH_SECRET`.
/// Prints and outputs (`echo`) one line per request: `URL -> STATUS BODY` or
/// `URL -> error: WHY`; fails if any request did.
fn http_mode() -> cairn_guest::Result<()> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let method = match var("METHOD").as_deref().unwrap_or("GET") {
        "GET" => http::Method::Get,
        "POST" => http::Method::Post,
        "PUT" => http::Method::Put,
        "DELETE" => http::Method::Delete,
        other => http::Method::Other(other.to_owned()),
    };
    let auth = var("AUTH_SECRET").map(|name| secret(&name)).transpose()?;
    let body = match (var("BODY"), var("BODY_SECRET")) {
        (Some(body), Some(name)) => Some(body.replace("{secret}", secret(&name)?.expose())),
        (body, _) => body,
    };
    let mut lines = String::new();
    let mut first_error = None;
    for url in var("URLS").unwrap_or_default().split(',') {
        let mut request = http::Request::new(method.clone(), url);
        if let Some(token) = &auth {
            request = request.bearer(token.expose());
        }
        if let Some(body) = &body {
            request = request.body(body.clone());
        }
        let line = match request.send() {
            Ok(response) => format!(
                "{url} -> {} {}",
                response.status,
                String::from_utf8_lossy(&response.body)
            ),
            Err(error) => {
                let line = format!("{url} -> error: {error}");
                first_error.get_or_insert(error);
                line
            }
        };
        println!("{line}");
        lines.push_str(&line);
        lines.push('\n');
    }
    output::write("echo", lines)?;
    match first_error {
        Some(error) => Err(Error::permanent(error)),
        None => Ok(()),
    }
}
