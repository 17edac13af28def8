//! The web UI on `cairn serve`: sessions, CSRF and the headers over plain
//! HTTP; then the pages in Debian's Chromium, driven by Playwright
//! (`tests/ui/run.mjs`) against the real daemon serving real workflows:
//! a failed run with a retry, a gate to approve, a run to cancel, a data
//! flow policy refuses, a workflow one user may not read, a run of 1,001
//! tasks, a page of the runs list out of many.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::serve::{Daemon, assert_log_verifies, log, raw_request, status, token};
use crate::support::{RULES, Scratch, assert_contains};

/// Who may do what: Alice and Bob everything the service offers; anyone
/// may decide gates (never for their own runs); nobody downloads data
/// labelled `pii`.
const STAFF: &str = r#"
@id("staff") permit (principal, action in [Cairn::Action::"trigger", Cairn::Action::"read_workflow", Cairn::Action::"list_runs", Cairn::Action::"read_run", Cairn::Action::"read_audit", Cairn::Action::"cancel_run", Cairn::Action::"pause_schedule", Cairn::Action::"resume_schedule", Cairn::Action::"read_output"], resource)
when { principal == Cairn::User::"alice" || principal == Cairn::User::"bob" };
@id("people-approve") permit (principal, action == Cairn::Action::"approve", resource);
@id("no-pii-downloads") forbid (principal, action == Cairn::Action::"read_output", resource) when { context.labels.contains("pii") };
"#;

/// Carol reads `pair` only (its policies alone say so).
const CAROL: &str = r#"
@id("carol-reads-pair") permit (principal == Cairn::User::"carol", action in [Cairn::Action::"read_workflow", Cairn::Action::"list_runs"], resource == Cairn::Workflow::"pair");
@id("carol-reads-pair-runs") permit (principal == Cairn::User::"carol", action == Cairn::Action::"read_run", resource) when { context.workflow == "pair" };
"#;

/// Personal data never flows out of `extract`.
const PII: &str = r#"
@id("pii-stays-in") forbid (principal, action == Cairn::Action::"flow", resource) when { principal.labels.contains("pii") };
"#;

fn task(name: &str, env: &str, extra: &str) -> String {
    format!(
        "[tasks.{name}]\ncomponent = {:?}\nenv = {{ {env} }}\ntimeout = \"300s\"\n{extra}\n",
        cairn_tests::TASK
    )
}

/// A workflow folder `name` with its manifest `body` and policies
/// (the tests' rules, the staff's, and `more`).
fn workflow(s: &Scratch, name: &str, body: &str, more: &str) {
    s.mkdir(&format!("{name}/p"));
    s.write(&format!("{name}/p/rules.cedar"), RULES);
    s.write(
        &format!("{name}/p/service.cedar"),
        &format!("{STAFF}{more}"),
    );
    s.write(
        &format!("{name}/p/people.entities.json"),
        r#"[
  { "uid": { "type": "Cairn::User", "id": "alice" }, "attrs": {}, "parents": [] },
  { "uid": { "type": "Cairn::User", "id": "bob" }, "attrs": {}, "parents": [] },
  { "uid": { "type": "Cairn::User", "id": "carol" }, "attrs": {}, "parents": [] }
]"#,
    );
    s.write(
        &format!("{name}/workflow.toml"),
        &format!("[workflow]\nname = \"{name}\"\npolicies = [\"p\"]\n\n{body}"),
    );
}

