//! The plan: a validated, topologically ordered workflow.
//!
//! [`Plan::new`] takes a parsed [`Manifest`] and checks what relates tasks to
//! each other — unknown tasks and outputs (with suggestions), self-edges,
//! cycles (naming the cycle's path), failure handlers without upstream — and
//! orders the tasks so that every task comes after everything it depends on,
//! keeping the author's order where the graph leaves a choice. A `Plan` exists
//! only if all of that holds. Pure: no I/O, no wasmtime. Paths are still
//! relative to the manifest.

mod graph;

use std::collections::{BTreeMap, HashMap};

use indexmap::IndexMap;

use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::manifest::{
    At, ForEach, Manifest, Param, Settings, Task, When, fan_out_elements, fan_out_keys,
    substitute_each, substitute_params,
};
use crate::name::Name;

pub use graph::{Format as GraphFormat, render as render_graph};

/// Candidates are suggested for a misspelled task name only in workflows up
/// to this size, to keep validation linear on huge manifests.
const SUGGEST_UP_TO: usize = 10_000;

/// Why a task depends on another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependency {
    /// Listed in `needs`.
    Needs,
    /// Feeds the input `input` from its output `output`.
    Data {
        /// The consuming task's input name.
        input: Name,
        /// The producing task's output name.
        output: Name,
    },
}

/// One edge of the DAG, from `from` (upstream) to the task that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Index of the upstream task in [`Plan::tasks`].
    pub from: usize,
    /// Why.
    pub why: Dependency,
}

/// A task with its dependencies resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    /// The task as authored (with spans).
    pub task: Task,
    /// Its dependencies, as indices into [`Plan::tasks`] (all earlier).
    pub upstream: Vec<Upstream>,
    /// Settings after applying `[defaults]`.
    pub settings: Settings,
    /// Its inputs that take the body of the webhook delivery that started
    /// the run (`inputs = { event = "trigger.body" }`).
    pub from_trigger: Vec<Name>,
    /// For a task a fan-out expanded to: which one it is.
    pub fan: Option<Fan>,
}

/// One task of an expanded fan-out (`for_each`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fan {
    /// The task as written (`fetch`).
    pub template: Name,
    /// Its key (`eu`, or the index).
    pub key: String,
    /// Its place in the list, from 0.
    pub index: usize,
    /// Its element.
    pub element: String,
    /// The template's `max_parallel`.
    pub max_parallel: Option<u32>,
}

/// Most tasks a plan's fan-outs may expand to.
pub const MAX_EXPANDED_TASKS: usize = 100_000;

/// Most dependencies (edges) a plan's fan-outs may expand to.
pub const MAX_EXPANDED_EDGES: usize = 1_000_000;

/// The name of the run's trigger, as an upstream of inputs
/// (`trigger.body`); no task may be called so.
pub const TRIGGER: &str = "trigger";

/// A validated workflow, tasks in a topological order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The workflow's name.
    pub name: Name,
    /// Policy paths as written.
    pub policies: Vec<At<String>>,
    /// How many runs of it the service runs at once, if limited.
    pub max_active_runs: Option<u32>,
    /// Run parameters and their defaults.
    pub params: IndexMap<Name, Param>,
    /// Tasks; each comes after all of its upstream tasks.
    pub tasks: Vec<PlannedTask>,
    /// When the service runs it by itself.
    pub schedules: Vec<crate::serve::schedule::Spec>,
    /// Deliveries that start runs of it.
    pub webhooks: Vec<crate::serve::webhook::Spec>,
    /// Where the service sends its runs' events.
    pub notifications: Vec<crate::observe::notify::Spec>,
}

