//! The service's decisions: who may trigger, read or cancel what.
//!
//! Every request `cairn serve` answers is one Cedar action (`trigger`,
//! `read_workflow`, `list_runs`, `read_run`, `read_audit`, `cancel_run`,
//! `pause_schedule`, `resume_schedule`)
//! asked of the policies of the workflow it is about, with the principal
//! of the API token that made it. The entities are the people of those
//! policies and the workflow; a run is known by its id, with its workflow
//! and who started it in the context, so a decision needs nothing that
//! changes from request to request and re-evaluates offline from the
//! recorded set. Default deny; an evaluation error denies.

use std::collections::HashSet;
use std::sync::Arc;

use cedar_policy::{Entities, Entity};

use super::preflight::{Ask, authorize, entity_json, uid};
use super::{Decision, Policies, PolicyError};
use crate::audit::record::EntitiesJson;

/// What a request asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked<'a> {
    /// Start a run of the workflow, `via` an API call, a schedule or a
    /// webhook named `trigger` (`""` for an API call).
    Trigger { via: &'a str, trigger: &'a str },
    /// See the workflow.
    ReadWorkflow,
    /// List its runs.
    ListRuns,
    /// Read run `run` (started by `run_by`).
    ReadRun { run: &'a str, run_by: &'a str },
    /// Read run `run`'s audit records.
    ReadAudit { run: &'a str, run_by: &'a str },
    /// Cancel run `run`.
    CancelRun { run: &'a str, run_by: &'a str },
    /// Download run `run`'s output `output` of task `task`, which
    /// carries `labels`.
    ReadOutput {
        run: &'a str,
        run_by: &'a str,
        task: &'a str,
        output: &'a str,
        labels: &'a [String],
    },
    /// Pause the workflow's schedule `schedule`.
    PauseSchedule { schedule: &'a str },
    /// Resume it.
    ResumeSchedule { schedule: &'a str },
}

impl Asked<'_> {
    /// The Cedar action.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            Self::Trigger { .. } => "trigger",
            Self::ReadWorkflow => "read_workflow",
            Self::ListRuns => "list_runs",
            Self::ReadRun { .. } => "read_run",
            Self::ReadAudit { .. } => "read_audit",
            Self::CancelRun { .. } => "cancel_run",
            Self::ReadOutput { .. } => "read_output",
            Self::PauseSchedule { .. } => "pause_schedule",
            Self::ResumeSchedule { .. } => "resume_schedule",
        }
    }
}

/// A workflow's policies and the entities its service decisions are made on.
#[derive(Debug)]
pub struct ServicePolicies {
    policies: Arc<Policies>,
    entities: Entities,
    workflow: String,
}

impl ServicePolicies {
    /// The service decisions of workflow `workflow` under `policies`.
    ///
    /// # Errors
    ///
    /// Only if the entities do not fit Cairn's schema (a bug).
    pub fn new(policies: Arc<Policies>, workflow: &str) -> Result<Self, PolicyError> {
        let me = Entity::new_no_attrs(uid("Workflow", workflow)?, HashSet::new());
        let people = policies.people.iter().cloned();
        let entities =
            Entities::from_entities(people.chain(std::iter::once(me)), Some(&policies.schema))
                .map_err(|e| PolicyError::Schema(e.to_string()))?;
        Ok(Self {
            policies,
            entities,
            workflow: workflow.to_owned(),
        })
    }

    /// The policies.
    #[must_use]
    pub fn policies(&self) -> &Arc<Policies> {
        &self.policies
    }

    /// The entities, in Cedar's JSON format, for the audit log.
    ///
    /// # Errors
    ///
    /// Only if Cedar cannot write its own entities (a bug).
    pub fn entities_json(&self) -> Result<EntitiesJson, PolicyError> {
        super::preflight::entities_json(&self.entities)
    }

    /// Decide whether `user` may do `asked`.
    ///
    /// # Errors
    ///
    /// Only if the request does not fit Cairn's schema (a bug), or `user`
    /// is not a name Cedar can hold; never for a denial.
    pub fn decide(&self, user: &str, asked: Asked<'_>) -> Result<Decision, PolicyError> {
        let principal = uid("User", user)?;
        let workflow = self.workflow.as_str();
        let on_run = |run: &str, run_by: &str| -> Result<_, PolicyError> {
            Ok((
                uid("Run", run)?,
                format!("run {run}"),
                serde_json::json!({
                    "workflow": workflow,
                    "run_by": entity_json(&uid("User", run_by)?),
                }),
            ))
        };
        let (resource, what, context) = match asked {
            Asked::Trigger { via, trigger } => (
                uid("Workflow", workflow)?,
                format!("start a run of {workflow} ({via})"),
                serde_json::json!({ "via": via, "trigger": trigger }),
            ),
            Asked::ReadWorkflow | Asked::ListRuns => (
                uid("Workflow", workflow)?,
                format!("workflow {workflow}"),
                serde_json::json!({}),
            ),
            Asked::ReadRun { run, run_by }
            | Asked::ReadAudit { run, run_by }
            | Asked::CancelRun { run, run_by } => on_run(run, run_by)?,
            Asked::ReadOutput {
                run,
                run_by,
                task,
                output,
                labels,
            } => (
                uid("Run", run)?,
                format!("output {output} of task {task} of run {run}"),
                serde_json::json!({
                    "workflow": workflow,
                    "run_by": entity_json(&uid("User", run_by)?),
                    "task": task,
                    "output": output,
                    "labels": labels,
                }),
            ),
            Asked::PauseSchedule { schedule } | Asked::ResumeSchedule { schedule } => (
                uid("Workflow", workflow)?,
                format!("schedule {schedule} of {workflow}"),
                serde_json::json!({ "schedule": schedule }),
            ),
        };
        authorize(
            &self.policies,
            &self.entities,
            Ask {
                task: "",
                action: asked.action(),
                what,
                principal,
                resource,
                context,
            },
        )
    }