/// The workflows the pages are tested on, in `s`.
fn workflows(s: &Scratch) {
    workflow(
        s,
        "pair",
        &format!(
            "{}{}{}",
            task("a", "MODE = \"work\", NAME = \"a\"", "outputs = [\"echo\"]"),
            "[tasks.gate]\napproval = { required = 1 }\nneeds = [\"a\"]\n\n",
            task(
                "b",
                "MODE = \"work\", NAME = \"b\"",
                "needs = [\"gate\"]\ninputs = { x = \"a.echo\" }\noutputs = [\"echo\"]"
            ),
        ),
        CAROL,
    );
    workflow(
        s,
        "flaky",
        &format!(
            "{}{}",
            task(
                "load",
                "MODE = \"transient\"",
                "retries = { max = 1, backoff = \"fixed\", initial = \"10ms\", jitter = false }"
            ),
            task(
                "report",
                "MODE = \"work\", NAME = \"report\"",
                "needs = [\"load\"]\noutputs = [\"echo\"]"
            ),
        ),
        "",
    );
    workflow(
        s,
        "slow",
        &task("wait", "MODE = \"sleep\", SLEEP_MS = \"240000\"", ""),
        "",
    );
    workflow(
        s,
        "leaky",
        &format!(
            "{}{}",
            task(
                "extract",
                "MODE = \"work\", NAME = \"extract\"",
                "outputs = { customers = { labels = [\"pii\"] } }"
            ),
            task(
                "publish",
                "MODE = \"work\", NAME = \"publish\"",
                "inputs = { rows = \"extract.customers\" }\noutputs = [\"echo\"]"
            ),
        ),
        PII,
    );
    workflow(
        s,
        "hidden",
        &task(
            "only",
            "MODE = \"work\", NAME = \"only\"",
            "outputs = [\"echo\"]",
        ),
        "",
    );
    workflow(
        s,
        "tiny",
        &format!(
            "[schedules.nightly]\ncron = \"0 3 * * *\"\ntimezone = \"Europe/Paris\"\nas = \"alice\"\n\n{}",
            task(
                "one",
                "MODE = \"work\", NAME = \"one\"",
                "outputs = [\"echo\"]"
            )
        ),
        "",
    );
    workflow(
        s,
        "wide",
        &format!(
            "{}{}",
            task(
                "list",
                "MODE = \"emit\", COUNT = \"1000\"",
                "outputs = [\"echo\"]"
            ),
            task(
                "each",
                "MODE = \"work\", NAME = \"each\"",
                "for_each = \"list.echo\"\ninputs = { item = \"list.echo\" }\noutputs = [\"echo\"]"
            ),
        ),
        "",
    );
}

const SERVED: [&str; 7] = ["pair", "flaky", "slow", "leaky", "hidden", "tiny", "wide"];

fn trigger(d: &Daemon, workflow: &str, who: &str) -> String {
    let (code, started) = d.call(
        "POST",
        &format!("/v1/workflows/{workflow}/runs"),
        Some(who),
        None,
    );
    assert_eq!(code, 201, "{workflow}: {started}\n{}", d.stderr());
    started["run"].as_str().unwrap().to_owned()
}

/// The head of `response` (up to the blank line) and its body.
fn split(response: &str) -> (&str, &str) {
    response.split_once("\r\n\r\n").unwrap_or((response, ""))
}

