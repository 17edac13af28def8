//! Sending OpenLineage events: configured with the variables the
//! OpenLineage clients read (`OPENLINEAGE_URL`, `OPENLINEAGE__TRANSPORT__*`,
//! ...), to an HTTP endpoint (Marquez's `/api/v1/lineage`, one event a
//! request, in order) or a file (one event a line, appended), off the
//! path of any run: a destination that is slow or down loses events
//! (counted), never time.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

/// Events waiting to be sent, at most; more are dropped and counted.
pub const QUEUE: usize = 100_000;
/// Tries of one event over HTTP, at most.
const TRIES: u32 = 3;

/// Where events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `POST` each event to `url`, with `api_key` as a bearer token.
    Http {
        url: String,
        api_key: Option<String>,
        timeout: Duration,
    },
    /// Append each event, one a line, to the file.
    File(PathBuf),
}

/// The configuration of OpenLineage output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub transport: Transport,
    /// The jobs' namespace (`OPENLINEAGE_NAMESPACE`, else `cairn`).
    pub namespace: String,
}

impl Config {
    /// The configuration `var` (the environment) gives; `None` when no
    /// lineage is asked for (no URL, no transport), or
    /// `OPENLINEAGE_DISABLED=true`.
    ///
    /// # Errors
    ///
    /// A transport Cairn does not have, or a value it cannot use, said so.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if set("OPENLINEAGE_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let namespace = set("OPENLINEAGE_NAMESPACE").unwrap_or_else(|| "cairn".to_owned());
        let url = set("OPENLINEAGE__TRANSPORT__URL").or_else(|| set("OPENLINEAGE_URL"));
        let kind = set("OPENLINEAGE__TRANSPORT__TYPE")
            .map(|k| k.to_ascii_lowercase())
            .or_else(|| url.is_some().then(|| "http".to_owned()));
        let transport = match kind.as_deref() {
            None => return Ok(None),
            Some("http") => {
                let url = url.ok_or(
                    "OpenLineage over HTTP needs OPENLINEAGE_URL (or OPENLINEAGE__TRANSPORT__URL), e.g. http://marquez:5000",
                )?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "OPENLINEAGE_URL={url} must start with http:// or https://"
                    ));
                }
                let endpoint = set("OPENLINEAGE__TRANSPORT__ENDPOINT")
                    .or_else(|| set("OPENLINEAGE_ENDPOINT"))
                    .unwrap_or_else(|| "api/v1/lineage".to_owned());
                let api_key = set("OPENLINEAGE__TRANSPORT__AUTH__API_KEY")
                    .or_else(|| set("OPENLINEAGE__TRANSPORT__AUTH__APIKEY"))
                    .or_else(|| set("OPENLINEAGE_API_KEY"));
                let timeout = match set("OPENLINEAGE__TRANSPORT__TIMEOUT") {
                    None => 5.0,
                    Some(t) => t
                        .parse::<f64>()
                        .ok()
                        .filter(|t| t.is_finite() && *t > 0.0)
                        .ok_or(format!(
                            "OPENLINEAGE__TRANSPORT__TIMEOUT={t} is not a number of seconds"
                        ))?,
                };
                Transport::Http {
                    url: format!(
                        "{}/{}",
                        url.trim_end_matches('/'),
                        endpoint.trim_start_matches('/')
                    ),
                    api_key,
                    timeout: Duration::from_secs_f64(timeout.min(600.0)),
                }
            }
            Some("file") => Transport::File(PathBuf::from(
                set("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH").ok_or(
                    "OpenLineage to a file needs OPENLINEAGE__TRANSPORT__LOG_FILE_PATH (events are appended, one a line)",
                )?,
            )),
            Some(other) => {
                return Err(format!(
                    "OPENLINEAGE__TRANSPORT__TYPE={other} is not supported: Cairn sends OpenLineage events over `http` or to a `file`"
                ));
            }
        };
        Ok(Some(Self {
            transport,
            namespace,
        }))
    }

    /// Where events go, for a message.
    #[must_use]
    pub fn destination(&self) -> String {
        match &self.transport {
            Transport::Http { url, .. } => url.clone(),
            Transport::File(path) => path.display().to_string(),
        }
    }
}

