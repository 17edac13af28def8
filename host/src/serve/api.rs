//! The HTTP API, `/v1`: JSON in and out.
//!
//! Every request but `/v1/health` and `/v1/openapi.json` is authenticated
//! by an API token (`Authorization: Bearer cairn_…`): the principal is
//! the token's user, never anything the request says. Then it is one
//! Cedar action on a workflow or run, decided by that workflow's policies
//! and recorded (`access`, with the token's id) before it takes effect
//! ([`App::decide`]). Errors are `{"error": {"code", "message"}}` with
//! distinct statuses: 400 bad input, 401 no valid token, 403 denied (or
//! nothing there: the two look the same), 409 a run not active, 413 a body
//! too large, 422 a run that cannot start, 503 shutting down. Never
//! touches the log or the state but through `decide` and [`Runs`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};

use super::catalog::{Catalog, Served};
use super::runs::{GateError, Phase, Runs, StartError, Trigger};
use super::scheduler::Scheduler;
use super::tokens;
use crate::audit::record::{Event, Record};
use crate::policy::service::Asked;
use crate::runner::approval::{Ask, AskError, Verdict};
use crate::state::{RunRow, State as RunState};

/// The OpenAPI document, as served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The largest request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

/// The routes, as `METHOD /path` (the OpenAPI document lists the same).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/health"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/workflows"),
    ("GET", "/v1/workflows/{workflow}"),
    ("POST", "/v1/workflows/{workflow}/runs"),
    ("GET", "/v1/workflows/{workflow}/schedules"),
    (
        "POST",
        "/v1/workflows/{workflow}/schedules/{schedule}/pause",
    ),
    (
        "POST",
        "/v1/workflows/{workflow}/schedules/{schedule}/resume",
    ),
    ("POST", "/v1/workflows/{workflow}/backfills"),
    ("GET", "/v1/workflows/{workflow}/backfills"),
    ("GET", "/v1/workflows/{workflow}/backfills/{backfill}"),
    (
        "POST",
        "/v1/workflows/{workflow}/backfills/{backfill}/cancel",
    ),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{run}"),
    ("GET", "/v1/runs/{run}/logs"),
    ("GET", "/v1/runs/{run}/graph"),
    ("GET", "/v1/runs/{run}/audit"),
    ("POST", "/v1/runs/{run}/audit/verify"),
    ("GET", "/v1/runs/{run}/bundle"),
    ("GET", "/v1/runs/{run}/outputs/{task}/{output}"),
    ("POST", "/v1/runs/{run}/cancel"),
    ("POST", "/v1/runs/{run}/tasks/{task}/approve"),
    ("POST", "/v1/runs/{run}/tasks/{task}/reject"),
    ("POST", "/v1/hooks/{workflow}/{webhook}"),
];

/// What every request handler shares.
#[derive(Debug)]
pub struct App {
    /// The workflows served.
    pub catalog: Arc<Mutex<Catalog>>,
    /// The runs.
    pub runs: Arc<Runs>,
    /// The schedules.
    pub scheduler: Arc<Scheduler>,
    /// The webhooks' deliveries.
    pub hooks: super::hooks::Hooks,
    /// The backfills.
    pub backfills: Arc<super::backfill::Backfills>,
    /// A connection of its own to the run state, for reading (tokens,
    /// runs) without waiting for the runs' writes.
    pub reader: Mutex<RunState>,
    /// Where the service is reached, for the URLs it hands out.
    pub base_url: String,
    /// Whether `base_url` is the `--public-url` (the only origin the web
    /// UI's actions are accepted from), not the address listened on.
    pub public_origin: bool,
    /// The web UI's sessions.
    pub sessions: super::session::Sessions,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What it says.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// Denied, or nothing there: the same answer, so a denial tells
    /// nothing about what exists.
    pub(crate) fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "not allowed: no policy permits this, or there is nothing here",
        )
    }

    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!("{message}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service could not do this; its log says why",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub(crate) type Answer = Result<Response, ApiError>;

/// Who made a request: the token's user and id, and the web session it
/// came in, if it did.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
    pub token: String,
    pub session: Option<String>,
}

