//! Approval gates in a run: what an approval covers, and how an open gate
//! stands given the approvals recorded for it.
//!
//! A gate opens when everything upstream of it is settled. What it covers
//! is fixed then: the manifest, the policy set, the run's parameters, and
//! for each task it lets through that task's component digest and the
//! digest of every input it will get (the plan makes sure those inputs
//! are known when the gate opens). `bound` is the SHA-256 of that, as
//! recorded in `gate-opened`; an approval counts only for the `bound` it
//! names, so a resumed run whose gate would cover anything else opens it
//! again and waits for new approvals. The decisions themselves are made
//! by `cairn approve` / `cairn reject` (or the service's API) and recorded
//! under the log's lock while the run waits; the driver only reads them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::audit::record::{Artifact, rfc3339};
use crate::audit::verify::sha256_tag;
use crate::manifest::{Approval, OnTimeout};
use crate::plan::Dependency;
use crate::resume::GateHistory;

use super::{Ended, Shared, policy_set_of};

/// The digest approvals of a gate covering `covers` are bound to.
#[must_use]
pub fn bound_of(covers: &serde_json::Value) -> String {
    sha256_tag(&serde_json::to_vec(covers).unwrap_or_default())
}

/// What gate `index` covers, with the outputs `produced` so far.
pub(super) fn covers(
    shared: &Shared,
    index: usize,
    produced: &[HashMap<String, (Artifact, PathBuf)>],
) -> serde_json::Value {
    let plan = &shared.workflow.plan;
    let setup = &shared.setup;
    let mut tasks = serde_json::Map::new();
    for gated in plan.gated_by(index) {
        let Some(planned) = plan.tasks.get(gated) else {
            continue;
        };
        let name = planned.task.name.value.as_str();
        let mut inputs = serde_json::Map::new();
        for up in &planned.upstream {
            let Dependency::Data { input, output } = &up.why else {
                continue;
            };
            if let Some((artifact, _)) = produced.get(up.from).and_then(|m| m.get(output.as_str()))
            {
                inputs.insert(input.to_string(), artifact.sha256.clone().into());
            }
        }
        let component = setup
            .programs
            .get(name)
            .map(|p| format!("sha256:{}", p.digest()));
        let mut covered = serde_json::json!({ "component": component, "inputs": inputs });
        // A fan-out over an output: approved for that output's elements.
        if let Some((from, output)) = planned.fans_out_at_run_time()
            && let Some(up) = planned.upstream.iter().find(|u| {
                plan.tasks
                    .get(u.from)
                    .is_some_and(|t| t.task.name.value == *from)
            })
            && let Some((artifact, _)) = produced.get(up.from).and_then(|m| m.get(output.as_str()))
            && let Some(fields) = covered.as_object_mut()
        {
            fields.insert("for_each".to_owned(), artifact.sha256.clone().into());
        }
        tasks.insert(name.to_owned(), covered);
    }
    serde_json::json!({
        "manifest": sha256_tag(shared.workflow.source.as_bytes()),
        "policy_set": policy_set_of(&setup.policies, &shared.workflow.dir),
        "parameters": setup.params,
        "tasks": tasks,
    })
}

/// How an open gate stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Enough distinct people approved (these).
    Approved(Vec<String>),
    /// This person rejected it.
    Rejected(String),
    /// Its deadline passed with no decision: it ends as this.
    TimedOut(Ended),
    /// Still open, with these approvals so far.
    Waiting(Vec<String>),
}

impl Standing {
    /// The gate's `gate-closed` result, or `None` while it waits.
    #[must_use]
    pub fn result(&self) -> Option<&'static str> {
        match self {
            Self::Approved(_) => Some("approved"),
            Self::Rejected(_) => Some("rejected"),
            Self::TimedOut(_) => Some("timed-out"),
            Self::Waiting(_) => None,
        }
    }
}

