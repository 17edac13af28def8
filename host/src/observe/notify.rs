//! Notifications, the pure part: a workflow's `[notifications.NAME]`, the
//! CloudEvents 1.0 event (structured JSON) a record makes, how it is
//! signed (Standard Webhooks, with the endpoint's own key: never the
//! audit key) and when a failed delivery is tried again. No clock, no
//! I/O: the sender (`serve::notify`) brings the time and the key.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::audit::record::{Event, Record};

/// The events a notification can be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A run began (`run-started`).
    RunStarted,
    /// A run ended `succeeded`.
    RunSucceeded,
    /// A run ended `failed`, `refused` or `error`.
    RunFailed,
    /// An approval gate opened: someone must approve.
    ApprovalRequested,
}

impl Kind {
    /// Every kind, by its name in a manifest.
    pub const NAMES: &[&str] = &[
        "run.started",
        "run.succeeded",
        "run.failed",
        "approval.requested",
    ];

    /// Every kind.
    pub const ALL: [Self; 4] = [
        Self::RunStarted,
        Self::RunSucceeded,
        Self::RunFailed,
        Self::ApprovalRequested,
    ];

    /// The name in a manifest's `events`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RunStarted => "run.started",
            Self::RunSucceeded => "run.succeeded",
            Self::RunFailed => "run.failed",
            Self::ApprovalRequested => "approval.requested",
        }
    }

    /// The kind named `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The CloudEvents `type`: reverse-DNS, `dev.cairn.` and the name.
    #[must_use]
    pub fn cloudevent_type(self) -> String {
        format!("dev.cairn.{}", self.name())
    }
}

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: String,
    /// The host, as given (a name or an address).
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Endpoint {
    /// Parse `url`: `http://` or `https://`, a host, an optional port and
    /// path; no user name or password, no fragment.
    ///
    /// # Errors
    ///
    /// What is wrong with it, to tell the manifest's author.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| "it is not a URL: write it as `https://host/path`".to_owned())?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => return Err("it must start with `https://` (or `http://`)".to_owned()),
        };
        let authority = uri
            .authority()
            .ok_or("it has no host: write it as `https://host/path`")?;
        if authority.as_str().contains('@') {
            return Err(
                "it must not hold a user name or password: the key signs each delivery".to_owned(),
            );
        }
        if url.contains('#') {
            return Err("it must not have a fragment (`#...`)".to_owned());
        }
        let host = authority.host().to_owned();
        if host.is_empty() {
            return Err("it has no host".to_owned());
        }
        // What follows the host is nothing or `:PORT`: `http` reads a port
        // it cannot parse as none, which would send to the default.
        let port = match authority.as_str().strip_prefix(host.as_str()) {
            Some("") => {
                if scheme == "https" {
                    443
                } else {
                    80
                }
            }
            Some(rest) => rest
                .strip_prefix(':')
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u16>().ok())
                .filter(|port| *port != 0)
                .ok_or_else(|| {
                    format!(
                        "its port `{}` must be 1 to 65535",
                        rest.trim_start_matches(':')
                    )
                })?,
            None => return Err("it has no host: write it as `https://host/path`".to_owned()),
        };
        let path = uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .to_owned();
        Ok(Self {
            scheme,
            host,
            port,
            path,
        })
    }

    /// `host:port`, as policy's `Host` entity names it.
    #[must_use]
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host.trim_matches(['[', ']']), self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The whole URL.
    #[must_use]
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host_port(), self.path)
    }
}

/// A workflow's `[notifications.NAME]`: where its events go, signed with
/// the key in secret `secret`, for which events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The table's name.
    pub name: String,
    pub endpoint: Endpoint,
    /// The secret holding the Standard Webhooks key (`whsec_<base64>`).
    pub secret: crate::name::Name,
    /// The events it wants (every kind unless the manifest says).
    pub events: BTreeSet<Kind>,
}

/// What record `record` of a run of `workflow` is a notification about,
/// if anything.
#[must_use]
pub fn kind_of(record: &Record) -> Option<Kind> {
    match &record.event {
        Event::RunStarted { .. } => Some(Kind::RunStarted),
        Event::RunFinished { status, .. } => match status.as_str() {
            "succeeded" => Some(Kind::RunSucceeded),
            "failed" | "refused" | "error" => Some(Kind::RunFailed),
            _ => None,
        },
        Event::GateOpened { .. } => Some(Kind::ApprovalRequested),
        _ => None,
    }
}