    /// Decide whether the service may send the workflow's notification
    /// `notification` about an event `event` to `endpoint` (the action
    /// `notify`, the workflow its principal).
    ///
    /// # Errors
    ///
    /// Only if the request does not fit Cairn's schema (a bug).
    pub fn decide_notify(
        &self,
        notification: &str,
        event: &str,
        endpoint: &crate::observe::notify::Endpoint,
    ) -> Result<Decision, PolicyError> {
        authorize(
            &self.policies,
            &self.entities,
            Ask {
                task: "",
                action: "notify",
                what: format!("notification {notification} to {}", endpoint.host_port()),
                principal: uid("Workflow", &self.workflow)?,
                resource: uid("Host", &endpoint.host_port())?,
                context: serde_json::json!({
                    "notification": notification,
                    "event": event,
                    "scheme": endpoint.scheme,
                    "path": endpoint.path,
                }),
            },
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn set(policy: &str) -> ServicePolicies {
        let people = r#"[
            {"uid": {"type": "Cairn::User", "id": "alice"}, "attrs": {}, "parents": [{"type": "Cairn::Group", "id": "ops"}]},
            {"uid": {"type": "Cairn::User", "id": "bob"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Cairn::Group", "id": "ops"}, "attrs": {}, "parents": []}
        ]"#;
        let policies = Policies::from_sources(vec![
            (PathBuf::from("p.cedar"), policy.to_owned()),
            (PathBuf::from("people.entities.json"), people.to_owned()),
        ])
        .unwrap();
        ServicePolicies::new(Arc::new(policies), "etl").unwrap()
    }

    #[test]
    fn the_service_denies_what_no_policy_permits() {
        let s = set(r#"permit (principal, action == Cairn::Action::"run", resource);"#);
        let asked = Asked::Trigger {
            via: "api",
            trigger: "",
        };
        assert!(!s.decide("alice", asked).unwrap().allowed);
    }

    #[test]
    fn groups_and_the_runs_starter_decide_service_requests() {
        let s = set(r#"
            @id("ops-trigger")
            permit (principal in Cairn::Group::"ops", action == Cairn::Action::"trigger", resource == Cairn::Workflow::"etl")
            when { context.via == "api" };
            @id("own-runs")
            permit (principal, action in [Cairn::Action::"read_run", Cairn::Action::"cancel_run"], resource)
            when { context.run_by == principal && context.workflow == "etl" };
        "#);
        let api = Asked::Trigger {
            via: "api",
            trigger: "",
        };
        let yes = s.decide("alice", api).unwrap();
        assert!(yes.allowed);
        assert_eq!(yes.policies, vec!["ops-trigger".to_owned()]);
        assert!(!s.decide("bob", api).unwrap().allowed);
        let hook = Asked::Trigger {
            via: "webhook",
            trigger: "push",
        };
        assert!(!s.decide("alice", hook).unwrap().allowed);
        let own = Asked::ReadRun {
            run: "r1",
            run_by: "bob",
        };
        assert!(s.decide("bob", own).unwrap().allowed);
        assert!(!s.decide("alice", own).unwrap().allowed);
        let cancel = Asked::CancelRun {
            run: "r1",
            run_by: "bob",
        };
        assert!(s.decide("bob", cancel).unwrap().allowed);
        let audit = Asked::ReadAudit {
            run: "r1",
            run_by: "bob",
        };
        assert!(!s.decide("bob", audit).unwrap().allowed);
    }

    #[test]
    fn a_recorded_service_decision_decides_the_same_again() {
        let s = set(
            r#"permit (principal == Cairn::User::"alice", action == Cairn::Action::"list_runs", resource);"#,
        );
        let d = s.decide("alice", Asked::ListRuns).unwrap();
        assert!(d.allowed);
        let entities = s
            .policies()
            .entities_from_json(s.entities_json().unwrap().value().unwrap())
            .unwrap();
        let principal = serde_json::json!({"type": "Cairn::User", "id": "alice"});
        let resource = serde_json::json!({"type": "Cairn::Workflow", "id": "etl"});
        let again = super::super::reevaluate(
            s.policies(),
            &entities,
            "list_runs",
            &principal,
            &resource,
            &d.context,
        )
        .unwrap();
        assert_eq!(again.allowed, d.allowed);
        assert_eq!(again.policies, d.policies);
    }
}