impl App {
    /// The caller of a request with `headers`: from its token, or from
    /// its web session (`cairn_session` cookie) and the token that rests
    /// on, checked again now.
    pub(crate) fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let unauthenticated =
            |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message);
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            if let Some(session) = super::ui::session_cookie(headers) {
                return self.session_caller(session);
            }
            return Err(unauthenticated(
                "no token: send `Authorization: Bearer cairn_…` (`cairn token create` makes one)",
            ));
        };
        let presented = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer <token>`"))?;
        self.token_caller(presented)
    }

    /// The caller a token `presented` (as sent, or typed into the web
    /// UI's sign-in form) stands for.
    pub(crate) fn token_caller(&self, presented: &str) -> Result<Caller, ApiError> {
        let unauthenticated =
            |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message);
        let reader = lock(&self.reader);
        match tokens::authenticate(&reader, presented, SystemTime::now()) {
            Ok(row) => Ok(Caller {
                user: row.user,
                token: row.id,
                session: None,
            }),
            Err(
                e @ (tokens::TokenError::Malformed
                | tokens::TokenError::Unknown
                | tokens::TokenError::Revoked
                | tokens::TokenError::Expired),
            ) => Err(unauthenticated(&format!(
                "{e}; `cairn token create` makes a new one"
            ))),
            Err(other) => Err(ApiError::internal(other)),
        }
    }

    /// The caller of web session `session`, if it is live and its token
    /// still valid (else the session ends).
    pub(crate) fn session_caller(&self, session: &str) -> Result<Caller, ApiError> {
        let ended = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "no session: it ended (signed out, idle 12 h, 7 days old, the service restarted, or its token was revoked or expired); sign in again at /ui/sign-in",
            )
        };
        let found = self.sessions.find(session).ok_or_else(ended)?;
        let valid = tokens::still_valid(&lock(&self.reader), &found.token, SystemTime::now());
        match valid {
            Ok(row) if row.user == found.user => Ok(Caller {
                user: found.user,
                token: found.token,
                session: Some(session.to_owned()),
            }),
            Ok(_)
            | Err(
                tokens::TokenError::Unknown
                | tokens::TokenError::Revoked
                | tokens::TokenError::Expired,
            ) => {
                self.sessions.end(session);
                Err(ended())
            }
            Err(other) => Err(ApiError::internal(other)),
        }
    }

    /// Decide whether `caller` may do `asked` on `served`, and record the
    /// decision (synced) before anything else happens; the `access`
    /// record's number when allowed, 403 when not.
    ///
    /// In a web session, an allowed read (of a workflow, its runs, a run,
    /// its records) rests on its record for [`REUSE_READS`]: a page that
    /// polls is not recorded anew every few seconds. Denials, and every
    /// action, are decided each time.
    ///
    /// [`REUSE_READS`]: super::session::REUSE_READS
    pub(crate) fn decide(
        &self,
        caller: &Caller,
        served: &Served,
        asked: Asked<'_>,
    ) -> Result<u64, ApiError> {
        let reused = caller.session.as_deref().filter(|_| {
            matches!(
                asked,
                Asked::ReadWorkflow
                    | Asked::ListRuns
                    | Asked::ReadRun { .. }
                    | Asked::ReadAudit { .. }
            )
        });
        let key = reused.map(|_| format!("{} {} {asked:?}", served.name, served.policy_set));
        if let (Some(session), Some(key)) = (reused, &key)
            && let Some(record) = self.sessions.allowed_read(session, key)
        {
            return Ok(record);
        }
        let decided = self.decide_now(caller, served, asked);
        if let (Some(session), Some(key), Ok(record)) = (reused, key, &decided) {
            self.sessions.remember_read(session, key, *record);
        }
        decided
    }

    fn decide_now(
        &self,
        caller: &Caller,
        served: &Served,
        asked: Asked<'_>,
    ) -> Result<u64, ApiError> {
        let (seq, allowed) = super::decide_recorded(
            self.runs.state(),
            served,
            &caller.user,
            &caller.token,
            asked,
        )
        .map_err(ApiError::internal)?;
        if allowed {
            Ok(seq)
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub(crate) fn served(&self, name: &str) -> Option<Arc<Served>> {
        lock(&self.catalog).get(name)
    }

    /// Run `id`, as recorded or active, with the workflow it belongs to.
    pub(crate) fn run(&self, id: &str) -> Result<(RunRow, Arc<Served>), ApiError> {
        let row = lock(&self.reader).run(id).map_err(ApiError::internal)?;
        let row = match row {
            Some(row) => row,
            None => {
                // Queued, or so new its row is not committed yet.
                let active = self
                    .runs
                    .active()
                    .into_iter()
                    .find(|a| a.id == id)
                    .ok_or_else(ApiError::forbidden)?;
                RunRow {
                    id: active.id,
                    workflow: active.workflow,
                    manifest: String::new(),
                    manifest_sha256: String::new(),
                    policy_set: String::new(),
                    user: active.user,
                    status: "queued".to_owned(),
                    started: String::new(),
                    duration_ms: None,
                }
            }
        };
        let served = self.served(&row.workflow).ok_or_else(ApiError::forbidden)?;
        Ok((row, served))
    }

    fn run_json(&self, row: &RunRow) -> Value {
        let status = match self.runs.phase(&row.id) {
            Some(Phase::Queued) => "queued",
            Some(Phase::Running) => "running",
            None => row.status.as_str(),
        };
        json!({
            "id": row.id,
            "workflow": row.workflow,
            "user": row.user,
            "trigger": self.runs.via(&row.id),
            "status": status,
            "started": row.started,
            "duration_ms": row.duration_ms,
            "url": format!("{}/v1/runs/{}", self.base_url, row.id),
        })
    }
}

/// The router over `app`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/workflows", get(workflows))
        .route("/v1/workflows/{workflow}", get(workflow))
        .route("/v1/workflows/{workflow}/runs", post(trigger))
        .route("/v1/workflows/{workflow}/schedules", get(schedules))
        .route(
            "/v1/workflows/{workflow}/schedules/{schedule}/pause",
            post(pause),
        )
        .route(
            "/v1/workflows/{workflow}/schedules/{schedule}/resume",
            post(resume),
        )
        .route(
            "/v1/workflows/{workflow}/backfills",
            post(backfill).get(backfills),
        )
        .route(
            "/v1/workflows/{workflow}/backfills/{backfill}",
            get(backfill_shown),
        )
        .route(
            "/v1/workflows/{workflow}/backfills/{backfill}/cancel",
            post(backfill_cancel),
        )
        .route("/v1/runs", get(runs))
        .route("/v1/runs/{run}", get(run))
        .route("/v1/runs/{run}/logs", get(logs))
        .route("/v1/runs/{run}/graph", get(graph))
        .route("/v1/runs/{run}/audit", get(audit))
        .route("/v1/runs/{run}/audit/verify", post(verify))
        .route("/v1/runs/{run}/bundle", get(bundle))
        .route("/v1/runs/{run}/outputs/{task}/{output}", get(output))
        .route("/v1/runs/{run}/cancel", post(cancel))
        .route("/v1/runs/{run}/tasks/{task}/approve", post(approve))
        .route("/v1/runs/{run}/tasks/{task}/reject", post(reject))
        .route("/v1/hooks/{workflow}/{webhook}", post(hook))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; GET /v1/openapi.json lists them",
    )
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let draining = app.runs.draining();
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        axum::Json(json!({
            "status": if draining { "draining" } else { "ok" },
            "cairn": env!("CARGO_PKG_VERSION"),
        })),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

fn ok(status: StatusCode, body: Value) -> Answer {
    Ok((status, axum::Json(body)).into_response())
}

async fn workflows(State(app): State<Arc<App>>, headers: HeaderMap) -> Answer {
    let caller = app.caller(&headers)?;
    let served: Vec<Arc<Served>> = lock(&app.catalog).all().cloned().collect();
    let mut shown = Vec::new();
    for s in served {
        if app.decide(&caller, &s, Asked::ReadWorkflow).is_ok() {
            shown.push(workflow_json(&app, &s));
        }
    }
    ok(StatusCode::OK, json!({ "workflows": shown }))
}

fn workflow_json(app: &App, s: &Served) -> Value {
    let plan = &s.workflow.plan;
    let params: BTreeMap<&str, Value> = plan
        .params
        .iter()
        .map(|(name, p)| {
            (
                name.as_str(),
                json!({ "default": p.default.value, "description": p.description }),
            )
        })
        .collect();
    json!({
        "name": s.name,
        "manifest": s.workflow.path,
        "manifest_sha256": s.manifest_sha256,
        "policy_set": s.policy_set,
        "tasks": plan.tasks.iter().map(|t| t.task.name.value.as_str()).collect::<Vec<_>>(),
        "params": params,
        "max_active_runs": plan.max_active_runs,
        "schedules": plan.schedules.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        "runs_url": format!("{}/v1/workflows/{}/runs", app.base_url, s.name),
        "schedules_url": format!("{}/v1/workflows/{}/schedules", app.base_url, s.name),
    })
}

async fn workflow(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let caller = app.caller(&headers)?;
    let served = app.served(&name).ok_or_else(ApiError::forbidden)?;
    app.decide(&caller, &served, Asked::ReadWorkflow)?;
    ok(StatusCode::OK, workflow_json(&app, &served))
}

async fn schedules(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let caller = app.caller(&headers)?;
    let served = app.served(&name).ok_or_else(ApiError::forbidden)?;
    app.decide(&caller, &served, Asked::ReadWorkflow)?;
    ok(
        StatusCode::OK,
        json!({ "workflow": served.name, "schedules": app.scheduler.shown(&served) }),
    )
}

async fn pause(
    State(app): State<Arc<App>>,
    Path((name, schedule)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    set_paused(&app, &name, &schedule, &headers, true)
}

async fn resume(
    State(app): State<Arc<App>>,
    Path((name, schedule)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    set_paused(&app, &name, &schedule, &headers, false)
}

/// Pause or resume a schedule: decided (`pause_schedule` /
/// `resume_schedule`), recorded (`pause`), then in effect.
fn set_paused(app: &App, name: &str, schedule: &str, headers: &HeaderMap, paused: bool) -> Answer {
    let caller = app.caller(headers)?;
    let served = app.served(name).ok_or_else(ApiError::forbidden)?;
    if !served
        .workflow
        .plan
        .schedules
        .iter()
        .any(|s| s.name == schedule)
    {
        return Err(ApiError::forbidden());
    }
    let asked = if paused {
        Asked::PauseSchedule { schedule }
    } else {
        Asked::ResumeSchedule { schedule }
    };
    let access = app.decide(&caller, &served, asked)?;
    app.scheduler
        .set_paused(
            &served.name,
            schedule,
            paused,
            &caller.user,
            &caller.token,
            access,
        )
        .map_err(ApiError::internal)?;
    ok(
        StatusCode::OK,
        json!({
            "workflow": served.name,
            "schedule": schedule,
            "paused": paused,
            "url": format!("{}/v1/workflows/{}/schedules", app.base_url, served.name),
        }),
    )
}

/// Start a backfill (or, with `dry_run`, show what it would do): the
/// schedule named in the body, decided as a `trigger` `via` `backfill`
/// of it before anything else in the body is looked at.
async fn backfill(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    use super::backfill::{BackfillError, Reprocess, request_of};
    let caller = app.caller(&headers)?;
    let served = app.served(&name).ok_or_else(ApiError::forbidden)?;
    let body = json_body(body)?;
    let Some(schedule) = body.get("schedule").and_then(Value::as_str) else {
        return Err(ApiError::bad_request(
            "the body names no `schedule`: {\"schedule\": \"nightly\", \"from\": \"2026-11-01\", \"to\": \"2026-11-07\"}",
        ));
    };
    if super::backfill::schedule_of(&served, schedule).is_err() {
        return Err(ApiError::forbidden());
    }
    let access = app.decide(
        &caller,
        &served,
        Asked::Trigger {
            via: "backfill",
            trigger: schedule,
        },
    )?;
    let text = |key: &str| -> Result<&str, ApiError> {
        body.get(key).and_then(Value::as_str).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{key}` must be a time: an instant (`2026-11-01T02:30:00Z`) or a date (`2026-11-01`)"
            ))
        })
    };
    let max_active = match body.get("max_active") {
        None => 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| ApiError::bad_request("`max_active` must be a whole number"))?,
    };
    let reprocess = match body.get("reprocess") {
        None => Reprocess::Missing,
        Some(v) => v.as_str().and_then(Reprocess::from_name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "`reprocess` must be one of {}",
                Reprocess::NAMES.join(", ")
            ))
        })?,
    };
    let dry_run = match body.get("dry_run") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| ApiError::bad_request("`dry_run` must be true or false"))?,
    };
    let usage = |e: BackfillError| {
        if e.is_usage() {
            ApiError::bad_request(e.to_string())
        } else if matches!(e, BackfillError::Draining) {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", e.to_string())
        } else {
            ApiError::internal(e)
        }
    };
    let request = request_of(
        &served,
        schedule,
        text("from")?,
        text("to")?,
        max_active,
        reprocess,
    )
    .map_err(usage)?;
    if dry_run {
        let runs = Arc::clone(&app.runs);
        let user = caller.user.clone();
        let planned = tokio::task::spawn_blocking(move || {
            let existing = |identity: &super::runs::Identity| {
                runs.runs_of(identity)
                    .into_iter()
                    .map(|r| {
                        let standing = runs.standing(&r);
                        (r, standing)
                    })
                    .collect()
            };
            super::backfill::dry_run(&existing, &served, &user, &request, jiff::Timestamp::now())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(usage)?;
        return ok(
            StatusCode::OK,
            json!({ "dry_run": true, "workflow": name, "schedule": schedule, "nominal": planned }),
        );
    }
    let shown = app
        .backfills
        .start(&served, &caller.user, &caller.token, access, &request)
        .map_err(usage)?;
    let url = format!(
        "{}/v1/workflows/{}/backfills/{}",
        app.base_url, shown.workflow, shown.id
    );
    let mut value = json!(shown);
    if let Some(object) = value.as_object_mut() {
        object.insert("url".to_owned(), json!(url));
    }
    ok(StatusCode::CREATED, value)
}

async fn backfills(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let caller = app.caller(&headers)?;
    let served = app.served(&name).ok_or_else(ApiError::forbidden)?;
    app.decide(&caller, &served, Asked::ReadWorkflow)?;
    ok(
        StatusCode::OK,
        json!({ "workflow": served.name, "backfills": app.backfills.of_workflow(&served.name) }),
    )
}

async fn backfill_shown(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let caller = app.caller(&headers)?;
    let served = app.served(&name).ok_or_else(ApiError::forbidden)?;
    app.decide(&caller, &served, Asked::ReadWorkflow)?;
    let shown = app
        .backfills
        .show(&id)
        .filter(|b| b.workflow == served.name)
        .ok_or_else(ApiError::forbidden)?;
    ok(StatusCode::OK, json!(shown))
}

/// Cancel a backfill: decided as starting one of its schedule would be.
async fn backfill_cancel(
    State(app): State<Arc<App>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    use super::backfill::BackfillError;
    let caller = app.caller(&headers)?;
    let served = app.served(&name).ok_or_else(ApiError::forbidden)?;
    let Some(shown) = app
        .backfills
        .show(&id)
        .filter(|b| b.workflow == served.name)
    else {
        return Err(ApiError::forbidden());
    };
    let access = app.decide(
        &caller,
        &served,
        Asked::Trigger {
            via: "backfill",
            trigger: &shown.schedule,
        },
    )?;
    match app
        .backfills
        .cancel(&id, &caller.user, &caller.token, access)
        .await
    {
        Ok(shown) => ok(StatusCode::OK, json!(shown)),
        Err(e @ BackfillError::Ended(..)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_active",
            e.to_string(),
        )),
        Err(BackfillError::NoBackfill(_)) => Err(ApiError::forbidden()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// A body as received, or a 413 when too large (a 400 when it could not
/// be read).
fn raw_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "too_large",
                format!("the body is larger than {MAX_BODY} bytes"),
            )
        } else {
            ApiError::new(status, "bad_request", rejection.body_text())
        }
    })
}