impl Plan {
    /// Check the relations between tasks and order them.
    ///
    /// # Errors
    ///
    /// Every problem found, with spans into the manifest.
    pub fn new(manifest: &Manifest) -> Result<Self, Diagnostics> {
        let mut d = Diagnostics::default();
        let index: HashMap<&Name, usize> = manifest
            .tasks
            .keys()
            .enumerate()
            .map(|(i, n)| (n, i))
            .collect();
        let names = || manifest.tasks.keys().map(Name::as_str);
        let suggest = |word: &str| {
            if manifest.tasks.len() > SUGGEST_UP_TO {
                return None;
            }
            did_you_mean(word, names())
        };

        // Edges in author's order; `upstream[i]` lists what task `i` waits for.
        let mut upstream: Vec<Vec<(usize, Dependency, std::ops::Range<usize>)>> = Vec::new();
        let mut from_trigger: Vec<Vec<Name>> = Vec::new();
        for (i, task) in manifest.tasks.values().enumerate() {
            let mut edges = Vec::new();
            let mut given = Vec::new();
            if task.name.value.as_str() == TRIGGER {
                d.push(
                    Diagnostic::at(task.name.span.clone(), "a task may not be called `trigger`")
                        .label("reserved")
                        .help("`trigger.body` is the body of the webhook delivery that started the run; rename the task"),
                );
            }
            for needed in &task.needs {
                match index.get(&needed.value) {
                    Some(&j) if j == i => d.push(
                        Diagnostic::at(
                            needed.span.clone(),
                            format!("task `{}` needs itself", task.name.value),
                        )
                        .help("remove it from `needs`"),
                    ),
                    Some(&j) => edges.push((j, Dependency::Needs, needed.span.clone())),
                    None => d.push(unknown_task(
                        &needed.value,
                        needed.span.clone(),
                        suggest(needed.value.as_str()),
                    )),
                }
            }
            for (input, edge) in &task.inputs {
                let from = &edge.value.task;
                match index.get(from) {
                    Some(&j) if j == i => d.push(
                        Diagnostic::at(
                            edge.span.clone(),
                            format!("input `{input}` of task `{from}` comes from the task itself"),
                        )
                        .help("an input must come from an upstream task's output"),
                    ),
                    Some(&j) => {
                        let producer = manifest.tasks.get_index(j).map(|(_, t)| t);
                        let output = &edge.value.output;
                        let fans = producer.is_some_and(|p| p.for_each.is_some());
                        if fans != edge.value.all {
                            let help = if fans {
                                format!(
                                    "`{from}` fans out (`for_each`): take every one of its outputs with `{from}[*].{output}`"
                                )
                            } else {
                                format!(
                                    "`{from}` does not fan out: take its output as `{from}.{output}`"
                                )
                            };
                            d.push(
                                Diagnostic::at(
                                    edge.span.clone(),
                                    format!("input `{input}` of task `{}` takes `{from}` as if it {} out", task.name.value, if fans { "did not fan" } else { "fanned" }),
                                )
                                .help(help),
                            );
                        } else if producer.is_some_and(|p| p.outputs.contains_key(output)) {
                            let why = Dependency::Data {
                                input: input.clone(),
                                output: output.clone(),
                            };
                            edges.push((j, why, edge.span.clone()));
                        } else {
                            d.push(unknown_output(producer, from, output, edge.span.clone()));
                        }
                    }
                    None if from.as_str() == TRIGGER => {
                        if edge.value.output.as_str() != "body" {
                            d.push(
                                Diagnostic::at(
                                    edge.span.clone(),
                                    format!("the trigger has no output `{}`", edge.value.output),
                                )
                                .help("the trigger gives one: `trigger.body`, the body of the webhook delivery that started the run"),
                            );
                        } else if manifest.webhooks.is_empty() {
                            d.push(
                                Diagnostic::at(
                                    edge.span.clone(),
                                    format!("input `{input}` takes `trigger.body`, but the workflow has no webhooks"),
                                )
                                .help("declare one: `[webhooks.NAME]` with `scheme`, `secret` and `as`"),
                            );
                        } else {
                            given.push(input.clone());
                        }
                    }
                    None => d.push(unknown_task(
                        from,
                        edge.span.clone(),
                        suggest(from.as_str()),
                    )),
                }
            }
            if let Some(At {
                value: ForEach::Output { task: from, output },
                span,
            }) = &task.for_each
            {
                match index.get(from) {
                    Some(&j) if j == i => d.push(
                        Diagnostic::at(
                            span.clone(),
                            format!("task `{from}` fans out over its own output"),
                        )
                        .help("fan out over an upstream task's output"),
                    ),
                    Some(&j) => {
                        let producer = manifest.tasks.get_index(j).map(|(_, t)| t);
                        if producer.is_some_and(|p| p.for_each.is_some()) {
                            d.push(
                                Diagnostic::at(
                                    span.clone(),
                                    format!("task `{}` fans out over `{from}.{output}`, but `{from}` fans out itself", task.name.value),
                                )
                                .label("one output per expanded task")
                                .help(format!("fan in first: a task that takes `{from}[*].{output}` and writes one JSON array")),
                            );
                        } else if producer.is_some_and(|p| p.outputs.contains_key(output)) {
                            edges.push((j, Dependency::Needs, span.clone()));
                        } else {
                            d.push(unknown_output(producer, from, output, span.clone()));
                        }
                    }
                    None => d.push(unknown_task(from, span.clone(), suggest(from.as_str()))),
                }
            }
            from_trigger.push(given);
            if task.when.value == When::Failure && task.needs.is_empty() && task.inputs.is_empty() {
                d.push(
                    Diagnostic::at(
                        task.when.span.clone(),
                        format!(
                            "task `{}` runs on failure, but has no upstream task",
                            task.name.value
                        ),
                    )
                    .label("nothing can fail before it")
                    .help("add the tasks it handles to `needs`, e.g. `needs = [\"deploy\"]`"),
                );
            }
            upstream.push(edges);
        }
        if !d.is_empty() {
            return Err(d);
        }

        let order = match topological_order(&upstream) {
            Ok(order) => order,
            Err(cycle) => {
                d.push(cycle_diagnostic(manifest, &upstream, &cycle));
                return Err(d);
            }
        };
        let mut position = vec![0usize; order.len()];
        for (pos, &task) in order.iter().enumerate() {
            if let Some(slot) = position.get_mut(task) {
                *slot = pos;
            }
        }
        let mut tasks: Vec<PlannedTask> = order
            .iter()
            .filter_map(|&i| {
                let (_, task) = manifest.tasks.get_index(i)?;
                let mut deps: Vec<Upstream> = upstream
                    .get(i)?
                    .iter()
                    .map(|(from, why, _)| Upstream {
                        from: position.get(*from).copied().unwrap_or(0),
                        why: why.clone(),
                    })
                    .collect();
                deps.dedup();
                Some(PlannedTask {
                    task: task.clone(),
                    upstream: deps,
                    settings: merge(&manifest.defaults, &task.settings),
                    from_trigger: from_trigger.get(i).cloned().unwrap_or_default(),
                    fan: None,
                })
            })
            .collect();
        check_gates(&tasks, &mut d);
        check_fan_outs(manifest, &mut d);
        if !d.is_empty() {
            return Err(d);
        }
        // A task is about a kilobyte: keep no spare capacity (a 100,000-task
        // plan would otherwise hold up to twice what it needs).
        tasks.shrink_to_fit();
        Ok(Self {
            name: manifest.name.value.clone(),
            policies: manifest.policies.clone(),
            max_active_runs: manifest.max_active_runs.as_ref().map(|n| n.value),
            params: manifest.params.clone(),
            tasks,
            schedules: manifest
                .schedules
                .values()
                .map(|s| s.spec.clone())
                .collect(),
            webhooks: manifest.webhooks.values().map(|w| w.spec.clone()).collect(),
            notifications: manifest
                .notifications
                .values()
                .map(|n| n.spec.clone())
                .collect(),
        })
    }

