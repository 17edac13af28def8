//! Policy decisions, end to end through Cedar: each kind of request allowed
//! and denied, forbid over permit, errors deny, labels through a chain.

use super::*;
use crate::plan::Plan;

const PEOPLE: &str = r#"[
  { "uid": { "type": "Cairn::Group", "id": "ops" }, "attrs": {}, "parents": [] },
  { "uid": { "type": "Cairn::User", "id": "alice" }, "attrs": {}, "parents": [{ "type": "Cairn::Group", "id": "ops" }] },
  { "uid": { "type": "Cairn::User", "id": "mallory" }, "attrs": {}, "parents": [] }
]"#;

/// The ETL chain: extract (pii) → anonymize → load (network).
const ETL: &str = r#"
[workflow]
name = "etl"
policies = ["p"]
[tasks.extract]
component = "t.wasm"
secrets = ["db"]
mounts = [{ host = "data", guest = "/data" }]
outputs = { orders = { labels = ["pii"] } }
[tasks.anonymize]
component = "t.wasm"
inputs = { orders = "extract.orders" }
outputs = { orders = { labels = [] } }
[tasks.load]
component = "t.wasm"
inputs = { orders = "anonymize.orders" }
network = ["warehouse.internal:443"]
"#;

/// Everything allowed for ops, nothing else: the base every test adds to.
const BASE: &str = r#"
@id("ops-run") permit (principal in Cairn::Group::"ops", action == Cairn::Action::"run", resource);
@id("secrets") permit (principal, action == Cairn::Action::"read_secret", resource);
@id("mounts") permit (principal, action == Cairn::Action::"mount", resource) when { context.mode == "ro" };
@id("hosts") permit (principal, action == Cairn::Action::"connect", resource);
@id("flows") permit (principal, action == Cairn::Action::"flow", resource);
"#;

fn loaded(manifest: &str, policies: &str) -> (Plan, Policies) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("p")).expect("mkdir");
    std::fs::write(dir.path().join("p/rules.cedar"), policies).expect("write");
    std::fs::write(dir.path().join("p/people.entities.json"), PEOPLE).expect("write");
    let set = Policies::load(dir.path(), &["p".into()])
        .map_err(|e| format!("{e:?}"))
        .expect("valid policies");
    let plan = Plan::new(&crate::manifest::parse(manifest).expect("manifest")).expect("plan");
    (plan, set)
}

fn preflight_of(manifest: &str, policies: &str, user: &str) -> Preflight {
    let (plan, set) = loaded(manifest, policies);
    preflight(&plan, &set, user).expect("preflight")
}

/// An HTTP request of `load` to the warehouse.
fn request(method: &str, path: &str) -> crate::sandbox::GateRequest {
    crate::sandbox::GateRequest::Connect(crate::sandbox::HttpTarget {
        method: method.to_owned(),
        scheme: "https".to_owned(),
        endpoint: "warehouse.internal:443".parse().expect("endpoint"),
        path: path.to_owned(),
        query: String::new(),
    })
}

#[test]
fn requests_are_decided_one_by_one_on_method_and_path() {
    use crate::sandbox::Gate as _;
    let rules = format!(
        "{BASE}\n{}",
        r#"@id("read-only") forbid (principal, action == Cairn::Action::"connect", resource)
        when { context.method != "GET" && !(context.path like "/v1/load/*") };"#
    );
    let (plan, set) = loaded(ETL, &rules);
    let p = preflight(&plan, &set, "alice").expect("preflight");
    assert!(
        !p.decisions.iter().any(|d| d.action == "connect"),
        "requests are not known before the run: {:#?}",
        p.decisions
    );
    let gate = p.gate(&plan, std::sync::Arc::new(set), "load", "alice");
    assert_eq!(gate.check(&request("GET", "/v1/tables")), Ok(()));
    assert_eq!(gate.check(&request("POST", "/v1/load/orders")), Ok(()));
    assert_eq!(
        gate.check(&request("DELETE", "/v1/tables")),
        Err("forbidden by read-only".to_owned())
    );
    let decisions = gate.decisions();
    assert_eq!(decisions.len(), 3);
    assert_eq!(decisions[0].policies, ["hosts"]);
    assert_eq!(decisions[2].context["method"], "DELETE");
    assert_eq!(decisions[2].context["port"], 443);
    assert_eq!(decisions[2].context["run_by"]["__entity"]["id"], "alice");
}

fn decision<'a>(p: &'a Preflight, task: &str, action: &str) -> &'a Decision {
    p.decisions
        .iter()
        .find(|d| d.task == task && d.action == action)
        .unwrap_or_else(|| panic!("no {action} decision for {task}: {:#?}", p.decisions))
}

#[test]
fn base_policies_allow_everything_for_ops_and_nothing_for_others() {
    let p = preflight_of(ETL, BASE, "alice");
    assert_eq!(p.denied().count(), 0, "{:#?}", p.decisions);
    assert_eq!(decision(&p, "extract", "read_secret").policies, ["secrets"]);
    let p = preflight_of(ETL, BASE, "mallory");
    let denied: Vec<&str> = p.denied().map(|d| d.action).collect();
    assert_eq!(denied, ["run", "run", "run"], "mallory is in no group");
    assert!(
        decision(&p, "extract", "run").policies.is_empty(),
        "default deny: no policy permits"
    );
}

