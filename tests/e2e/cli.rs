//! The command line as a whole: completions, and `--json` everywhere a
//! command reports something.

use crate::support::{Scratch, assert_contains, cairn, run_in};

#[test]
fn completions_cover_every_command_in_each_shell() {
    let dir = Scratch::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run_in(dir.path(), &["completions", shell]);
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        for command in ["run", "build", "plan", "audit", "completions"] {
            assert_contains(&out.stdout, command);
        }
    }
    let bash = run_in(dir.path(), &["completions", "bash"]).stdout;
    assert_contains(&bash, "complete -F _cairn");
    assert_contains(&bash, "--state-dir");
    let bad = run_in(dir.path(), &["completions", "tcsh"]);
    assert_eq!(bad.code, 2);
    assert_contains(&bad.stderr, "possible values");
}

#[test]
fn every_command_that_reports_has_json() {
    // Commands whose output is already machine-readable as it is: `schema`
    // and `policy schema` print a schema, `graph` DOT or Mermaid, `audit
    // prove` a JSON proof, `completions` a script; `serve` is a daemon.
    for command in [
        &["run"][..],
        &["resume"],
        &["build"],
        &["exec"],
        &["validate"],
        &["plan"],
        &["keygen"],
        &["token", "create"],
        &["token", "list"],
        &["token", "revoke"],
        &["runs", "list"],
        &["runs", "show"],
        &["runs", "logs"],
        &["runs", "cancel"],
        &["trigger"],
        &["schedules", "list"],
        &["schedules", "pause"],
        &["schedules", "resume"],
        &["policy", "validate"],
        &["policy", "test"],
        &["policy", "fmt"],
        &["audit", "verify"],
        &["audit", "show"],
        &["audit", "export"],
        &["audit", "check-proof"],
    ] {
        let out = cairn().args(command).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--json"),
            "`cairn {}` has no --json",
            command.join(" ")
        );
    }
}

#[test]
fn json_output_is_the_only_thing_on_stdout() {
    let s = Scratch::new();
    let keys = run_in(s.path(), &["keygen", "--out", "k", "--json"]);
    assert_eq!(keys.code, 0, "{}", keys.stderr);
    let json: serde_json::Value = serde_json::from_str(&keys.stdout).unwrap();
    assert_eq!(json["public"], "k/audit.pub");
    assert!(json["note_key"].as_str().unwrap().starts_with("audit+"));

    s.policies();
    s.write(
        "workflow.toml",
        "[workflow]\nname = \"p\"\npolicies = [\"p/\"]\n[tasks.a]\ncomponent = \"a.wasm\"\n",
    );
    std::fs::copy(cairn_tests::TASK, s.path().join("a.wasm")).unwrap();
    let valid = run_in(s.path(), &["policy", "validate", "--json"]);
    assert_eq!(valid.code, 0, "{}", valid.stderr);
    let json: serde_json::Value = serde_json::from_str(&valid.stdout).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["policies"], 4);

    s.write(
        "p/broken.cedar",
        "permit (principal, action, resource) when { ;\n",
    );
    let invalid = run_in(s.path(), &["policy", "validate", "--json"]);
    assert_eq!(invalid.code, 2, "{}", invalid.stderr);
    let json: serde_json::Value = serde_json::from_str(&invalid.stdout).unwrap();
    assert_eq!(json["valid"], false);
    assert_contains(&json["files"][0]["file"].to_string(), "broken.cedar");
    assert_eq!(json["files"][0]["diagnostics"][0]["line"], 1);
}