    /// Every parameter's value in a run given `given` (`NAME=VALUE` from
    /// the command line; the rest take their defaults).
    ///
    /// # Errors
    ///
    /// A message naming an undeclared parameter or a value that is not
    /// allowed, and what would be.
    pub fn param_values(
        &self,
        given: &[(String, String)],
    ) -> Result<BTreeMap<String, String>, String> {
        let mut values: BTreeMap<String, String> = self
            .params
            .iter()
            .map(|(name, p)| (name.to_string(), p.default.value.clone()))
            .collect();
        for (name, value) in given {
            let Some(param) = self
                .params
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, p)| p)
            else {
                let declared: Vec<String> = self.params.keys().map(|n| format!("`{n}`")).collect();
                return Err(if declared.is_empty() {
                    format!("--param `{name}`: the workflow declares no parameters (`[params]`)")
                } else {
                    format!(
                        "--param `{name}`: the workflow has no such parameter; it declares {}",
                        declared.join(", ")
                    )
                });
            };
            if !param.allowed.is_empty() && !param.allowed.iter().any(|a| &a.value == value) {
                let allowed: Vec<String> = param
                    .allowed
                    .iter()
                    .map(|a| format!("`{}`", a.value))
                    .collect();
                return Err(format!(
                    "--param `{name}={value}`: `{name}` must be one of {}",
                    allowed.join(", ")
                ));
            }
            values.insert(name.clone(), value.clone());
        }
        for planned in &self.tasks {
            if let Some(At {
                value: ForEach::Param(param),
                ..
            }) = &planned.task.for_each
                && let Some(value) = values.get(param.as_str())
                && let Err(why) = fan_out_elements(value)
            {
                return Err(format!(
                    "--param `{param}`: task `{}` fans out over it, so it {why}",
                    planned.task.name.value
                ));
            }
        }
        self.check_expansion(&values)?;
        Ok(values)
    }

    /// Whether expanding this plan's fan-outs with `values` stays within
    /// [`MAX_EXPANDED_TASKS`] tasks and [`MAX_EXPANDED_EDGES`] edges,
    /// counted without expanding: each fan-out is bounded on its own, but
    /// many of them, or a fan-in of a fan-out by another fan-out, multiply.
    ///
    /// # Errors
    ///
    /// A message with the counts and the limit.
    pub fn check_expansion(&self, values: &BTreeMap<String, String>) -> Result<(), String> {
        let sizes: Vec<usize> = self
            .tasks
            .iter()
            .map(|t| match &t.task.for_each {
                Some(At {
                    value: ForEach::Output { .. },
                    ..
                })
                | None => 1,
                Some(f) => elements(&f.value, values).len(),
            })
            .collect();
        let tasks = sizes.iter().fold(0usize, |a, n| a.saturating_add(*n));
        if tasks > MAX_EXPANDED_TASKS {
            return Err(format!(
                "its fan-outs expand to {tasks} tasks; a run has at most {MAX_EXPANDED_TASKS}"
            ));
        }
        let edges = self.tasks.iter().zip(&sizes).fold(0usize, |sum, (t, n)| {
            let upstream = t.upstream.iter().fold(0usize, |a, u| {
                a.saturating_add(sizes.get(u.from).copied().unwrap_or(1))
            });
            sum.saturating_add(n.saturating_mul(upstream))
        });
        if edges > MAX_EXPANDED_EDGES {
            return Err(format!(
                "its fan-outs expand to {edges} dependencies; a run has at most {MAX_EXPANDED_EDGES}"
            ));
        }
        Ok(())
    }

    /// This plan with `values` written into every task's `env` and `args`
    /// in place of `${params.NAME}`, and each fan-out (`for_each`) expanded:
    /// one task per element, `fetch[KEY]`, in the template's place, with
    /// `${each}` written as the element; `needs` of the template waits for
    /// all of them, and a fan-in input (`fetch[*].page`) becomes one input
    /// per element (`pages[KEY]`). A parameter that does not hold a JSON
    /// array of strings (checked by [`Plan::param_values`]) expands to
    /// nothing. Callers check the size first ([`Plan::param_values`] does,
    /// with [`Plan::check_expansion`]).
    #[must_use]
    pub fn with_params(mut self, values: &BTreeMap<String, String>) -> Self {
        for planned in &mut self.tasks {
            let task = &mut planned.task;
            for arg in &mut task.args {
                *arg = substitute_params(arg, values);
            }
            for value in task.env.values_mut() {
                *value = substitute_params(value, values);
            }
        }
        if self.tasks.iter().any(|t| t.task.for_each.is_some()) {
            self.tasks = expand(std::mem::take(&mut self.tasks), |planned| {
                match &planned.task.for_each.as_ref()?.value {
                    ForEach::Output { .. } => None,
                    other => Some(elements(other, values)),
                }
            });
        }
        self
    }

    /// This plan with the fan-out over an upstream output at `index` (a
    /// [`PlannedTask::fans_out_at_run_time`] template) expanded to
    /// `items`, exactly as [`Plan::with_params`] expands a list: the same
    /// names, `${each}`, fan-in inputs and `max_parallel` group.
    ///
    /// # Errors
    ///
    /// The task is no such template, or the expanded plan would pass
    /// [`MAX_EXPANDED_TASKS`] tasks or [`MAX_EXPANDED_EDGES`] dependencies.
    pub fn expand_output(&self, index: usize, items: &[String]) -> Result<Self, String> {
        let Some(template) = self.tasks.get(index) else {
            return Err(format!("no task #{index} in the plan"));
        };
        if template.fans_out_at_run_time().is_none() {
            return Err(format!(
                "task `{}` does not fan out over an output",
                template.task.name.value
            ));
        }
        let n = items.len();
        let tasks = (self.tasks.len() - 1).saturating_add(n);
        if tasks > MAX_EXPANDED_TASKS {
            return Err(format!(
                "the run would have {tasks} tasks; a run has at most {MAX_EXPANDED_TASKS}"
            ));
        }
        // Its own upstream, once per element; each edge from it, once per
        // element too.
        let edges = self.tasks.iter().enumerate().fold(0usize, |sum, (i, t)| {
            let own = t.upstream.iter().fold(0usize, |a, u| {
                a.saturating_add(if u.from == index { n } else { 1 })
            });
            sum.saturating_add(if i == index {
                own.saturating_mul(n)
            } else {
                own
            })
        });
        if edges > MAX_EXPANDED_EDGES {
            return Err(format!(
                "the run would have {edges} dependencies; a run has at most {MAX_EXPANDED_EDGES}"
            ));
        }
        let name = template.task.name.value.clone();
        let mut plan = self.clone();
        plan.tasks = expand(std::mem::take(&mut plan.tasks), |planned| {
            (planned.task.name.value == name).then(|| items.to_vec())
        });
        Ok(plan)
    }
}

