//! Workflow manifests: golden diagnostics for broken ones, plans for good
//! ones, and hostile inputs that must end in a clear error or a correct
//! result. Set `CAIRN_BLESS=1` to rewrite the golden files after a
//! deliberate change, then review the diff.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cairn::manifest::When;
use cairn::plan::{Dependency, Plan};
use cairn::workflow::{WorkflowError, load};

use crate::support::{Scratch, assert_contains, run_in};

/// The `*.toml` files of `tests/manifests/SUB`, sorted.
pub fn fixtures(sub: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests")
        .join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// Compare `actual` with the golden file, or rewrite it under CAIRN_BLESS.
fn check_golden(golden: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("CAIRN_BLESS").is_some() {
        std::fs::write(golden, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
            golden.display()
        ));
    }
}

#[test]
fn broken_manifests_render_their_expected_diagnostics() {
    let mut failures = Vec::new();
    for path in fixtures("bad") {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let rendered = match load(&path) {
            Ok(_) => "the manifest was accepted, but it is in `bad/`\n".to_owned(),
            Err(WorkflowError::Invalid {
                source_text,
                diagnostics,
                ..
            }) => diagnostics.render(&file, &source_text, false),
            Err(other) => format!("{other}\n"),
        };
        check_golden(&path.with_extension("expected"), &rendered, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatch(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// One line per task, in plan order: name, when, dependencies, settings.
fn describe(plan: &Plan) -> String {
    let mut out = format!("workflow {}\n", plan.name);
    for t in &plan.tasks {
        let deps: Vec<String> = t
            .upstream
            .iter()
            .map(|u| {
                let from = &plan.tasks[u.from].task.name.value;
                match &u.why {
                    Dependency::Needs => format!("{from} (needs)"),
                    Dependency::Data { input, output } => format!("{from}.{output} -> {input}"),
                }
            })
            .collect();
        let when = match t.task.when.value {
            When::Success => String::new(),
            other => format!(" [on {}]", other.as_str()),
        };
        let s = &t.settings;
        let setting =
            |name: &str, v: Option<String>| v.map(|v| format!(" {name}={v}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{}{when} <- [{}]{}{}{}{}{}",
            t.task.name.value,
            deps.join(", "),
            setting(
                "for_each",
                t.fans_out_at_run_time()
                    .map(|(task, output)| format!("{task}.{output}"))
            ),
            setting("timeout", s.timeout.as_ref().map(|d| d.value.to_string())),
            setting("memory", s.memory.as_ref().map(|m| m.value.to_string())),
            setting(
                "retries",
                s.retries.as_ref().map(|r| r.value.max.to_string())
            ),
            setting(
                "outputs",
                (!t.task.outputs.is_empty()).then(|| {
                    t.task
                        .outputs
                        .iter()
                        .map(|(n, o)| {
                            let labels: Vec<&str> =
                                o.labels.iter().map(|l| l.value.as_str()).collect();
                            if labels.is_empty() {
                                n.to_string()
                            } else {
                                format!("{n}[{}]", labels.join(","))
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
            ),
        );
    }
    out
}

/// Copy a manifest into a scratch project holding every file it names.
fn project_for(manifest: &Path) -> (Scratch, PathBuf) {
    let s = Scratch::new();
    let source = std::fs::read_to_string(manifest).unwrap();
    let parsed = cairn::manifest::parse(&source).expect("good manifests parse");
    for task in parsed.tasks.values() {
        let component = s.path().join(&task.component.value);
        std::fs::create_dir_all(component.parent().unwrap()).unwrap();
        std::fs::write(component, b"").unwrap();
        for mount in &task.mounts {
            s.mkdir(&mount.host.value);
        }
    }
    for policy in &parsed.policies {
        s.mkdir(&policy.value);
    }
    let copy = s.path().join(manifest.file_name().unwrap());
    std::fs::write(&copy, source).unwrap();
    (s, copy)
}

#[test]
fn good_manifests_round_trip_into_their_plans() {
    let mut failures = Vec::new();
    for path in fixtures("good") {
        let (_scratch, copy) = project_for(&path);
        let workflow = match load(&copy) {
            Ok(workflow) => workflow,
            Err(WorkflowError::Invalid {
                source_text,
                diagnostics,
                ..
            }) => {
                panic!(
                    "{} rejected:\n{}",
                    path.display(),
                    diagnostics.render("m.toml", &source_text, false)
                )
            }
            Err(other) => panic!("{}: {other}", path.display()),
        };
        // Fan-outs expanded with the parameters' defaults, as a run would.
        let values = workflow.plan.param_values(&[]).unwrap();
        check_golden(
            &path.with_extension("plan"),
            &describe(&workflow.plan.clone().with_params(&values)),
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_hundred_thousand_tasks_plan_correctly() {
    let s = Scratch::new();
    s.write("t.wasm", "");
    let mut text = String::from("[workflow]\nname = \"big\"\n");
    for i in 0..100_000 {
        // Written last-first, each needing the one before: the plan must reverse it.
        let n = 99_999 - i;
        let _ = write!(text, "[tasks.t{n}]\ncomponent = \"t.wasm\"\n");
        if n > 0 {
            let _ = writeln!(text, "needs = [\"t{}\"]", n - 1);
        }
    }
    let path = s.write("workflow.toml", &text);
    let workflow = load(&path).expect("valid");
    assert_eq!(workflow.plan.tasks.len(), 100_000);
    assert_eq!(workflow.plan.tasks[0].task.name.value.as_str(), "t0");
    assert_eq!(
        workflow.plan.tasks[99_999].task.name.value.as_str(),
        "t99999"
    );

    // The same with a cycle closed at the end: a clear error, no stack overflow.
    text.push_str("[tasks.closer]\ncomponent = \"t.wasm\"\nneeds = [\"t99999\"]\n");
    let text = text.replacen(
        "[tasks.t0]\ncomponent = \"t.wasm\"\n",
        "[tasks.t0]\ncomponent = \"t.wasm\"\nneeds = [\"closer\"]\n",
        1,
    );
    let path = s.write("cycle.toml", &text);
    match load(&path) {
        Err(WorkflowError::Invalid { diagnostics, .. }) => {
            assert_eq!(diagnostics.len(), 1);
            assert!(
                diagnostics.0[0]
                    .message
                    .starts_with("the tasks form a cycle: ")
            );
        }
        other => panic!("expected a cycle: {:?}", other.map(|_| ())),
    }
}

#[test]
fn ten_megabytes_of_manifest_is_read() {
    let s = Scratch::new();
    s.write("t.wasm", "");
    let long = "x".repeat(10 * 1024 * 1024);
    let path = s.write("workflow.toml", &format!("[workflow]\nname = \"w\"\ndescription = \"{long}\"\n[tasks.a]\ncomponent = \"t.wasm\"\n"));
    assert!(load(&path).is_ok());
}

#[test]
fn oversized_manifest_is_refused_before_reading() {
    let s = Scratch::new();
    let path = s.path().join("workflow.toml");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(17 * 1024 * 1024).unwrap();
    match load(&path) {
        Err(e @ WorkflowError::TooLarge { .. }) => {
            assert!(e.to_string().contains("at most 16777216 bytes"))
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn deep_nesting_is_a_clear_error_not_a_crash() {
    let s = Scratch::new();
    let dotted = format!(
        "[workflow]\nname = \"w\"\n[{}]\nx = 1\n",
        vec!["a"; 20_000].join(".")
    );
    let arrays = format!(
        "[workflow]\nname = \"w\"\nx = {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let inline = format!(
        "[workflow]\nname = \"w\"\nx = {}{}\n",
        "{a = ".repeat(20_000),
        "}".repeat(20_000)
    );
    for (name, text) in [("dotted", dotted), ("arrays", arrays), ("inline", inline)] {
        let path = s.write(&format!("{name}.toml"), &text);
        match load(&path) {
            Err(WorkflowError::Invalid { diagnostics, .. }) => {
                assert!(
                    diagnostics.0[0].message.starts_with("invalid TOML"),
                    "{name}: {:?}",
                    diagnostics.0[0]
                );
            }
            other => panic!("{name}: {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn invalid_utf8_is_located() {
    let s = Scratch::new();
    let path = s.path().join("workflow.toml");
    std::fs::write(
        &path,
        b"[workflow]\nname = \"w\"\ndescription = \"caf\xe9\"\n",
    )
    .unwrap();
    match load(&path) {
        Err(
            e @ WorkflowError::NotUtf8 {
                line: 3,
                column: 19,
                ..
            },
        ) => {
            assert!(
                e.to_string().ends_with(
                    "workflow.toml`:3:19: the manifest is not valid UTF-8; save it as UTF-8"
                ),
                "{e}"
            );
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn validate_and_graph_on_the_command_line() {
    let s = Scratch::new();
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/bad/unknown_tasks.toml");
    let run = run_in(s.path(), &["validate", bad.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert_contains(&run.stderr, "there is no task `extarct`");
    assert_contains(&run.stderr, "did you mean `extract`?");
    assert_contains(&run.stderr, "has 2 problems");

    let run = run_in(s.path(), &["validate", bad.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 2);
    let json = run.json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["diagnostics"][0]["line"], 10);
    assert_eq!(json["diagnostics"][0]["column"], 10);
    assert_eq!(json["diagnostics"][0]["help"], "did you mean `extract`?");

    let (_project, good) =
        project_for(&Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/good/etl.toml"));
    let run = run_in(s.path(), &["validate", good.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.json()["order"],
        serde_json::json!(["extract", "anonymize", "load", "notify", "rollback"])
    );

    let run = run_in(s.path(), &["graph", good.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("\"extract\" -> \"anonymize\" [label=\"orders [pii]\"];"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\"load\" -> \"rollback\" [style=dashed];"),
        "{}",
        run.stdout
    );
    let run = run_in(
        s.path(),
        &["graph", good.to_str().unwrap(), "--format", "mermaid"],
    );
    assert_contains(&run.stdout, "t0 -->|\"orders [pii]\"| t1");
    assert_contains(&run.stdout, "t4[\"rollback (on failure)\"]");

    let run = run_in(s.path(), &["validate", "nowhere.toml"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("error: cannot read `nowhere.toml`"),
        "{}",
        run.stderr
    );
}

#[test]
fn schema_is_json_schema_for_the_manifest() {
    let run = run_in(Scratch::new().path(), &["schema"]);
    assert_eq!(run.code, 0);
    let schema = run.json();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    // A task has a component, or is an approval gate.
    assert_eq!(
        schema["properties"]["tasks"]["additionalProperties"]["anyOf"],
        serde_json::json!([{ "required": ["component"] }, { "required": ["approval"] }])
    );
}
