//! The service, `cairn serve`: one process over one state directory that
//! starts runs of the workflows it serves when an authenticated, allowed
//! request asks, and shows what they did (ARCHITECTURE.md, "The service").
//!
//! [`serve`] binds the listener, opens the state directory (repairing
//! what a killed process left), loads the workflows, goes on with what a
//! crash interrupted, then answers HTTP until told to stop; then it takes
//! no more work, lets attempts under way finish within the grace period,
//! and signs a checkpoint. Schedules and webhooks come next.

pub mod api;
pub mod backfill;
pub mod catalog;
pub mod client;
pub mod hooks;
pub mod notify;
pub mod runs;
pub mod schedule;
pub mod scheduler;
pub mod session;
pub mod tokens;
pub mod ui;
pub mod view;
pub mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use crate::audit::note::Signer;
use crate::launch::{LaunchError, Launcher, SecretProvider, StateDir};

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request (its body included) may take to be answered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 1024;

/// What `cairn serve` was asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    /// The manifests (or folders holding `workflow.toml`) to serve.
    pub workflows: Vec<PathBuf>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Tasks at once, across every run.
    pub jobs: usize,
    /// How long attempts under way may take to finish at shutdown.
    pub grace: Duration,
    /// How often the workflows' files are looked at for changes.
    pub reload: Duration,
    /// Where compiled components are cached.
    pub cache_dir: Option<PathBuf>,
    /// Where clients reach the service (`--public-url`), when not the
    /// address listened on.
    pub public_url: Option<String>,
    /// Where Prometheus scrapes `/metrics` (`--metrics-listen`), if
    /// anywhere: a listener of its own, without tokens.
    pub metrics_listen: Option<SocketAddr>,
    /// Where traces are exported (the `OTEL_*` variables), if anywhere.
    pub otlp: Option<crate::observe::otlp::Config>,
    /// Where OpenLineage events go (`OPENLINEAGE_*`), if anywhere.
    pub lineage: Option<crate::observe::transport::Config>,
}

/// Check a `--public-url`: `http://` or `https://`, a host, no path,
/// query or fragment; returned without a trailing `/`.
///
/// # Errors
///
/// What is wrong with it.
pub fn parse_public_url(text: &str) -> Result<String, String> {
    let url = text.trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("it must start with http:// or https://")?;
    if rest.is_empty()
        || rest.chars().any(|c| {
            matches!(c, '/' | '?' | '#' | '@' | '\\') || c.is_whitespace() || c.is_control()
        })
    {
        return Err(
            "it must be a scheme and a host (and port), nothing else: e.g. https://cairn.example.com"
                .to_owned(),
        );
    }
    Ok(url.to_owned())
}

/// Why the service could not start or went down.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {addr}: {source}; pass another address with --listen (port 0 picks a free one)"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Audit(#[from] crate::audit::log::AuditError),
    #[error(transparent)]
    Start(#[from] runs::StartError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error("{0}")]
    Session(String),
    #[error(
        "cannot listen for metrics on {addr}: {source}; pass another address with --metrics-listen"
    )]
    MetricsListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Serve `config` until `shutdown` completes; `ready` is told the address
