//! Input past Cairn's documented limits (ARCHITECTURE.md, "Input limits"):
//! policies nested too deeply, entity hierarchies too deep or cyclic, bad
//! escapes by the hundred thousand, lines past column 65,535, a component
//! that needs multi-memory. Each is a clear error at its file and line
//! (exit 2; `audit verify` names the record, exit 1), never a crash; and a
//! policy at every limit at once still loads, plans, runs and verifies.

use serde_json::Value;

use crate::support::{Run, Scratch, assert_contains, exec_json, run_in, verify_json};

/// A workflow of one echo task whose policies are `cedar` (plus a permit
/// for everything) and whose people are `people`.
fn workflow(s: &Scratch, cedar: &str, people: &str) {
    s.mkdir("p");
    s.write("p/extra.cedar", cedar);
    s.write(
        "p/all.cedar",
        "@id(\"anyone-runs\") permit (principal, action == Cairn::Action::\"run\", resource);\n",
    );
    s.write("p/people.entities.json", people);
    s.write(
        "workflow.toml",
        &format!(
            "[workflow]\nname = \"w\"\npolicies = [\"p\"]\n\n[tasks.a]\ncomponent = {:?}\noutputs = [\"echo\"]\n",
            cairn_tests::TASK
        ),
    );
}

const ALICE: &str =
    r#"[{ "uid": { "type": "Cairn::User", "id": "alice" }, "attrs": {}, "parents": [] }]"#;

fn when(condition: &str) -> String {
    format!("@id(\"hostile\") forbid (principal, action, resource) when {{ {condition} }};\n")
}

