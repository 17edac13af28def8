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
        "1 of 8 requests denied; the run would be refused",
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