/// listened on (and the metrics listener's) once requests are answered.
///
/// # Errors
///
/// When it cannot listen, or the state directory cannot be opened or
/// written.
pub async fn serve(
    config: Config,
    signer: Signer,
    secrets: Box<dyn SecretProvider + Send + Sync>,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(SocketAddr, usize, Option<SocketAddr>),
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::MetricsListen { addr, source })?,
        ),
        None => None,
    };
    let (state, repairs) = StateDir::open(&config.state_dir, signer)?;
    let base_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    // Everything observed is derived from the log's records: what the log
    // leaves open first, then each record as it is appended.
    let observer = Arc::new(crate::observe::Observer::new());
    let exporting;
    {
        let mut log = state
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        exporting = observer.start_exporting(
            log.origin(),
            &base_url,
            config.otlp.clone(),
            config.lineage.clone(),
        );
        let bytes =
            std::fs::read(log.path()).map_err(|source| crate::audit::log::AuditError::Io {
                path: log.path().to_owned(),
                source,
            })?;
        observer.learn(&bytes);
        log.tap(Arc::clone(&observer) as Arc<dyn crate::audit::log::Tap>);
    }
    if !repairs.is_empty() {
        tracing::info!(
            "repaired what a stopped cairn left: {}",
            repairs
                .runs
                .iter()
                .map(|(run, status)| format!("run {run} is `{status}`"))
                .chain(
                    repairs
                        .signed
                        .then(|| "signed an unsigned checkpoint".to_owned())
                )
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let reader = crate::state::State::open(&config.state_dir)?;
    let launcher =
        Launcher::new(config.jobs, config.cache_dir.as_deref())?.on_compile(Arc::new(|event| {
            match event {
                crate::launch::Compiling::Started { path, bytes } => {
                    tracing::info!(
                        "compiling {} ({} KiB, not in the compile cache yet) …",
                        path.display(),
                        bytes.div_ceil(1024)
                    );
                }
                crate::launch::Compiling::Finished { path, took, .. } => {
                    tracing::info!("compiled {} in {:.1} s", path.display(), took.as_secs_f64());
                }
            }
        }));
    let mut catalog = catalog::Catalog::new(&config.workflows);
    report(&catalog.refresh(&state.log)?);
    // Notifications of runs that go on after a crash are sent too: the
    // notifier is the outbox before anything is recovered.
    let origin = state
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .origin()
        .to_owned();
    let (notifier, queue) = notify::Notifier::new(origin.clone(), base_url.clone());
    observer.send_to(Arc::clone(&notifier) as Arc<dyn crate::observe::Outbox>);
    for workflow in catalog.all() {
        observer.serving(&workflow.name);
        notifier.serving(workflow);
    }
    let runs = runs::Runs::new(launcher, state, config.jobs, secrets);
    if config.otlp.is_some() {
        runs.traced(origin.clone());
    }
    for note in runs.recover(&catalog).await? {
        tracing::info!("{note}");
    }
    let served = catalog.all().count();
    let catalog = Arc::new(Mutex::new(catalog));
    let log = std::fs::read(StateDir::log_path(runs.state().path())).map_err(|source| {
        crate::audit::log::AuditError::Io {
            path: StateDir::log_path(runs.state().path()),
            source,
        }
    })?;
    let scheduler = scheduler::Scheduler::new(Arc::clone(&catalog), Arc::clone(&runs), &log);
    let hooks = hooks::Hooks::new(Arc::clone(&runs), &log);
    let backfills = backfill::Backfills::new(Arc::clone(&runs), Arc::clone(&catalog), &log);
    drop(log);
    for note in backfills.resume() {
        tracing::info!("{note}");
    }
    let app = Arc::new(api::App {
        catalog,
        runs: Arc::clone(&runs),
        scheduler: Arc::clone(&scheduler),
        hooks,
        backfills: Arc::clone(&backfills),
        reader: Mutex::new(reader),
        base_url,
        public_origin: config.public_url.is_some(),
        sessions: session::Sessions::new().map_err(ServeError::Session)?,
    });
    let reloading = tokio::spawn(reload(
        Arc::clone(&app),
        config.reload,
        Arc::clone(&notifier),
    ));
    let notifying = tokio::spawn(notify::send(
        notifier,
        queue,
        Arc::clone(&runs),
        Arc::clone(&app.catalog),
    ));
    let committing = tokio::spawn(commit(Arc::clone(&runs)));
    let scheduling = tokio::spawn(scheduler.run());
    let router = ui::router(Arc::clone(&app)).layer((
        tower_http::timeout::RequestBodyTimeoutLayer::new(REQUEST_TIMEOUT),
        tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ),
    ));
    let mut tasks = vec![reloading, scheduling, committing, notifying];
    let metrics_addr = metrics_listener
        .as_ref()
        .and_then(|listener| listener.local_addr().ok());
    if let Some(listener) = metrics_listener {
        let scrape = scrape_router(Arc::clone(&app), Arc::clone(&observer));
        tasks.push(tokio::spawn(accept(
            listener,
            scrape,
            std::future::pending(),
        )));
        tasks.push(tokio::spawn(upkeep(Arc::clone(&observer))));
    }
    ready(addr, served, metrics_addr);
    accept(listener, router, shutdown).await;
    // Stopped, and waited for: a scheduler caught mid-tick must not append
    // after the log is closed and signed below.
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    backfills.stop().await;
    tracing::info!(
        "stopping: no new runs; waiting up to {:.0} s for tasks under way",
        config.grace.as_secs_f64()
    );
    runs.shutdown(config.grace).await?;
    // What the last records and checkpoint made (spans, lineage events)
    // is sent before the process ends.
    exporting.finish(&observer, Duration::from_secs(5)).await;
    tracing::info!("stopped; the audit log is signed to its last record");
    Ok(())
}

/// Decide whether `user` (by token `token`, `""` for the service's own
/// requests: a schedule's tick) may do `asked` on `served`, and record the
/// decision (an `access` record, synced) before it takes effect. Returns
/// the record's number and whether it allows.
///
/// # Errors
///
/// The decision could not be made (a bug: the request does not fit the
/// schema) or recorded.
pub(crate) fn decide_recorded(
    state: &StateDir,
    served: &catalog::Served,
    user: &str,
    token: &str,
    asked: crate::policy::service::Asked<'_>,
) -> Result<(u64, bool), String> {
    let decision = served
        .service
        .decide(user, asked)
        .map_err(|e| e.to_string())?;
    let seq = record_decision(state, served, token, &decision)?;
    Ok((seq, decision.allowed))
}