#[test]
fn each_kind_of_request_can_be_denied_by_name() {
    let cases = [
        (
            "read_secret",
            "extract",
            r#"@id("no-db") forbid (principal, action == Cairn::Action::"read_secret", resource == Cairn::Secret::"db");"#,
        ),
        (
            "mount",
            "extract",
            r#"@id("no-data") forbid (principal, action == Cairn::Action::"mount", resource == Cairn::Path::"data");"#,
        ),
        (
            "flow",
            "anonymize",
            r#"@id("no-orders") forbid (principal == Cairn::Data::"extract.orders", action == Cairn::Action::"flow", resource);"#,
        ),
        (
            "run",
            "load",
            r#"@id("no-load") forbid (principal, action == Cairn::Action::"run", resource == Cairn::Task::"load");"#,
        ),
    ];
    for (action, task, rule) in cases {
        // forbid overrides the base permits
        let p = preflight_of(ETL, &format!("{BASE}\n{rule}"), "alice");
        let d = decision(&p, task, action);
        assert!(!d.allowed, "{action}: {d:?}");
        assert_eq!(d.policies.len(), 1, "{d:?}");
        assert!(
            rule.contains(&format!("@id(\"{}\")", d.policies[0])),
            "{d:?}"
        );
        assert_eq!(
            p.denied().count(),
            1,
            "only {action} is denied: {:#?}",
            p.decisions
        );
    }
}

#[test]
fn read_write_mounts_need_their_own_permit() {
    let rw = ETL.replace(r#"guest = "/data" }"#, r#"guest = "/data", mode = "rw" }"#);
    let p = preflight_of(&rw, BASE, "alice");
    assert!(!decision(&p, "extract", "mount").allowed);
}

#[test]
fn an_erroring_policy_denies() {
    // Passes strict validation, overflows at evaluation: Cedar would skip the
    // erroring forbid and allow; Cairn denies.
    let rule = r#"@id("overflow") forbid (principal, action == Cairn::Action::"run", resource == Cairn::Task::"load") when { 9223372036854775807 + 1 > 0 };"#;
    let p = preflight_of(ETL, &format!("{BASE}\n{rule}"), "alice");
    let d = decision(&p, "load", "run");
    assert!(!d.allowed, "{d:?}");
    assert!(!d.errors.is_empty(), "{d:?}");
    assert!(
        decision(&p, "extract", "run").allowed,
        "the error only affects load"
    );
}

#[test]
fn labels_flow_through_the_chain_unless_declassified_by_policy() {
    let pii_stays_offline = r#"@id("pii-offline") forbid (principal, action == Cairn::Action::"flow", resource) when { principal.labels.contains("pii") && resource.network };"#;
    // Without a declassify permit, anonymize's output keeps `pii`, and the
    // rule stops it reaching load, which has network access.
    let p = preflight_of(ETL, &format!("{BASE}\n{pii_stays_offline}"), "alice");
    assert_eq!(
        p.labels["anonymize.orders"].iter().collect::<Vec<_>>(),
        ["pii"]
    );
    let flow = decision(&p, "load", "flow");
    assert!(!flow.allowed);
    assert_eq!(flow.policies, ["pii-offline"]);
    let kept = decision(&p, "anonymize", "declassify");
    assert!(!kept.allowed && kept.what.contains("pii"));
    assert_eq!(
        p.denied().count(),
        1,
        "a refused declassification is not a denial"
    );

    // With one, the label is dropped and the flow allowed.
    let declassify = r#"@id("anonymizer-drops-pii") permit (principal == Cairn::Task::"anonymize", action == Cairn::Action::"declassify", resource) when { context.label == "pii" };"#;
    let p = preflight_of(
        ETL,
        &format!("{BASE}\n{pii_stays_offline}\n{declassify}"),
        "alice",
    );
    assert!(p.labels["anonymize.orders"].is_empty());
    assert_eq!(
        p.labels["extract.orders"].iter().collect::<Vec<_>>(),
        ["pii"]
    );
    assert_eq!(
        decision(&p, "anonymize", "declassify").policies,
        ["anonymizer-drops-pii"]
    );
    assert_eq!(p.denied().count(), 0, "{:#?}", p.decisions);
}

#[test]
fn invalid_policies_are_refused_with_file_and_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.cedar"),
        "permit (principal, action == Cairn::Action::\"run\", resource)\nwhen { resource.colour == \"red\" };\n",
    )
    .expect("write");
    match Policies::load(dir.path(), &["bad.cedar".into()]) {
        Err(PolicyError::Invalid(files)) => {
            assert_eq!(files.len(), 1);
            let rendered = files[0]
                .diagnostics
                .render("bad.cedar", &files[0].source, false);
            assert!(rendered.contains("bad.cedar:2:"), "{rendered}");
            assert!(rendered.contains("colour"), "{rendered}");
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(
        dir.path().join("syntax.cedar"),
        "permit (principal, action, resource) when { ;",
    )
    .expect("write");
    assert!(matches!(
        Policies::load(dir.path(), &["syntax.cedar".into()]),
        Err(PolicyError::Invalid(_))
    ));
}

#[test]
fn recorded_entities_are_one_line_that_reads_back_as_cedar_wrote_them() {
    let p = preflight_of(ETL, BASE, "alice");
    let recorded = p.entities_json().expect("entities");
    let text = recorded.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert_eq!(
        recorded.value().expect("JSON"),
        p.entities.to_json_value().expect("entities"),
    );
}

#[test]
fn compacting_json_keeps_strings_byte_for_byte() {
    let pretty = b"{\n  \"a b\": [ 1,\n 2 ],\t\"c\": \"x \\\" y\\n\\\\\" }".to_vec();
    assert_eq!(
        String::from_utf8(preflight::compact(pretty)).expect("UTF-8"),
        r#"{"a b":[1,2],"c":"x \" y\n\\"}"#
    );
}