/// A JSON body: a 400 saying what is wrong with it, a 413 when too large.
fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, ApiError> {
    let bytes = raw_body(body)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

async fn trigger(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let caller = app.caller(&headers)?;
    let served = app.served(&name).ok_or_else(ApiError::forbidden)?;
    // Decided first: a bad body says nothing to whoever may not trigger.
    let access = app.decide(
        &caller,
        &served,
        Asked::Trigger {
            via: "api",
            trigger: "",
        },
    )?;
    let params = params_of(&json_body(body)?)?;
    let started = app
        .runs
        .trigger(
            &served,
            &params,
            Trigger {
                // A trace context the caller sent joins the run's trace to
                // theirs; one that is not W3C's is ignored, as the spec asks.
                traceparent: headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::observe::trace::TraceParent::parse)
                    .map(|t| t.to_string()),
                ..Trigger::api(caller.user.clone(), caller.token.clone(), access)
            },
        )
        .await;
    let id = match started {
        Ok(id) => id,
        Err(StartError::Params(why)) => return Err(ApiError::bad_request(why)),
        Err(StartError::Draining) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "draining",
                StartError::Draining.to_string(),
            ));
        }
        Err(StartError::Launch(e)) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "cannot_start",
                format!("the run cannot start: {e}"),
            ));
        }
        Err(e @ StartError::Audit(_)) => return Err(ApiError::internal(e)),
    };
    let url = format!("{}/v1/runs/{id}", app.base_url);
    let mut response = (
        StatusCode::CREATED,
        axum::Json(json!({ "run": id, "workflow": served.name, "user": caller.user, "url": url })),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&url) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `{"params": {"NAME": "VALUE", ...}}`, each value a string.
