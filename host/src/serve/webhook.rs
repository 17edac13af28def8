//! Webhook deliveries: is this request from who holds the secret?
//!
//! Two schemes, each an HMAC-SHA256 over the raw bytes as received:
//!
//! - **Standard Webhooks** (`standard`, <https://www.standardwebhooks.com>):
//!   headers `webhook-id`, `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature` (`v1,<base64>`, several separated by spaces); the
//!   signed content is `id.timestamp.body`; a key is `whsec_<base64>`. A
//!   timestamp outside the tolerance window is refused (a replay of an old
//!   delivery).
//! - **GitHub** (`github`): `X-Hub-Signature-256: sha256=<hex>` over the
//!   body, the key the secret's text; `X-GitHub-Delivery` is the id.
//!
//! The secret's value may hold several keys, for rotation (`standard`:
//! separated by whitespace; `github`: one per line): a delivery signed by any of them passes, and the record names
//! which (its key id, a digest prefix that reveals nothing of the key).
//! Every comparison is constant-time (`Mac::verify_slice`). Pure: no
//! clock, no I/O.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

/// How deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Standard,
    GitHub,
}

impl Scheme {
    /// The names, as written in a manifest.
    pub const NAMES: &[&str] = &["standard", "github"];

    /// From its name in a manifest.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "standard" => Some(Self::Standard),
            "github" => Some(Self::GitHub),
            _ => None,
        }
    }

    /// Its name in a manifest and in records.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::GitHub => "github",
        }
    }
}

/// A webhook, as its workflow's manifest declares it (`[webhooks.NAME]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Its name: its endpoint is `POST /v1/hooks/WORKFLOW/NAME`.
    pub name: String,
    pub scheme: Scheme,
    /// The secret holding its key(s), from the service's secret providers.
    pub secret: crate::name::Name,
    /// The principal its runs start as.
    pub principal: String,
    /// The labels the delivery's body carries into the run
    /// (`trigger.body`).
    pub labels: std::collections::BTreeSet<String>,
    /// The run parameters its runs get.
    pub params: std::collections::BTreeMap<String, String>,
    /// How far a `standard` delivery's timestamp may be from now.
    pub tolerance: Duration,
}

/// The headers a delivery is verified with, by lower-case name.
pub trait Headers {
    fn header(&self, name: &str) -> Option<&str>;
}

impl Headers for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A delivery that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Its delivery id.
    pub id: String,
    /// Which key signed it.
    pub key: String,
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("no `{0}` header")]
    Missing(&'static str),
    #[error("{0}")]
    Malformed(String),
    #[error(
        "the timestamp {timestamp} is {} s from now, outside the {} s tolerance (a replay, or a clock far off)",
        now.abs_diff(*timestamp), tolerance.as_secs()
    )]
    Stale {
        timestamp: i64,
        now: i64,
        tolerance: Duration,
    },
    #[error("the signature matches none of the webhook's keys")]
    Signature,
    #[error("the webhook's secret holds no usable key: {0}")]
    Secret(String),
}

impl Rejected {
    /// Its code, as recorded.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing(_) | Self::Malformed(_) => "malformed",
            Self::Stale { .. } => "stale",
            Self::Signature => "bad-signature",
            Self::Secret(_) => "no-key",
        }
    }
}

/// The id a delivery claims, before it is verified (for the record of a
/// refusal).
#[must_use]
pub fn claimed_id(scheme: Scheme, headers: &dyn Headers) -> Option<String> {
    let name = match scheme {
        Scheme::Standard => "webhook-id",
        Scheme::GitHub => "x-github-delivery",
    };
    // Unverified: kept printable, so it cannot paint a terminal later.
    headers.header(name).map(|id| {
        id.chars()
            .filter(char::is_ascii_graphic)
            .take(MAX_ID)
            .collect()
    })
}

/// The longest delivery id kept.
const MAX_ID: usize = 256;

/// Whether `id` can be a delivery id: 1 to [`MAX_ID`] printable ASCII
/// characters.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A key's id: the first 12 hex digits of its SHA-256.
fn key_id(key: &[u8]) -> String {
    crate::audit::log::hex(&Sha256::digest(key))
        .chars()
        .take(12)
        .collect()
}

/// The keys of a secret's value: for `standard`, whitespace-separated,
/// each `whsec_<base64>` (or bare base64); for `github`, one per line.
fn keys(scheme: Scheme, secret: &str) -> Result<Vec<Vec<u8>>, Rejected> {
    let mut keys = Vec::new();
    // GitHub secrets are text and may hold spaces: one per line.
    let words: Vec<&str> = match scheme {
        Scheme::GitHub => secret
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty())
            .collect(),
        Scheme::Standard => secret.split_whitespace().collect(),
    };
    for word in words {
        match scheme {
            Scheme::GitHub => keys.push(word.as_bytes().to_vec()),
            Scheme::Standard => {
                let encoded = word.strip_prefix("whsec_").unwrap_or(word);
                let key = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| {
                        Rejected::Secret(
                            "a Standard Webhooks key is `whsec_` and base64".to_owned(),
                        )
                    })?;
                keys.push(key);
            }
        }
    }
    if keys.is_empty() {
        return Err(Rejected::Secret("it is empty".to_owned()));
    }
    Ok(keys)
}

