//! Preflight: every request a workflow implies, authorized before it runs.
//!
//! From a [`Plan`] and who starts the run, build Cedar entities (the
//! workflow, its tasks with their declared capabilities, secrets, data with
//! the labels that reach it, mounted paths, hosts) and authorize, task by
//! task in plan order: `run`, each `read_secret`, each `mount`, each
//! input's `flow`. HTTP requests (`connect`) and injected secrets
//! (`inject_secret`) are authorized one by one as they are sent, by the
//! runtime gate. Labels flow with data: an output carries
//! the labels of the task's inputs, minus those a `declassify` permit lets
//! the task drop. Default deny; a request whose evaluation errors is denied.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicySet, Request, RestrictedExpression,
};

use super::{Policies, PolicyError};
use crate::plan::{Dependency, Plan};

/// One authorization request and what decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The task the request is about.
    pub task: String,
    /// The Cedar action: `run`, `read_secret`, `mount`, `connect`,
    /// `inject_secret`, `flow`, `declassify`.
    pub action: &'static str,
    /// What it is about, for people (e.g. `secret warehouse-token`).
    pub what: String,
    /// The request in Cedar terms: `principal, action, resource`.
    pub request: String,
    /// The request's principal.
    pub principal: EntityUid,
    /// The request's resource.
    pub resource: EntityUid,
    /// The request's context (Cedar JSON).
    pub context: serde_json::Value,
    /// Allowed?
    pub allowed: bool,
    /// The IDs of the policies that decided (the permits that allowed it, or
    /// the forbids that denied it); empty for "no policy permits".
    pub policies: Vec<String>,
    /// Evaluation errors (any error denies).
    pub errors: Vec<String>,
}

/// Every decision of a preflight, and the labels each output will carry.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// In plan order.
    pub decisions: Vec<Decision>,
    /// `task.output` → labels.
    pub labels: HashMap<String, BTreeSet<String>>,
    /// The entities the decisions were made on, for the runtime gate.
    pub(crate) entities: std::sync::Arc<Entities>,
}

impl Preflight {
    /// The requests that were denied (declassifications aside: a refused
    /// declassification only means the label stays).
    pub fn denied(&self) -> impl Iterator<Item = &Decision> {
        self.decisions
            .iter()
            .filter(|d| !d.allowed && d.action != "declassify")
    }
}

/// Cairn's entity type names, parsed once (parsing one costs more than a
/// whole authorization of a small request).
static TYPES: std::sync::LazyLock<HashMap<&'static str, EntityTypeName>> =
    std::sync::LazyLock::new(|| {
        [
            "Action", "User", "Group", "Workflow", "Task", "Secret", "Data", "Path", "Host", "Run",
        ]
        .into_iter()
        .filter_map(|kind| {
            Some((
                kind,
                EntityTypeName::from_str(&format!("Cairn::{kind}")).ok()?,
            ))
        })
        .collect()
    });

pub(crate) fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    let name = TYPES
        .get(kind)
        .cloned()
        .ok_or_else(|| PolicyError::Schema(format!("no entity type `Cairn::{kind}`")))?;
    Ok(EntityUid::from_type_name_and_id(name, EntityId::new(id)))
}

fn strings(items: impl IntoIterator<Item = String>) -> RestrictedExpression {
    RestrictedExpression::new_set(items.into_iter().map(RestrictedExpression::new_string))
}

/// Cedar's authorizer holds no state between requests: one serves all.
static AUTHORIZER: std::sync::LazyLock<Authorizer> = std::sync::LazyLock::new(Authorizer::new);

/// One request to authorize.
pub(crate) struct Ask<'a> {
    pub(crate) task: &'a str,
    pub(crate) action: &'static str,
    pub(crate) what: String,
    pub(crate) principal: EntityUid,
    pub(crate) resource: EntityUid,
    /// The request context, in Cedar's JSON value format (kept as is for
    /// the audit log, which re-evaluates it).
    pub(crate) context: serde_json::Value,
}