fn params_of(body: &Value) -> Result<Vec<(String, String)>, ApiError> {
    let Some(object) = body.as_object() else {
        return Err(ApiError::bad_request(
            "the body is not a JSON object; send {\"params\": {\"NAME\": \"VALUE\"}} or nothing",
        ));
    };
    if let Some(unknown) = object.keys().find(|k| *k != "params") {
        return Err(ApiError::bad_request(format!(
            "unknown field `{unknown}`; the body has only `params`"
        )));
    }
    let Some(params) = object.get("params") else {
        return Ok(Vec::new());
    };
    let Some(params) = params.as_object() else {
        return Err(ApiError::bad_request(
            "`params` is not an object of NAME: \"VALUE\"",
        ));
    };
    params
        .iter()
        .map(|(name, value)| match value.as_str() {
            Some(value) => Ok((name.clone(), value.to_owned())),
            None => Err(ApiError::bad_request(format!(
                "parameter `{name}` is not a string (values are strings: \"{name}\": \"...\")"
            ))),
        })
        .collect()
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    workflow: Option<String>,
    limit: Option<usize>,
    status: Option<String>,
    trigger: Option<String>,
    after: Option<String>,
}

/// How a run can have been started, in a listing.
const TRIGGERS: [&str; 5] = ["api", "schedule", "webhook", "backfill", "cli"];