impl PlannedTask {
    /// The upstream output (`task`, `output`) this task fans out over,
    /// when it is a template expanded only once that output arrives.
    #[must_use]
    pub fn fans_out_at_run_time(&self) -> Option<(&Name, &Name)> {
        match &self.task.for_each.as_ref()?.value {
            ForEach::Output { task, output } => Some((task, output)),
            _ => None,
        }
    }
}

impl Plan {
    /// The gates (tasks with `approval`) task `index` needs directly: it
    /// starts only once each is approved.
    pub fn gates_of(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.tasks
            .get(index)
            .into_iter()
            .flat_map(|t| t.upstream.iter().map(|u| u.from))
            .filter(|&u| self.tasks.get(u).is_some_and(|t| t.task.is_gate()))
    }

    /// The tasks that need gate `gate` directly: what its approval covers.
    #[must_use]
    pub fn gated_by(&self, gate: usize) -> Vec<usize> {
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.upstream.iter().any(|u| u.from == gate))
            .map(|(i, _)| i)
            .collect()
    }
}

/// The elements a fan-out expands to with parameter values `values` (none
/// for one over an output: it expands when the run has it).
fn elements(for_each: &ForEach, values: &BTreeMap<String, String>) -> Vec<String> {
    match for_each {
        ForEach::List(items) => items.clone(),
        ForEach::Param(name) => values
            .get(name.as_str())
            .and_then(|text| fan_out_elements(text).ok())
            .unwrap_or_default(),
        ForEach::Output { .. } => Vec::new(),
    }
}