/// The queue the observer puts released events in.
pub type Events = mpsc::Sender<Vec<serde_json::Value>>;

/// Send what arrives on `events` as `config` says until the queue
/// closes; `lost` is told how many events could not be delivered.
pub async fn export(
    config: Config,
    mut events: mpsc::Receiver<Vec<serde_json::Value>>,
    lost: impl Fn(usize) + Send,
) {
    let destination = config.destination();
    while let Some(batch) = events.recv().await {
        let n = batch.len();
        let result = match &config.transport {
            Transport::Http {
                url,
                api_key,
                timeout,
            } => {
                let mut failed = 0;
                let mut why = String::new();
                for event in batch {
                    let event = event.to_string();
                    if let Err(e) = post(url, api_key.as_deref(), *timeout, event).await {
                        failed += 1;
                        why = e;
                    }
                }
                if failed == 0 {
                    Ok(())
                } else {
                    Err((failed, why))
                }
            }
            Transport::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || append(&path, &batch))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r)
                    .map_err(|why| (n, why))
            }
        };
        if let Err((failed, why)) = result {
            tracing::warn!(
                target: "cairn::serve",
                "OpenLineage to {destination}: {failed} event(s) lost: {why}"
            );
            lost(failed);
        }
    }
}

fn append(path: &std::path::Path, events: &[serde_json::Value]) -> Result<(), String> {
    let mut text = String::new();
    for event in events {
        text.push_str(&event.to_string());
        text.push('\n');
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot append to {}: {e}", path.display()))
}

/// `POST` one event, trying again on what is worth it.
async fn post(
    url: &str,
    api_key: Option<&str>,
    timeout: Duration,
    event: String,
) -> Result<(), String> {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    if let Some(key) = api_key {
        headers.push(("authorization".to_owned(), format!("Bearer {key}")));
    }
    let body = event.into_bytes();
    let mut last = String::new();
    for attempt in 1..=TRIES {
        match super::send::post(url, &headers, body.clone(), timeout).await {
            Ok(answer) if (200..300).contains(&answer.status) => return Ok(()),
            Ok(answer) => {
                last = format!("HTTP {}", answer.status);
                if !matches!(answer.status, 429 | 500 | 502 | 503 | 504) {
                    break;
                }
            }
            Err(why) => last = why,
        }
        if attempt < TRIES {
            tokio::time::sleep(Duration::from_millis(500) * attempt).await;
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::observe::env_of as env;

    #[test]
    fn the_openlineage_clients_variables_configure_the_transport() {
        assert_eq!(Config::from_env(env(&[])).unwrap(), None);
        let http = Config::from_env(env(&[
            ("OPENLINEAGE_URL", "http://marquez:5000/"),
            ("OPENLINEAGE_API_KEY", "k"),
            ("OPENLINEAGE_NAMESPACE", "prod"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            http.transport,
            Transport::Http {
                url: "http://marquez:5000/api/v1/lineage".into(),
                api_key: Some("k".into()),
                timeout: Duration::from_secs(5),
            }
        );
        assert_eq!(http.namespace, "prod");
        let file = Config::from_env(env(&[
            ("OPENLINEAGE__TRANSPORT__TYPE", "file"),
            ("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", "/tmp/ol.jsonl"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(file.transport, Transport::File("/tmp/ol.jsonl".into()));
        assert_eq!(file.namespace, "cairn");
        assert_eq!(
            Config::from_env(env(&[
                ("OPENLINEAGE_URL", "http://m:5000"),
                ("OPENLINEAGE_DISABLED", "TRUE")
            ]))
            .unwrap(),
            None
        );
        for bad in [
            &[("OPENLINEAGE__TRANSPORT__TYPE", "kafka")][..],
            &[("OPENLINEAGE__TRANSPORT__TYPE", "file")],
            &[("OPENLINEAGE__TRANSPORT__TYPE", "http")],
            &[("OPENLINEAGE_URL", "marquez:5000")],
        ] {
            assert!(Config::from_env(env(bad)).is_err(), "{bad:?}");
        }
    }
}
