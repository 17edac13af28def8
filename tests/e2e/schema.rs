//! The manifest's JSON Schema (`cairn schema`) against `cairn validate`, on
//! the corpus in `tests/manifests/schema/`: every good manifest passes
//! both; every bad one has one problem `cairn validate` reports, and the
//! schema refuses it too unless its first line says JSON Schema cannot say
//! the rule (`# schema: cannot — REASON`). The schema is checked by a
//! validator that is not Cairn's: Python's `jsonschema` (Draft7Validator),
//! on the TOML as Python's own `tomllib` reads it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::manifests::fixtures;
use crate::support::{Scratch, run_in};
use crate::toolchains;

/// Reads the schema (argv 1) and prints, for each manifest after it, one
/// JSON line: `{"file", "valid", "errors"}`. A TOML date-time, which JSON
/// has not, becomes its RFC 3339 text, as editors' TOML-to-JSON does.
const CHECK: &str = r#"
import datetime, json, sys, tomllib
from jsonschema import Draft7Validator

schema = json.load(open(sys.argv[1], encoding="utf-8"))
Draft7Validator.check_schema(schema)
validator = Draft7Validator(schema)

def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value

for path in sys.argv[2:]:
    with open(path, "rb") as f:
        manifest = plain(tomllib.load(f))
    errors = [
        "/".join(map(str, e.absolute_path)) + ": " + e.message
        for e in validator.iter_errors(manifest)
    ]
    print(json.dumps({"file": path, "valid": not errors, "errors": errors[:3]}))
"#;

/// What a bad file's first line says the schema does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Rejects,
    Cannot,
}

fn expectation(path: &Path) -> Option<Expect> {
    let text = std::fs::read_to_string(path).unwrap();
    let first = text.lines().next().unwrap_or_default();
    if first == "# schema: rejects" {
        Some(Expect::Rejects)
    } else if first
        .strip_prefix("# schema: cannot — ")
        .is_some_and(|reason| !reason.trim().is_empty())
    {
        Some(Expect::Cannot)
    } else {
        None
    }
}

/// What `cairn validate FILE --json` said: its exit code, its diagnostics'
/// messages, and at how many places they are (one mistake may be
/// reported by more than one check, at the same place).
struct Validated {
    code: i32,
    messages: Vec<String>,
    places: usize,
}

fn validate(dir: &Path, file: &Path) -> Validated {
    let run = run_in(dir, &["validate", file.to_str().unwrap(), "--json"]);
    let diagnostics = run.json()["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let places: std::collections::BTreeSet<String> = diagnostics
        .iter()
        .map(|d| format!("{}:{}", d["line"], d["column"]))
        .collect();
    Validated {
        code: run.code,
        messages: diagnostics
            .iter()
            .map(|d| d["message"].as_str().unwrap_or_default().to_owned())
            .collect(),
        places: places.len(),
    }
}

/// Each file's verdict from `jsonschema`: valid, and the first errors.
fn schema_verdicts(python: &Path, schema: &Path, files: &[PathBuf]) -> BTreeMap<PathBuf, Value> {
    let mut args = vec!["-c", CHECK, schema.to_str().unwrap()];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = crate::support::tool_in(Path::new("."), python, &args);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            (PathBuf::from(v["file"].as_str().unwrap()), v)
        })
        .collect()
}

#[test]
fn the_schema_agrees_with_validate_on_the_corpus() {
    let test = "the_schema_agrees_with_validate_on_the_corpus";
    let Some(python) = toolchains::python_with(test, "jsonschema, tomllib", "jsonschema==4.26.0")
    else {
        return;
    };
    let s = Scratch::new();
    let run = run_in(s.path(), &["schema"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let schema = s.write("cairn.schema.json", &run.stdout);

    let (good, bad) = (fixtures("schema/good"), fixtures("schema/bad"));
    assert!(good.len() >= 10 && bad.len() >= 60, "the corpus is missing");
    let all: Vec<PathBuf> = good.iter().chain(&bad).cloned().collect();
    let verdicts = schema_verdicts(&python, &schema, &all);
    let checked: Vec<(PathBuf, Validated)> = std::thread::scope(|scope| {
        let workers: Vec<_> = all
            .chunks(all.len().div_ceil(8))
            .map(|files| {
                scope.spawn(|| {
                    files
                        .iter()
                        .map(|f| (f.clone(), validate(s.path(), f)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/schema");
    let mut failures = Vec::new();
    let mut counts = BTreeMap::new();
    for (file, validated) in checked {
        let Validated {
            code,
            messages,
            places,
        } = validated;
        let name = file
            .strip_prefix(&root)
            .unwrap_or(&file)
            .display()
            .to_string();
        let verdict = &verdicts[&file];
        let schema_ok = verdict["valid"] == true;
        let said = if schema_ok {
            "the schema accepts it".to_owned()
        } else {
            format!("the schema rejects it ({})", verdict["errors"])
        };
        let validated = if code == 0 {
            "`cairn validate` accepts it".to_owned()
        } else {
            format!("`cairn validate` exits {code}: {messages:?}")
        };
        let (agrees, expected) = if good.contains(&file) {
            (
                code == 0 && schema_ok,
                "both accept it (it is good)".to_owned(),
            )
        } else {
            match expectation(&file) {
                None => {
                    failures.push(format!(
                        "{name}: its first line must be `# schema: rejects` or `# schema: cannot — REASON`"
                    ));
                    continue;
                }
                Some(expect) => {
                    *counts.entry(format!("{expect:?}")).or_insert(0) += 1;
                    let schema_right = schema_ok == (expect == Expect::Cannot);
                    let schema_should = match expect {
                        Expect::Rejects => "rejects it",
                        Expect::Cannot => "accepts it (its first line says it cannot say the rule)",
                    };
                    (
                        code == 2 && places == 1 && schema_right,
                        format!(
                            "`cairn validate` exits 2 with one problem, the schema {schema_should}"
                        ),
                    )
                }
            }
        };
        if !agrees {
            failures.push(format!("{name}: {validated}; {said}; expected: {expected}"));
        }
    }
    eprintln!(
        "{} good and {} bad manifests ({counts:?})",
        good.len(),
        bad.len()
    );
    assert!(
        failures.is_empty(),
        "{} file(s) where the schema and `cairn validate` disagree with the corpus (good files pass both; a bad one has one problem, and the schema rejects it unless its first line says it cannot):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
