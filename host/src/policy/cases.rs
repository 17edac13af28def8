//! Policy tests: requests with the decision they should get.
//!
//! A test file (`*.policytest.toml`) names the policies it tests, the
//! entities its requests talk about, and cases — a Cedar request and the
//! expected decision, optionally with the policies expected to decide it.
//! Each case goes through [`authorize`], the same call preflight and the
//! runtime gate make, so a passing test says what a run would see.
//! The format is documented in the README ("Policy tests").

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{Context, Entities, EntityUid, Request};
use serde::Deserialize;
use toml::Spanned;

use super::preflight::{Ask, authorize};
use super::{ACTIONS, Decision, Policies, PolicyError, bounds};
use crate::diag::{Diagnostic, Diagnostics, did_you_mean};

/// The file name ending that marks a policy test file.
pub const SUFFIX: &str = ".policytest.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    policies: Spanned<Vec<String>>,
    #[serde(default)]
    entities: Vec<Spanned<EntityDef>>,
    #[serde(default, rename = "case")]
    cases: Vec<Spanned<CaseDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntityDef {
    uid: Spanned<String>,
    #[serde(default)]
    parents: Vec<Spanned<String>>,
    #[serde(default)]
    attrs: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseDef {
    name: String,
    principal: Spanned<String>,
    action: Spanned<String>,
    resource: Spanned<String>,
    context: Option<Spanned<toml::Table>>,
    expect: Spanned<String>,
    decided_by: Option<Vec<String>>,
}

/// One case, ready to run.
#[derive(Debug, Clone)]
pub struct Case {
    /// What the case is about.
    pub name: String,
    principal: EntityUid,
    action: &'static str,
    resource: EntityUid,
    /// The context as written, for reports.
    pub context_json: serde_json::Value,
    /// Should the request be allowed?
    pub expect_allow: bool,
    /// The policies expected to decide it, if the case says.
    pub decided_by: Option<Vec<String>>,
}

/// A loaded test file.
#[derive(Debug)]
pub struct Suite {
    /// The test file.
    pub path: PathBuf,
    /// The policies it tests.
    pub policies: Policies,
    entities: Entities,
    /// Its cases, in file order.
    pub cases: Vec<Case>,
}

/// Why a test file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` has problems", path.display())]
    Invalid {
        path: PathBuf,
        source_text: String,
        diagnostics: Diagnostics,
    },
    #[error("the policies of `{}` do not load: {source}", path.display())]
    Policies { path: PathBuf, source: PolicyError },
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The decision the policies made.
    pub decision: Decision,
    /// Whether it is what the case expects (decision, and deciding policies
    /// when given).
    pub passed: bool,
}

/// Default attributes of the entity types Cairn builds from manifests, so a
/// test entity only spells out what matters to it.
fn defaults(kind: &str) -> &'static [(&'static str, serde_json::Value)] {
    use std::sync::LazyLock;
    static TASK: LazyLock<Vec<(&str, serde_json::Value)>> = LazyLock::new(|| {
        vec![
            ("component", "".into()),
            ("network", false.into()),
            ("secrets", serde_json::json!([])),
            ("injects", serde_json::json!([])),
            ("hosts", serde_json::json!([])),
            ("mounts", serde_json::json!([])),
            ("writes", false.into()),
            ("labels_in", serde_json::json!([])),
        ]
    });
    static DATA: LazyLock<Vec<(&str, serde_json::Value)>> = LazyLock::new(|| {
        vec![
            ("producer", "".into()),
            ("output", "".into()),
            ("labels", serde_json::json!([])),
        ]
    });
    match kind {
        "Cairn::Task" => &TASK,
        "Cairn::Data" => &DATA,
        _ => &[],
    }
}

fn parse_uid(text: &Spanned<String>, d: &mut Diagnostics) -> Option<EntityUid> {
    // Cedar parses the text: bound it first.
    if let Err(problem) = bounds::check_policy_text(text.get_ref()) {
        d.push(Diagnostic::at(
            text.span(),
            format!("not an entity: {}", problem.message),
        ));
        return None;
    }
    match EntityUid::from_str(text.get_ref()) {
        Ok(uid) => Some(uid),
        Err(e) => {
            d.push(
                Diagnostic::at(text.span(), format!("not an entity: {e}"))
                    .help(r#"write an entity as Cedar does, e.g. 'Cairn::User::"alice"'"#),
            );
            None
        }
    }
}

fn to_json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).unwrap_or(serde_json::Value::Null)
}