/// `tasks` (a plan's, in order) with each fan-out `items_of` gives the
/// elements of expanded in place; the rest as they are.
fn expand(
    tasks: Vec<PlannedTask>,
    items_of: impl Fn(&PlannedTask) -> Option<Vec<String>>,
) -> Vec<PlannedTask> {
    // Old index -> the new indices it became (one, or one per element).
    let mut became: Vec<Vec<usize>> = Vec::with_capacity(tasks.len());
    let mut keys: Vec<Vec<String>> = Vec::with_capacity(tasks.len());
    let mut out: Vec<PlannedTask> = Vec::with_capacity(tasks.len());
    for planned in tasks {
        // Upstream, in the new indices: a fan-out's every task; a fan-in
        // input once per element, named by its key.
        let mut upstream: Vec<Upstream> = Vec::new();
        for up in &planned.upstream {
            let targets = became.get(up.from).cloned().unwrap_or_default();
            let fanned = keys.get(up.from).is_some_and(|k| !k.is_empty());
            for (n, from) in targets.into_iter().enumerate() {
                let why = match &up.why {
                    Dependency::Data { input, output } if fanned => Dependency::Data {
                        input: Name::fanned(
                            input,
                            keys.get(up.from)
                                .and_then(|k| k.get(n))
                                .map_or("?", String::as_str),
                        ),
                        output: output.clone(),
                    },
                    other => other.clone(),
                };
                upstream.push(Upstream { from, why });
            }
        }
        let Some(items) = items_of(&planned) else {
            became.push(vec![out.len()]);
            keys.push(Vec::new());
            out.push(PlannedTask {
                upstream,
                ..planned
            });
            continue;
        };
        let item_keys = fan_out_keys(&items);
        let first = out.len();
        became.push((first..first + items.len()).collect());
        // Expanded, a task says which element it is in `fan`, not by the
        // whole list (which each would otherwise copy).
        let mut template = planned.task.clone();
        template.for_each = None;
        for (index, (item, key)) in items.iter().zip(&item_keys).enumerate() {
            let mut task = template.clone();
            task.name.value = Name::fanned(&planned.task.name.value, key);
            for arg in &mut task.args {
                *arg = substitute_each(arg, item);
            }
            for value in task.env.values_mut() {
                *value = substitute_each(value, item);
            }
            out.push(PlannedTask {
                task,
                upstream: upstream.clone(),
                settings: planned.settings.clone(),
                from_trigger: planned.from_trigger.clone(),
                fan: Some(Fan {
                    template: planned.task.name.value.clone(),
                    key: key.clone(),
                    index,
                    element: item.clone(),
                    max_parallel: planned.task.max_parallel.as_ref().map(|m| m.value),
                }),
            });
        }
        keys.push(item_keys);
    }
    out.shrink_to_fit();
    out
}

/// A fan-out over a parameter needs a declared parameter whose default is
/// a JSON array of strings; a gate fans out nothing.
fn check_fan_outs(manifest: &Manifest, d: &mut Diagnostics) {
    for task in manifest.tasks.values() {
        let Some(for_each) = &task.for_each else {
            continue;
        };
        let ForEach::Param(name) = &for_each.value else {
            continue;
        };
        match manifest.params.get(name) {
            None => d.push(
                Diagnostic::at(
                    for_each.span.clone(),
                    format!("there is no parameter `{name}`"),
                )
                .help(format!(
                    "declare it under `[params]`, e.g. `{name} = '[\"eu\", \"us\"]'`"
                )),
            ),
            Some(param) => {
                if let Err(why) = fan_out_elements(&param.default.value) {
                    d.push(
                        Diagnostic::at(
                            param.default.span.clone(),
                            format!("parameter `{name}` is what `{}` fans out over, so its default {why}", task.name.value),
                        )
                        .related(for_each.span.clone(), "fans out over it")
                        .help("e.g. `regions = '[\"eu\", \"us\"]'`"),
                    );
                }
            }
        }
    }
}

/// An approval covers the data its gated tasks get, so that data must be
/// known when the gate opens: each input of a task after a gate comes
/// from a task before the gate, or from one after it (which itself runs
/// only once the gate is approved).
fn check_gates(tasks: &[PlannedTask], d: &mut Diagnostics) {
    for (gate, planned) in tasks.iter().enumerate() {
        if !planned.task.is_gate() {
            continue;
        }
        let mut before = vec![false; tasks.len()];
        let mut stack = vec![gate];
        while let Some(i) = stack.pop() {
            for up in tasks
                .get(i)
                .map(|t| t.upstream.as_slice())
                .unwrap_or_default()
            {
                if let Some(seen) = before.get_mut(up.from)
                    && !*seen
                {
                    *seen = true;
                    stack.push(up.from);
                }
            }
        }
        // Tasks come after their upstream: one sweep finds what follows.
        let mut after = vec![false; tasks.len()];
        for (i, t) in tasks.iter().enumerate().skip(gate + 1) {
            let follows = t
                .upstream
                .iter()
                .any(|u| u.from == gate || after.get(u.from) == Some(&true));
            if let Some(slot) = after.get_mut(i) {
                *slot = follows;
            }
        }
        for t in tasks
            .iter()
            .filter(|t| t.upstream.iter().any(|u| u.from == gate))
        {
            // What it fans out over is data it gets too.
            let each = t.fans_out_at_run_time().map(|(from, _)| from);
            for up in &t.upstream {
                let from_name = tasks.get(up.from).map(|f| &f.task.name.value);
                let input = match &up.why {
                    Dependency::Data { input, .. } => input.clone(),
                    Dependency::Needs if each.is_some() && from_name == each => Name::stand_in(),
                    Dependency::Needs => continue,
                };
                let input = &input;
                if before.get(up.from) == Some(&true) || after.get(up.from) == Some(&true) {
                    continue;
                }
                let from = tasks
                    .get(up.from)
                    .map(|f| f.task.name.value.as_str())
                    .unwrap_or("?");
                let (span, what) = match t.task.inputs.get(input) {
                    Some(e) => (e.span.clone(), format!("its input `{input}`")),
                    None => (
                        t.task
                            .for_each
                            .as_ref()
                            .map_or_else(|| t.task.name.span.clone(), |f| f.span.clone()),
                        "what it fans out over".to_owned(),
                    ),
                };
                d.push(
                    Diagnostic::at(
                        span,
                        format!(
                            "task `{}` waits for approval at `{}`, but {what} comes from `{from}`, which the gate does not wait for",
                            t.task.name.value, planned.task.name.value
                        ),
                    )
                    .label("not known when the gate opens")
                    .related(planned.task.name.span.clone(), "the gate")
                    .help(format!(
                        "an approval covers the data it lets through: add `{from}` to the gate's `needs`"
                    )),
                );
            }
        }
    }
}

