//! Webhook deliveries to `POST /v1/hooks/{workflow}/{webhook}`: verified
//! ([`webhook::verify`]), replays acknowledged without a second run,
//! decided as the webhook's principal, recorded, then the run started
//! with the body as `trigger.body`.
//!
//! A delivery is a `delivery` record, synced before the answer: a refused
//! one with why (the request is not what the sender's key signed, is
//! stale, or policy denies it); an accepted one after its `access`, with
//! the key that signed it and the body's digest, followed by the
//! `trigger` that names it. The body is in the artifact store (written
//! and synced) before either; it reaches tasks only as an input file,
//! never in arguments or the environment. A delivery id accepted once
//! (this run of the service or, read back from the log, an earlier one)
//! is answered with the run it started. Never decides without recording.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest as _, Sha256};

use super::catalog::Served;
use super::runs::{Runs, StartError, Trigger};
use super::webhook::{self, Rejected, Spec};
use crate::audit::record::{Artifact, Event, records};
use crate::policy::service::Asked;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// (workflow, webhook, delivery id).
type Key = (String, String, String);

#[derive(Debug, Clone)]
enum Seen {
    /// Being handled now.
    Pending,
    /// Accepted: the run it started.
    Ran(String),
}

/// How a delivery was answered.
#[derive(Debug)]
pub enum Answered {
    /// Recorded; run `run` started.
    Accepted { run: String, delivery: String },
    /// Delivery `delivery` was accepted before, starting run `run`.
    Duplicate { run: String, delivery: String },
    /// Refused (and recorded, but for an error writing the log): the
    /// HTTP status, a code and a message for the sender.
    Refused {
        status: u16,
        code: &'static str,
        message: String,
    },
}

/// The service's webhook deliveries.
#[derive(Debug)]
pub struct Hooks {
    runs: Arc<Runs>,
    seen: Mutex<HashMap<Key, Seen>>,
}

impl Hooks {
    /// Deliveries to the service, those `log` (the audit log's bytes)
    /// records accepted known.
    #[must_use]
    pub fn new(runs: Arc<Runs>, log: &[u8]) -> Self {
        let mut seen = HashMap::new();
        for record in records(log) {
            if let Event::Delivery {
                workflow,
                webhook,
                id,
                result,
                starts: Some(run),
                ..
            } = record.event
                && result == "accepted"
            {
                seen.insert((workflow, webhook, id), Seen::Ran(run));
            }
        }
        Self {
            runs,
            seen: Mutex::new(seen),
        }
    }

    /// Handle a delivery of `body` with `headers` to webhook `spec` of
    /// `served`.
    pub async fn deliver(
        &self,
        served: &Arc<Served>,
        spec: &Spec,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Answered {
        let refusal = Refusal {
            runs: &self.runs,
            served,
            spec,
            sha256: format!("sha256:{}", crate::audit::log::hex(&Sha256::digest(body))),
            bytes: body.len() as u64,
        };
        let secret = match self.runs.secret(&spec.secret) {
            Ok(secret) => secret,
            Err(why) => {
                let id = webhook::claimed_id(spec.scheme, headers).unwrap_or_default();
                let detail = format!("secret `{}`: {why}", spec.secret);
                return refusal.record(
                    &id,
                    "no-key",
                    &detail,
                    None,
                    503,
                    "unavailable",
                    "the webhook's secret is not available to the service; its log says why",
                );
            }
        };
        let now = jiff::Timestamp::now().as_second();
        let verified = match webhook::verify(
            spec.scheme,
            headers,
            body,
            secret.expose(),
            now,
            spec.tolerance,
        ) {
            Ok(verified) => verified,
            Err(rejected) => {
                let id = webhook::claimed_id(spec.scheme, headers).unwrap_or_default();
                let (status, code) = match rejected {
                    Rejected::Secret(_) => (503, "unavailable"),
                    _ => (401, "unauthenticated"),
                };
                let message = rejected.to_string();
                return refusal.record(
                    &id,
                    rejected.code(),
                    &message,
                    None,
                    status,
                    code,
                    &message,
                );
            }
        };
        let key = (served.name.clone(), spec.name.clone(), verified.id.clone());
        {
            let mut seen = lock(&self.seen);
            match seen.get(&key) {
                Some(Seen::Ran(run)) => {
                    let run = run.clone();
                    drop(seen);
                    return refusal.duplicate(&verified, run);
                }
                Some(Seen::Pending) => {
                    return Answered::Refused {
                        status: 409,
                        code: "in_progress",
                        message: format!(
                            "delivery {} is being handled now; send it again to learn its run",
                            verified.id
                        ),
                    };
                }
                None => {
                    seen.insert(key.clone(), Seen::Pending);
                }
            }
        }
        let answered = self.accept(served, spec, &verified, body, &refusal).await;
        let mut seen = lock(&self.seen);
        match &answered {
            Answered::Accepted { run, .. } => {
                seen.insert(key, Seen::Ran(run.clone()));
            }
            _ => {
                seen.remove(&key);
            }
        }
        answered
    }

    /// A verified delivery, new: decide, store its body, record, start.
    async fn accept(
        &self,
        served: &Arc<Served>,
        spec: &Spec,
        verified: &webhook::Verified,
        body: &[u8],
        refusal: &Refusal<'_>,
    ) -> Answered {
        let decided = super::decide_recorded(
            self.runs.state(),
            served,
            &spec.principal,
            "",
            Asked::Trigger {
                via: "webhook",
                trigger: &spec.name,
            },
        );
        let access = match decided {
            Ok((access, true)) => access,
            Ok((access, false)) => {
                return refusal.record(
                    &verified.id,
                    "denied",
                    "policy does not permit the webhook's principal to trigger the workflow",
                    Some(access),
                    403,
                    "forbidden",
                    "not allowed: no policy permits this",
                );
            }
            Err(e) => return internal(&e),
        };
        let stored = match store(self.runs.state().path(), body) {
            Ok(stored) => stored,
            Err(e) => return internal(&format!("cannot store the delivery's body: {e}")),
        };
        let run = crate::runner::new_run_id();
        let event = Event::Delivery {
            workflow: served.name.clone(),
            webhook: spec.name.clone(),
            id: verified.id.clone(),
            scheme: spec.scheme.name().to_owned(),
            user: spec.principal.clone(),
            result: "accepted".to_owned(),
            detail: None,
            key: Some(verified.key.clone()),
            sha256: refusal.sha256.clone(),
            bytes: refusal.bytes,
            access: Some(access),
            starts: Some(run.clone()),
        };
        let params: Vec<(String, String)> = spec
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let trigger = Trigger {
            via: "webhook",
            user: spec.principal.clone(),
            token: String::new(),
            access,
            run: Some(run),
            source: Some(spec.name.clone()),
            cause: Some(event),
            serial: false,
            given: Some(stored),
            caused_by: None,
            nominal: None,
            backfill: None,
            traceparent: None,
        };
        match self.runs.trigger(served, &params, trigger).await {
            Ok(run) => Answered::Accepted {
                run,
                delivery: verified.id.clone(),
            },
            Err(StartError::Draining) => Answered::Refused {
                status: 503,
                code: "draining",
                message: StartError::Draining.to_string(),
            },
            Err(StartError::Audit(e)) => internal(&e.to_string()),
            Err(e) => {
                let why = format!("the run cannot start: {e}");
                refusal.record(
                    &verified.id,
                    "not-started",
                    &why,
                    Some(access),
                    422,
                    "cannot_start",
                    &why,
                )
            }
        }
    }
}

/// What every `delivery` record of one request shares.
struct Refusal<'a> {
    runs: &'a Runs,
    served: &'a Served,
    spec: &'a Spec,
    sha256: String,
    bytes: u64,
}