/// Whether `tag` is the HMAC-SHA256 of `parts` under one of `keys`: the
/// id of the first key it is. Every key is tried (no early exit on which
/// matched).
fn matching_key(keys: &[Vec<u8>], parts: &[&[u8]], tag: &[u8]) -> Option<String> {
    let mut found = None;
    for key in keys {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
            continue;
        };
        for part in parts {
            mac.update(part);
        }
        if mac.verify_slice(tag).is_ok() && found.is_none() {
            found = Some(key_id(key));
        }
    }
    found
}

/// Verify a delivery of `body` with `headers` under `scheme`, signed with
/// a key of `secret`, at Unix time `now` (tolerance `tolerance`, for
/// `standard`).
///
/// # Errors
///
/// Why it is refused.
pub fn verify(
    scheme: Scheme,
    headers: &dyn Headers,
    body: &[u8],
    secret: &str,
    now: i64,
    tolerance: Duration,
) -> Result<Verified, Rejected> {
    let keys = keys(scheme, secret)?;
    match scheme {
        Scheme::Standard => {
            let id = headers
                .header("webhook-id")
                .ok_or(Rejected::Missing("webhook-id"))?;
            if !valid_id(id) {
                return Err(Rejected::Malformed(format!(
                    "`webhook-id` must be 1 to {MAX_ID} printable ASCII characters"
                )));
            }
            let timestamp = headers
                .header("webhook-timestamp")
                .ok_or(Rejected::Missing("webhook-timestamp"))?;
            let at: i64 = timestamp.trim().parse().map_err(|_| {
                Rejected::Malformed("`webhook-timestamp` is not Unix seconds".to_owned())
            })?;
            let window = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
            if now.abs_diff(at) > window.unsigned_abs() {
                return Err(Rejected::Stale {
                    timestamp: at,
                    now,
                    tolerance,
                });
            }
            let signatures = headers
                .header("webhook-signature")
                .ok_or(Rejected::Missing("webhook-signature"))?;
            let mut found = None;
            for signature in signatures.split_whitespace() {
                let Some(encoded) = signature.strip_prefix("v1,") else {
                    continue;
                };
                let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
                    continue;
                };
                let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
                if let Some(key) = matching_key(&keys, &parts, &tag) {
                    found.get_or_insert(key);
                }
            }
            let key = found.ok_or(Rejected::Signature)?;
            Ok(Verified {
                id: id.to_owned(),
                key,
            })
        }
        Scheme::GitHub => {
            let id = headers
                .header("x-github-delivery")
                .ok_or(Rejected::Missing("X-GitHub-Delivery"))?;
            if !valid_id(id) {
                return Err(Rejected::Malformed(format!(
                    "`X-GitHub-Delivery` must be 1 to {MAX_ID} printable ASCII characters"
                )));
            }
            let signature = headers
                .header("x-hub-signature-256")
                .ok_or(Rejected::Missing("X-Hub-Signature-256"))?;
            let tag = signature
                .strip_prefix("sha256=")
                .and_then(unhex)
                .ok_or_else(|| {
                    Rejected::Malformed("`X-Hub-Signature-256` is not `sha256=<hex>`".to_owned())
                })?;
            let key = matching_key(&keys, &[body], &tag).ok_or(Rejected::Signature)?;
            Ok(Verified {
                id: id.to_owned(),
                key,
            })
        }
    }
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

/// The key a Standard Webhooks secret (`whsec_<base64>`, or bare base64)
/// holds, if it is one.
#[must_use]
pub fn standard_key(secret: &str) -> Option<Vec<u8>> {
    let secret = secret.trim();
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
        .filter(|key| !key.is_empty())
}

