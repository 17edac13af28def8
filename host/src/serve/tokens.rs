//! API tokens: `cairn_<id>_<secret>`, shown once when issued and stored
//! only as the SHA-256 of the secret. The id is public (records and
//! `cairn token list` name it); the principal a request acts as is the
//! token's user, never anything the request says.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::audit::record::rfc3339;
use crate::state::{State, StateError, TokenRow};

/// What every token starts with (so scanners can find leaked ones).
pub const PREFIX: &str = "cairn_";

/// Hex digits of a token's id (6 random bytes).
const ID_HEX: usize = 12;
/// Characters of a token's secret (32 random bytes, base64url unpadded).
const SECRET_CHARS: usize = 43;

/// The longest user name a token may carry.
const MAX_USER: usize = 128;

/// Why a token was not issued or not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("a token's user is a name of 1 to {MAX_USER} characters without control characters")]
    BadUser,
    #[error("not a Cairn API token (they look like `cairn_<id>_<secret>`)")]
    Malformed,
    #[error("unknown token")]
    Unknown,
    #[error("the token was revoked")]
    Revoked,
    #[error("the token expired")]
    Expired,
    #[error("cannot draw random bytes for a token: {0}")]
    Random(String),
    #[error(transparent)]
    State(#[from] StateError),
}

/// A token just issued: its row, and the token itself (shown once).
#[derive(Debug)]
pub struct Issued {
    /// As stored.
    pub row: TokenRow,
    /// `cairn_<id>_<secret>`.
    pub token: String,
}

fn digest(secret: &str) -> String {
    crate::audit::log::hex(&Sha256::digest(secret.as_bytes()))
}

/// Whether `user` can be a token's user: 1 to 128 characters, none of
/// them control characters.
///
/// # Errors
///
/// [`TokenError::BadUser`].
pub fn check_user(user: &str) -> Result<(), TokenError> {
    if user.is_empty() || user.chars().count() > MAX_USER || user.chars().any(char::is_control) {
        return Err(TokenError::BadUser);
    }
    Ok(())
}

/// Issue a token for `user` that expires `expires_in` after `now` (or
/// never), and store it in `state`.
///
/// # Errors
///
/// A user name that is empty, too long or has control characters; no
/// randomness; the state failing.
pub fn issue(
    state: &mut State,
    user: &str,
    expires_in: Option<Duration>,
    now: SystemTime,
) -> Result<Issued, TokenError> {
    check_user(user)?;
    let mut id = [0u8; ID_HEX / 2];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| TokenError::Random(e.to_string()))?;
    getrandom::fill(&mut secret).map_err(|e| TokenError::Random(e.to_string()))?;
    let id = crate::audit::log::hex(&id);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let row = TokenRow {
        id: id.clone(),
        user: user.to_owned(),
        secret_sha256: digest(&secret),
        created: rfc3339(now),
        expires: expires_in.map(|d| rfc3339(now + d)),
        revoked: None,
    };
    state.add_token(&row)?;
    Ok(Issued {
        row,
        token: format!("{PREFIX}{id}_{secret}"),
    })
}

/// The token `presented` stands for, if it is one `state` issued, not
/// revoked and not expired at `now`. The secret is compared by digest,
/// in constant time.
///
/// # Errors
///
/// Why it is not accepted.
pub fn authenticate(
    state: &State,
    presented: &str,
    now: SystemTime,
) -> Result<TokenRow, TokenError> {
    let (id, secret) = presented
        .trim()
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .ok_or(TokenError::Malformed)?;
    // Exactly what `issue` makes: nothing longer reaches the database or
    // the hash.
    if id.len() != ID_HEX
        || secret.len() != SECRET_CHARS
        || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(TokenError::Malformed);
    }
    let row = state.token(id)?.ok_or(TokenError::Unknown)?;
    let matches: bool = digest(secret)
        .as_bytes()
        .ct_eq(row.secret_sha256.as_bytes())
        .into();
    if !matches {
        // Said the same as an unknown id: a wrong secret tells nothing.
        return Err(TokenError::Unknown);
    }
    if row.revoked.is_some() {
        return Err(TokenError::Revoked);
    }
    if expired(&row, now) {
        return Err(TokenError::Expired);
    }
    Ok(row)
}

/// The token with id `id`, if it is still valid at `now` (not revoked,
/// not expired): what a web session rests on, checked on each request.
///
/// # Errors
///
/// Why it is no longer valid.
pub fn still_valid(state: &State, id: &str, now: SystemTime) -> Result<TokenRow, TokenError> {
    let row = state.token(id)?.ok_or(TokenError::Unknown)?;
    if row.revoked.is_some() {
        return Err(TokenError::Revoked);
    }
    if expired(&row, now) {
        return Err(TokenError::Expired);
    }
    Ok(row)
}

/// Whether `row` has expired at `now`. Both times are RFC 3339 in UTC of
/// one fixed width, so they order as text.
fn expired(row: &TokenRow, now: SystemTime) -> bool {
    row.expires
        .as_deref()
        .is_some_and(|e| rfc3339(now).as_str() >= e)
}

/// A token's status at `now`: `active`, `expired` or `revoked`.
#[must_use]
pub fn status(row: &TokenRow, now: SystemTime) -> &'static str {
    if row.revoked.is_some() {
        "revoked"
    } else if expired(row, now) {
        "expired"
    } else {
        "active"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn state() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        (dir, state)
    }

    #[test]
    fn an_issued_token_authenticates_as_its_user_and_only_its_digest_is_stored() {
        let (_dir, mut state) = state();
        let now = SystemTime::now();
        let issued = issue(&mut state, "alice", Some(30 * DAY), now).unwrap();
        assert!(issued.token.starts_with("cairn_"));
        let row = authenticate(&state, &issued.token, now).unwrap();
        assert_eq!(row.user, "alice");
        // The secret is all after `cairn_<id>_` (base64url may hold `_`).
        let secret = issued
            .token
            .strip_prefix(&format!("{PREFIX}{}_", issued.row.id))
            .unwrap();
        let stored = state.tokens().unwrap();
        assert_eq!(stored.len(), 1);
        assert!(
            !format!("{stored:?}").contains(secret),
            "the secret is not stored"
        );
    }

    #[test]
    fn wrong_revoked_expired_and_malformed_tokens_are_refused() {
        let (_dir, mut state) = state();
        let now = SystemTime::now();
        let issued = issue(&mut state, "alice", Some(DAY), now).unwrap();
        let mut wrong = issued.token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(
            authenticate(&state, &wrong, now),
            Err(TokenError::Unknown)
        ));
        for bad in ["", "cairn_", "cairn__x", "token", "cairn_zz_secret"] {
            assert!(
                matches!(authenticate(&state, bad, now), Err(TokenError::Malformed)),
                "{bad:?}"
            );
        }
        assert!(matches!(
            authenticate(&state, &issued.token, now + 2 * DAY),
            Err(TokenError::Expired)
        ));
        assert_eq!(status(&issued.row, now + 2 * DAY), "expired");
        assert!(state.revoke_token(&issued.row.id, &rfc3339(now)).unwrap());
        assert!(!state.revoke_token(&issued.row.id, &rfc3339(now)).unwrap());
        assert!(matches!(
            authenticate(&state, &issued.token, now),
            Err(TokenError::Revoked)
        ));
        assert!(matches!(
            issue(&mut state, "", None, now),
            Err(TokenError::BadUser)
        ));
        assert!(matches!(
            issue(&mut state, "a\nb", None, now),
            Err(TokenError::BadUser)
        ));
    }
}
