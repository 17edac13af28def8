//! `cairn plan` and `cairn policy` on the release workflow: the rule "deploy
//! may read `prod-db-password` only when the run was started by a release
//! manager" refuses Bob's run, naming the rule, and allows Alice's. And
//! `cairn policy fmt`: the repository's policies are in Cedar's layout.

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

/// The repository's policy folders. The fuzz corpus (`tests/fuzz/`) is left
/// as found: its inputs are kept byte for byte.
const POLICY_FOLDERS: [&str; 3] = ["policies", "examples", "tests/policies"];

#[test]
fn the_repository_policies_are_laid_out_as_cedar_formats_them() {
    let folders = POLICY_FOLDERS.map(repo);
    let mut args = vec!["policy", "fmt", "--check"];
    args.extend(folders.iter().map(String::as_str));
    let run = run_in(Scratch::new().path(), &args);
    assert_eq!(
        run.code,
        0,
        "run `cairn policy fmt {}` and commit the result:\n{}\n{}",
        POLICY_FOLDERS.join(" "),
        run.stdout,
        run.stderr
    );
    assert_contains(&run.stderr, "policy files already formatted");

    args.push("--json");
    let json = run_in(Scratch::new().path(), &args).json();
    let paths: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for file in [
        "policies/baseline/guardrails.cedar",
        "examples/hello/policies/hello.cedar",
        "tests/policies/release/policies/release.cedar",
    ] {
        assert!(
            paths.iter().any(|p| p.ends_with(file)),
            "{file} not checked: {paths:?}"
        );
    }
}

/// A policy as people type it: `cairn policy fmt` lays it out.
const MESSY: &str = "// Anyone may run anything.\n@id(\"anyone-runs\")\npermit(principal,action==Cairn::Action::\"run\",resource)   ;\n";

#[test]
fn policy_fmt_checks_then_rewrites_and_names_a_file_that_does_not_parse() {
    let s = Scratch::new();
    s.mkdir("p/nested");
    let messy = s.write("p/nested/messy.cedar", MESSY);
    s.write(
        "p/tidy.cedar",
        "// Already in Cedar's layout.\npermit (principal, action, resource);\n",
    );
    // Hidden folders and `target/` are not searched.
    for skipped in ["p/.hidden", "p/target"] {
        s.mkdir(skipped);
        s.write(&format!("{skipped}/skipped.cedar"), MESSY);
    }

    let check = run_in(s.path(), &["policy", "fmt", "--check", "p"]);
    assert_eq!(check.code, 1, "{}\n{}", check.stdout, check.stderr);
    assert_contains(&check.stdout, "p/nested/messy.cedar:3: would change");
    assert_contains(
        &check.stdout,
        "- permit(principal,action==Cairn::Action::\"run\",resource)   ;",
    );
    assert_contains(&check.stdout, "+ permit (\n  + \x20 principal,\n");
    assert!(!check.stdout.contains("tidy"), "{}", check.stdout);
    assert!(!check.stdout.contains("skipped"), "{}", check.stdout);
    assert_contains(&check.stderr, "1 of 2 policy files not formatted");
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        MESSY,
        "--check wrote"
    );

    let json = run_in(s.path(), &["policy", "fmt", "--check", "--json", "p"]);
    assert_eq!(json.code, 1);
    assert_eq!(
        json.json(),
        serde_json::json!({ "files": [
            { "path": "p/nested/messy.cedar", "would_change": true, "line": 3 },
            { "path": "p/tidy.cedar", "would_change": false },
        ]})
    );

    let fix = run_in(s.path(), &["policy", "fmt", "p"]);
    assert_eq!(fix.code, 0, "{}", fix.stderr);
    assert_eq!(fix.stdout, "p/nested/messy.cedar\n");
    assert_contains(&fix.stderr, "formatted 1 of 2 policy files");
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        "// Anyone may run anything.\n@id(\"anyone-runs\")\n\
         permit (\n  principal,\n  action == Cairn::Action::\"run\",\n  resource\n);\n",
        "the comment is kept, the layout is Cedar's"
    );
    let again = run_in(s.path(), &["policy", "fmt", "--check", "p"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(again.stdout, "");
    assert_contains(&again.stderr, "2 policy files already formatted");
    assert_eq!(
        std::fs::read_to_string(s.path().join("p/target/skipped.cedar")).unwrap(),
        MESSY
    );

    // A file that does not parse is named at its line and column; the
    // others are still formatted.
    s.write("p/broken.cedar", "permit (principal, action resource);\n");
    s.write("p/nested/messy.cedar", MESSY);
    let run = run_in(s.path(), &["policy", "fmt", "p"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert_contains(&run.stderr, "p/broken.cedar:1:");
    assert_contains(&run.stderr, "1 of 3 policy files could not be formatted");
    assert_eq!(run.stdout, "p/nested/messy.cedar\n");
    assert_ne!(std::fs::read_to_string(&messy).unwrap(), MESSY);

    let json = run_in(s.path(), &["policy", "fmt", "--check", "--json", "p"]);
    assert_eq!(json.code, 2);
    let json = json.json();
    let broken = &json["files"][0];
    assert_eq!(broken["path"], "p/broken.cedar");
    assert_eq!(broken["would_change"], false);
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("unexpected token"),
        "{broken}"
    );
    assert_eq!(broken["diagnostics"][0]["line"], 1);
}