impl Suite {
    /// Load the test file at `path` and the policies it names.
    ///
    /// # Errors
    ///
    /// Unreadable or invalid test files, and policies that do not load.
    pub fn load(path: &Path) -> Result<Self, SuiteError> {
        let source = std::fs::read_to_string(path).map_err(|source| SuiteError::Read {
            path: path.to_owned(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_source(path, source, |paths| Policies::load(dir, paths))
    }

    /// [`Suite::load`] of a test file's text `source` (named `path` in
    /// messages), getting the policies it names from `load_policies`
    /// instead of the file system.
    ///
    /// # Errors
    ///
    /// Invalid test files, and policies that do not load.
    pub fn from_source(
        path: &Path,
        source: String,
        load_policies: impl FnOnce(&[String]) -> Result<Policies, PolicyError>,
    ) -> Result<Self, SuiteError> {
        let invalid = |diagnostics: Diagnostics| SuiteError::Invalid {
            path: path.to_owned(),
            source_text: source.clone(),
            diagnostics,
        };
        let file: File = toml::from_str(&source).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            invalid(Diagnostics(vec![Diagnostic::at(
                span,
                e.message().to_owned(),
            )]))
        })?;
        let policies =
            load_policies(file.policies.get_ref()).map_err(|source| SuiteError::Policies {
                path: path.to_owned(),
                source,
            })?;
        let schema = &policies.schema;
        let mut d = Diagnostics::default();

        // Each entity is checked on its own (so a problem is shown at its
        // place), the hierarchy as a whole, then all are added at once.
        let mut nodes = Vec::new();
        let mut good = Vec::new();
        for def in &file.entities {
            let span: Range<usize> = def.span();
            let def = def.get_ref();
            let Some(uid) = parse_uid(&def.uid, &mut d) else {
                continue;
            };
            let parents: Vec<EntityUid> = def
                .parents
                .iter()
                .filter_map(|p| parse_uid(p, &mut d))
                .collect();
            let mut attrs = match to_json(&def.attrs) {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            for (name, value) in defaults(&uid.type_name().to_string()) {
                attrs
                    .entry((*name).to_owned())
                    .or_insert_with(|| value.clone());
            }
            let json = serde_json::json!({
                "uid": { "type": uid.type_name().to_string(), "id": uid.id().unescaped() },
                "parents": parents.iter().map(|p| serde_json::json!({
                    "type": p.type_name().to_string(), "id": p.id().unescaped()
                })).collect::<Vec<_>>(),
                "attrs": attrs,
            });
            if let Some(node) = bounds::node_of(&json, span.clone()) {
                nodes.push(node);
            }
            match Entities::from_json_value(serde_json::json!([json.clone()]), Some(schema)) {
                Ok(_) => good.push(json),
                Err(e) => d.push(Diagnostic::at(span, format!("entity `{uid}`: {e}")).help(
                    "attributes are in Cedar's JSON value format; see `cairn policy schema`",
                )),
            }
        }
        let mut entities = policies.people.clone();
        match bounds::check_hierarchy(&nodes) {
            Err(problem) => d.push(problem),
            Ok(()) if !good.is_empty() => {
                let added = Entities::from_json_value(serde_json::Value::Array(good), Some(schema))
                    .map_err(|e| e.to_string())
                    .and_then(|found| {
                        entities
                            .clone()
                            .add_entities(found, Some(schema))
                            .map_err(|e| e.to_string())
                    });
                match added {
                    Ok(all) => entities = all,
                    Err(e) => d.push(
                        Diagnostic::at(
                            file.entities.first().map_or(0..0, Spanned::span),
                            format!("entities: {e}"),
                        )
                        .help("each entity is defined once, by its `uid`"),
                    ),
                }
            }
            Ok(()) => {}
        }

        let mut cases = Vec::new();
        let mut names = HashSet::new();
        for def in &file.cases {
            let span = def.span();
            let def = def.get_ref();
            if !names.insert(def.name.clone()) {
                d.push(Diagnostic::at(
                    span.clone(),
                    format!("two cases are named `{}`", def.name),
                ));
            }
            let action = def.action.get_ref().as_str();
            let Some(action) = ACTIONS.iter().copied().find(|a| *a == action) else {
                let mut diagnostic = Diagnostic::at(
                    def.action.span(),
                    format!("`{action}` is not one of Cairn's actions"),
                );
                diagnostic = diagnostic.help(match did_you_mean(action, ACTIONS.iter().copied()) {
                    Some(close) => format!("did you mean `{close}`?"),
                    None => format!("actions: {}", ACTIONS.join(", ")),
                });
                d.push(diagnostic);
                continue;
            };
            let expect_allow = match def.expect.get_ref().as_str() {
                "allow" => true,
                "deny" => false,
                other => {
                    d.push(
                        Diagnostic::at(
                            def.expect.span(),
                            format!("`expect` is \"allow\" or \"deny\", not \"{other}\""),
                        )
                        .label("here"),
                    );
                    continue;
                }
            };
            let (Some(principal), Some(resource)) = (
                parse_uid(&def.principal, &mut d),
                parse_uid(&def.resource, &mut d),
            ) else {
                continue;
            };
            let context_json = def
                .context
                .as_ref()
                .map_or_else(|| serde_json::json!({}), |c| to_json(c.get_ref()));
            let context_span = def
                .context
                .as_ref()
                .map_or_else(|| span.clone(), Spanned::span);
            let action_uid =
                super::preflight::uid("Action", action).map_err(|source| SuiteError::Policies {
                    path: path.to_owned(),
                    source,
                })?;
            let context = match Context::from_json_value(
                context_json.clone(),
                Some((schema, &action_uid)),
            ) {
                Ok(context) => context,
                Err(e) => {
                    d.push(
                        Diagnostic::at(context_span, format!("context: {e}")).help(
                            r#"an entity in a context is written { type = "Cairn::User", id = "alice" }"#,
                        ),
                    );
                    continue;
                }
            };
            // The request must fit the schema (e.g. only a task reads a secret).
            if let Err(e) = Request::new(
                principal.clone(),
                action_uid,
                resource.clone(),
                context,
                Some(schema),
            ) {
                d.push(
                    Diagnostic::at(span.clone(), format!("case `{}`: {e}", def.name))
                        .help("`cairn policy schema` shows what each action applies to"),
                );
                continue;
            }
            cases.push(Case {
                name: def.name.clone(),
                principal,
                action,
                resource,
                context_json,
                expect_allow,
                decided_by: def.decided_by.clone().map(|mut ids| {
                    ids.sort();
                    ids
                }),
            });
        }
        if file.cases.is_empty() {
            d.push(
                Diagnostic::whole_file("no test cases")
                    .help("add `[[case]]` tables: principal, action, resource, context, expect"),
            );
        }
        if !d.is_empty() {
            return Err(invalid(d));
        }
        Ok(Self {
            path: path.to_owned(),
            policies,
            entities,
            cases,
        })
    }

    /// Run one case.
    ///
    /// # Errors
    ///
    /// When the request does not fit Cairn's schema (e.g. a `User` as the
    /// principal of `read_secret`).
    pub fn run(&self, case: &Case) -> Result<Verdict, PolicyError> {
        let decision = authorize(
            &self.policies,
            &self.entities,
            Ask {
                task: "",
                action: case.action,
                what: case.name.clone(),
                principal: case.principal.clone(),
                resource: case.resource.clone(),
                context: case.context_json.clone(),
            },
        )?;
        let passed = decision.allowed == case.expect_allow
            && case
                .decided_by
                .as_ref()
                .is_none_or(|ids| *ids == decision.policies);
        Ok(Verdict { decision, passed })
    }
}

/// The test files at `path`: the file itself, or every `*.policytest.toml`
/// under a folder (hidden folders and `target` skipped), sorted.
///
/// # Errors
///
/// Unreadable folders.
pub fn find(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    super::files_under(path, SUFFIX)
}