/// The context Cairn itself builds (strings, booleans and entity
/// references) without Cedar's schema-driven JSON parser, which costs more
/// than deciding the request; `None` for anything else. `Request::new`
/// checks the result against the schema either way.
fn simple_context(json: &serde_json::Value) -> Option<Context> {
    let fields = json.as_object()?;
    let mut pairs = Vec::with_capacity(fields.len());
    for (name, value) in fields {
        let value = match value {
            serde_json::Value::String(s) => RestrictedExpression::new_string(s.clone()),
            serde_json::Value::Bool(b) => RestrictedExpression::new_bool(*b),
            serde_json::Value::Object(o) => {
                let entity = o.get("__entity")?;
                let kind = entity.get("type")?.as_str()?;
                let id = entity.get("id")?.as_str()?;
                let kind = TYPES.get(kind.strip_prefix("Cairn::")?)?.clone();
                RestrictedExpression::new_entity_uid(EntityUid::from_type_name_and_id(
                    kind,
                    EntityId::new(id),
                ))
            }
            _ => return None,
        };
        pairs.push((name.clone(), value));
    }
    Context::from_pairs(pairs).ok()
}

/// The JSON form of an entity reference in a context.
pub(crate) fn entity_json(uid: &EntityUid) -> serde_json::Value {
    serde_json::json!({ "__entity": { "type": uid.type_name().to_string(), "id": uid.id().unescaped() } })
}

/// Authorize one request: default deny, and an evaluation error denies.
///
/// # Errors
///
/// Only if the request does not fit Cairn's schema (a bug in Cairn).
pub(crate) fn authorize(
    policies: &Policies,
    entities: &Entities,
    ask: Ask<'_>,
) -> Result<Decision, PolicyError> {
    let action_uid = uid("Action", ask.action)?;
    let empty = PolicySet::new();
    let slice = policies
        .slices
        .get(&action_uid, &ask.resource)
        .unwrap_or(&empty);
    let request_text = format!("{}, {action_uid}, {}", ask.principal, ask.resource);
    let context = match simple_context(&ask.context) {
        Some(context) => context,
        None => {
            Context::from_json_value(ask.context.clone(), Some((&policies.schema, &action_uid)))
                .map_err(|e| PolicyError::Schema(format!("{request_text}: {e}")))?
        }
    };
    let request = Request::new(
        ask.principal.clone(),
        action_uid,
        ask.resource.clone(),
        context,
        Some(&policies.schema),
    )
    .map_err(|e| PolicyError::Schema(format!("{request_text}: {e}")))?;
    let response = AUTHORIZER.is_authorized(&request, slice, entities);
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(ToString::to_string)
        .collect();
    // An evaluation error denies, whatever else matched.
    let allowed = response.decision() == CedarDecision::Allow && errors.is_empty();
    let mut deciding: Vec<String> = response
        .diagnostics()
        .reason()
        .map(ToString::to_string)
        .collect();
    deciding.sort();
    Ok(Decision {
        task: ask.task.to_owned(),
        action: ask.action,
        what: ask.what,
        request: request_text,
        principal: ask.principal,
        resource: ask.resource,
        context: ask.context,
        allowed,
        policies: deciding,
        errors,
    })
}

struct Checker<'a> {
    policies: &'a Policies,
    decisions: Vec<Decision>,
}

impl Checker<'_> {
    fn check(&mut self, entities: &Entities, ask: Ask<'_>) -> Result<bool, PolicyError> {
        let decision = authorize(self.policies, entities, ask)?;
        let allowed = decision.allowed;
        self.decisions.push(decision);
        Ok(allowed)
    }
}

