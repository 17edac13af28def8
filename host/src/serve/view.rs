//! What the web UI's run page shows, read from the audit log (the record
//! of truth, never the run state alone): the run's graph, its tasks as
//! planned from the manifest it ran and expanded as its fan-outs were,
//! each with the state its records give; its data and `needs` edges with
//! their labels; the policy decisions behind each node and edge; the
//! timeline of attempts, retries and waits; the outputs with digests.
//!
//! It reads; it never decides or writes (the API decides `read_run`
//! before asking for a view).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::audit::record::{Event, Record};
use crate::plan::{Dependency, Plan};

/// The records of run `run` in `log`, in order (a line that does not
/// parse is left out: `cairn audit verify` is what judges the log).
#[must_use]
pub fn records_of(log: &[u8], run: &str) -> Vec<Record> {
    crate::audit::log::lines_of_run(log, run)
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Record>(line).ok())
        .filter(|record| record.run == run)
        .collect()
}

/// The plan the run ran: its manifest as last recorded (started, or
/// resumed with a changed manifest), its parameters, its fan-outs over
/// outputs expanded as recorded. `None` when the recorded manifest does
/// not plan (then the page shows tasks without edges).
fn plan_of(records: &[Record]) -> Option<Plan> {
    let mut source = None;
    let mut params = BTreeMap::new();
    for record in records {
        match &record.event {
            Event::RunStarted {
                source: s,
                parameters,
                ..
            } => {
                source = Some(s.clone());
                params.clone_from(parameters);
            }
            Event::RunResumed {
                source: Some(s), ..
            } => source = Some(s.clone()),
            _ => {}
        }
    }
    let manifest = crate::manifest::parse(&source?).ok()?;
    let planned = Plan::new(&manifest).ok()?;
    planned.check_expansion(&params).ok()?;
    let mut plan = planned.with_params(&params);
    for record in records {
        if let Event::Expansion {
            task,
            count,
            keys,
            error: None,
            ..
        } = &record.event
        {
            let at = plan
                .tasks
                .iter()
                .position(|t| t.task.name.value.as_str() == task)?;
            let items: Vec<String> = keys
                .clone()
                .unwrap_or_else(|| (0..*count).map(|i| i.to_string()).collect());
            plan = plan.expand_output(at, &items).ok()?;
        }
    }
    Some(plan)
}

/// Per output (`task.output`), its labels as the run's last policy set
/// recorded them (its `Data` entities).
fn labels_of(records: &[Record]) -> HashMap<String, Vec<String>> {
    let mut labels = HashMap::new();
    let Some(entities) = records.iter().rev().find_map(|r| match &r.event {
        Event::PolicySet { entities, .. } => serde_json::to_value(entities).ok(),
        _ => None,
    }) else {
        return labels;
    };
    for entity in entities.as_array().into_iter().flatten() {
        let uid = &entity["uid"];
        if uid["type"].as_str().is_some_and(|t| t.ends_with("Data"))
            && let Some(id) = uid["id"].as_str()
        {
            let set: Vec<String> = entity
                .pointer("/attrs/labels")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect();
            labels.insert(id.to_owned(), set);
        }
    }
    labels
}

/// Node `name`, added (pending) if the plan did not have it.
fn node<'a>(
    nodes: &'a mut HashMap<String, Node>,
    order: &mut Vec<String>,
    name: &str,
) -> &'a mut Node {
    if !nodes.contains_key(name) {
        order.push(name.to_owned());
    }
    nodes.entry(name.to_owned()).or_insert_with(|| Node {
        state: "pending",
        ..Node::default()
    })
}

#[derive(Debug, Default)]
struct Node {
    state: &'static str,
    attempts: u32,
    detail: String,
    decisions: Vec<usize>,
}

