//! The web UI, `/ui/`: sign-in, the page shell and its assets, on the
//! API's listener (ARCHITECTURE.md, "The web UI").
//!
//! The UI is another client of the API: its pages are one HTML shell and
//! ES modules (`host/ui/`, embedded here) that fetch `/v1` JSON with the
//! session cookie, so every page and action is the API's own Cedar
//! decision, recorded the same way. This module owns what a browser adds:
//! sessions ([`super::session`]), the CSRF and origin checks on every
//! state-changing request ([`guard`]), and the headers every response
//! carries (a Content-Security-Policy that allows no inline script or
//! style and nothing from another origin). It never puts a token, a
//! secret or a session's value into a page.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sha2::{Digest as _, Sha256};

use super::api::{ApiError, App};
use super::session::{COOKIE, CSRF_HEADER};

/// What every response says about how it may be used.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The UI's files: name, media type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css", include_str!("../../ui/app.css")),
    ("graph.css", "text/css", include_str!("../../ui/graph.css")),
    ("app.js", "text/javascript", include_str!("../../ui/app.js")),
    (
        "graph.js",
        "text/javascript",
        include_str!("../../ui/graph.js"),
    ),
    (
        "runs.js",
        "text/javascript",
        include_str!("../../ui/runs.js"),
    ),
    ("run.js", "text/javascript", include_str!("../../ui/run.js")),
    (
        "schedules.js",
        "text/javascript",
        include_str!("../../ui/schedules.js"),
    ),
    (
        "audit.js",
        "text/javascript",
        include_str!("../../ui/audit.js"),
    ),
];

/// Each asset's ETag (its SHA-256), computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| {
                format!(
                    "\"{}\"",
                    crate::audit::log::hex(&Sha256::digest(body.as_bytes()))
                )
            })
            .collect()
    })
}

/// The API's routes and the UI's, behind [`guard`].
pub fn router(app: Arc<App>) -> Router {
    let ui = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/runs") }))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/{*page}", get(page))
        .with_state(Arc::clone(&app));
    super::api::router(Arc::clone(&app))
        .merge(ui)
        .layer(axum::middleware::from_fn_with_state(app, guard))
}

/// The session cookie's value in `headers`, if any.
#[must_use]
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| super::session::cookie(v, COOKIE))
        .filter(|v| !v.is_empty())
}

/// The origin the service's pages come from: `--public-url`'s, else the
/// one the request names (`http://` and its `Host`).
fn own_origin(app: &App, headers: &HeaderMap) -> Option<String> {
    if app.public_origin {
        return Some(app.base_url.clone());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    Some(format!("http://{host}"))
}

/// Whether a request comes from the service's own pages: its `Origin` is
/// the service's, or (a browser that sends none, or `null`)
/// `Sec-Fetch-Site`, which no script can set, says `same-origin`.
fn same_origin(app: &App, headers: &HeaderMap) -> Result<(), String> {
    let expected = own_origin(app, headers).unwrap_or_default();
    match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        Some(Ok(origin)) if !expected.is_empty() && origin == expected => Ok(()),
        // A browser sends `null` for a form of a page that asks for no
        // referrer; what it says of the site then decides.
        Some(origin) if origin.as_ref().ok() != Some(&"null") => Err(format!(
            "it comes from {}, not from this service's own pages ({expected})",
            origin.unwrap_or("an unreadable origin")
        )),
        _ => match headers.get("sec-fetch-site").map(HeaderValue::to_str) {
            Some(Ok("same-origin")) => Ok(()),
            _ => Err("it says neither where it comes from (Origin) nor that it is same-origin (Sec-Fetch-Site)".to_owned()),
        },
    }
}

fn csrf_refused(why: &str) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf",
        format!(
            "refused: {why}. A request with a session cookie that changes anything must come from the service's own pages with their X-Cairn-CSRF header; scripts and the CLI use `Authorization: Bearer` instead"
        ),
    )
    .into_response()
}