impl Refusal<'_> {
    fn event(
        &self,
        id: &str,
        result: &str,
        detail: Option<String>,
        access: Option<u64>,
        key: Option<String>,
        starts: Option<String>,
    ) -> Event {
        Event::Delivery {
            workflow: self.served.name.clone(),
            webhook: self.spec.name.clone(),
            id: id.to_owned(),
            scheme: self.spec.scheme.name().to_owned(),
            user: self.spec.principal.clone(),
            result: result.to_owned(),
            detail,
            key,
            sha256: self.sha256.clone(),
            bytes: self.bytes,
            access,
            starts,
        }
    }

    fn append(&self, event: Event) -> Result<(), String> {
        let mut log = lock(&self.runs.state().log);
        log.append("", event).map_err(|e| e.to_string())?;
        log.sync().map_err(|e| e.to_string())
    }

    /// Record a refusal, then answer it.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        id: &str,
        result: &str,
        detail: &str,
        access: Option<u64>,
        status: u16,
        code: &'static str,
        message: &str,
    ) -> Answered {
        let event = self.event(id, result, Some(detail.to_owned()), access, None, None);
        if let Err(e) = self.append(event) {
            return internal(&e);
        }
        Answered::Refused {
            status,
            code,
            message: message.to_owned(),
        }
    }

    /// Record a replay of an accepted delivery, then answer it.
    fn duplicate(&self, verified: &webhook::Verified, run: String) -> Answered {
        let event = self.event(
            &verified.id,
            "duplicate",
            Some("already accepted; nothing new starts".to_owned()),
            None,
            Some(verified.key.clone()),
            Some(run.clone()),
        );
        if let Err(e) = self.append(event) {
            return internal(&e);
        }
        Answered::Duplicate {
            run,
            delivery: verified.id.clone(),
        }
    }
}

fn internal(why: &str) -> Answered {
    tracing::error!("a webhook delivery failed: {why}");
    Answered::Refused {
        status: 500,
        code: "internal",
        message: "the service could not do this; its log says why".to_owned(),
    }
}

/// Put `body` in the artifact store of state directory `state`, synced:
/// the artifact (named `body`) and its path there.
fn store(state: &Path, body: &[u8]) -> std::io::Result<(Artifact, PathBuf)> {
    let hex = crate::audit::log::hex(&Sha256::digest(body));
    let dir = state.join("artifacts").join("sha256");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(&hex);
    if !path.is_file() {
        let mut tmp = tempfile::Builder::new()
            .prefix(".incoming-")
            .tempfile_in(&dir)?;
        tmp.write_all(body)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        std::fs::File::open(&dir)?.sync_all()?;
    }
    Ok((
        Artifact {
            name: "body".to_owned(),
            sha256: format!("sha256:{hex}"),
            bytes: body.len() as u64,
        },
        path,
    ))
}