/// What a run's `status` can be in a listing.
const RUN_STATUSES: [&str; 8] = [
    "queued",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "refused",
    "cancelled",
    "error",
];

async fn runs(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let caller = app.caller(&headers)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
    if let Some(status) = &query.status
        && !RUN_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "`status`: no run is `{status}`; it is one of {}",
            RUN_STATUSES.join(", ")
        )));
    }
    if let Some(trigger) = &query.trigger
        && !TRIGGERS.contains(&trigger.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "`trigger`: no run is started by `{trigger}`; it is one of {}",
            TRIGGERS.join(", ")
        )));
    }
    let served: Vec<Arc<Served>> = match &query.workflow {
        Some(name) => vec![app.served(name).ok_or_else(ApiError::forbidden)?],
        None => lock(&app.catalog).all().cloned().collect(),
    };
    let mut allowed = std::collections::HashSet::new();
    for s in &served {
        let decided = app.decide(&caller, s, Asked::ListRuns);
        if decided.is_ok() {
            allowed.insert(s.name.clone());
        } else if query.workflow.is_some() {
            return Err(ApiError::forbidden());
        }
    }
    let rows = lock(&app.reader).runs().map_err(ApiError::internal)?;
    let mut listed: Vec<Value> = app
        .runs
        .active()
        .into_iter()
        .filter(|a| a.phase == Phase::Queued && allowed.contains(&a.workflow))
        .filter(|a| !rows.iter().any(|r| r.id == a.id))
        .map(|a| {
            json!({
                "id": a.id, "workflow": a.workflow, "user": a.user, "status": "queued",
                "trigger": app.runs.via(&a.id),
                "started": null, "duration_ms": null,
                "url": format!("{}/v1/runs/{}", app.base_url, a.id),
            })
        })
        .collect();
    listed.extend(
        rows.iter()
            .filter(|r| allowed.contains(&r.workflow))
            .map(|r| app.run_json(r)),
    );
    if let Some(status) = &query.status {
        listed.retain(|r| r["status"] == status.as_str());
    }
    if let Some(trigger) = &query.trigger {
        listed.retain(|r| r["trigger"] == trigger.as_str());
    }
    // A page after the run `after`, as the previous page's `next` says.
    let from = match &query.after {
        None => 0,
        Some(after) => listed
            .iter()
            .position(|r| r["id"] == after.as_str())
            .map(|at| at + 1)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "`after`: no run `{after}` in this listing (it may have ended up under another status); list again without `after`"
                ))
            })?,
    };
    let more = listed.len() > from.saturating_add(limit);
    let page: Vec<Value> = listed.into_iter().skip(from).take(limit).collect();
    let next = page.last().filter(|_| more).map(|last| {
        let mut url = format!("{}/v1/runs?limit={limit}", app.base_url);
        if let Some(workflow) = &query.workflow {
            url.push_str(&format!("&workflow={workflow}"));
        }
        if let Some(status) = &query.status {
            url.push_str(&format!("&status={status}"));
        }
        if let Some(trigger) = &query.trigger {
            url.push_str(&format!("&trigger={trigger}"));
        }
        url.push_str(&format!(
            "&after={}",
            last["id"].as_str().unwrap_or_default()
        ));
        url
    });
    ok(StatusCode::OK, json!({ "runs": page, "next": next }))
}