/// Where a gate with `approval` stands at `now`, bound to `bound`, after
/// `history` (its deadline is `deadline`).
#[must_use]
pub fn standing(
    approval: &Approval,
    history: Option<&GateHistory>,
    bound: &str,
    deadline: Option<&str>,
    now: SystemTime,
) -> Standing {
    let (approvers, rejected) = history.map(|h| h.standing(bound)).unwrap_or_default();
    if let Some(who) = rejected {
        return Standing::Rejected(who);
    }
    if approvers.len() >= usize::try_from(approval.required).unwrap_or(usize::MAX) {
        return Standing::Approved(approvers);
    }
    if deadline.is_some_and(|d| passed(d, now)) {
        return Standing::TimedOut(match approval.on_timeout {
            OnTimeout::Fail => Ended::Failed,
            OnTimeout::Skip => Ended::Skipped,
        });
    }
    Standing::Waiting(approvers)
}

/// The deadline of a gate with `approval` opening at `now`.
#[must_use]
pub fn deadline(approval: &Approval, now: SystemTime) -> Option<String> {
    approval
        .timeout
        .as_ref()
        .and_then(|t| now.checked_add(t.0))
        .map(rfc3339)
}

/// Whether the open gate `gate` would close if its run went on at `now`
/// (enough approvals of its bound, a rejection, or its deadline passed),
/// and else when it times out, if it does.
#[must_use]
pub fn due(gate: &GateHistory, now: SystemTime) -> (bool, Option<SystemTime>) {
    let approval = Approval {
        required: gate.required,
        timeout: None,
        on_timeout: OnTimeout::Fail,
    };
    let standing = standing(
        &approval,
        Some(gate),
        &gate.bound,
        gate.deadline.as_deref(),
        now,
    );
    let at = gate
        .deadline
        .as_deref()
        .and_then(|d| d.parse::<jiff::Timestamp>().ok())
        .map(SystemTime::from);
    (standing.result().is_some(), at)
}

/// Whether the RFC 3339 time `at` is at or before `now`; a time that does
/// not parse has passed (a gate never waits on a deadline it cannot read).
fn passed(at: &str, now: SystemTime) -> bool {
    let Ok(at) = at.parse::<jiff::Timestamp>() else {
        return true;
    };
    let now = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::MAX);
    at <= now
}

/// `approve` or `reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let the gated tasks run.
    Approve,
    /// End the gate: it fails, and what needs it does not run.
    Reject,
}

impl Verdict {
    /// `approve` or `reject`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Reject => "reject",
        }
    }
}

/// Someone's decision on a gate, to decide and record.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// The run.
    pub run: &'a str,
    /// The gate task.
    pub gate: &'a str,
    /// Who decides.
    pub approver: &'a str,
    /// What they decide.
    pub verdict: Verdict,
    /// Why, in their words (only its digest is recorded).
    pub comment: Option<&'a str>,
    /// The `bound` they saw; the open gate's when not given.
    pub bound: Option<&'a str>,
}

/// Why an approval cannot even be recorded (nothing is written).
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// The log has no such run.
    #[error("the audit log has no run `{0}`; `cairn runs list` shows the runs")]
    NoRun(String),
    /// The task is no gate of the run.
    #[error("`{gate}` is not an approval gate of run {run}{}", gates_hint(.gates))]
    NotAGate {
        /// The run.
        run: String,
        /// The task named.
        gate: String,
        /// The run's gates.
        gates: Vec<String>,
        /// Whether policy would let the approver decide that task (else a
        /// service answers as to any denial, revealing nothing).
        allowed: bool,
    },
    /// The log cannot be read back.
    #[error(transparent)]
    History(#[from] crate::resume::HistoryError),
}

fn gates_hint(gates: &[String]) -> String {
    if gates.is_empty() {
        " (it has none)".to_owned()
    } else {
        format!("; its gates: {}", gates.join(", "))
    }
}

/// What deciding an [`Ask`] came to: the `approval` record to append, and
/// how the gate stands with it.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The record.
    pub event: crate::audit::record::Event,
    /// Why it does not count, if it does not.
    pub refused: Option<String>,
    /// Whether it was refused for who asked (policy, or the starter), not
    /// for how the gate stands.
    pub forbidden: bool,
    /// Whether policy allowed the request.
    pub allowed: bool,
    /// The policies that decided.
    pub policies: Vec<String>,
    /// Approvals needed.
    pub required: u32,
    /// Distinct people whose approval counts, this one included.
    pub approvals: Vec<String>,
    /// The gate's bound.
    pub bound: String,
}

