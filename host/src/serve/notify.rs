//! Notifications, sent: the service's [`Notifier`] is the observer's
//! outbox. A record that makes an event (a run started or ended, an
//! approval gate opened) is queued under the log's lock; a task of its own
//! then, for each `[notifications.NAME]` of the run's workflow that wants
//! it, decides `notify` (recorded as an `access`), signs the CloudEvent
//! with the notification's key (Standard Webhooks) and POSTs it, trying
//! again with backoff and jitter; each attempt is a `notification`
//! record. Nothing here holds the log's lock while it waits on the
//! network, and nothing here can hold up a run: a full queue drops the
//! event and counts it (`cairn_export_dropped_total`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::{Semaphore, mpsc};

use super::catalog::Served;
use super::runs::Runs;
use crate::audit::log::hex;
use crate::audit::record::{Event, Record};
use crate::observe::notify::{self, Kind, Spec};

/// Events waiting to be sent, at most; more are dropped and counted.
const QUEUE: usize = 10_000;
/// Deliveries under way at once.
const AT_ONCE: usize = 16;
/// One delivery attempt's time limit.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(10);

/// An event to send.
#[derive(Debug)]
struct Pending {
    kind: Kind,
    workflow: String,
    /// The CloudEvent.
    event: serde_json::Value,
}