fn run_context(row: &RunRow) -> (&str, &str) {
    (row.id.as_str(), row.user.as_str())
}

async fn run(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    let caller = app.caller(&headers)?;
    let (row, served) = app.run(&id)?;
    let (run, run_by) = run_context(&row);
    app.decide(&caller, &served, Asked::ReadRun { run, run_by })?;
    let tasks = lock(&app.reader).tasks(&id).map_err(ApiError::internal)?;
    let mut body = app.run_json(&row);
    if let Some(object) = body.as_object_mut() {
        object.insert("tasks".to_owned(), json!(tasks));
        object.insert(
            "logs_url".to_owned(),
            json!(format!("{}/v1/runs/{id}/logs", app.base_url)),
        );
        object.insert(
            "audit_url".to_owned(),
            json!(format!("{}/v1/runs/{id}/audit", app.base_url)),
        );
    }
    ok(StatusCode::OK, body)
}

#[derive(Debug, serde::Deserialize)]
struct LogsQuery {
    task: Option<String>,
}

async fn logs(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let caller = app.caller(&headers)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (row, served) = app.run(&id)?;
    let (run, run_by) = run_context(&row);
    app.decide(&caller, &served, Asked::ReadRun { run, run_by })?;
    let attempts = lock(&app.reader)
        .attempts(&id, query.task.as_deref())
        .map_err(ApiError::internal)?;
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| {
            json!({
                "task": a.task,
                "attempt": a.attempt,
                "outcome": a.outcome,
                "detail": a.detail,
                "duration_ms": a.duration_ms,
                "logs": a.logs,
                "stdout": String::from_utf8_lossy(&a.stdout),
                "stderr": String::from_utf8_lossy(&a.stderr),
            })
        })
        .collect();
    ok(StatusCode::OK, json!({ "run": id, "attempts": attempts }))
}

async fn audit(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    let caller = app.caller(&headers)?;
    let (row, served) = app.run(&id)?;
    let (run, run_by) = run_context(&row);
    app.decide(&caller, &served, Asked::ReadAudit { run, run_by })?;
    let path = log_path(&app);
    let bytes = tokio::fs::read(&path).await.map_err(ApiError::internal)?;
    // The run's own records, and the service's records about it (its
    // trigger), each as written.
    let records: Vec<Value> = bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let record: Record = serde_json::from_slice(line).ok()?;
            let about = record.run == id
                || matches!(&record.event, Event::Trigger { starts, .. } if *starts == id)
                || matches!(&record.event, Event::Tick { starts: Some(starts), .. } if *starts == id)
                || matches!(&record.event, Event::Delivery { starts: Some(starts), .. } if *starts == id);
            about.then(|| serde_json::from_slice::<Value>(line).ok())?
        })
        .collect();
    ok(
        StatusCode::OK,
        json!({ "run": id, "records": records, "checkpoint": latest_checkpoint(&bytes) }),
    )
}

/// The log's last signed checkpoint: its record, size, root and signed
/// note, as `cairn audit verify` checks them.
fn latest_checkpoint(log: &[u8]) -> Option<Value> {
    log.split(|b| *b == b'\n').rev().find_map(|line| {
        let record: Record = serde_json::from_slice(line).ok()?;
        match record.event {
            Event::Checkpoint { size, root, note } => Some(json!({
                "seq": record.seq, "time": record.time, "size": size, "root": root, "note": note,
            })),
            _ => None,
        }
    })
}

fn log_path(app: &App) -> std::path::PathBuf {
    crate::launch::StateDir::log_path(app.runs.state().path())
}