/// Authorize everything `plan` implies for a run started by `user`.
///
/// # Errors
///
/// Only if a request does not fit Cairn's schema (a bug), never for a
/// denial: denials are in the result.
pub fn preflight(plan: &Plan, policies: &Policies, user: &str) -> Result<Preflight, PolicyError> {
    let schema = &policies.schema;
    let workflow = uid("Workflow", plan.name.as_str())?;
    let user_uid = uid("User", user)?;
    let mut checker = Checker {
        policies,
        decisions: Vec::new(),
    };
    let mut labels: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut entities: Vec<Entity> = vec![Entity::new_no_attrs(workflow.clone(), HashSet::new())];
    let people: Vec<Entity> = policies.people.iter().cloned().collect();
    if !policies.people.iter().any(|e| e.uid() == user_uid) {
        entities.push(Entity::new_no_attrs(user_uid.clone(), HashSet::new()));
    }

    // A webhook delivery's body (`trigger.body`) carries the labels every
    // webhook of the workflow declares: the strictest reading of any run.
    let given: BTreeSet<String> = plan
        .webhooks
        .iter()
        .flat_map(|w| w.labels.iter().cloned())
        .collect();
    let given_key = format!("{}.body", crate::plan::TRIGGER);
    if !plan.webhooks.is_empty() {
        labels.insert(given_key.clone(), given.clone());
        entities.push(data_entity(
            &given_key,
            crate::plan::TRIGGER,
            "body",
            &given,
        )?);
    }

    // Labels first, in plan order: what reaches each task, what each output carries.
    let mut labels_in: Vec<BTreeSet<String>> = Vec::with_capacity(plan.tasks.len());
    for planned in &plan.tasks {
        let task = &planned.task;
        let mut incoming = BTreeSet::new();
        if !planned.from_trigger.is_empty() {
            incoming.extend(given.iter().cloned());
        }
        for up in &planned.upstream {
            if let (Dependency::Data { output, .. }, Some(from)) =
                (&up.why, plan.tasks.get(up.from))
            {
                let key = format!("{}.{output}", from.task.name.value);
                incoming.extend(labels.get(&key).into_iter().flatten().cloned());
            }
        }
        let task_uid = uid("Task", task.name.value.as_str())?;
        for (output, declared) in &task.outputs {
            let key = format!("{}.{output}", task.name.value);
            let declared: BTreeSet<String> = declared
                .labels
                .iter()
                .map(|l| l.value.to_string())
                .collect();
            let mut carried: BTreeSet<String> = declared.union(&incoming).cloned().collect();
            // A fan-out over an output is decided when it expands: its
            // outputs carry every label until then (the strictest reading).
            let dropped: Vec<&String> = if planned.fans_out_at_run_time().is_some() {
                Vec::new()
            } else {
                incoming.difference(&declared).collect()
            };
            for label in dropped {
                // Dropping a label is itself a policy decision.
                let data = data_entity(&key, task.name.value.as_str(), output.as_str(), &carried)?;
                let me = task_entity(planned, &workflow, &incoming)?;
                let local = Entities::from_entities(
                    [
                        data,
                        me,
                        Entity::new_no_attrs(workflow.clone(), HashSet::new()),
                    ],
                    Some(schema),
                )
                .map_err(|e| PolicyError::Schema(e.to_string()))?;
                let allowed = checker.check(
                    &local,
                    Ask {
                        task: task.name.value.as_str(),
                        action: "declassify",
                        what: format!("drop label `{label}` from {key}"),
                        principal: task_uid.clone(),
                        resource: uid("Data", &key)?,
                        context: serde_json::json!({ "label": label }),
                    },
                )?;
                if allowed {
                    carried.remove(label);
                }
            }
            labels.insert(key, carried);
        }
        labels_in.push(incoming);
    }

    for (planned, incoming) in plan.tasks.iter().zip(&labels_in) {
        entities.push(task_entity(planned, &workflow, incoming)?);
        let task = &planned.task;
        for secret in task
            .secrets
            .iter()
            .map(|s| &s.value)
            .chain(task.inject.keys())
        {
            entities.push(Entity::new_no_attrs(
                uid("Secret", secret.as_str())?,
                HashSet::new(),
            ));
        }
        for mount in &task.mounts {
            entities.push(Entity::new_no_attrs(
                uid("Path", &mount.host.value)?,
                HashSet::new(),
            ));
        }
        for host in &task.network {
            entities.push(Entity::new_no_attrs(
                uid("Host", &host.value)?,
                HashSet::new(),
            ));
        }
        for output in task.outputs.keys() {
            let key = format!("{}.{output}", task.name.value);
            let carried = labels.get(&key).cloned().unwrap_or_default();
            entities.push(data_entity(
                &key,
                task.name.value.as_str(),
                output.as_str(),
                &carried,
            )?);
        }
    }
    // Several tasks may declare the same secret, path or host.
    let mut seen = HashSet::new();
    entities.retain(|e| seen.insert(e.uid()));
    let all = Entities::from_entities(entities.into_iter().chain(people), Some(schema))
        .map_err(|e| PolicyError::Schema(e.to_string()))?;

    for planned in &plan.tasks {
        let task = &planned.task;
        let name = task.name.value.as_str();
        let task_uid = uid("Task", name)?;
        if planned.fans_out_at_run_time().is_some() {
            // Never runs itself: each task it expands to is decided, with
            // what flows in and out of it, when the output arrives.
            continue;
        }
        checker.check(
            &all,
            Ask {
                task: name,
                action: "run",
                what: format!("run, started by {user}"),
                principal: user_uid.clone(),
                resource: task_uid.clone(),
                context: serde_json::json!({ "workflow": plan.name.as_str() }),
            },
        )?;
        for secret in &task.secrets {
            checker.check(
                &all,
                Ask {
                    task: name,
                    action: "read_secret",
                    what: format!("secret `{}`", secret.value),
                    principal: task_uid.clone(),
                    resource: uid("Secret", secret.value.as_str())?,
                    context: serde_json::json!({ "run_by": entity_json(&user_uid) }),
                },
            )?;
        }
        for mount in &task.mounts {
            let mode = match mount.mode {
                crate::sandbox::MountMode::Ro => "ro",
                crate::sandbox::MountMode::Rw => "rw",
            };
            checker.check(
                &all,
                Ask {
                    task: name,
                    action: "mount",
                    what: format!(
                        "mount `{}` at {} ({mode})",
                        mount.host.value, mount.guest.value
                    ),
                    principal: task_uid.clone(),
                    resource: uid("Path", &mount.host.value)?,
                    context: serde_json::json!({ "mode": mode, "guest": mount.guest.value }),
                },
            )?;
        }
        // Requests (`connect`) and injected secrets (`inject_secret`) are
        // decided one by one as they are sent: their context (method, path)
        // is not known before.
        // Each input's data: the run's trigger's, or an upstream output.
        let given_inputs = planned
            .from_trigger
            .iter()
            .map(|input| (given_key.clone(), input));
        let upstream = planned.upstream.iter().filter_map(|up| match &up.why {
            Dependency::Data { input, output } => plan
                .tasks
                .get(up.from)
                .filter(|from| from.fans_out_at_run_time().is_none())
                .map(|from| (format!("{}.{output}", from.task.name.value), input)),
            Dependency::Needs => None,
        });
        for (key, input) in given_inputs.chain(upstream) {
            let carried = labels
                .get(&key)
                .map(|l| l.iter().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            let shown = if carried.is_empty() {
                String::new()
            } else {
                format!(" [{carried}]")
            };
            checker.check(
                &all,
                Ask {
                    task: name,
                    action: "flow",
                    what: format!("data {key}{shown} into input `{input}`"),
                    principal: uid("Data", &key)?,
                    resource: task_uid.clone(),
                    context: serde_json::json!({ "input": input.as_str() }),
                },
            )?;
        }
    }
    Ok(Preflight {
        decisions: checker.decisions,
        labels,
        entities: std::sync::Arc::new(all),
    })
}

fn data_entity(
    key: &str,
    producer: &str,
    output: &str,
    labels: &BTreeSet<String>,
) -> Result<Entity, PolicyError> {
    let attrs = HashMap::from([
        (
            "producer".to_owned(),
            RestrictedExpression::new_string(producer.to_owned()),
        ),
        (
            "output".to_owned(),
            RestrictedExpression::new_string(output.to_owned()),
        ),
        ("labels".to_owned(), strings(labels.iter().cloned())),
    ]);
    Entity::new(uid("Data", key)?, attrs, HashSet::new())
        .map_err(|e| PolicyError::Schema(e.to_string()))
}

fn task_entity(
    planned: &crate::plan::PlannedTask,
    workflow: &EntityUid,
    labels_in: &BTreeSet<String>,
) -> Result<Entity, PolicyError> {
    let task = &planned.task;
    let mut attrs = HashMap::from([
        (
            "component".to_owned(),
            RestrictedExpression::new_string(
                task.sha256
                    .as_ref()
                    .map(|d| d.value.to_string())
                    .unwrap_or_default(),
            ),
        ),
        (
            "network".to_owned(),
            RestrictedExpression::new_bool(!task.network.is_empty()),
        ),
        (
            "secrets".to_owned(),
            strings(task.secrets.iter().map(|s| s.value.to_string())),
        ),
        (
            "injects".to_owned(),
            strings(task.inject.keys().map(ToString::to_string)),
        ),
        (
            "hosts".to_owned(),
            strings(task.network.iter().map(|h| h.value.clone())),
        ),
        (
            "mounts".to_owned(),
            strings(task.mounts.iter().map(|m| m.guest.value.clone())),
        ),
        (
            "writes".to_owned(),
            RestrictedExpression::new_bool(
                task.mounts
                    .iter()
                    .any(|m| m.mode == crate::sandbox::MountMode::Rw),
            ),
        ),
        ("labels_in".to_owned(), strings(labels_in.iter().cloned())),
    ]);
    let mut parents = HashSet::from([workflow.clone()]);
    // An expanded task is in its template (`resource in
    // Cairn::Task::"fetch"`), and says which element it is.
    if let Some(fan) = &planned.fan {
        let fields = [
            (
                "template".to_owned(),
                RestrictedExpression::new_string(fan.template.to_string()),
            ),
            (
                "key".to_owned(),
                RestrictedExpression::new_string(fan.key.clone()),
            ),
            (
                "index".to_owned(),
                RestrictedExpression::new_long(i64::try_from(fan.index).unwrap_or(i64::MAX)),
            ),
        ];
        attrs.insert(
            "fan".to_owned(),
            RestrictedExpression::new_record(fields)
                .map_err(|e| PolicyError::Schema(e.to_string()))?,
        );
        parents.insert(uid("Task", fan.template.as_str())?);
    }
    Entity::new(uid("Task", task.name.value.as_str())?, attrs, parents)
        .map_err(|e| PolicyError::Schema(e.to_string()))
}

impl Preflight {
    /// The entities decisions were made on, in Cedar's JSON format (for the
    /// audit log, so decisions can be re-evaluated offline).
    ///
    /// # Errors
    ///
    /// Only if Cedar cannot write its own entities (a bug).
    pub fn entities_json(&self) -> Result<crate::audit::record::EntitiesJson, PolicyError> {
        entities_json(&self.entities)
    }
}

/// `entities` in Cedar's JSON format, compact, as records hold them.
///
/// # Errors
///
/// Only if Cedar cannot write its own entities (a bug).
pub(super) fn entities_json(
    entities: &Entities,
) -> Result<crate::audit::record::EntitiesJson, PolicyError> {
    let mut pretty = Vec::new();
    entities
        .write_to_json(&mut pretty)
        .map_err(|e| PolicyError::Schema(e.to_string()))?;
    let text =
        String::from_utf8(compact(pretty)).map_err(|e| PolicyError::Schema(e.to_string()))?;
    crate::audit::record::EntitiesJson::rendered(text)
        .map_err(|e| PolicyError::Schema(e.to_string()))
}

/// `json` without the whitespace between its tokens (what a pretty
/// printer adds); strings are kept byte for byte.
pub(super) fn compact(mut json: Vec<u8>) -> Vec<u8> {
    let mut in_string = false;
    let mut escaped = false;
    json.retain(|&b| {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            true
        } else if b == b'"' {
            in_string = true;
            true
        } else {
            !matches!(b, b' ' | b'\n' | b'\r' | b'\t')
        }
    });
    json
}

