//! The runtime gate: host calls re-authorized with Cedar while a task runs.
//!
//! Built from a [`Preflight`] (same entities, same labels), for one task and
//! one run. Each check is a fresh Cedar request; every decision is kept for
//! the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use cedar_policy::Entities;

use super::preflight::{Ask, authorize, entity_json, uid};
use super::{Decision, Policies, Preflight};
use crate::plan::{Dependency, Plan, PlannedTask};
use crate::sandbox::{Gate, GateRequest, HttpTarget};

/// Authorizes one task's host calls during one run.
pub struct RuntimeGate {
    policies: Arc<Policies>,
    entities: Arc<Entities>,
    task: String,
    user: String,
    /// Input name → the `task.output` data feeding it.
    inputs: HashMap<String, String>,
    decisions: Mutex<Vec<Decision>>,
    recorder: Option<Recorder>,
    /// The attempt's `traceparent`, when it is traced.
    trace: Option<String>,
}

/// Called with each runtime decision before it takes effect (the audit
/// log's hook); an error denies the request.
pub type Recorder = Arc<dyn Fn(&Decision) -> Result<(), String> + Send + Sync>;

impl std::fmt::Debug for RuntimeGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeGate")
            .field("task", &self.task)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Preflight {
    /// The runtime gate for task `task` of `plan`, in a run started by `user`.
    #[must_use]
    pub fn gate(
        &self,
        plan: &Plan,
        policies: Arc<Policies>,
        task: &str,
        user: &str,
    ) -> RuntimeGate {
        match plan
            .tasks
            .iter()
            .find(|t| t.task.name.value.as_str() == task)
        {
            Some(planned) => self.gate_of(plan, planned, policies, user),
            None => self.gate_with(policies, task, user, HashMap::new()),
        }
    }

    /// [`Preflight::gate`] for `planned`, a task of `plan` (no search by
    /// name: what the runner uses for every attempt).
    #[must_use]
    pub fn gate_of(
        &self,
        plan: &Plan,
        planned: &PlannedTask,
        policies: Arc<Policies>,
        user: &str,
    ) -> RuntimeGate {
        let mut inputs = HashMap::new();
        for up in &planned.upstream {
            if let (Dependency::Data { input, output }, Some(from)) =
                (&up.why, plan.tasks.get(up.from))
            {
                inputs.insert(
                    input.to_string(),
                    format!("{}.{output}", from.task.name.value),
                );
            }
        }
        for input in &planned.from_trigger {
            inputs.insert(input.to_string(), format!("{}.body", crate::plan::TRIGGER));
        }
        self.gate_with(policies, planned.task.name.value.as_str(), user, inputs)
    }

    fn gate_with(
        &self,
        policies: Arc<Policies>,
        task: &str,
        user: &str,
        inputs: HashMap<String, String>,
    ) -> RuntimeGate {
        RuntimeGate {
            policies,
            entities: Arc::clone(&self.entities),
            task: task.to_owned(),
            user: user.to_owned(),
            inputs,
            decisions: Mutex::new(Vec::new()),
            recorder: None,
            trace: None,
        }
    }
}

impl RuntimeGate {
    /// Hand every decision to `recorder` before it takes effect.
    #[must_use]
    pub fn with_recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Offer `traceparent` (the attempt's trace context) to the requests
    /// policy allows it for (`propagate_trace`).
    #[must_use]
    pub fn with_trace(mut self, traceparent: Option<String>) -> Self {
        self.trace = traceparent;
        self
    }

    /// Every decision made so far, in order.
    #[must_use]
    pub fn decisions(&self) -> Vec<Decision> {
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn ask(&self, request: &GateRequest) -> Result<Decision, String> {
        let task = uid("Task", &self.task).map_err(|e| e.to_string())?;
        let run_by = entity_json(&uid("User", &self.user).map_err(|e| e.to_string())?);
        let ask = match request {
            GateRequest::ReadSecret(name) => Ask {
                task: &self.task,
                action: "read_secret",
                what: format!("secret `{name}`, at run time"),
                principal: task,
                resource: uid("Secret", name).map_err(|e| e.to_string())?,
                context: serde_json::json!({ "run_by": run_by }),
            },
            GateRequest::Connect(target) => Ask {
                task: &self.task,
                action: "connect",
                what: format!("request {target}"),
                principal: task,
                resource: uid("Host", &target.endpoint.to_string()).map_err(|e| e.to_string())?,
                context: request_context(target, run_by),
            },
            GateRequest::InjectSecret { name, target } => Ask {
                task: &self.task,
                action: "inject_secret",
                what: format!("secret `{name}` into request {target}"),
                principal: task,
                resource: uid("Secret", name).map_err(|e| e.to_string())?,
                context: request_context(target, run_by),
            },
            GateRequest::PropagateTrace(target) => Ask {
                task: &self.task,
                action: "propagate_trace",
                what: format!("the trace context into request {target}"),
                principal: task,
                resource: uid("Host", &target.endpoint.to_string()).map_err(|e| e.to_string())?,
                context: request_context(target, run_by),
            },
            GateRequest::ReadInput(name) => {
                let data = self
                    .inputs
                    .get(name)
                    .ok_or_else(|| format!("input `{name}` is not in the plan"))?;
                Ask {
                    task: &self.task,
                    action: "flow",
                    what: format!("data {data} into input `{name}`, at run time"),
                    principal: uid("Data", data).map_err(|e| e.to_string())?,
                    resource: task,
                    context: serde_json::json!({ "input": name }),
                }
            }
        };
        authorize(&self.policies, &self.entities, ask).map_err(|e| e.to_string())
    }
}

/// The `Request` context of `connect`, `inject_secret` and
/// `propagate_trace`.
fn request_context(target: &HttpTarget, run_by: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "method": target.method,
        "scheme": target.scheme,
        "host": target.endpoint.host,
        "port": target.endpoint.port,
        "endpoint": target.endpoint.to_string(),
        "path": target.path,
        "query": target.query,
        "run_by": run_by,
    })
}

impl Gate for RuntimeGate {
    fn check(&self, request: &GateRequest) -> Result<(), String> {
        let decision = self.ask(request)?;
        if let Some(record) = &self.recorder {
            record(&decision).map_err(|e| format!("cannot record the decision: {e}"))?;
        }
        let verdict = if decision.allowed {
            Ok(())
        } else if !decision.errors.is_empty() {
            Err(format!("evaluation error: {}", decision.errors.join("; ")))
        } else if decision.policies.is_empty() {
            Err("no policy permits it".to_owned())
        } else {
            Err(format!("forbidden by {}", decision.policies.join(", ")))
        };
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(decision);
        verdict
    }

    fn trace_context(&self) -> Option<String> {
        self.trace.clone()
    }
}
