//! The Prometheus metrics: names, units, help and buckets, and the
//! registry they are counted in (the `metrics` facade over a local
//! `metrics-exporter-prometheus` recorder: nothing global, so two
//! services in one process never share a counter).
//!
//! Labels are bounded values that name no person and no run: workflow,
//! schedule, webhook, outcome, action, decision, phase, via, kind. The
//! README's "Metrics" table lists every metric; the Grafana dashboard
//! (`examples/observability/grafana-dashboard.json`) uses only these.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

/// Runs started, by workflow and by what started them (`api`,
/// `schedule`, `webhook`, `backfill`, `cli`).
pub const RUNS_STARTED: &str = "cairn_runs_started_total";
/// Runs resumed after an interruption, by workflow.
pub const RUNS_RESUMED: &str = "cairn_runs_resumed_total";
/// Runs ended, by workflow and outcome (`succeeded`, `failed`,
/// `refused`, `cancelled`, `error`, `waiting`).
pub const RUNS_FINISHED: &str = "cairn_runs_finished_total";
/// How long runs took, by workflow and outcome.
pub const RUN_DURATION: &str = "cairn_run_duration_seconds";
/// Runs active now (queued or running), by workflow and phase.
pub const RUNS_ACTIVE: &str = "cairn_runs_active";
/// Task attempts ended, by workflow and outcome (`success`, `failure`,
/// `trap`, `timeout`, ...).
pub const TASK_ATTEMPTS: &str = "cairn_task_attempts_total";
/// How long task attempts took, by workflow and outcome.
pub const TASK_DURATION: &str = "cairn_task_duration_seconds";
/// Attempts that failed and will be tried again, by workflow.
pub const TASK_RETRIES: &str = "cairn_task_retries_total";
/// Tasks that did not run (an upstream failed, a condition), by workflow.
pub const TASKS_SKIPPED: &str = "cairn_tasks_skipped_total";
/// Tasks whose outputs came from the cache, by workflow.
pub const TASK_CACHE_HITS: &str = "cairn_task_cache_hits_total";
/// HTTP requests tasks made, by workflow and result (`sent`, `denied`).
pub const TASK_HTTP_REQUESTS: &str = "cairn_task_http_requests_total";
/// Secrets released to tasks, by workflow (never which secret).
pub const SECRET_READS: &str = "cairn_secret_reads_total";
/// Schedule ticks, by workflow, schedule and outcome (`started`,
/// `overlap`, `paused`, `missed`, `denied`, `other`); a skip standing
/// for several ticks counts each.
pub const SCHEDULE_TICKS: &str = "cairn_schedule_ticks_total";
/// From a run's trigger to its start, by `via`: for a schedule from its
/// nominal time (jitter included), else from the trigger's record.
pub const TRIGGER_TO_START: &str = "cairn_trigger_to_start_seconds";
/// Policy decisions, by phase (`preflight`, `runtime`, `expansion`,
/// `access`, `approval`), action and decision (`allow`, `deny`).
pub const POLICY_DECISIONS: &str = "cairn_policy_decisions_total";
/// Webhook deliveries received, by workflow, webhook and result
/// (`accepted`, `duplicate`, `bad-signature`, ...).
pub const WEBHOOK_DELIVERIES: &str = "cairn_webhook_deliveries_total";
/// Notification delivery attempts, by workflow, notification and result
/// (`delivered`, `failed`, `refused`, `denied`, `no-key`).
pub const NOTIFICATIONS: &str = "cairn_notifications_total";
/// Approval gates open now, by workflow.
pub const APPROVALS_WAITING: &str = "cairn_approvals_waiting";
/// Records appended to the audit log, by kind.
pub const AUDIT_RECORDS: &str = "cairn_audit_records_total";
/// Records in the audit log.
pub const AUDIT_LOG_RECORDS: &str = "cairn_audit_log_records";
/// Seconds since the last signed checkpoint was recorded.
pub const CHECKPOINT_AGE: &str = "cairn_audit_checkpoint_age_seconds";
/// Records no signed checkpoint covers yet.
pub const UNSIGNED_RECORDS: &str = "cairn_audit_unsigned_records";
/// Items an exporter's full queue dropped, by exporter.
pub const EXPORT_DROPPED: &str = "cairn_export_dropped_total";
/// 1, labelled with Cairn's version.
pub const BUILD_INFO: &str = "cairn_build_info";