/// `from.output` names no output `from` (`producer`) declares.
fn unknown_output(
    producer: Option<&Task>,
    from: &Name,
    output: &Name,
    span: std::ops::Range<usize>,
) -> Diagnostic {
    let declared: Vec<&str> = producer
        .map(|p| p.outputs.keys().map(Name::as_str).collect())
        .unwrap_or_default();
    let help = match did_you_mean(output.as_str(), declared.iter().copied()) {
        Some(s) => format!("did you mean `{from}.{s}`?"),
        None if declared.is_empty() => {
            format!("task `{from}` declares no outputs; add `outputs = [\"{output}\"]` to it")
        }
        None => format!("task `{from}` declares: {}", declared.join(", ")),
    };
    Diagnostic::at(span, format!("task `{from}` has no output `{output}`"))
        .label("unknown output")
        .help(help)
}

fn unknown_task(name: &Name, span: std::ops::Range<usize>, suggestion: Option<&str>) -> Diagnostic {
    let diagnostic =
        Diagnostic::at(span, format!("there is no task `{name}`")).label("unknown task");
    match suggestion {
        Some(s) => diagnostic.help(format!("did you mean `{s}`?")),
        None => diagnostic.help("declare it as `[tasks.NAME]`, or fix the name"),
    }
}

fn merge(defaults: &Settings, task: &Settings) -> Settings {
    Settings {
        timeout: task.timeout.clone().or_else(|| defaults.timeout.clone()),
        cpu_time: task.cpu_time.clone().or_else(|| defaults.cpu_time.clone()),
        memory: task.memory.clone().or_else(|| defaults.memory.clone()),
        instances: task
            .instances
            .clone()
            .or_else(|| defaults.instances.clone()),
        retries: task.retries.clone().or_else(|| defaults.retries.clone()),
        http_requests: task
            .http_requests
            .clone()
            .or_else(|| defaults.http_requests.clone()),
        http_request_size: task
            .http_request_size
            .clone()
            .or_else(|| defaults.http_request_size.clone()),
        http_response_size: task
            .http_response_size
            .clone()
            .or_else(|| defaults.http_response_size.clone()),
        http_timeout: task
            .http_timeout
            .clone()
            .or_else(|| defaults.http_timeout.clone()),
    }
}

