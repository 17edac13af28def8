//! Web UI sessions: what a browser holds instead of an API token.
//!
//! Signing in with a token (`POST /ui/sign-in`) makes a session: 32 random
//! bytes, sent once as the `cairn_session` cookie and kept here only as
//! their SHA-256, with the token's id and user. Every request with the
//! cookie checks the token again ([`super::tokens::still_valid`]), so
//! revoking the token ends its sessions at once. Sessions live in memory:
//! a restart signs everyone out, and nothing a browser holds is on disk.
//!
//! CSRF: a state-changing request that comes with the cookie must carry
//! `X-Cairn-CSRF`, the HMAC-SHA-256 of the session under a key drawn at
//! start ([`Sessions::csrf`]), which only a page the service served to
//! that session knows. Origin checks are in [`super::ui`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The cookie's name.
pub const COOKIE: &str = "cairn_session";

/// The header a state-changing request with a session carries.
pub const CSRF_HEADER: &str = "x-cairn-csrf";

/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);

/// A session ends this long after sign-in, used or not.
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Sessions kept at once; signing in past it ends the least recently
/// used one.
pub const MAX_SESSIONS: usize = 10_000;

/// How long an allowed read is reused within one session before it is
/// decided (and recorded) again.
pub const REUSE_READS: Duration = Duration::from_secs(60);

/// Characters of a session's cookie value (32 bytes, base64url).
const VALUE_CHARS: usize = 43;

/// Whose token a session rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The API token's id.
    pub token: String,
    /// Its user.
    pub user: String,
}

/// A signed-in browser.
#[derive(Debug)]
struct Session {
    token: String,
    user: String,
    created: Instant,
    used: Instant,
    /// Reads allowed recently: what was asked → (when, the `access`
    /// record that allowed it).
    reads: HashMap<String, (Instant, u64)>,
}

/// Every session, and the key CSRF tokens are made with.
pub struct Sessions {
    key: [u8; 32],
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Sessions {
    /// No sessions, and a new CSRF key.
    ///
    /// # Errors
    ///
    /// No randomness.
    pub fn new() -> Result<Self, String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("cannot draw a session key: {e}"))?;
        Ok(Self {
            key,
            by_digest: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.by_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Start a session for token `token` of `user`; the cookie's value.
    ///
    /// # Errors
    ///
    /// No randomness.
    pub fn start(&self, token: &str, user: &str) -> Result<String, String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("cannot draw a session: {e}"))?;
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| live(s, now));
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            digest(&value),
            Session {
                token: token.to_owned(),
                user: user.to_owned(),
                created: now,
                used: now,
                reads: HashMap::new(),
            },
        );
        Ok(value)
    }

    /// Whose live session `value` names, marked used now.
    #[must_use]
    pub fn find(&self, value: &str) -> Option<SignedIn> {
        if value.len() != VALUE_CHARS {
            return None;
        }
        let now = Instant::now();
        let mut sessions = self.lock();
        let key = digest(value);
        let session = sessions.get_mut(&key)?;
        if !live(session, now) {
            sessions.remove(&key);
            return None;
        }
        session.used = now;
        Some(SignedIn {
            token: session.token.clone(),
            user: session.user.clone(),
        })
    }

    /// End session `value` (signing out, or its token no longer valid).
    pub fn end(&self, value: &str) {
        self.lock().remove(&digest(value));
    }

    /// The CSRF token of session `value`: hex HMAC-SHA-256 under the key.
    #[must_use]
    pub fn csrf(&self, value: &str) -> String {
        // An HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"cairn-csrf\0");
        mac.update(value.as_bytes());
        crate::audit::log::hex(&mac.finalize().into_bytes())
    }

    /// Whether `presented` is session `value`'s CSRF token (compared in
    /// constant time).
    #[must_use]
    pub fn csrf_matches(&self, value: &str, presented: &str) -> bool {
        let expected = self.csrf(value);
        !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The `access` record that allowed `asked` in session `value` within
    /// the last [`REUSE_READS`], if any.
    #[must_use]
    pub fn allowed_read(&self, value: &str, asked: &str) -> Option<u64> {
        let now = Instant::now();
        let sessions = self.lock();
        let (when, record) = sessions.get(&digest(value))?.reads.get(asked)?;
        (now.duration_since(*when) < REUSE_READS).then_some(*record)
    }

    /// Remember that `asked` was allowed in session `value` by `record`.
    pub fn remember_read(&self, value: &str, asked: String, record: u64) {
        let now = Instant::now();
        if let Some(session) = self.lock().get_mut(&digest(value)) {
            session
                .reads
                .retain(|_, (when, _)| now.duration_since(*when) < REUSE_READS);
            session.reads.insert(asked, (now, record));
        }
    }
}

fn live(session: &Session, now: Instant) -> bool {
    now.duration_since(session.used) < IDLE && now.duration_since(session.created) < MAX_AGE
}

/// The value of cookie `name` in a `Cookie` header's `header`.
#[must_use]
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends_when_signed_out() {
        let sessions = Sessions::new().unwrap();
        let value = sessions.start("abc123", "alice").unwrap();
        assert_eq!(value.len(), VALUE_CHARS);
        let found = sessions.find(&value).unwrap();
        assert_eq!(
            (found.token.as_str(), found.user.as_str()),
            ("abc123", "alice")
        );
        assert!(sessions.find("x").is_none());
        let mut other = value.clone().into_bytes();
        other[0] = if other[0] == b'A' { b'B' } else { b'A' };
        assert!(
            sessions
                .find(std::str::from_utf8(&other).unwrap())
                .is_none()
        );
        sessions.end(&value);
        assert!(sessions.find(&value).is_none());
    }

    #[test]
    fn csrf_tokens_are_per_session_and_per_key() {
        let sessions = Sessions::new().unwrap();
        let (a, b) = (
            sessions.start("t", "alice").unwrap(),
            sessions.start("t", "alice").unwrap(),
        );
        let token = sessions.csrf(&a);
        assert_eq!(token.len(), 64);
        assert!(sessions.csrf_matches(&a, &token));
        assert!(!sessions.csrf_matches(&b, &token));
        assert!(!sessions.csrf_matches(&a, ""));
        // Another start (a restart) has another key.
        assert!(!Sessions::new().unwrap().csrf_matches(&a, &token));
    }

    #[test]
    fn reads_are_reused_only_in_their_session() {
        let sessions = Sessions::new().unwrap();
        let (a, b) = (
            sessions.start("t", "alice").unwrap(),
            sessions.start("t", "alice").unwrap(),
        );
        sessions.remember_read(&a, "ListRuns etl".into(), 7);
        assert_eq!(sessions.allowed_read(&a, "ListRuns etl"), Some(7));
        assert_eq!(sessions.allowed_read(&a, "ListRuns other"), None);
        assert_eq!(sessions.allowed_read(&b, "ListRuns etl"), None);
    }

    #[test]
    fn cookies_are_read_by_name() {
        let header = "theme=dark; cairn_session=abc; other=1";
        assert_eq!(cookie(header, COOKIE), Some("abc"));
        assert_eq!(cookie(header, "missing"), None);
        assert_eq!(cookie("cairn_sessionx=1", COOKIE), None);
    }
}
