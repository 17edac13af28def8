//! `cairn serve`: run the service in the foreground.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::style::Style;
use super::{CliError, Exit};
use crate::name::Name;
use crate::secrets::SecretSource;
use crate::units::HumanDuration;

/// Serve workflows over HTTP: start runs when an authenticated, allowed
/// request asks, on their schedules and on signed webhook deliveries, and
/// show what they did.
///
/// One process over one state directory (its SQLite run state, audit log
/// and artifacts), serving the workflows at the paths given (manifests, or
/// folders holding `workflow.toml`). Every request carries an API token
/// (`cairn token create --user NAME --state-dir DIR`); the token decides
/// who is asking, and the workflow's Cedar policies decide whether they
/// may (`trigger`, `read_workflow`, `list_runs`, `read_run`, `read_audit`,
/// `cancel_run`). Each decision is in the signed audit log before it takes
/// effect, and a run the service starts names the `trigger` record that
/// started it (`cairn audit verify` checks both).
///
/// A manifest's `[schedules.NAME]` tick as their `as` user (each tick
/// recorded, with why when it starts nothing; `cairn schedules`
/// pauses and resumes them); its `[webhooks.NAME]` are served at
/// `POST /v1/hooks/WORKFLOW/NAME`, verified by signature, the body given
/// to tasks as the input `trigger.body`. `cairn backfill --server` runs a
/// schedule's past ticks here, each nominal time once, surviving restarts.
///
/// Runs share one engine and `--jobs` task slots; a workflow's
/// `max_active_runs` queues the rest of its runs. A changed workflow file
/// is served from its next check (its new digest recorded); a version
/// that does not validate leaves the last good one served, and says why.
/// SIGTERM or Ctrl-C: no new runs, tasks under way get `--grace` to
/// finish, then the log is signed and the process exits; started again,
/// it goes on with what was interrupted (a `kill -9` included).
///
/// `--metrics-listen ADDR` serves Prometheus metrics at
/// `http://ADDR/metrics`; `--log-format json` writes the service's
/// messages as JSON lines; a manifest's `[notifications.NAME]` sends its
/// runs' events as signed CloudEvents (each decided by policy, `notify`,
/// and recorded). Traces go over OTLP where the standard `OTEL_*`
/// variables say (`OTEL_EXPORTER_OTLP_ENDPOINT`, ...), OpenLineage events
/// where the OpenLineage client's say (`OPENLINEAGE_URL`, or
/// `OPENLINEAGE__TRANSPORT__TYPE=file` and `..._LOG_FILE_PATH`); `cairn
/// run` reads the same.
///
/// The API is described at `/v1/openapi.json`. Secrets for the runs come
/// from --secret, or the environment variables `CAIRN_SECRET_<NAME>`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cairn token create --user alice --state-dir /var/lib/cairn
  cairn serve examples/hello examples/etl --state-dir /var/lib/cairn
  curl -X POST -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/v1/workflows/hello/runs
  cairn trigger hello --server http://127.0.0.1:8080    (CAIRN_TOKEN holds the token)
  cairn serve examples/etl --metrics-listen 127.0.0.1:9464 --log-format json
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OPENLINEAGE_URL=http://marquez:5000 cairn serve examples/etl")]
pub(crate) struct ServeArgs {
    /// The workflows to serve: manifests, or folders holding `workflow.toml`.
    #[arg(value_name = "PATH", required = true)]
    workflows: Vec<PathBuf>,

    /// The address to listen on (port 0: a free one, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,

    /// The state directory: run state, audit log, artifacts, keys.
    #[arg(long, value_name = "DIR", default_value = ".cairn")]
    state_dir: PathBuf,

    /// The Ed25519 private key (PKCS#8 PEM) that signs audit checkpoints
    /// [default: STATE/keys/audit.key, created on first use].
    #[arg(long, value_name = "FILE", env = "CAIRN_AUDIT_KEY")]
    key: Option<PathBuf>,

    /// How many tasks may run at once, across all runs [default: the
    /// machine's cores].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// At shutdown, how long tasks under way may take to finish before
    /// they are stopped (they run again when the service is back).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    grace: HumanDuration,

    /// How often the workflows' files are checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    reload: HumanDuration,

    /// A secret's value for the runs: NAME=env:VAR or NAME=file:PATH
    /// (repeatable).
    #[arg(long = "secret", value_name = "NAME=SOURCE", value_parser = super::exec::parse_secret)]
    secrets: Vec<(Name, SecretSource)>,

    /// Where compiled tasks are cached [default: the user cache folder].
    #[arg(long, value_name = "DIR", env = "CAIRN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,

    /// The address browsers and clients reach the service at, when it is
    /// behind a proxy (e.g. https://cairn.example.com): the URLs it hands
    /// out use it, the web UI accepts actions only from that origin, and
    /// an https one makes its session cookie `Secure`
    /// [default: http://ADDR, as listened on].
    #[arg(long, value_name = "URL", value_parser = crate::serve::parse_public_url)]
    public_url: Option<String>,

    /// Serve Prometheus metrics at http://ADDR/metrics, on a listener of
    /// its own and without a token (they name no person and no run; keep
    /// the address where only your Prometheus reaches it), e.g.
    /// 127.0.0.1:9464 [default: no metrics].
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,

    /// How the service's own messages are written to stderr: `text` for
    /// people, `json` (one object per line, with time, level and fields)
    /// for log shippers.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = super::LogFormat::Text)]
    pub(crate) log_format: super::LogFormat,
}

pub(crate) async fn serve(args: &ServeArgs) -> Result<Exit, CliError> {
    let signer = super::run::signer_saying(args.key.as_deref(), &args.state_dir, |note| {
        tracing::info!(target: "cairn::serve", "{note}");
    })?;
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let config = crate::serve::Config {
        workflows: args.workflows.clone(),
        listen: args.listen,
        state_dir: args.state_dir.clone(),
        jobs,
        grace: args.grace.0,
        reload: args.reload.0.max(Duration::from_millis(100)),
        cache_dir: args
            .cache_dir
            .clone()
            .or_else(super::exec::default_cache_dir),
        public_url: args.public_url.clone(),
        metrics_listen: args.metrics_listen,
        otlp: crate::observe::otlp::Config::from_env(|name| std::env::var(name).ok())
            .map_err(CliError::input)?,
        lineage: crate::observe::transport::Config::from_env(|name| std::env::var(name).ok())
            .map_err(CliError::input)?,
    };
    let secrets: BTreeMap<Name, SecretSource> = args.secrets.iter().cloned().collect();
    // JSON lines are read by machines, never coloured.
    let style = if args.log_format == super::LogFormat::Json {
        Style::plain()
    } else {
        Style::stderr()
    };
    let state_dir = args.state_dir.clone();
    crate::serve::serve(
        config,
        signer,
        Box::new(super::run::CliSecrets(secrets)),
        stop_signal(),
        move |addr, served, metrics| {
            tracing::info!(
                target: "cairn::serve",
                %addr,
                "{} listening on http://{addr} ({served} workflow(s), state `{}`); the web UI is at http://{addr}/ui/ (sign in with a token from `cairn token create`); SIGTERM or Ctrl-C stops",
                style.good("cairn serve"),
                state_dir.display()
            );
            if let Some(metrics) = metrics {
                tracing::info!(
                    target: "cairn::serve",
                    %metrics,
                    "metrics for Prometheus at http://{metrics}/metrics"
                );
            }
        },
    )
    .await
    .map_err(|e| CliError::input_with_sources(&e))?;
    Ok(Exit::Success)
}

/// SIGTERM or SIGINT, whichever comes first.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {}
    }
}