/// Decide `ask` against the run's records in the log `bytes`: with the
/// policy set the run recorded, whether the approver may decide, and
/// whether the decision counts (the gate is open, the approver is not the
/// run's starter and has not decided so before, and it names the gate's
/// bound). Pure: the caller appends [`Decided::event`] under the log's
/// lock it read `bytes` under.
///
/// # Errors
///
/// No such run, or a log that cannot be read back.
pub fn decide(bytes: &[u8], ask: &Ask<'_>) -> Result<Decided, AskError> {
    use crate::audit::record::{Event, Record};
    // Only the run's own records matter: found without decoding the rest,
    // so a decision costs the same in a log of ten thousand runs.
    let mine = crate::audit::log::lines_of_run(bytes, ask.run);
    let bytes = mine.as_slice();
    let history = crate::resume::History::read(bytes, ask.run, &|_, _, _, _| false)?
        .ok_or_else(|| AskError::NoRun(ask.run.to_owned()))?;
    // The run's latest policy set, and how its gate opened.
    let mut set = None;
    let mut opened = None;
    let mut workflow = String::new();
    let mut source = String::new();
    let mut params = std::collections::BTreeMap::new();
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else {
            break;
        };
        let Ok((record, _)) = Record::decode(line) else {
            continue;
        };
        if record.run != ask.run {
            continue;
        }
        match record.event {
            Event::RunStarted {
                workflow: w,
                source: s,
                parameters,
                ..
            } => {
                workflow = w;
                source = s;
                params = parameters;
            }
            Event::RunResumed {
                source: Some(s), ..
            } => source = s,
            Event::PolicySet {
                files, entities, ..
            } => set = Some((files, entities)),
            Event::GateOpened { task, required, .. } if task == ask.gate => {
                opened = Some(required);
            }
            _ => {}
        }
    }
    let gate = history.open_gate(ask.gate).filter(|_| history.resumable());
    let bound = ask
        .bound
        .map(str::to_owned)
        .or_else(|| gate.map(|g| g.bound.clone()))
        .unwrap_or_default();
    let principal = serde_json::json!({ "type": "Cairn::User", "id": ask.approver });
    let resource = serde_json::json!({ "type": "Cairn::Task", "id": ask.gate });
    let context = serde_json::json!({
        "starter": { "__entity": { "type": "Cairn::User", "id": history.user } },
        "workflow": workflow,
        "bound": bound,
        "verdict": ask.verdict.as_str(),
    });
    let decision = set
        .ok_or_else(|| "the run recorded no policy set".to_owned())
        .and_then(|(files, entities)| crate::audit::verify::load_set(&files, &entities))
        .and_then(|(policies, entities)| {
            crate::policy::reevaluate(
                &policies, &entities, "approve", &principal, &resource, &context,
            )
            .map_err(|e| e.to_string())
        });
    let (allowed, policies, errors) = match decision {
        Ok(d) => (d.allowed, d.policies, d.errors),
        Err(e) => (false, Vec::new(), vec![e]),
    };
    // The gates of the manifest the run goes by.
    let required = crate::audit::verify::gates_of(&source, &params)
        .unwrap_or_default()
        .required;
    if !required.contains_key(ask.gate) {
        let mut gates: Vec<String> = required.into_keys().collect();
        gates.sort();
        return Err(AskError::NotAGate {
            run: ask.run.to_owned(),
            gate: ask.gate.to_owned(),
            gates,
            allowed,
        });
    }
    let (mut approvals, rejected) = gate.map(|g| g.standing(&bound)).unwrap_or_default();
    let refused = match gate {
        None if history.gates.contains_key(ask.gate) || opened.is_some() => Some(format!(
            "run {} is not waiting at `{}`: the gate is closed or the run is over",
            ask.run, ask.gate
        )),
        None => Some(format!(
            "run {} is not waiting at `{}`: no such gate has opened in it",
            ask.run, ask.gate
        )),
        Some(g) if g.bound != bound => Some(format!(
            "this decision is for {bound}, but the gate now binds {}: what it covers changed; look again (`cairn runs show {}`)",
            g.bound, ask.run
        )),
        Some(_) if ask.approver == history.user => Some(format!(
            "{} started run {} and cannot decide its approvals",
            ask.approver, ask.run
        )),
        Some(_) if !allowed => Some(format!(
            "policy does not allow {} to {} `{}`{}",
            ask.approver,
            ask.verdict.as_str(),
            ask.gate,
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", errors.join("; "))
            }
        )),
        Some(_) if rejected.is_some() => Some(format!(
            "`{}` was already rejected by {}",
            ask.gate,
            rejected.unwrap_or_default()
        )),
        Some(g)
            if g.counted.iter().any(|(who, v, b)| {
                who == ask.approver && v == ask.verdict.as_str() && *b == bound
            }) =>
        {
            Some(format!(
                "{} already decided `{}` ({}); one person counts once",
                ask.approver,
                ask.gate,
                ask.verdict.as_str()
            ))
        }
        Some(_) => None,
    };
    let forbidden =
        gate.is_some_and(|g| g.bound == bound) && (ask.approver == history.user || !allowed);
    if refused.is_none() && ask.verdict == Verdict::Approve {
        approvals.push(ask.approver.to_owned());
    }
    let event = Event::Approval {
        task: ask.gate.to_owned(),
        verdict: ask.verdict.as_str().to_owned(),
        approver: ask.approver.to_owned(),
        comment_sha256: ask.comment.map(|c| sha256_tag(c.as_bytes())),
        bound: bound.clone(),
        principal,
        resource,
        context,
        decision: if allowed { "allow" } else { "deny" }.to_owned(),
        policies: policies.clone(),
        errors,
        counted: refused.is_none(),
        refused: refused.clone(),
    };
    Ok(Decided {
        event,
        refused,
        forbidden,
        allowed,
        policies,
        required: opened.unwrap_or(0),
        approvals,
        bound,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use crate::units::HumanDuration;
    use std::time::Duration;

    fn history(bound: &str, counted: &[(&str, &str, &str)]) -> GateHistory {
        GateHistory {
            bound: bound.to_owned(),
            counted: counted
                .iter()
                .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
                .collect(),
            ..GateHistory::default()
        }
    }

    #[test]
    fn distinct_approvals_of_the_same_bound_count_and_a_rejection_ends_it() {
        let two = Approval {
            required: 2,
            timeout: Some(HumanDuration(Duration::from_secs(60))),
            on_timeout: OnTimeout::Skip,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let later = deadline(&two, now).unwrap();
        let h = history(
            "b",
            &[
                ("bob", "approve", "b"),
                ("bob", "approve", "b"),
                ("carol", "approve", "old"),
            ],
        );
        // Bob twice is one approval; Carol's was of another bound.
        assert_eq!(
            standing(&two, Some(&h), "b", Some(&later), now),
            Standing::Waiting(vec!["bob".to_owned()])
        );
        let h = history("b", &[("bob", "approve", "b"), ("carol", "approve", "b")]);
        assert_eq!(
            standing(&two, Some(&h), "b", Some(&later), now),
            Standing::Approved(vec!["bob".to_owned(), "carol".to_owned()])
        );
        let h = history("b", &[("bob", "approve", "b"), ("dave", "reject", "b")]);
        assert_eq!(
            standing(&two, Some(&h), "b", Some(&later), now),
            Standing::Rejected("dave".to_owned())
        );
        // Past the deadline, undecided: as `on_timeout` says, never approved.
        let after = now + Duration::from_secs(61);
        let h = history("b", &[("bob", "approve", "b")]);
        assert_eq!(
            standing(&two, Some(&h), "b", Some(&later), after),
            Standing::TimedOut(Ended::Skipped)
        );
        assert_eq!(
            standing(&two, None, "b", Some("not a time"), now),
            Standing::TimedOut(Ended::Skipped)
        );
        assert_eq!(
            standing(&two, None, "b", None, after),
            Standing::Waiting(Vec::new())
        );
    }
}
