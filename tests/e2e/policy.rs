//! `cairn plan` and `cairn policy` on the release workflow: the rule "deploy
//! may read `prod-db-password` only when the run was started by a release
//! manager" refuses Bob's run, naming the rule, and allows Alice's.

use std::path::Path;

use crate::support::{Scratch, assert_contains, run_in};

fn release() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies/release")
        .display()
        .to_string()
}

#[test]
fn plan_refuses_a_run_that_breaks_the_rule_and_names_it() {
    let run = run_in(Scratch::new().path(), &["plan", &release(), "--as", "bob"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_contains(
        &run.stdout,
        "deploy    secret `prod-db-password`                  DENY      prod-db-password-release-managers-only",
    );
    assert_contains(
        &run.stderr,
        "1 of 7 requests denied; the run would be refused",
    );
}

#[test]
fn plan_allows_a_run_that_keeps_the_rule() {
    let run = run_in(
        Scratch::new().path(),
        &["plan", &release(), "--as", "alice"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_contains(
        &run.stdout,
        "deploy    secret `prod-db-password`                  allow     tasks-read-declared-secrets",
    );
    assert!(!run.stdout.contains("DENY"), "{}", run.stdout);
}

#[test]
fn plan_json_lists_every_decision_in_order() {
    let run = run_in(
        Scratch::new().path(),
        &["plan", &release(), "--as", "bob", "--json"],
    );
    assert_eq!(run.code, 3);
    let json = run.json();
    assert_eq!(json["allowed"], false);
    assert_eq!(
        json["order"],
        serde_json::json!(["build", "test", "deploy", "rollback"])
    );
    let denied: Vec<&serde_json::Value> = json["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["decision"] == "deny")
        .collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(
        denied[0]["request"],
        r#"Cairn::Task::"deploy", Cairn::Action::"read_secret", Cairn::Secret::"prod-db-password""#
    );
    assert_eq!(
        denied[0]["policies"],
        serde_json::json!(["prod-db-password-release-managers-only"])
    );
}

#[test]
fn an_unknown_user_is_denied_by_default() {
    let run = run_in(Scratch::new().path(), &["plan", &release(), "--as", "eve"]);
    assert_eq!(run.code, 3);
    assert_contains(
        &run.stdout,
        "build     run, started by eve                        DENY      no policy permits",
    );
}

#[test]
fn policy_validate_and_schema() {
    let s = Scratch::new();
    let run = run_in(s.path(), &["policy", "validate", &release()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_contains(&run.stderr, "5 policies in 2 file(s) are valid");

    // A broken copy: the typo is refused at its line with Cedar's suggestion.
    let project = s.mkdir("release");
    for file in ["workflow.toml", "task.wasm"] {
        std::fs::copy(Path::new(&release()).join(file), project.join(file)).unwrap();
    }
    s.mkdir("release/policies");
    s.write(
        "release/policies/rules.cedar",
        "permit (principal, action == Cairn::Action::\"reed_secret\", resource);\n",
    );
    let run = run_in(s.path(), &["policy", "validate", "release"]);
    assert_eq!(run.code, 2);
    assert_contains(&run.stderr, "rules.cedar:1:30");
    assert_contains(&run.stderr, "help: did you mean `Cairn::Action::");
    let run = run_in(s.path(), &["plan", "release", "--as", "alice"]);
    assert_eq!(run.code, 2, "invalid policies refuse the plan");

    let run = run_in(s.path(), &["policy", "schema"]);
    assert_contains(&run.stdout, "action \"read_secret\" appliesTo");
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn the_baseline_guardrails_and_the_release_rule_pass_their_tests() {
    let run = run_in(
        Scratch::new().path(),
        &["policy", "test", &repo("policies"), &release(), "--json"],
    );
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let json = run.json();
    assert_eq!(json["failed"], 0);
    // Every guardrail is shown both letting through and stopping a request.
    let results = json["results"].as_array().unwrap();
    for rule in [
        "pii-stays-offline",
        "secrets-need-pinned-components",
        "no-writable-mounts-with-network",
        "restricted-is-never-declassified",
        "prod-db-password-release-managers-only",
    ] {
        assert!(
            results
                .iter()
                .any(|r| r["got"]["decision"] == "deny" && r["got"]["policies"][0] == rule),
            "no case shows {rule} denying"
        );
    }
    assert!(results.iter().any(|r| r["got"]["decision"] == "allow"));
}

#[test]
fn a_failing_policy_test_shows_the_request_and_both_decisions() {
    let s = Scratch::new();
    let test = std::fs::read_to_string(Path::new(&release()).join("release.policytest.toml"))
        .unwrap()
        .replace(
            r#"policies = ["policies/"]"#,
            &format!(r#"policies = [{:?}]"#, format!("{}/policies/", release())),
        )
        // Claim Bob's deploy may read the password: the policies disagree.
        .replacen(
            "expect = \"deny\"\ndecided_by = [\"prod-db-password-release-managers-only\"]",
            "expect = \"allow\"",
            1,
        );
    let file = s.write("claims.policytest.toml", &test);
    let run = run_in(s.path(), &["policy", "test", file.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_contains(&run.stdout, "FAIL  an engineer's deploy does not");
    assert_contains(
        &run.stdout,
        r#"request:  Cairn::Task::"deploy", Cairn::Action::"read_secret", Cairn::Secret::"prod-db-password""#,
    );
    assert_contains(
        &run.stdout,
        r#"context:  {"run_by":{"type":"Cairn::User","id":"bob"}}"#,
    );
    assert_contains(&run.stdout, "expected: allow\n");
    assert_contains(
        &run.stdout,
        "got:      deny (decided by prod-db-password-release-managers-only)",
    );
    assert_contains(&run.stderr, "1 of 4 cases failed");
}

#[test]
fn an_invalid_policy_test_is_refused_at_its_line() {
    let s = Scratch::new();
    let file = s.write(
        "typo.policytest.toml",
        &format!(
            r#"policies = [{:?}]

[[case]]
name = "typo"
principal = 'Cairn::Task::"deploy"'
action = "reed_secret"
resource = 'Cairn::Secret::"prod-db-password"'
expect = "deny"
"#,
            format!("{}/policies/", release())
        ),
    );
    let run = run_in(s.path(), &["policy", "test", file.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_contains(&run.stderr, "`reed_secret` is not one of Cairn's actions");
    assert_contains(&run.stderr, "typo.policytest.toml:6:10");
    assert_contains(&run.stderr, "did you mean `read_secret`?");

    // A folder without tests says what it looks for.
    let empty = s.mkdir("empty");
    let run = run_in(s.path(), &["policy", "test", empty.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert_contains(&run.stderr, "no `*.policytest.toml` files under");
}