/// The observer's outbox: events queued for the sender.
pub struct Notifier {
    queue: mpsc::Sender<Pending>,
    /// Each served workflow's notifications (a leaf lock: nothing is
    /// locked while it is held).
    specs: Mutex<HashMap<String, Vec<Spec>>>,
    origin: String,
    base_url: String,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for the log whose checkpoints name `origin`, the service
    /// reached at `base_url`, and the receiving end of its queue.
    #[must_use]
    pub fn new(origin: String, base_url: String) -> (Arc<Self>, Queue) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let notifier = Arc::new(Self {
            queue,
            specs: Mutex::new(HashMap::new()),
            origin,
            base_url,
        });
        (notifier, Queue(receiver))
    }

    /// Workflow `served`'s notifications are what its manifest now says.
    pub fn serving(&self, served: &Served) {
        let specs = served.workflow.plan.notifications.clone();
        let mut all = self
            .specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if specs.is_empty() {
            all.remove(&served.name);
        } else {
            all.insert(served.name.clone(), specs);
        }
    }

    fn wanted(&self, workflow: &str, kind: Kind) -> Vec<Spec> {
        self.specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(workflow)
            .map(|specs| {
                specs
                    .iter()
                    .filter(|s| s.events.contains(&kind))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl crate::observe::Outbox for Notifier {
    fn offer(&self, record: &Record, workflow: &str, line: &[u8]) -> bool {
        let Some(kind) = notify::kind_of(record) else {
            return true;
        };
        if self.wanted(workflow, kind).is_empty() {
            return true;
        }
        let event = notify::cloudevent(
            record,
            kind,
            workflow,
            &self.origin,
            &self.base_url,
            &format!("sha256:{}", hex(&Sha256::digest(line))),
        );
        self.queue
            .try_send(Pending {
                kind,
                workflow: workflow.to_owned(),
                event,
            })
            .is_ok()
    }
}

/// The receiving end of a notifier's queue, for [`send`].
#[derive(Debug)]
pub struct Queue(mpsc::Receiver<Pending>);

/// Send what is queued until the service stops: each (event,
/// notification) pair its own task, [`AT_ONCE`] at a time.
pub async fn send(
    notifier: Arc<Notifier>,
    mut queue: Queue,
    runs: Arc<Runs>,
    catalog: Arc<Mutex<super::catalog::Catalog>>,
) {
    let slots = Arc::new(Semaphore::new(AT_ONCE));
    while let Some(pending) = queue.0.recv().await {
        let served = catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&pending.workflow);
        let Some(served) = served else { continue };
        let pending = Arc::new(pending);
        for spec in notifier.wanted(&pending.workflow, pending.kind) {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let (runs, served, pending) =
                (Arc::clone(&runs), Arc::clone(&served), Arc::clone(&pending));
            tokio::spawn(async move {
                if let Err(e) = deliver(&runs, &served, &spec, &pending).await {
                    tracing::warn!(
                        "notification {} of {}: cannot record a delivery: {e}",
                        spec.name,
                        served.name
                    );
                }
                drop(slot);
            });
        }
    }
}

/// Decide, then send `pending` to `spec`'s endpoint until it is
/// delivered, refused, or [`notify::ATTEMPTS`] have failed; every attempt
/// recorded.
async fn deliver(
    runs: &Runs,
    served: &Served,
    spec: &Spec,
    pending: &Pending,
) -> Result<(), String> {
    let event_type = pending.kind.cloudevent_type();
    let id = pending
        .event
        .get("id")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let body = serde_json::to_vec(&pending.event).map_err(|e| e.to_string())?;
    let digest = format!("sha256:{}", hex(&Sha256::digest(&body)));
    let decision = served
        .service
        .decide_notify(&spec.name, pending.kind.name(), &spec.endpoint)
        .map_err(|e| e.to_string())?;
    let access = super::record_decision(runs.state(), served, "", &decision)?;
    let record = |attempt: u32, result: &str, status: Option<u16>, detail: Option<String>| {
        let mut log = runs
            .state()
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.append(
            "",
            Event::Notification {
                workflow: served.name.clone(),
                notification: spec.name.clone(),
                event: id.clone(),
                event_type: event_type.clone(),
                endpoint: spec.endpoint.host_port(),
                attempt,
                result: result.to_owned(),
                status,
                detail,
                access,
                sha256: digest.clone(),
            },
        )
        .and_then(|_| log.sync())
        .map_err(|e| e.to_string())
    };
    if !decision.allowed {
        return record(
            1,
            "denied",
            None,
            Some(format!(
                "no policy permits `notify` to {}",
                spec.endpoint.host_port()
            )),
        );
    }
    let key = match runs.secret(&spec.secret) {
        Ok(value) if super::webhook::standard_key(value.expose()).is_some() => value,
        Ok(_) => {
            return record(
                1,
                "no-key",
                None,
                Some(format!(
                    "secret `{}` is not a Standard Webhooks key (`whsec_` and base64)",
                    spec.secret
                )),
            );
        }
        Err(why) => return record(1, "no-key", None, Some(why)),
    };
    let mut headers = vec![(
        "content-type".to_owned(),
        "application/cloudevents+json".to_owned(),
    )];
    for attempt in 1..=notify::ATTEMPTS {
        let now = jiff::Timestamp::now().as_second();
        let signed = super::webhook::sign(
            super::webhook::Scheme::Standard,
            key.expose(),
            &id,
            now,
            &body,
        );
        headers.truncate(1);
        headers.extend(signed);
        let answer =
            crate::observe::send::post(&spec.endpoint.url(), &headers, body.clone(), ATTEMPT_LIMIT)
                .await;
        let (status, detail) = match &answer {
            Ok(a) => (Some(a.status), None),
            Err(why) => (None, Some(why.clone())),
        };
        match status {
            Some(200..=299) => return record(attempt, "delivered", status, None),
            _ if !notify::worth_retrying(status) => {
                return record(attempt, "refused", status, detail);
            }
            _ if attempt == notify::ATTEMPTS => {
                let why = detail.map_or_else(String::new, |d| format!("{d}; "));
                return record(
                    attempt,
                    "failed",
                    status,
                    Some(format!("{why}gave up after {attempt} attempts")),
                );
            }
            _ => record(attempt, "failed", status, detail)?,
        }
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        tokio::time::sleep(notify::backoff(attempt + 1, u64::from_le_bytes(random))).await;
    }
    Ok(())
}