/// The run page's data for run `run`, from its records in `log`.
#[must_use]
pub fn run_view(log: &[u8], run: &str) -> Value {
    let records = records_of(log, run);
    let plan = plan_of(&records);
    let labels = labels_of(&records);
    let mut order: Vec<String> = Vec::new();
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut gates: Vec<String> = Vec::new();
    if let Some(plan) = &plan {
        for t in &plan.tasks {
            let name = t.task.name.value.to_string();
            if t.task.is_gate() {
                gates.push(name.clone());
            }
            order.push(name.clone());
            nodes.insert(
                name,
                Node {
                    state: "pending",
                    ..Node::default()
                },
            );
        }
    }
    let mut decisions: Vec<Value> = Vec::new();
    let mut flows: Vec<(String, String, String, usize)> = Vec::new();
    let mut timeline: Vec<Value> = Vec::new();
    let mut started: HashMap<(String, u32), String> = HashMap::new();
    let mut opened: HashMap<String, (String, Value)> = HashMap::new();
    let mut outputs: Vec<Value> = Vec::new();
    let mut finished: Option<String> = None;
    for record in &records {
        match &record.event {
            Event::Decision {
                phase,
                task,
                action,
                principal,
                resource,
                context,
                decision,
                policies,
                errors,
            } => {
                let at = decisions.len();
                decisions.push(json!({
                    "seq": record.seq, "time": record.time, "phase": phase, "task": task,
                    "action": action, "principal": principal, "resource": resource,
                    "context": context, "decision": decision, "policies": policies,
                    "errors": errors,
                }));
                if action == "flow" {
                    let from = principal["id"].as_str().unwrap_or_default().to_owned();
                    let input = context["input"].as_str().unwrap_or_default().to_owned();
                    flows.push((from, task.clone(), input, at));
                } else if !task.is_empty() {
                    let n = node(&mut nodes, &mut order, task);
                    n.decisions.push(at);
                    if decision == "deny" && matches!(n.state, "pending") {
                        n.state = "refused";
                        n.detail = format!("denied: {action}");
                    }
                }
            }
            Event::TaskStarted { task, attempt, .. } => {
                let n = node(&mut nodes, &mut order, task);
                n.state = "running";
                n.attempts = n.attempts.max(*attempt);
                started.insert((task.clone(), *attempt), record.time.clone());
            }
            Event::TaskFinished {
                task,
                attempt,
                outcome,
                detail,
                duration_ms,
                outputs: made,
                ..
            } => {
                let n = node(&mut nodes, &mut order, task);
                n.state = if outcome == "success" {
                    "succeeded"
                } else {
                    "failed"
                };
                n.attempts = n.attempts.max(*attempt);
                n.detail.clone_from(detail);
                timeline.push(json!({
                    "task": task, "attempt": attempt, "kind": "attempt",
                    "start": started.get(&(task.clone(), *attempt)), "end": record.time,
                    "outcome": outcome, "detail": detail, "duration_ms": duration_ms,
                }));
                for made in made {
                    outputs.push(output_json(task, made, &labels));
                }
            }
            Event::Retry {
                task,
                attempt,
                delay_ms,
                reason,
            } => {
                let n = node(&mut nodes, &mut order, task);
                n.state = "retrying";
                n.detail.clone_from(reason);
                timeline.push(json!({
                    "task": task, "attempt": attempt, "kind": "retry",
                    "start": record.time, "delay_ms": delay_ms, "detail": reason,
                }));
            }
            Event::TaskSkipped { task, reason } => {
                let n = node(&mut nodes, &mut order, task);
                n.state = "skipped";
                n.detail.clone_from(reason);
            }
            Event::CacheHit {
                task,
                from_run,
                outputs: made,
                ..
            } => {
                let n = node(&mut nodes, &mut order, task);
                n.state = "succeeded";
                n.detail = format!("cached: outputs of run {from_run}");
                for made in made {
                    outputs.push(output_json(task, made, &labels));
                }
            }
            Event::GateOpened {
                task,
                required,
                bound,
                deadline,
                ..
            } => {
                let n = node(&mut nodes, &mut order, task);
                n.state = "waiting";
                n.detail = format!("waiting for {required} approval(s)");
                opened.insert(
                    task.clone(),
                    (
                        record.time.clone(),
                        json!({ "required": required, "bound": bound, "deadline": deadline }),
                    ),
                );
            }
            Event::Approval {
                task,
                verdict,
                approver,
                principal,
                resource,
                context,
                decision,
                policies,
                errors,
                counted,
                refused,
                ..
            } => {
                let at = decisions.len();
                decisions.push(json!({
                    "seq": record.seq, "time": record.time, "phase": "approval", "task": task,
                    "action": "approve", "principal": principal, "resource": resource,
                    "context": context, "decision": decision, "policies": policies,
                    "errors": errors, "verdict": verdict, "approver": approver,
                    "counted": counted, "refused": refused,
                }));
                node(&mut nodes, &mut order, task).decisions.push(at);
            }
            Event::GateClosed { task, result, by } => {
                let n = node(&mut nodes, &mut order, task);
                n.state = if result == "approved" {
                    "succeeded"
                } else {
                    "failed"
                };
                n.detail = format!("{result} by {}", by.join(", "));
                let (start, gate) = opened.remove(task).unwrap_or_default();
                timeline.push(json!({
                    "task": task, "kind": "wait", "start": start, "end": record.time,
                    "outcome": result, "gate": gate,
                }));
            }
            Event::Expansion {
                task,
                error: Some(why),
                ..
            } => {
                let n = node(&mut nodes, &mut order, task);
                n.state = "failed";
                n.detail = format!("did not expand: {why}");
            }
            Event::RunFinished { status, .. } => finished = Some(status.clone()),
            _ => {}
        }
    }
    for (task, (start, gate)) in opened {
        timeline.push(
            json!({ "task": task, "kind": "wait", "start": start, "end": null, "gate": gate }),
        );
    }
    if let Some(status) = &finished {
        for n in nodes.values_mut() {
            if matches!(n.state, "pending" | "running" | "retrying") {
                n.state = match status.as_str() {
                    "cancelled" => "cancelled",
                    "waiting" => "pending",
                    _ => "not run",
                };
            }
        }
    }
    let mut edges = Vec::new();
    if let Some(plan) = &plan {
        for t in &plan.tasks {
            let to = t.task.name.value.as_str();
            for up in &t.upstream {
                let Some(from) = plan.tasks.get(up.from).map(|f| f.task.name.value.as_str()) else {
                    continue;
                };
                match &up.why {
                    Dependency::Needs => edges.push(json!({
                        "from": from, "to": to, "kind": "needs", "label": "",
                        "decision": null, "decisions": [],
                    })),
                    Dependency::Data { input, output } => {
                        let key = format!("{from}.{output}");
                        let on: Vec<usize> = flows
                            .iter()
                            .filter(|(f, t, i, _)| *f == key && t == to && i == input.as_str())
                            .map(|(.., at)| *at)
                            .collect();
                        let denied = on
                            .iter()
                            .any(|at| decisions.get(*at).is_some_and(|d| d["decision"] == "deny"));
                        let decision = match (on.is_empty(), denied) {
                            (true, _) => Value::Null,
                            (false, true) => json!("deny"),
                            (false, false) => json!("allow"),
                        };
                        let carried = labels.get(&key).filter(|l| !l.is_empty());
                        let label = match carried {
                            Some(l) => format!("{output} → {input} [{}]", l.join(", ")),
                            None => format!("{output} → {input}"),
                        };
                        edges.push(json!({
                            "from": from, "to": to, "kind": "data", "label": label,
                            "output": output.as_str(), "input": input.as_str(),
                            "labels": carried, "decision": decision, "decisions": on,
                        }));
                    }
                }
            }
        }
    }
    let nodes: Vec<Value> = order
        .iter()
        .filter_map(|name| {
            let n = nodes.get(name)?;
            Some(json!({
                "id": name, "label": name, "state": n.state, "attempts": n.attempts,
                "gate": gates.contains(name), "detail": n.detail, "decisions": n.decisions,
            }))
        })
        .collect();
    json!({
        "run": run,
        "planned": plan.is_some(),
        "status": finished,
        "nodes": nodes,
        "edges": edges,
        "decisions": decisions,
        "timeline": timeline,
        "outputs": outputs,
    })
}

fn output_json(
    task: &str,
    made: &crate::audit::record::Artifact,
    labels: &HashMap<String, Vec<String>>,
) -> Value {
    json!({
        "task": task, "name": made.name, "sha256": made.sha256, "bytes": made.bytes,
        "labels": labels.get(&format!("{task}.{}", made.name)).cloned().unwrap_or_default(),
    })
}

/// The output `name` of `task` in run `run`, as its records name it:
/// its digest and size, and its labels.
#[must_use]
pub fn output_of(
    log: &[u8],
    run: &str,
    task: &str,
    name: &str,
) -> Option<(crate::audit::record::Artifact, Vec<String>)> {
    let records = records_of(log, run);
    let labels = labels_of(&records);
    let made = records.iter().rev().find_map(|r| match &r.event {
        Event::TaskFinished {
            task: t, outputs, ..
        }
        | Event::CacheHit {
            task: t, outputs, ..
        } if t == task => outputs.iter().find(|o| o.name == name).cloned(),
        _ => None,
    })?;
    let labels = labels
        .get(&format!("{task}.{name}"))
        .cloned()
        .unwrap_or_default();
    Some((made, labels))
}