/// A run's graph, states, decisions, timeline and outputs, from its
/// records (`read_run`).
async fn graph(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    let caller = app.caller(&headers)?;
    let (row, served) = app.run(&id)?;
    let (run, run_by) = run_context(&row);
    app.decide(&caller, &served, Asked::ReadRun { run, run_by })?;
    let path = log_path(&app);
    let view = tokio::task::spawn_blocking(move || {
        std::fs::read(&path).map(|bytes| super::view::run_view(&bytes, &id))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    ok(StatusCode::OK, view)
}

/// One verification at a time: it reads the whole log.
static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Verify the whole log now, as `cairn audit verify` does with the
/// service's own key (`read_audit` on the run asked about). Problems in
/// this run's records are told in full; others only by record and check,
/// since they may be about what the caller may not read.
async fn verify(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    let caller = app.caller(&headers)?;
    let (row, served) = app.run(&id)?;
    let (run, run_by) = run_context(&row);
    app.decide(&caller, &served, Asked::ReadAudit { run, run_by })?;
    let _one = VERIFYING.acquire().await.map_err(ApiError::internal)?;
    let path = log_path(&app);
    // What is there now, under a checkpoint signed now: records appended
    // while verifying are the next verification's.
    let (key, length) = {
        let mut log = lock(&app.runs.state().log);
        log.checkpoint_unsigned().map_err(ApiError::internal)?;
        let length = std::fs::metadata(&path).map_err(ApiError::internal)?.len();
        (log.signer().verifier(), length)
    };
    let note_key = key.note_key();
    let store = app.runs.state().path().join("artifacts");
    let started = std::time::Instant::now();
    let (report, mine) = tokio::task::spawn_blocking(move || {
        let mut bytes = std::fs::read(&path)?;
        bytes.truncate(usize::try_from(length).unwrap_or(usize::MAX));
        let report = crate::audit::verify::verify(
            &bytes,
            &key,
            &crate::audit::verify::Artifacts::new(vec![store]),
        );
        let mine: std::collections::HashSet<u64> = super::view::records_of(&bytes, &id)
            .iter()
            .map(|r| r.seq)
            .collect();
        Ok::<_, std::io::Error>((report, mine))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let problems: Vec<Value> = report
        .problems
        .iter()
        .take(100)
        .map(|p| {
            if mine.contains(&p.record) {
                json!({ "record": p.record, "check": p.check, "message": p.message, "in_run": true })
            } else {
                json!({ "record": p.record, "check": p.check, "in_run": false })
            }
        })
        .collect();
    ok(
        StatusCode::OK,
        json!({
            "ok": report.ok(),
            "records": report.records,
            "checkpoints": report.checkpoints,
            "consistent_pairs": report.consistent_pairs,
            "runs": report.runs,
            "decisions": report.decisions,
            "authorized": report.authorized,
            "digests_checked": report.digests_checked,
            "digests_absent": report.digests_absent,
            "torn_tails": report.torn_tails,
            "problem_count": report.problems.len(),
            "problems": problems,
            "took_ms": u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "key": note_key,
        }),
    )
}

/// The auditor's bundle of a run (`read_audit`), as `cairn audit export`
/// writes it, in one tar file: its records and proofs, the policies,
/// artifacts and the signed provenance. A checkpoint is signed first if
/// records follow the last one.
async fn bundle(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    let caller = app.caller(&headers)?;
    let (row, served) = app.run(&id)?;
    let (run, run_by) = run_context(&row);
    app.decide(&caller, &served, Asked::ReadAudit { run, run_by })?;
    let signer = {
        let mut log = lock(&app.runs.state().log);
        log.checkpoint_unsigned().map_err(ApiError::internal)?;
        log.signer().clone()
    };
    let path = log_path(&app);
    let store = app.runs.state().path().join("artifacts");
    let name = format!("cairn-bundle-{id}");
    let dir_name = name.clone();
    let tar = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = scratch.path().join(&dir_name);
        crate::audit::bundle::export(&bytes, &id, &store, &signer, &out)
            .map_err(|e| e.to_string())?;
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        tar.append_dir_all(&dir_name, &out)
            .map_err(|e| e.to_string())?;
        tar.into_inner().map_err(|e| e.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.tar\""),
            ),
        ],
        tar,
    )
        .into_response())
}

/// The largest output downloaded through the API.
pub const MAX_DOWNLOAD: u64 = 256 * 1024 * 1024;

/// An output of a task of a run, as stored (`read_output`, with the
/// output's labels in the request: policy may keep labelled data from
/// being downloaded), checked against its recorded digest.
async fn output(
    State(app): State<Arc<App>>,
    Path((id, task, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Answer {
    let caller = app.caller(&headers)?;
    let (row, served) = app.run(&id)?;
    let path = log_path(&app);
    let (run_id, task_name, output_name) = (id.clone(), task.clone(), name.clone());
    let found = tokio::task::spawn_blocking(move || {
        std::fs::read(&path)
            .map(|bytes| super::view::output_of(&bytes, &run_id, &task_name, &output_name))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let (run, run_by) = run_context(&row);
    let labels = found.as_ref().map(|(_, l)| l.clone()).unwrap_or_default();
    app.decide(
        &caller,
        &served,
        Asked::ReadOutput {
            run,
            run_by,
            task: &task,
            output: &name,
            labels: &labels,
        },
    )?;
    let (artifact, _) = found.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("run {id} has no recorded output `{name}` of task `{task}`"),
        )
    })?;
    if artifact.bytes > MAX_DOWNLOAD {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the output is {} bytes; the API hands out at most {MAX_DOWNLOAD}: export the run's bundle, or read it from the state directory's artifact store",
                artifact.bytes
            ),
        ));
    }
    let stored = crate::launch::stored_path(app.runs.state().path(), &artifact);
    let bytes = tokio::fs::read(&stored).await.map_err(|_| {
        ApiError::new(
            StatusCode::GONE,
            "not_stored",
            format!(
                "the output's bytes ({}) are no longer in the artifact store",
                artifact.sha256
            ),
        )
    })?;
    if crate::audit::verify::sha256_tag(&bytes) != artifact.sha256 {
        return Err(ApiError::internal(format!(
            "stored output {} does not match its digest: the artifact store was changed",
            artifact.sha256
        )));
    }
    let file = format!("{task}.{name}").replace(
        |c: char| !c.is_ascii_alphanumeric() && !matches!(c, '.' | '-' | '_'),
        "_",
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
            (
                header::HeaderName::from_static("x-cairn-sha256"),
                artifact.sha256,
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    let caller = app.caller(&headers)?;
    let (row, served) = app.run(&id)?;
    let (run, run_by) = run_context(&row);
    app.decide(&caller, &served, Asked::CancelRun { run, run_by })?;
    if app.runs.cancel(&id).await {
        ok(
            StatusCode::ACCEPTED,
            json!({ "run": id, "status": "cancelling", "url": format!("{}/v1/runs/{id}", app.base_url) }),
        )
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_active",
            format!(
                "run {id} is not active (it is `{}`); only a queued or running run can be cancelled",
                row.status
            ),
        ))
    }
}