/// A request from a browser signed in with `cookie`, to the daemon at
/// `addr`, with `extra` headers.
fn browser_request(addr: &str, method: &str, path: &str, cookie: &str, extra: &str) -> String {
    raw_request(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: cairn_session={cookie}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
}

/// Sign in with `token` as a form post from the service's own page: the
/// session cookie's value.
fn sign_in(addr: &str, token: &str) -> String {
    let body = format!("token={token}&next=%2Fui%2Fruns");
    let answer = raw_request(
        addr,
        &format!(
            "POST /ui/sign-in HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let (head, _) = split(&answer);
    assert!(head.starts_with("HTTP/1.1 303"), "{answer}");
    assert_contains(head, "location: /ui/runs");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert_contains(cookie, attribute);
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    assert!(
        !cookie.contains(token),
        "the token itself is never the cookie"
    );
    cookie
        .strip_prefix("cairn_session=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned()
}

/// The CSRF token a page served to session `cookie` carries.
fn csrf_of(addr: &str, cookie: &str) -> String {
    let page = browser_request(addr, "GET", "/ui/runs", cookie, "");
    let (head, body) = split(&page);
    assert!(head.starts_with("HTTP/1.1 200"), "{page}");
    let at = body.find("name=\"cairn-csrf\" content=\"").unwrap() + 27;
    body[at..at + 64].to_owned()
}

#[test]
fn sessions_need_their_csrf_token_and_end_with_their_token() {
    let s = Scratch::new();
    workflows(&s);
    let alice = token(&s, "alice");
    let d = Daemon::serving(&s, &["slow"], &[]);
    let addr = d.addr.clone();

    // Pages without a session go to sign-in, coming back after.
    let page = raw_request(
        &addr,
        &format!("GET /ui/runs/r1 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    assert!(page.starts_with("HTTP/1.1 303"), "{page}");
    assert_contains(&page, "location: /ui/sign-in?next=/ui/runs/r1");
    // A bad token is refused in the page, saying what to do.
    let bad = "token=cairn_000000000000_nope&next=%2Fui%2Fruns";
    let refused = raw_request(
        &addr,
        &format!(
            "POST /ui/sign-in HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{bad}",
            bad.len()
        ),
    );
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert_contains(&refused, "cairn token create");
    assert!(!refused.contains("set-cookie"), "{refused}");
    // Signing in from another site's form is refused.
    let body = format!("token={alice}");
    let forged = raw_request(
        &addr,
        &format!(
            "POST /ui/sign-in HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://evil.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
    assert_contains(&forged, "\"csrf\"");

    let cookie = sign_in(&addr, &alice);
    let page = browser_request(&addr, "GET", "/ui/runs", &cookie, "");
    let (head, body) = split(&page);
    assert_contains(
        head,
        "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'",
    );
    assert_contains(head, "x-frame-options: DENY");
    assert_contains(head, "cache-control: no-store");
    assert!(!body.contains(&alice), "the token never appears in a page");
    assert!(!body.contains(&cookie), "nor the session");
    assert!(
        !body.contains("<script>") && !body.contains("style="),
        "no inline script or style: {body}"
    );
    let csrf = csrf_of(&addr, &cookie);

    // The API answers the session; a run to act on.
    let run = trigger(&d, "slow", &alice);
    let shown = browser_request(&addr, "GET", &format!("/v1/runs/{run}"), &cookie, "");
    assert!(shown.starts_with("HTTP/1.1 200"), "{shown}");
    d.until(&run, &alice, |r| status(r) == "running");
    // Without the CSRF header, with another session's, or from another
    // origin, nothing changes.
    let cancel = format!("/v1/runs/{run}/cancel");
    let origin = format!("Origin: http://{addr}\r\n");
    for (extra, why) in [
        (origin.clone(), "no X-Cairn-CSRF header"),
        (
            format!("{origin}X-Cairn-CSRF: {}\r\n", "0".repeat(64)),
            "not this session's",
        ),
        (
            format!("Origin: https://evil.example\r\nX-Cairn-CSRF: {csrf}\r\n"),
            "evil.example",
        ),
        (format!("X-Cairn-CSRF: {csrf}\r\n"), "neither"),
    ] {
        let answer = browser_request(&addr, "POST", &cancel, &cookie, &extra);
        assert!(answer.starts_with("HTTP/1.1 403"), "{extra}: {answer}");
        assert_contains(&answer, why);
    }
    assert_eq!(
        status(&d.get(&format!("/v1/runs/{run}"), &alice).1),
        "running"
    );
    // With them, it is cancelled, recorded under the token's id.
    let answer = browser_request(
        &addr,
        "POST",
        &cancel,
        &cookie,
        &format!("{origin}X-Cairn-CSRF: {csrf}\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    d.until(&run, &alice, |r| status(r) == "cancelled");
    let id = alice.split('_').nth(1).unwrap();
    let records = log(&s);
    assert!(records.iter().any(|r| r["kind"] == "access"
        && r["action"] == "cancel_run"
        && r["decision"] == "allow"
        && r["token"] == id));

    // Assets: same origin, hashed, revalidated.
    let asset = raw_request(
        &addr,
        &format!("GET /ui/assets/app.js HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    );
    let (head, _) = split(&asset);
    assert_contains(head, "content-type: text/javascript");
    let etag = head.lines().find_map(|l| l.strip_prefix("etag: ")).unwrap();
    let again = raw_request(
        &addr,
        &format!(
            "GET /ui/assets/app.js HTTP/1.1\r\nHost: {addr}\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");

    // Revoking the token ends the session at once.
    let revoked = crate::support::run_in(s.path(), &["token", "revoke", id]);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let after = browser_request(&addr, "GET", &format!("/v1/runs/{run}"), &cookie, "");
    assert!(after.starts_with("HTTP/1.1 401"), "{after}");
    assert_contains(&after, "sign in again");
    let page = browser_request(&addr, "GET", "/ui/runs", &cookie, "");
    assert!(page.starts_with("HTTP/1.1 303"), "{page}");
    let (code, _) = d.term();
    assert_eq!(code, 0);
    assert_log_verifies(&s);
}

#[test]
fn signing_out_ends_the_session_and_reads_are_recorded_once_a_minute() {
    let s = Scratch::new();
    workflows(&s);
    let alice = token(&s, "alice");
    let d = Daemon::serving(&s, &["hidden"], &[]);
    let addr = d.addr.clone();
    let run = trigger(&d, "hidden", &alice);
    d.until(&run, &alice, |r| status(r) == "succeeded");
    let cookie = sign_in(&addr, &alice);
    let reads = || {
        log(&s)
            .iter()
            .filter(|r| r["kind"] == "access" && r["action"] == "read_run")
            .count()
    };
    let before = reads();
    for _ in 0..5 {
        let shown = browser_request(&addr, "GET", &format!("/v1/runs/{run}"), &cookie, "");
        assert!(shown.starts_with("HTTP/1.1 200"), "{shown}");
    }
    // A page polling its run rests on one recorded decision.
    assert_eq!(reads(), before + 1);
    // A bearer token is decided and recorded every time.
    for _ in 0..2 {
        assert_eq!(d.get(&format!("/v1/runs/{run}"), &alice).0, 200);
    }
    assert_eq!(reads(), before + 3);

    let csrf = csrf_of(&addr, &cookie);
    let out = browser_request(
        &addr,
        "POST",
        "/ui/sign-out",
        &cookie,
        &format!("Origin: http://{addr}\r\nX-Cairn-CSRF: {csrf}\r\n"),
    );
    assert!(out.starts_with("HTTP/1.1 204"), "{out}");
    assert_contains(&out, "Max-Age=0");
    let after = browser_request(&addr, "GET", &format!("/v1/runs/{run}"), &cookie, "");
    assert!(after.starts_with("HTTP/1.1 401"), "{after}");
}

#[test]
fn the_run_graph_says_what_ran_what_was_decided_and_the_outputs_download_where_policy_allows() {
    let s = Scratch::new();
    workflows(&s);
    let alice = token(&s, "alice");
    let d = Daemon::serving(&s, &["leaky", "hidden"], &[]);
    // A data flow policy refuses: the deny, its policy, on the edge.
    let run = trigger(&d, "leaky", &alice);
    d.until(&run, &alice, |r| status(r) == "refused");
    let (code, view) = d.get(&format!("/v1/runs/{run}/graph"), &alice);
    assert_eq!(code, 200, "{view}");
    let edge = &view["edges"][0];
    assert_eq!(
        (&edge["from"], &edge["to"], &edge["kind"], &edge["decision"]),
        (
            &json!("extract"),
            &json!("publish"),
            &json!("data"),
            &json!("deny")
        ),
        "{view}"
    );
    assert_eq!(edge["label"], "customers → rows [pii]");
    let denial = &view["decisions"][edge["decisions"][0].as_u64().unwrap() as usize];
    assert_eq!(denial["policies"], json!(["pii-stays-in"]), "{denial}");
    assert_eq!(view["status"], "refused");

    // A run that made an output: its digest, and the download.
    let run = trigger(&d, "hidden", &alice);
    d.until(&run, &alice, |r| status(r) == "succeeded");
    let (_, view) = d.get(&format!("/v1/runs/{run}/graph"), &alice);
    let nodes: BTreeMap<&str, &str> = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(nodes, BTreeMap::from([("only", "succeeded")]));
    let made = &view["outputs"][0];
    assert_eq!(
        (&made["task"], &made["name"]),
        (&json!("only"), &json!("echo"))
    );
    assert_eq!(view["timeline"][0]["outcome"], "success");
    let got = get_bytes(
        &d.addr,
        &format!("/v1/runs/{run}/outputs/only/echo"),
        &alice,
    );
    assert_eq!(
        got.status,
        200,
        "{}: {:?}",
        String::from_utf8_lossy(&got.body),
        log(&s)
            .iter()
            .filter(|r| r["action"] == "read_output")
            .collect::<Vec<_>>()
    );
    assert_eq!(String::from_utf8_lossy(&got.body), "only()");
    assert_eq!(
        cairn::audit::verify::sha256_tag(&got.body),
        made["sha256"].as_str().unwrap()
    );
    // Verify now, on the server, as `cairn audit verify` does.
    let (code, verified) = d.call(
        "POST",
        &format!("/v1/runs/{run}/audit/verify"),
        Some(&alice),
        None,
    );
    assert_eq!(code, 200, "{verified}");
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(verified["decisions"].as_u64().unwrap() > 0);
    // The bundle, as a tar that holds what `cairn audit export` writes.
    let bundle = get_bytes(&d.addr, &format!("/v1/runs/{run}/bundle"), &alice);
    assert_eq!(bundle.status, 200);
    let dir = s.mkdir("unpacked");
    tar_extract(&bundle.body, &dir);
    let root = dir.join(format!("cairn-bundle-{run}"));
    assert!(root.join("SHA256SUMS").is_file());
    let checked = crate::support::run_in(
        s.path(),
        &[
            "audit",
            "verify",
            root.to_str().unwrap(),
            "--key",
            s.path().join(".cairn/keys/audit.pub").to_str().unwrap(),
        ],
    );
    assert_eq!(checked.code, 0, "{}{}", checked.stdout, checked.stderr);
}

/// What `GET path` with `token` answers: its status and body bytes.
struct Got {
    status: u16,
    body: Vec<u8>,
}

fn get_bytes(addr: &str, path: &str, token: &str) -> Got {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap();
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&all[..at]).into_owned();
    assert!(!head.contains("transfer-encoding: chunked"), "{head}");
    let status = head[9..12].parse().unwrap();
    Got {
        status,
        body: all[at + 4..].to_vec(),
    }
}

fn tar_extract(bytes: &[u8], dir: &std::path::Path) {
    let mut child = std::process::Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("tar");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), bytes).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

/// The graph layout's own tests (`node --test`: layers, no overlaps,
/// edges left to right, 1,000 nodes).
#[test]
fn the_graph_layout_passes_its_unit_tests() {
    let Some(tools) = crate::toolchains::browser("the_graph_layout_passes_its_unit_tests") else {
        return;
    };
    let out = std::process::Command::new(&tools.node)
        .arg("--test")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/graph.test.mjs"))
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pages in a real browser (`tests/ui/run.mjs`).
#[test]
fn the_pages_work_in_a_real_browser() {
    let Some(tools) = crate::toolchains::browser("the_pages_work_in_a_real_browser") else {
        return;
    };
    let s = Scratch::new();
    workflows(&s);
    let tokens: BTreeMap<&str, String> = ["alice", "bob", "carol"]
        .into_iter()
        .map(|u| (u, token(&s, u)))
        .collect();
    let alice = tokens["alice"].clone();
    let d = Daemon::serving(&s, &SERVED, &[]);
    // Runs for the pages: many small ones first (the list a page at a
    // time; CAIRN_UI_RUNS=10000 for the measurement), then the ones the
    // scenarios open.
    let many: usize = std::env::var("CAIRN_UI_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(120);
    let mut last = String::new();
    for _ in 0..many {
        last = trigger(&d, "tiny", &alice);
    }
    if !last.is_empty() {
        d.until(&last, &alice, |r| status(r) == "succeeded");
    }
    let mut runs = BTreeMap::new();
    for name in ["hidden", "flaky", "leaky", "pair", "wide", "slow"] {
        runs.insert(name, trigger(&d, name, &alice));
    }
    let wait = |name: &str, done: &str| {
        let r = d.until(&runs[name], &alice, |r| status(r) == done);
        assert_eq!(status(&r), done);
    };
    wait("hidden", "succeeded");
    wait("flaky", "failed");
    wait("leaky", "refused");
    wait("pair", "waiting");
    wait("wide", "succeeded");
    wait("slow", "running");

    let out = std::process::Command::new(&tools.node)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/run.mjs"))
        .env("CAIRN_UI_URL", d.server())
        .env("CAIRN_UI_TOKENS", json!(tokens).to_string())
        .env("CAIRN_UI_RUNS", json!(runs).to_string())
        .env("CAIRN_UI_NODE_MODULES", &tools.node_modules)
        .env("CAIRN_CHROMIUM", &tools.chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The figures (`figure: …` lines) show with `--nocapture`.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser tests failed:\n{stdout}\n{stderr}\n--- cairn serve:\n{}",
        d.stderr()
    );
    // What the browser did is what the log says, and the log holds.
    d.until(&runs["pair"], &alice, |r| status(r) == "succeeded");
    d.until(&runs["slow"], &alice, |r| status(r) == "cancelled");
    let records = log(&s);
    let bob = tokens["bob"].split('_').nth(1).unwrap().to_owned();
    assert!(records.iter().any(|r| r["kind"] == "approval"
        && r["approver"] == "bob"
        && r["counted"] == true
        && r["run"] == Value::String(runs["pair"].clone())));
    assert!(records.iter().any(|r| r["kind"] == "access"
        && r["token"] == Value::String(bob.clone())
        && r["action"] == "read_run"));
    let carol = tokens["carol"].split('_').nth(1).unwrap().to_owned();
    assert!(
        records.iter().any(|r| r["kind"] == "access"
            && r["token"] == Value::String(carol.clone())
            && r["workflow"] == "hidden"
            && r["decision"] == "deny"),
        "carol's look at the hidden workflow is a recorded denial"
    );
    let (code, _) = d.term();
    assert_eq!(code, 0);
    assert_log_verifies(&s);
}