/// Upper bounds of the duration buckets: 5 ms to 6 h.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 21600.0,
];
/// Upper bounds of the trigger-to-start buckets: 1 ms to 10 min.
const DELAY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 600.0,
];

/// The registry.
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding every metric's description and the build info.
    #[must_use]
    pub fn new() -> Self {
        let builder = [
            (RUN_DURATION, DURATION_BUCKETS),
            (TASK_DURATION, DURATION_BUCKETS),
            (TRIGGER_TO_START, DELAY_BUCKETS),
        ]
        .into_iter()
        .try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
            builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
        });
        // Only an empty bucket list is refused, and none is.
        let recorder = builder
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let metrics = Self { recorder };
        metrics.with(describe);
        metrics
    }

    /// Run `f` with this registry as the `metrics` macros' recorder.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Everything, in the Prometheus text format (version 0.0.4).
    #[must_use]
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    /// Drain what histograms hold between scrapes (every few seconds).
    pub fn upkeep(&self) {
        self.recorder.handle().run_upkeep();
    }
}

fn describe() {
    describe_counter!(
        RUNS_STARTED,
        Unit::Count,
        "Runs started, by workflow and by what started them (api, schedule, webhook, backfill, cli)."
    );
    describe_counter!(
        RUNS_RESUMED,
        Unit::Count,
        "Runs resumed after an interruption, by workflow."
    );
    describe_counter!(
        RUNS_FINISHED,
        Unit::Count,
        "Runs ended, by workflow and outcome."
    );
    describe_histogram!(
        RUN_DURATION,
        Unit::Seconds,
        "How long runs took, by workflow and outcome."
    );
    describe_gauge!(
        RUNS_ACTIVE,
        Unit::Count,
        "Runs active now, by workflow and phase (queued, running)."
    );
    describe_counter!(
        TASK_ATTEMPTS,
        Unit::Count,
        "Task attempts ended, by workflow and outcome."
    );
    describe_histogram!(
        TASK_DURATION,
        Unit::Seconds,
        "How long task attempts took, by workflow and outcome."
    );
    describe_counter!(
        TASK_RETRIES,
        Unit::Count,
        "Task attempts that failed and will be tried again, by workflow."
    );
    describe_counter!(
        TASKS_SKIPPED,
        Unit::Count,
        "Tasks that did not run, by workflow."
    );
    describe_counter!(
        TASK_CACHE_HITS,
        Unit::Count,
        "Tasks whose outputs came from the cache, by workflow."
    );
    describe_counter!(
        TASK_HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests tasks made, by workflow and result (sent, denied)."
    );
    describe_counter!(
        SECRET_READS,
        Unit::Count,
        "Secrets released to tasks, by workflow."
    );
    describe_counter!(
        SCHEDULE_TICKS,
        Unit::Count,
        "Schedule ticks, by workflow, schedule and outcome (started, overlap, paused, missed, denied, other)."
    );
    describe_histogram!(
        TRIGGER_TO_START,
        Unit::Seconds,
        "From a run's trigger (a schedule's nominal time) to its start, by via."
    );
    describe_counter!(
        POLICY_DECISIONS,
        Unit::Count,
        "Policy decisions, by phase, action and decision."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        Unit::Count,
        "Webhook deliveries received, by workflow, webhook and result."
    );
    describe_counter!(
        NOTIFICATIONS,
        Unit::Count,
        "Notification delivery attempts, by workflow, notification and result."
    );
    describe_gauge!(
        APPROVALS_WAITING,
        Unit::Count,
        "Approval gates open now, by workflow."
    );
    describe_counter!(
        AUDIT_RECORDS,
        Unit::Count,
        "Records appended to the audit log, by kind."
    );
    describe_gauge!(AUDIT_LOG_RECORDS, Unit::Count, "Records in the audit log.");
    describe_gauge!(
        CHECKPOINT_AGE,
        Unit::Seconds,
        "Seconds since the last signed checkpoint was recorded."
    );
    describe_gauge!(
        UNSIGNED_RECORDS,
        Unit::Count,
        "Audit records no signed checkpoint covers yet."
    );
    describe_counter!(
        EXPORT_DROPPED,
        Unit::Count,
        "Items an exporter's full queue dropped, by exporter."
    );
    describe_gauge!(BUILD_INFO, Unit::Count, "1, labelled with Cairn's version.");
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