/// Before every request: a state-changing one with a session cookie (and
/// no token) must come from the service's own origin and carry the
/// session's CSRF token; signing in must come from the service's origin.
/// After: the headers every response carries.
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let path = request.uri().path();
    let headers = request.headers();
    if !safe && !path.starts_with("/v1/hooks/") && headers.get(header::AUTHORIZATION).is_none() {
        let session = session_cookie(headers);
        let signing_in = path == "/ui/sign-in";
        if (session.is_some() || signing_in)
            && let Err(why) = same_origin(&app, headers)
        {
            return with_headers(csrf_refused(&why));
        }
        if let Some(session) = session.filter(|_| !signing_in) {
            let presented = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !app.sessions.csrf_matches(session, presented) {
                return with_headers(csrf_refused(if presented.is_empty() {
                    "it has no X-Cairn-CSRF header"
                } else {
                    "its X-Cairn-CSRF header is not this session's"
                }));
            }
        }
    }
    with_headers(next.run(request).await)
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(at) = ASSETS.iter().position(|(name, _, _)| *name == file) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such file of the web UI",
        )
        .into_response();
    };
    let (Some((_, kind, body)), Some(etag)) = (ASSETS.get(at), etags().get(at)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, "no-cache".to_owned()),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        cache,
        [(header::CONTENT_TYPE, format!("{kind}; charset=utf-8"))],
        *body,
    )
        .into_response()
}