/// Kahn's algorithm, taking the lowest-indexed ready task first so the
/// author's order is kept where the graph allows. `Err` holds a cycle.
fn topological_order<T>(
    upstream: &[Vec<(usize, T, std::ops::Range<usize>)>],
) -> Result<Vec<usize>, Vec<usize>> {
    let n = upstream.len();
    let mut waiting = vec![0usize; n];
    let mut downstream: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (task, edges) in upstream.iter().enumerate() {
        for (from, _, _) in edges {
            if let (Some(w), Some(down)) = (waiting.get_mut(task), downstream.get_mut(*from)) {
                *w += 1;
                down.push(task);
            }
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
        .filter(|&i| waiting.get(i) == Some(&0))
        .map(std::cmp::Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(std::cmp::Reverse(task)) = ready.pop() {
        order.push(task);
        for &next in downstream.get(task).map(Vec::as_slice).unwrap_or_default() {
            if let Some(w) = waiting.get_mut(next) {
                *w -= 1;
                if *w == 0 {
                    ready.push(std::cmp::Reverse(next));
                }
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(find_cycle(upstream, &waiting))
}

/// A cycle among tasks still waiting after Kahn's algorithm: walk upstream
/// from any of them until a task repeats (every waiting task has a waiting
/// upstream task, so the walk must close).
fn find_cycle<T>(
    upstream: &[Vec<(usize, T, std::ops::Range<usize>)>],
    waiting: &[usize],
) -> Vec<usize> {
    let is_waiting = |i: usize| waiting.get(i).is_some_and(|&w| w > 0);
    let Some(start) = (0..waiting.len()).find(|&i| is_waiting(i)) else {
        return Vec::new();
    };
    let mut seen_at: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut current = start;
    loop {
        if let Some(&at) = seen_at.get(&current) {
            // `path[at..]` walks upstream; reverse it to read in run order.
            let mut cycle: Vec<usize> = path.get(at..).map(<[usize]>::to_vec).unwrap_or_default();
            cycle.reverse();
            return cycle;
        }
        seen_at.insert(current, path.len());
        path.push(current);
        let next = upstream.get(current).and_then(|edges| {
            edges
                .iter()
                .map(|(from, _, _)| *from)
                .find(|&f| is_waiting(f))
        });
        match next {
            Some(next) => current = next,
            None => return path,
        }
    }
}

fn cycle_diagnostic<T>(
    manifest: &Manifest,
    upstream: &[Vec<(usize, T, std::ops::Range<usize>)>],
    cycle: &[usize],
) -> Diagnostic {
    let name = |i: usize| manifest.tasks.get_index(i).map_or("?", |(n, _)| n.as_str());
    let mut path: Vec<&str> = cycle.iter().map(|&i| name(i)).collect();
    if let Some(first) = path.first().copied() {
        path.push(first);
    }
    // The span of each edge in the cycle: task `cycle[k+1]` waits for `cycle[k]`.
    let mut spans = Vec::new();
    for (k, &from) in cycle.iter().enumerate() {
        let to = cycle.get(k + 1).or(cycle.first()).copied().unwrap_or(from);
        if let Some((_, _, span)) = upstream
            .get(to)
            .and_then(|edges| edges.iter().find(|(f, _, _)| *f == from))
        {
            spans.push((
                span.clone(),
                format!("`{}` waits for `{}`", name(to), name(from)),
            ));
        }
    }
    let mut spans = spans.into_iter();
    let (first_span, first_label) = spans.next().unwrap_or((0..0, String::new()));
    let mut diagnostic = Diagnostic::at(
        first_span,
        format!("the tasks form a cycle: {}", path.join(" → ")),
    )
    .label(first_label)
    .help("a workflow must be a DAG: remove one of these dependencies");
    for (span, label) in spans {
        diagnostic = diagnostic.related(span, label);
    }
    diagnostic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(source: &str) -> Result<Plan, Vec<String>> {
        let manifest = crate::manifest::parse(source)
            .map_err(|d| d.0.into_iter().map(|d| d.message).collect::<Vec<_>>())?;
        Plan::new(&manifest).map_err(|d| d.0.into_iter().map(|d| d.message).collect())
    }

    const HEAD: &str = "[workflow]\nname = \"w\"\n";

    #[test]
    fn orders_by_dependencies_keeping_authors_order() {
        let p = plan(&format!(
            "{HEAD}[tasks.load]\ncomponent = \"l.wasm\"\ninputs = {{ rows = \"clean.rows\" }}\n\
             [tasks.extract]\ncomponent = \"e.wasm\"\noutputs = [\"rows\"]\n\
             [tasks.notify]\ncomponent = \"n.wasm\"\n\
             [tasks.clean]\ncomponent = \"c.wasm\"\ninputs = {{ rows = \"extract.rows\" }}\noutputs = [\"rows\"]\n"
        ));
        let order: Vec<String> = p
            .map(|p| {
                p.tasks
                    .iter()
                    .map(|t| t.task.name.value.to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(order, ["extract", "notify", "clean", "load"]);
    }

    #[test]
    fn names_the_cycle() {
        let errors = plan(&format!(
            "{HEAD}[tasks.a]\ncomponent = \"a.wasm\"\nneeds = [\"c\"]\n[tasks.b]\ncomponent = \"b.wasm\"\nneeds = [\"a\"]\n\
             [tasks.c]\ncomponent = \"c.wasm\"\nneeds = [\"b\"]\n[tasks.d]\ncomponent = \"d.wasm\"\n"
        ))
        .err()
        .unwrap_or_default();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let message = errors.first().cloned().unwrap_or_default();
        assert!(message.starts_with("the tasks form a cycle: "), "{message}");
        for name in ["a", "b", "c"] {
            assert!(
                message.contains(&format!("`{name}`")) || message.contains(name),
                "{message}"
            );
        }
        assert!(!message.contains('d'), "{message}");
    }

    #[test]
    fn unknown_tasks_and_outputs_get_suggestions() {
        let errors = plan(&format!(
            "{HEAD}[tasks.extract]\ncomponent = \"e.wasm\"\noutputs = [\"orders\"]\n\
             [tasks.load]\ncomponent = \"l.wasm\"\nneeds = [\"extarct\"]\ninputs = {{ o = \"extract.order\" }}\n\
             [tasks.undo]\ncomponent = \"u.wasm\"\nwhen = \"failure\"\n"
        ))
        .err()
        .unwrap_or_default();
        assert_eq!(
            errors,
            [
                "there is no task `extarct`",
                "task `extract` has no output `order`",
                "task `undo` runs on failure, but has no upstream task",
            ]
        );
    }

    #[test]
    fn a_fan_out_over_an_output_expands_like_a_list_within_a_runs_limits() {
        let p = plan(&format!(
            "{HEAD}[tasks.list]\ncomponent = \"x.wasm\"\noutputs = [\"items\"]\n\
             [tasks.fetch]\ncomponent = \"x.wasm\"\nfor_each = \"list.items\"\nenv = {{ AT = \"${{each}}\" }}\noutputs = [\"page\"]\n\
             [tasks.merge]\ncomponent = \"x.wasm\"\ninputs = {{ pages = \"fetch[*].page\" }}\n"
        ))
        .unwrap()
        .with_params(&BTreeMap::new());
        let fetch = 1;
        assert!(
            p.tasks[fetch].fans_out_at_run_time().is_some(),
            "not expanded by the plan"
        );
        let expanded = p.expand_output(fetch, &["eu".into(), "us".into()]).unwrap();
        let names: Vec<String> = expanded
            .tasks
            .iter()
            .map(|t| t.task.name.value.to_string())
            .collect();
        assert_eq!(names, ["list", "fetch[eu]", "fetch[us]", "merge"]);
        assert_eq!(
            expanded.tasks[2].task.env.get("AT").map(String::as_str),
            Some("us")
        );
        assert_eq!(expanded.tasks[2].fan.as_ref().map(|f| f.index), Some(1));
        let inputs: Vec<String> = expanded.tasks[3]
            .upstream
            .iter()
            .map(|u| match &u.why {
                Dependency::Data { input, .. } => format!("{input}<-{}", u.from),
                Dependency::Needs => format!("needs {}", u.from),
            })
            .collect();
        assert_eq!(inputs, ["pages[eu]<-1", "pages[us]<-2"]);
        // A run's limits hold at run time too.
        let most: Vec<String> = (0..MAX_EXPANDED_TASKS - 2).map(|i| i.to_string()).collect();
        assert!(p.expand_output(fetch, &most).is_ok());
        let over: Vec<String> = (0..MAX_EXPANDED_TASKS - 1).map(|i| i.to_string()).collect();
        let why = p.expand_output(fetch, &over).unwrap_err();
        assert!(
            why.contains("would have 100001 tasks; a run has at most 100000"),
            "{why}"
        );
        assert!(
            p.expand_output(0, &most).is_err(),
            "`list` fans out over nothing"
        );
    }

    #[test]
    fn fan_outs_that_multiply_past_a_runs_limits_are_refused_before_expanding() {
        let elements: Vec<String> = (0..10_000).map(|i| format!("\"e{i}\"")).collect();
        let param = format!("[params]\nall = '[{}]'\n", elements.join(","));
        let fan = |name: &str, extra: &str| {
            format!(
                "[tasks.{name}]\ncomponent = \"x.wasm\"\nfor_each = \"${{params.all}}\"\n{extra}"
            )
        };
        // Eleven fan-outs of 10,000: 110,000 tasks.
        let many: String = (0..11).map(|i| fan(&format!("t{i}"), "")).collect();
        let p = plan(&format!("{HEAD}{param}{many}")).unwrap();
        let why = p.param_values(&[]).unwrap_err();
        assert!(why.contains("expand to 110000 tasks"), "{why}");
        // A fan-out after a fan-out: 10,000 x 10,000 dependencies.
        let chained = format!("{}{}", fan("a", ""), fan("b", "needs = [\"a\"]\n"));
        let p = plan(&format!("{HEAD}{param}{chained}")).unwrap();
        let why = p.param_values(&[]).unwrap_err();
        assert!(why.contains("expand to 100000000 dependencies"), "{why}");
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "tests fail loudly by design")]
mod properties {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// Whether the graph (task `a` needs task `b` for each `(a, b)`) has a cycle.
    fn has_cycle(n: usize, edges: &BTreeSet<(usize, usize)>) -> bool {
        // Repeatedly remove tasks that need nothing still present.
        let mut present: BTreeSet<usize> = (0..n).collect();
        loop {
            let free: Vec<usize> = present
                .iter()
                .copied()
                .filter(|&a| !edges.iter().any(|&(x, b)| x == a && present.contains(&b)))
                .collect();
            if free.is_empty() {
                return !present.is_empty();
            }
            for a in free {
                present.remove(&a);
            }
        }
    }

    fn manifest(n: usize, edges: &BTreeSet<(usize, usize)>) -> String {
        let mut text = String::from("[workflow]\nname = \"random\"\n");
        for a in 0..n {
            let needs: Vec<String> = edges
                .iter()
                .filter(|e| e.0 == a)
                .map(|e| format!("\"t{}\"", e.1))
                .collect();
            text.push_str(&format!(
                "[tasks.t{a}]\ncomponent = \"t.wasm\"\nneeds = [{}]\n",
                needs.join(", ")
            ));
        }
        text
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_graphs_are_ordered_or_a_real_cycle_is_named(
            n in 1usize..24,
            raw in proptest::collection::vec((0usize..24, 0usize..24), 0..60),
        ) {
            let edges: BTreeSet<(usize, usize)> = raw.into_iter().filter(|&(a, b)| a < n && b < n && a != b).collect();
            let parsed = crate::manifest::parse(&manifest(n, &edges));
            prop_assert!(parsed.is_ok(), "{:?}", parsed.err());
            let Ok(parsed) = parsed else { return Ok(()) };
            match Plan::new(&parsed) {
                Ok(plan) => {
                    prop_assert!(!has_cycle(n, &edges));
                    let position: HashMap<String, usize> =
                        plan.tasks.iter().enumerate().map(|(i, t)| (t.task.name.value.to_string(), i)).collect();
                    prop_assert_eq!(position.len(), n);
                    for &(a, b) in &edges {
                        prop_assert!(position[&format!("t{b}")] < position[&format!("t{a}")], "t{} must come before t{}", b, a);
                    }
                }
                Err(d) => {
                    prop_assert!(has_cycle(n, &edges));
                    prop_assert_eq!(d.len(), 1);
                    let message = &d.0[0].message;
                    let path = message.strip_prefix("the tasks form a cycle: ");
                    prop_assert!(path.is_some(), "{}", message);
                    let names: Vec<usize> = path
                        .unwrap_or_default()
                        .split(" → ")
                        .map(|t| t.trim_start_matches('t').parse().unwrap_or(usize::MAX))
                        .collect();
                    prop_assert!(names.len() >= 3 && names.first() == names.last(), "{}", message);
                    // Each step `x → y` reads "y waits for x": y needs x.
                    for pair in names.windows(2) {
                        prop_assert!(edges.contains(&(pair[1], pair[0])), "no edge behind {} in {}", pair[0], message);
                    }
                }
            }
        }
    }
}