/// Record `decision`, made for `served` on a request by token `token`
/// (`""` for the service's own), as an `access` record, synced. Returns
/// the record's number.
///
/// # Errors
///
/// It could not be recorded.
pub(crate) fn record_decision(
    state: &StateDir,
    served: &catalog::Served,
    token: &str,
    decision: &crate::policy::Decision,
) -> Result<u64, String> {
    let entity = |uid: &cedar_policy::EntityUid| serde_json::json!({ "type": uid.type_name().to_string(), "id": uid.id().unescaped() });
    let mut log = state
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let seq = log
        .append(
            "",
            crate::audit::record::Event::Access {
                token: token.to_owned(),
                workflow: served.name.clone(),
                action: decision.action.to_owned(),
                principal: entity(&decision.principal),
                resource: entity(&decision.resource),
                context: decision.context.clone(),
                decision: if decision.allowed { "allow" } else { "deny" }.to_owned(),
                policies: decision.policies.clone(),
                errors: decision.errors.clone(),
                policy_set: served.policy_set.clone(),
            },
        )
        .map_err(|e| e.to_string())?;
    log.sync().map_err(|e| e.to_string())?;
    Ok(seq)
}

fn report(refreshed: &catalog::Refreshed) {
    for name in &refreshed.loaded {
        tracing::info!("serving workflow {name}");
    }
    for problem in &refreshed.problems {
        tracing::warn!(
            "`{}` does not load (the last version that did, if any, is still served):\n  {}",
            problem.source.display(),
            problem.problems.join("\n  ")
        );
    }
}

/// Look at the workflows' files every `every`, and sign a checkpoint
/// over requests recorded since the last one, once it is due.
async fn reload(app: Arc<api::App>, every: Duration, notifier: Arc<notify::Notifier>) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let refreshed = {
            let mut catalog = app
                .catalog
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let refreshed = catalog.refresh(&app.runs.state().log);
            if let Ok(refreshed) = &refreshed {
                for name in &refreshed.loaded {
                    if let Some(served) = catalog.get(name) {
                        notifier.serving(&served);
                    }
                }
            }
            refreshed
        };
        match refreshed {
            Ok(refreshed) => {
                if !refreshed.loaded.is_empty() {
                    app.scheduler.wake();
                }
                report(&refreshed);
            }
            Err(e) => tracing::warn!("cannot record a changed workflow: {e}"),
        }
        // Requests answered since the last checkpoint get one soon.
        let signed = app
            .runs
            .state()
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .checkpoint_if_stale();
        if let Err(e) = signed {
            tracing::warn!("cannot sign a checkpoint: {e}");
        }
    }
}

/// Commit the run state's group transaction once it is due, so that
/// what runs did shows in the API within [`COMMIT_EVERY`] even while no
/// run writes anything more.
///
/// [`COMMIT_EVERY`]: crate::state::COMMIT_EVERY
async fn commit(runs: Arc<runs::Runs>) {
    let mut ticks = tokio::time::interval(crate::state::COMMIT_EVERY);
    loop {
        ticks.tick().await;
        let committed = runs
            .state()
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .commit_if_due();
        if let Err(e) = committed {
            tracing::warn!("cannot commit the run state: {e}");
        }
    }
}

/// `GET /metrics`: every metric in the Prometheus text format, on the
/// metrics listener only (no token: it names no person and no run).
fn scrape_router(app: Arc<api::App>, observer: Arc<crate::observe::Observer>) -> axum::Router {
    let scrape = move || {
        let app = Arc::clone(&app);
        let observer = Arc::clone(&observer);
        async move {
            let mut active = std::collections::BTreeMap::new();
            for workflow in app
                .catalog
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .all()
            {
                for phase in ["queued", "running"] {
                    active.insert((workflow.name.clone(), phase), 0);
                }
            }
            for run in app.runs.active() {
                let phase = match run.phase {
                    runs::Phase::Queued => "queued",
                    runs::Phase::Running => "running",
                };
                *active.entry((run.workflow, phase)).or_insert(0) += 1;
            }
            (
                [(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                observer.render(&active),
            )
        }
    };
    axum::Router::new().route("/metrics", axum::routing::get(scrape))
}

/// Drain the metrics' histograms every few seconds, scraped or not.
async fn upkeep(observer: Arc<crate::observe::Observer>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticks.tick().await;
        observer.upkeep();
    }
}

/// Answer connections on `listener` with `router` until `shutdown`, then
/// let requests under way finish (for a few seconds).
async fn accept(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            break;
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: wait a little, go on.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = watched.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}