/// The CloudEvent (structured JSON mode) for record `record` of kind
/// `kind`, of a run of `workflow`, in the log whose checkpoints name
/// `origin`; `base_url` is where the service is reached. Its `id` is the
/// same for every delivery of it (receivers drop repeats by it); `data`
/// names the record that backs it, and never a user, an output or a
/// secret.
#[must_use]
pub fn cloudevent(
    record: &Record,
    kind: Kind,
    workflow: &str,
    origin: &str,
    base_url: &str,
    line_sha256: &str,
) -> serde_json::Value {
    let mut data = serde_json::json!({
        "workflow": workflow,
        "run": record.run,
        "url": format!("{base_url}/ui/runs/{}", record.run),
        "audit": {
            "origin": origin,
            "seq": record.seq,
            "sha256": line_sha256,
        },
    });
    let mut set = |key: &str, value: serde_json::Value| {
        if let Some(fields) = data.as_object_mut() {
            fields.insert(key.to_owned(), value);
        }
    };
    match &record.event {
        Event::RunFinished {
            status,
            duration_ms,
        } => {
            set("status", status.clone().into());
            set("duration_ms", (*duration_ms).into());
        }
        Event::GateOpened {
            task,
            required,
            deadline,
            ..
        } => {
            set("task", task.clone().into());
            set("required", (*required).into());
            set("deadline", deadline.clone().into());
        }
        _ => {}
    }
    serde_json::json!({
        "specversion": "1.0",
        "id": format!("{}-{}", origin.rsplit('/').next().unwrap_or(origin), record.seq),
        "source": format!("{base_url}/v1/workflows/{workflow}"),
        "type": kind.cloudevent_type(),
        "subject": format!("runs/{}", record.run),
        "time": record.time,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// Deliveries of one event, at most.
pub const ATTEMPTS: u32 = 6;

/// How long to wait before attempt `attempt` (2, 3, ...): exponential from
/// 1 s, doubling, capped at 5 min, with "full jitter" from `random` (any
/// `u64`): a wait drawn from [half, all] of it, so that a receiver coming
/// back is not hit by every sender at once.
#[must_use]
pub fn backoff(attempt: u32, random: u64) -> Duration {
    let exp = attempt.saturating_sub(2).min(16);
    let full = Duration::from_secs(1)
        .saturating_mul(1 << exp)
        .min(Duration::from_secs(300));
    let half = full / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_millis(random % spread)
}

/// Whether an answer with HTTP status `status` is worth trying again:
/// none arrived, a timeout, too many requests, or a server error.
#[must_use]
pub fn worth_retrying(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(s) => s == 408 || s == 429 || s >= 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_and_refuse_what_they_must() {
        let e = Endpoint::parse("https://hooks.example.com/cairn?team=ops").unwrap();
        assert_eq!(e.host_port(), "hooks.example.com:443");
        assert_eq!(e.path, "/cairn?team=ops");
        assert_eq!(e.url(), "https://hooks.example.com:443/cairn?team=ops");
        assert_eq!(Endpoint::parse("http://127.0.0.1:9/").unwrap().port, 9);
        assert_eq!(Endpoint::parse("https://[::1]:8443/").unwrap().port, 8443);
        assert_eq!(Endpoint::parse("http://x/").unwrap().port, 80);
        for bad in [
            "ftp://x/",
            "https://user:pw@x/",
            "hooks.example.com",
            "https://x/#frag",
            "https://x:0/",
            "https://x:99999/",
            "https://x:65536/",
            "https://x:8a/",
            "https://x:+80/",
            "https://x:/",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        assert!(backoff(2, 0) >= Duration::from_millis(500));
        assert!(backoff(2, u64::MAX) < Duration::from_secs(1));
        assert!(backoff(3, 0) >= Duration::from_secs(1));
        assert!(backoff(30, u64::MAX) <= Duration::from_secs(300));
        assert!(worth_retrying(None) && worth_retrying(Some(503)) && worth_retrying(Some(429)));
        assert!(!worth_retrying(Some(200)) && !worth_retrying(Some(400)));
    }
}
