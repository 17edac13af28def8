//! `cairn token`: a token is printed once, stored only as a digest,
//! listed without its secret, and revoked by id.

use crate::support::{assert_contains, run_in};

#[test]
fn a_token_is_shown_once_stored_as_a_digest_and_revoked_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let created = run_in(
        dir.path(),
        &["token", "create", "--user", "ci-bot", "--expires", "30d"],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let token = created.stdout.trim().to_owned();
    assert!(token.starts_with("cairn_"), "{token}");
    assert_contains(&created.stderr, "shown only this once");
    // All after `cairn_<id>_` (base64url may hold `_`).
    let secret = token
        .strip_prefix("cairn_")
        .and_then(|rest| rest.split_once('_'))
        .map(|(_, s)| s)
        .unwrap();
    // Nowhere in the state directory (the database and its WAL).
    for entry in std::fs::read_dir(dir.path().join(".cairn")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "the secret is in {}",
            path.display()
        );
    }

    let listed = run_in(dir.path(), &["token", "list", "--json"]).json();
    assert_eq!(listed[0]["user"], "ci-bot");
    assert_eq!(listed[0]["status"], "active");
    assert!(listed[0]["expires"].is_string());
    assert!(!listed.to_string().contains(secret));
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("cairn_{id}_")));

    let revoked = run_in(dir.path(), &["token", "revoke", &id, "--json"]);
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert_eq!(revoked.json()["already"], false);
    let listed = run_in(dir.path(), &["token", "list", "--json"]).json();
    assert_eq!(listed[0]["status"], "revoked");
    let again = run_in(dir.path(), &["token", "revoke", &id]);
    assert_eq!(again.code, 0);
    assert_contains(&again.stderr, "already revoked");
}

#[test]
fn bad_token_requests_are_input_errors_that_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = run_in(dir.path(), &["token", "revoke", "0123456789ab"]);
    assert_eq!(unknown.code, 2);
    assert_contains(&unknown.stderr, "cairn token list");
    let nameless = run_in(dir.path(), &["token", "create", "--user", ""]);
    assert_eq!(nameless.code, 2);
    assert_contains(&nameless.stderr, "user");
    let bad_expiry = run_in(
        dir.path(),
        &["token", "create", "--user", "a", "--expires", "soon"],
    );
    assert_eq!(bad_expiry.code, 2);
    assert_contains(&bad_expiry.stderr, "not a duration");
    let empty = run_in(dir.path(), &["token", "list"]);
    assert_eq!(empty.code, 0);
    assert_contains(&empty.stderr, "no tokens yet");
    assert!(
        !dir.path().join(".cairn").exists(),
        "listing and revoking create no state directory"
    );
}