/// Sign `body` as `scheme` would with `key` (for tests and for clients):
/// the headers to send, by name (none if `key` is not a key of `scheme`).
#[must_use]
pub fn sign(
    scheme: Scheme,
    key: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    match scheme {
        Scheme::Standard => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(key.strip_prefix("whsec_").unwrap_or(key))
                .unwrap_or_default();
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&raw) else {
                return Vec::new();
            };
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(body);
            let tag = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            vec![
                ("webhook-id".to_owned(), id.to_owned()),
                ("webhook-timestamp".to_owned(), timestamp.to_string()),
                ("webhook-signature".to_owned(), format!("v1,{tag}")),
            ]
        }
        Scheme::GitHub => {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
                return Vec::new();
            };
            mac.update(body);
            let tag = crate::audit::log::hex(&mac.finalize().into_bytes());
            vec![
                ("X-GitHub-Delivery".to_owned(), id.to_owned()),
                ("X-Hub-Signature-256".to_owned(), format!("sha256={tag}")),
            ]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct H(Vec<(String, String)>);

    impl Headers for H {
        fn header(&self, name: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OLD: &str = "whsec_c2VjcmV0LW9mLWxhc3QteWVhcg==";
    const TOL: Duration = Duration::from_secs(300);

    /// The example of the Standard Webhooks specification's test vectors.
    #[test]
    fn standard_webhooks_reference_vector() {
        let body = br#"{"test": 2432232314}"#;
        let headers = H(vec![
            ("webhook-id".into(), "msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            ("webhook-timestamp".into(), "1614265330".into()),
            (
                "webhook-signature".into(),
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".into(),
            ),
        ]);
        let v = verify(Scheme::Standard, &headers, body, KEY, 1_614_265_330, TOL).unwrap();
        assert_eq!(v.id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(v.key.len(), 12);
        // One byte of the body changed: refused.
        let e = verify(
            Scheme::Standard,
            &headers,
            br#"{"test": 2432232315}"#,
            KEY,
            1_614_265_330,
            TOL,
        )
        .unwrap_err();
        assert_eq!(e, Rejected::Signature);
        // Ten minutes later: stale.
        let e = verify(Scheme::Standard, &headers, body, KEY, 1_614_265_930, TOL).unwrap_err();
        assert_eq!(e.code(), "stale");
    }

    #[test]
    fn keys_rotate_and_the_record_says_which_signed() {
        let body = b"{}";
        let signed_old = H(sign(Scheme::Standard, OLD, "msg_1", 100, body));
        let signed_new = H(sign(Scheme::Standard, KEY, "msg_2", 100, body));
        let both = format!("{KEY} {OLD}");
        let a = verify(Scheme::Standard, &signed_old, body, &both, 100, TOL).unwrap();
        let b = verify(Scheme::Standard, &signed_new, body, &both, 100, TOL).unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(
            verify(Scheme::Standard, &signed_old, body, KEY, 100, TOL).unwrap_err(),
            Rejected::Signature
        );
        // Several signatures in the header: any one valid passes.
        let mut two = sign(Scheme::Standard, KEY, "msg_3", 100, body);
        two[2].1 = format!("v1,AAAA {}", two[2].1);
        assert!(verify(Scheme::Standard, &H(two), body, KEY, 100, TOL).is_ok());
    }

    #[test]
    fn github_signatures() {
        let body = b"Hello, World!";
        // GitHub's documented example: secret "It's a Secret to Everybody".
        let headers = H(vec![
            (
                "X-GitHub-Delivery".into(),
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".into(),
            ),
            (
                "X-Hub-Signature-256".into(),
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".into(),
            ),
        ]);
        let secret = "It's a Secret to Everybody";
        let v = verify(Scheme::GitHub, &headers, body, secret, 0, TOL).unwrap();
        assert_eq!(v.id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
        assert_eq!(
            verify(Scheme::GitHub, &headers, b"Hello, World?", secret, 0, TOL).unwrap_err(),
            Rejected::Signature
        );
        let signed = H(sign(Scheme::GitHub, secret, "d1", 0, body));
        assert!(verify(Scheme::GitHub, &signed, body, secret, 0, TOL).is_ok());
        let e = verify(
            Scheme::GitHub,
            &H(vec![("X-GitHub-Delivery".into(), "d".into())]),
            body,
            secret,
            0,
            TOL,
        )
        .unwrap_err();
        assert_eq!(e, Rejected::Missing("X-Hub-Signature-256"));
        let bad = H(vec![
            ("X-GitHub-Delivery".into(), "d".into()),
            ("X-Hub-Signature-256".into(), "sha1=abc".into()),
        ]);
        assert_eq!(
            verify(Scheme::GitHub, &bad, body, secret, 0, TOL)
                .unwrap_err()
                .code(),
            "malformed"
        );
    }

    #[test]
    fn delivery_ids_are_printable_ascii() {
        let body = b"{}";
        let mut headers = sign(Scheme::GitHub, "s", "ok", 0, body);
        headers[0].1 = "d\u{1b}[31m".to_owned();
        let signed = H(headers);
        let e = verify(Scheme::GitHub, &signed, body, "s", 0, TOL).unwrap_err();
        assert_eq!(e.code(), "malformed");
        assert_eq!(
            claimed_id(Scheme::GitHub, &signed).as_deref(),
            Some("d[31m")
        );
        let long = H(sign(Scheme::Standard, KEY, &"x".repeat(300), 1, body));
        assert_eq!(
            verify(Scheme::Standard, &long, body, KEY, 1, TOL)
                .unwrap_err()
                .code(),
            "malformed"
        );
    }

    #[test]
    fn a_bad_secret_is_said_so() {
        let headers = H(sign(Scheme::Standard, KEY, "m", 1, b""));
        let e = verify(Scheme::Standard, &headers, b"", "whsec_%%%", 1, TOL).unwrap_err();
        assert_eq!(e.code(), "no-key");
        let e = verify(Scheme::GitHub, &headers, b"", "  ", 1, TOL).unwrap_err();
        assert_eq!(e.code(), "no-key");
    }
}