/// Exit 2 from every command that loads the policies, with `needle` at
/// `place` (file:line:column), and no panic (`run_in` checks).
fn refused_everywhere(s: &Scratch, place: &str, needle: &str) {
    for args in [
        &["policy", "validate"][..],
        &["plan", "--as", "alice"],
        &["plan", "--as", "alice", "--json"],
        &["run", "--as", "alice"],
    ] {
        let run = run_in(s.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert_contains(&run.stderr, place);
        assert_contains(&run.stderr, needle);
    }
    assert!(!s.path().join(".cairn").exists(), "nothing recorded");
}

#[test]
fn deeply_nested_policies_are_refused_at_their_place() {
    let s = Scratch::new();
    let n = 1_000;
    workflow(
        &s,
        &when(&format!("{}true{}", "(".repeat(n), ")".repeat(n))),
        ALICE,
    );
    refused_everywhere(
        &s,
        "p/extra.cedar:1:",
        "brackets are nested more than 64 deep",
    );
    for (text, needle) in [
        (
            format!("{}1{}.contains(1)", "[".repeat(n), "]".repeat(n)),
            "brackets",
        ),
        (
            format!("{}1{} has a", "{a:".repeat(n), "}".repeat(n)),
            "brackets",
        ),
        (
            format!("{}true", "if true then true else ".repeat(10_000)),
            "`if`s are nested",
        ),
        (
            vec!["context.run_by == Cairn::User::\"x\""; 20_000].join(" || "),
            "operators are chained",
        ),
        (
            format!(
                "context.run_by == Cairn::User::\"{}\"",
                r"\u00e9".repeat(100_000)
            ),
            "invalid escape",
        ),
    ] {
        s.write("p/extra.cedar", &when(&text));
        let run = run_in(s.path(), &["policy", "validate"]);
        assert_eq!(run.code, 2, "{needle}: {}", run.stderr);
        assert_contains(&run.stderr, "p/extra.cedar:1:");
        assert_contains(&run.stderr, needle);
    }
}

/// Groups g0 → g1 → … → g(n-1), and alice in g0; the last back to g0 when
/// `cycle`.
fn chain(n: usize, cycle: bool) -> String {
    let group = |i: usize| format!(r#"{{ "type": "Cairn::Group", "id": "g{i}" }}"#);
    let mut items: Vec<String> = (0..n)
        .map(|i| {
            let parents = match (i + 1 < n, cycle) {
                (true, _) => format!("[{}]", group(i + 1)),
                (false, true) => format!("[{}]", group(0)),
                (false, false) => "[]".to_owned(),
            };
            format!(
                r#"{{ "uid": {}, "attrs": {{}}, "parents": {parents} }}"#,
                group(i)
            )
        })
        .collect();
    items.push(format!(
        r#"{{ "uid": {{ "type": "Cairn::User", "id": "alice" }}, "attrs": {{}}, "parents": [{}] }}"#,
        group(0)
    ));
    format!("[\n{}\n]\n", items.join(",\n"))
}

#[test]
fn deep_or_cyclic_group_hierarchies_are_refused_at_their_entity() {
    let s = Scratch::new();
    workflow(&s, "", &chain(10_000, true));
    refused_everywhere(
        &s,
        "p/people.entities.json:2:",
        "the parents form a cycle of 10000 entities",
    );
    s.write("p/people.entities.json", &chain(1_000, false));
    refused_everywhere(
        &s,
        "p/people.entities.json:",
        "parents below its topmost group",
    );
    // At the limit, it works.
    s.write("p/people.entities.json", &chain(32, false));
    let run = run_in(s.path(), &["plan", "--as", "alice"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_policy_test_with_hostile_entities_is_refused_at_its_line() {
    let s = Scratch::new();
    workflow(&s, "", ALICE);
    let case = |principal: &str| {
        format!(
            "policies = [\"p\"]\n\n[[case]]\nname = \"x\"\nprincipal = '{principal}'\naction = \"run\"\nresource = 'Cairn::Task::\"a\"'\nexpect = \"deny\"\n"
        )
    };
    s.write(
        "escapes.policytest.toml",
        &case(&format!("Cairn::User::\"{}\"", r"\u00e9".repeat(100_000))),
    );
    s.write("long.policytest.toml", &case(&"x".repeat(70_000)));
    let mut parents = String::new();
    for i in 0..2_000 {
        let next = (i + 1) % 2_000;
        parents.push_str(&format!(
            "[[entities]]\nuid = 'Cairn::Group::\"g{i}\"'\nparents = ['Cairn::Group::\"g{next}\"']\n"
        ));
    }
    s.write(
        "cycle.policytest.toml",
        &format!("{}{parents}", case("Cairn::User::\"alice\"")),
    );
    for (file, place, needle) in [
        (
            "escapes.policytest.toml",
            "escapes.policytest.toml:5:",
            "invalid escape",
        ),
        (
            "long.policytest.toml",
            "long.policytest.toml:5:13",
            "not an entity",
        ),
        (
            "cycle.policytest.toml",
            "cycle.policytest.toml:",
            "cycle of 2000 entities",
        ),
    ] {
        for json in [false, true] {
            let mut args = vec!["policy", "test", file];
            if json {
                args.push("--json");
            }
            let run = run_in(s.path(), &args);
            assert_eq!(run.code, 2, "{file}: {}{}", run.stdout, run.stderr);
            assert_contains(&format!("{}{}", run.stdout, run.stderr), needle);
            if !json {
                assert_contains(&run.stderr, place);
            }
        }
    }
}

#[test]
fn a_problem_past_column_65535_is_reported_not_a_panic() {
    let s = Scratch::new();
    let pad = " ".repeat(70_000);
    workflow(
        &s,
        &format!("permit (principal, action, resource) when {{ {pad}nope }};\n"),
        ALICE,
    );
    refused_everywhere(&s, "p/extra.cedar:1:70045", "invalid variable");
    s.write(
        "workflow.toml",
        &format!("[workflow]\nname = \"w\"\n{pad}bogus = 1\n"),
    );
    for json in [false, true] {
        let mut args = vec!["validate"];
        if json {
            args.push("--json");
        }
        let run = run_in(s.path(), &args);
        assert_eq!(run.code, 2, "{}", run.stderr);
        if json {
            let found: Value = run.json();
            assert_eq!(found["diagnostics"][1]["column"], 70_001, "{found}");
        } else {
            assert_contains(&run.stderr, "workflow.toml:3:70001: unknown field `bogus`");
        }
    }
}

/// A policy at every limit at once: 64 brackets deep (with `when`'s), 200
/// nested `if`s, ~9,600 operators on the deepest path (each `.` counts).
fn at_the_limits() -> String {
    let mut chain: Vec<String> = (0..3_000)
        .map(|i| format!("context.run_by == Cairn::User::\"x{i}\""))
        .collect();
    chain.push("context.run_by == Cairn::User::\"alice\"".to_owned());
    let inner = format!(
        "{}({}){}",
        "if context.run_by == Cairn::User::\"alice\" then ".repeat(199),
        chain.join(" || "),
        " else false".repeat(199)
    );
    let condition = format!("{}{inner}{}", "(".repeat(62), ")".repeat(62));
    format!(
        "@id(\"at-the-limits\") permit (principal, action == Cairn::Action::\"read_secret\", resource) when {{ {condition} }};\n"
    )
}

#[test]
fn a_policy_at_every_limit_loads_plans_runs_and_verifies() {
    let s = Scratch::new();
    workflow(&s, &at_the_limits(), ALICE);
    // The task reads a secret: the policy decides at preflight and at run
    // time (on the runtime's threads), and `audit verify` decides again.
    let manifest = std::fs::read_to_string(s.path().join("workflow.toml")).unwrap();
    s.write(
        "workflow.toml",
        &format!("{manifest}secrets = [\"token\"]\nenv = {{ MODE = \"secret\" }}\n"),
    );
    let plan = run_in(s.path(), &["plan", "--as", "alice"]);
    assert_eq!(plan.code, 0, "{}{}", plan.stdout, plan.stderr);
    assert_contains(&plan.stdout, "at-the-limits");
    let run = run_in(
        s.path(),
        &["run", "--as", "alice", "--secret", "token=env:HOME"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let verified = run_in(
        s.path(),
        &["audit", "verify", "--key", ".cairn/keys/audit.pub"],
    );
    assert_eq!(verified.code, 0, "{}", verified.stdout);
}

#[test]
fn audit_verify_names_a_record_edited_to_hold_a_hostile_policy() {
    let s = Scratch::new();
    workflow(&s, "", ALICE);
    let run = run_in(s.path(), &["run", "--as", "alice"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let log = s.path().join(".cairn/audit/log.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let mut seq = None;
    let edited: Vec<String> = text
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line).unwrap();
            if record["kind"] == "policy-set" {
                seq = record["seq"].as_u64();
                record["files"][0]["text"] = Value::String(when(&format!(
                    "{}true{}",
                    "(".repeat(5_000),
                    ")".repeat(5_000)
                )));
                record["entities"] = serde_json::from_str(&chain(10_000, true)).unwrap();
            }
            record.to_string()
        })
        .collect();
    std::fs::write(&log, edited.join("\n") + "\n").unwrap();
    let verified = verify_json(s.path());
    assert_eq!(verified.code, 1, "{}", verified.stdout);
    let report = verified.json();
    let seq = seq.unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["record"] == seq
            && p["check"] == "policy-set"
            && p["message"]
                .as_str()
                .unwrap()
                .contains("brackets are nested")),
        "{report:#}"
    );
}

#[test]
fn a_component_that_needs_multi_memory_loads() {
    // Compiling it builds an adapter between two memories; before
    // multi-memory was on, wasmtime panicked there and took the host down.
    let s = Scratch::new();
    let (run, json): (Run, Value) = exec_json(s.path(), cairn_tests::WAT_TWO_MEMORIES, &[]);
    assert_eq!(json["kind"], "command", "{json}");
    // What it then does is the guest's business: an outcome, not a crash.
    assert!(json["outcome"]["kind"].is_string(), "{json}");
    assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
}