/// A recorded request, decided again: the audit verifier's view of
/// [`authorize`]. `principal` and `resource` are Cedar JSON entity
/// references (`{"type": ..., "id": ...}`), `entities` Cedar's JSON format.
///
/// # Errors
///
/// A request or entities that do not fit Cairn's schema, or an unknown
/// action.
pub fn reevaluate(
    policies: &Policies,
    entities: &Entities,
    action: &str,
    principal: &serde_json::Value,
    resource: &serde_json::Value,
    context: &serde_json::Value,
) -> Result<Decision, PolicyError> {
    let action = super::ACTIONS
        .iter()
        .copied()
        .find(|a| *a == action)
        .ok_or_else(|| PolicyError::Schema(format!("`{action}` is not one of Cairn's actions")))?;
    let entity = |value: &serde_json::Value| {
        EntityUid::from_json(value.clone()).map_err(|e| PolicyError::Schema(e.to_string()))
    };
    authorize(
        policies,
        entities,
        Ask {
            task: "",
            action,
            what: String::new(),
            principal: entity(principal)?,
            resource: entity(resource)?,
            context: context.clone(),
        },
    )
}

impl Policies {
    /// Entities in Cedar's JSON format, checked against Cairn's schema.
    ///
    /// # Errors
    ///
    /// Entities that are not valid JSON entities of Cairn's schema.
    pub fn entities_from_json(&self, json: serde_json::Value) -> Result<Entities, PolicyError> {
        // Recorded entities come from a log anyone may have edited.
        super::bounds::check_entities_value(&json)
            .map_err(|problem| PolicyError::Entities(problem.message))?;
        Entities::from_json_value(json, Some(&self.schema))
            .map_err(|e| PolicyError::Entities(e.to_string()))
    }
}