/// `text` with `& < > " '` escaped, for HTML text and attribute values.
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` percent-encoded for a query value.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where to go after signing in: a UI page, never another site.
fn next_page(next: Option<&str>) -> &str {
    next.filter(|n| {
        n.starts_with("/ui/")
            && !n.contains("//")
            && !n.contains('\\')
            && !n.chars().any(char::is_control)
    })
    .unwrap_or("/ui/runs")
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn document(title: &str, head: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{} · Cairn</title>\n<link rel=\"icon\" href=\"data:,\">\n<link rel=\"stylesheet\" href=\"/ui/assets/app.css\">\n{head}</head>\n<body>\n{body}\n</body>\n</html>\n",
        escape(title)
    )
}

#[derive(Debug, serde::Deserialize)]
struct SignInQuery {
    next: Option<String>,
}

async fn sign_in_page(Query(query): Query<SignInQuery>) -> Response {
    html(
        StatusCode::OK,
        sign_in_form(next_page(query.next.as_deref()), None),
    )
}

fn sign_in_form(next: &str, problem: Option<&str>) -> String {
    let problem = problem.map_or_else(String::new, |p| {
        format!(
            "<p class=\"problem\" role=\"alert\" id=\"problem\">{}</p>\n",
            escape(p)
        )
    });
    let described = if problem.is_empty() {
        "token-help"
    } else {
        "problem token-help"
    };
    document(
        "Sign in",
        "",
        &format!(
            "<main id=\"main\" class=\"sign-in\">\n<h1><span class=\"brand\" aria-hidden=\"true\">▲</span> Cairn</h1>\n<form method=\"post\" action=\"/ui/sign-in\">\n<h2>Sign in</h2>\n{problem}<label for=\"token\">API token</label>\n<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\" required aria-describedby=\"{described}\" autofocus>\n<p id=\"token-help\" class=\"help\">A token from <code>cairn token create --user NAME</code>. You see and do what the workflows' policies let its user see and do; every page you open is decided and recorded in the audit log.</p>\n<input type=\"hidden\" name=\"next\" value=\"{}\">\n<button type=\"submit\">Sign in</button>\n</form>\n</main>",
            escape(next)
        ),
    )
}

#[derive(Debug, serde::Deserialize)]
struct SignIn {
    token: String,
    next: Option<String>,
}

/// Signing in: the token checked as the API checks it, then a session
/// cookie (never the token) and on to the page asked for.
async fn sign_in(
    State(app): State<Arc<App>>,
    form: Result<axum::Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return html(
            StatusCode::BAD_REQUEST,
            sign_in_form("/ui/runs", Some("The form was not sent whole; try again.")),
        );
    };
    let next = next_page(form.next.as_deref()).to_owned();
    let caller = match app.token_caller(&form.token) {
        Ok(caller) => caller,
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            return html(
                StatusCode::UNAUTHORIZED,
                sign_in_form(
                    &next,
                    Some(&format!(
                        "Not signed in: {} Ask for a token, or make one with `cairn token create --user NAME`.",
                        e.message()
                    )),
                ),
            );
        }
        Err(e) => return e.into_response(),
    };
    let session = match app.sessions.start(&caller.token, &caller.user) {
        Ok(session) => session,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let secure = if app.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        super::session::MAX_AGE.as_secs()
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Signing out (CSRF-checked by [`guard`]): the session ends and the
/// cookie is cleared.
async fn sign_out(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(session) = session_cookie(&headers) {
        app.sessions.end(session);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cairn_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

/// A page: the shell its module fills from the API, for a signed-in
/// browser; else the sign-in form, coming back here after.
async fn page(
    State(app): State<Arc<App>>,
    Path(page): Path<String>,
    headers: HeaderMap,
) -> Response {
    let here = format!("/ui/{page}");
    let caller = session_cookie(&headers).map(|s| (s, app.session_caller(s)));
    let Some((session, Ok(caller))) = caller else {
        return Redirect::to(&format!("/ui/sign-in?next={}", encode(&here))).into_response();
    };
    let head = format!(
        "<meta name=\"cairn-csrf\" content=\"{}\">\n<meta name=\"cairn-user\" content=\"{}\">\n<link rel=\"stylesheet\" href=\"/ui/assets/graph.css\">\n<script type=\"module\" src=\"/ui/assets/app.js\"></script>\n",
        app.sessions.csrf(session),
        escape(&caller.user)
    );
    let body = format!(
        "<a class=\"skip\" href=\"#main\">Skip to content</a>\n<header class=\"top\">\n<a class=\"home\" href=\"/ui/runs\"><span class=\"brand\" aria-hidden=\"true\">▲</span> Cairn</a>\n<nav aria-label=\"Main\">\n<ul>\n<li><a href=\"/ui/runs\" data-nav=\"runs\">Runs</a></li>\n<li><a href=\"/ui/schedules\" data-nav=\"schedules\">Schedules</a></li>\n<li><a href=\"/ui/audit\" data-nav=\"audit\">Audit</a></li>\n</ul>\n</nav>\n<div class=\"who\"><span>Signed in as <strong>{}</strong></span> <button type=\"button\" id=\"sign-out\" class=\"quiet\">Sign out</button></div>\n</header>\n<main id=\"main\" tabindex=\"-1\"><p class=\"loading\">Loading…</p></main>\n<noscript><p class=\"problem\">These pages need JavaScript; <code>cairn runs --server URL</code> shows the same from a terminal.</p></noscript>",
        escape(&caller.user)
    );
    html(StatusCode::OK, document("Cairn", &head, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ui_pages_are_gone_to_after_signing_in() {
        assert_eq!(next_page(Some("/ui/runs/r1")), "/ui/runs/r1");
        for bad in [
            "https://evil.example",
            "//evil.example/ui/",
            "/ui//evil",
            "/v1/runs",
            "/ui/\\evil",
        ] {
            assert_eq!(next_page(Some(bad)), "/ui/runs", "{bad}");
        }
        assert_eq!(next_page(None), "/ui/runs");
    }

    #[test]
    fn text_in_pages_is_escaped() {
        assert_eq!(
            escape("<img src=x onerror='a'>&\""),
            "&lt;img src=x onerror=&#39;a&#39;&gt;&amp;&quot;"
        );
        assert_eq!(encode("/ui/runs/a b?c"), "/ui/runs/a%20b%3Fc");
    }
}