async fn approve(
    State(app): State<Arc<App>>,
    Path((id, task)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    gate(&app, &id, &task, &headers, body, Verdict::Approve).await
}

async fn reject(
    State(app): State<Arc<App>>,
    Path((id, task)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    gate(&app, &id, &task, &headers, body, Verdict::Reject).await
}

/// A decision on a run's approval gate by the token's user: decided by
/// the `approve` action with the run's recorded policies and recorded,
/// counted or not (403 when policy or the four-eyes rule refuses it, 409
/// when the gate is not open, already decided by them, or binds something
/// else). A counted decision that settles the gate wakes the run.
async fn gate(
    app: &Arc<App>,
    id: &str,
    task: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    verdict: Verdict,
) -> Answer {
    let caller = app.caller(headers)?;
    let body = json_body(body)?;
    let text = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` must be a string"))),
    };
    if let Some(unknown) = body.as_object().and_then(|o| {
        o.keys()
            .find(|k| !matches!(k.as_str(), "comment" | "bound"))
    }) {
        return Err(ApiError::bad_request(format!(
            "unknown field `{unknown}`; the body may have `comment` and `bound`"
        )));
    }
    let (comment, bound) = (text("comment")?, text("bound")?);
    let (_, served) = app.run(id)?;
    let ask = Ask {
        run: id,
        gate: task,
        approver: &caller.user,
        verdict,
        comment: comment.as_deref(),
        bound: bound.as_deref(),
    };
    let (decided, record) = app.runs.decide_gate(&ask).map_err(|e| match e {
        GateError::Ask(e @ AskError::NotAGate { allowed: true, .. }) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_a_gate", e.to_string())
        }
        GateError::Ask(AskError::NotAGate { .. } | AskError::NoRun(_)) => ApiError::forbidden(),
        other => ApiError::internal(other),
    })?;
    if let Some(why) = decided.refused {
        // Someone policy does not let decide learns nothing of the gate.
        if !decided.allowed {
            return Err(ApiError::forbidden());
        }
        let (status, code) = if decided.forbidden {
            (StatusCode::FORBIDDEN, "forbidden")
        } else {
            (StatusCode::CONFLICT, "not_counted")
        };
        return Err(ApiError::new(
            status,
            code,
            format!("{why}; recorded (record {record}), not counted"),
        ));
    }
    app.runs.wake(&served, id).await;
    ok(
        StatusCode::OK,
        json!({
            "run": id,
            "gate": task,
            "verdict": verdict.as_str(),
            "approver": caller.user,
            "counted": true,
            "approvals": decided.approvals,
            "required": decided.required,
            "bound": decided.bound,
            "record": record,
        }),
    )
}

/// A webhook delivery: no token (the signature is its authentication),
/// 202 once it is recorded and its run started, 200 for a replay of one
/// accepted before (nothing new starts), 401 for a bad or stale
/// signature, 403 when policy denies the webhook's principal, 404 for no
/// such webhook.
async fn hook(
    State(app): State<Arc<App>>,
    Path((name, hook)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let body = raw_body(body)?;
    let no_such = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such webhook; a workflow's `[webhooks.NAME]` is served at /v1/hooks/WORKFLOW/NAME",
        )
    };
    let served = app.served(&name).ok_or_else(no_such)?;
    let spec = served
        .workflow
        .plan
        .webhooks
        .iter()
        .find(|w| w.name == hook)
        .cloned()
        .ok_or_else(no_such)?;
    match app.hooks.deliver(&served, &spec, &headers, &body).await {
        super::hooks::Answered::Accepted { run, delivery } => ok(
            StatusCode::ACCEPTED,
            json!({ "run": run, "delivery": delivery, "duplicate": false, "url": format!("{}/v1/runs/{run}", app.base_url) }),
        ),
        super::hooks::Answered::Duplicate { run, delivery } => ok(
            StatusCode::OK,
            json!({ "run": run, "delivery": delivery, "duplicate": true, "url": format!("{}/v1/runs/{run}", app.base_url) }),
        ),
        super::hooks::Answered::Refused {
            status,
            code,
            message,
        } => Err(ApiError::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message,
        )),
    }
}
