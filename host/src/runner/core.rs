//! The decisions of a run, as a pure state machine driven by events.
//!
//! Owns what is ready, in what order tasks start (plan order among the
//! ready), whether a task is skipped (`when`, and why), whether a failed
//! attempt is retried, and when the run is over and how it ended. It does
//! no I/O, reads no clock and spawns nothing: the driver
//! ([`super::run`]) feeds it events — a task settled (kept from before a
//! resume, served from the cache, skipped), an attempt ended, a retry's
//! delay elapsed — and carries out the [`Step`]s it gives back, recording
//! each. Executing attempts (in process today; on workers that claim them
//! from a queue later) is the driver's business, never the core's.
//!
//! Every event costs time proportional to the task's own edges: a task
//! becomes ready when the count of its unsettled upstream reaches zero, and
//! the ready are kept in a heap by plan index.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::manifest::When;
use crate::plan::Plan;

/// How a task ended, as far as the run's decisions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It succeeded (ran, or its result was reused).
    Succeeded,
    /// Its last attempt failed.
    Failed,
    /// It did not run.
    Skipped,
}

/// What the driver is to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Record that task `index` is skipped, for `reason`, and settle it as
    /// [`Ended::Skipped`].
    Skip {
        /// The task, by plan index.
        index: usize,
        /// Why, as recorded.
        reason: String,
    },
    /// Start attempt number `attempt` (1-based, counted across resumes) of
    /// task `index`; report its end with [`Core::attempt_ended`].
    Start {
        /// The task, by plan index.
        index: usize,
        /// The attempt's number.
        attempt: u32,
    },
    /// Open gate `index` (a task with `approval`): it stays open, holding
    /// no slot, until [`Core::gate_closed`] settles it.
    Open {
        /// The gate, by plan index.
        index: usize,
    },
    /// Expand task `index`, a fan-out over an upstream output that has
    /// now arrived: go on with [`Core::carried_over`] to the expanded plan,
    /// or settle it with [`Core::expansion_failed`].
    Expand {
        /// The template, by plan index.
        index: usize,
    },
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterAttempt {
    /// The task is settled.
    Settled(Ended),
    /// Try again after the backoff for retry number `retry` (1-based);
    /// report the delay's end with [`Core::retry_due`].
    Retry {
        /// Which retry this is: the task's failures so far.
        retry: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Upstream not settled yet.
    Waiting,
    /// In the ready heap.
    Ready,
    /// An attempt is out.
    Running,
    /// Failed, waiting for its retry's delay.
    Backoff,
    /// A gate, open: waiting for people to decide.
    Open,
    /// A fan-out over an output, being expanded by the driver.
    Expanding,
    Done(Ended),
}

/// One task, as the core sees it.
#[derive(Debug)]
struct Node {
    name: String,
    when: When,
    /// Upstream plan indices, in the plan's order (an index may repeat).
    upstream: Vec<usize>,
    /// Attempts allowed in all: retries + 1.
    max_attempts: u32,
    /// An approval gate: opened, never started.
    gate: bool,
    /// A fan-out over an upstream output: expanded, never started.
    expands: bool,
    /// The fan-out it is part of, if one with a `max_parallel`.
    group: Option<usize>,
}

/// The tasks of one fan-out with a `max_parallel`.
#[derive(Debug, Default)]
struct Group {
    most: usize,
    running: usize,
    /// Ready, but the group was full: in plan order.
    held: VecDeque<usize>,
}

/// The state of one run's decisions.
#[derive(Debug)]
pub struct Core {
    nodes: Vec<Node>,
    /// Per task, the tasks that name it upstream (once per naming).
    downstream: Vec<Vec<usize>>,
    /// Per task, how many of its upstream entries are not settled.
    unsettled: Vec<usize>,
    slots: Vec<Slot>,
    /// Per task: it, or anything upstream of it, failed.
    failed_line: Vec<bool>,
    next_attempt: Vec<u32>,
    failures: Vec<u32>,
    ready: BinaryHeap<Reverse<usize>>,
    skips: VecDeque<(usize, String)>,
    /// Gates ready to open, in plan order.
    gates: VecDeque<usize>,
    /// Fan-outs over an output ready to expand, in plan order.
    expands: VecDeque<usize>,
    /// Fan-outs with a `max_parallel`.
    groups: Vec<Group>,
    running: usize,
    open: usize,
    settled: usize,
    any_failed: bool,
}

impl Core {
    /// The core of a run of `plan`, nothing settled yet.
    #[must_use]
    pub fn new(plan: &Plan) -> Self {
        let n = plan.tasks.len();
        let mut downstream = vec![Vec::new(); n];
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let nodes: Vec<Node> = plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, planned)| {
                let upstream: Vec<usize> = planned.upstream.iter().map(|u| u.from).collect();
                for &up in &upstream {
                    if let Some(down) = downstream.get_mut(up) {
                        down.push(i);
                    }
                }
                Node {
                    name: planned.task.name.value.to_string(),
                    when: planned.task.when.value,
                    upstream,
                    max_attempts: planned
                        .settings
                        .retries
                        .as_ref()
                        .map_or(0, |r| r.value.max)
                        .saturating_add(1),
                    gate: planned.task.is_gate(),
                    expands: planned.fans_out_at_run_time().is_some(),
                    group: planned.fan.as_ref().and_then(|fan| {
                        let most = fan.max_parallel?;
                        let next = groups.len();
                        let group = *group_of.entry(fan.template.as_str()).or_insert(next);
                        if group == next {
                            groups.push(Group {
                                most: usize::try_from(most).unwrap_or(usize::MAX),
                                ..Group::default()
                            });
                        }
                        Some(group)
                    }),
                }
            })
            .collect();
        let unsettled: Vec<usize> = nodes.iter().map(|n| n.upstream.len()).collect();
        let mut core = Self {
            nodes,
            downstream,
            unsettled,
            slots: vec![Slot::Waiting; n],
            failed_line: vec![false; n],
            next_attempt: vec![1; n],
            failures: vec![0; n],
            ready: BinaryHeap::new(),
            skips: VecDeque::new(),
            gates: VecDeque::new(),
            expands: VecDeque::new(),
            groups,
            running: 0,
            open: 0,
            settled: 0,
            any_failed: false,
        };
        for i in 0..n {
            if core.unsettled.get(i) == Some(&0) {
                core.became_ready(i);
            }
        }
        core
    }

    /// Go on counting task `index`'s attempts from an earlier process: its
    /// next attempt is `next_attempt`, after `failures` failures.
    pub fn resume_counts(&mut self, index: usize, next_attempt: u32, failures: u32) {
        if let Some(slot) = self.next_attempt.get_mut(index) {
            *slot = next_attempt.max(1);
        }
        if let Some(slot) = self.failures.get_mut(index) {
            *slot = failures;
        }
    }

    /// The next thing to do, if any: a skip (whenever one is due) or, when
    /// `free` (a slot for an attempt), the start of the first ready task in
    /// plan order.
    pub fn next(&mut self, free: bool) -> Option<Step> {
        while let Some((index, reason)) = self.skips.pop_front() {
            if self.slots.get(index) == Some(&Slot::Ready) {
                return Some(Step::Skip { index, reason });
            }
        }
        // Gates hold no slot: each opens as soon as it is ready.
        while let Some(index) = self.gates.pop_front() {
            if self.slots.get(index) == Some(&Slot::Ready) {
                self.set(index, Slot::Open);
                self.open += 1;
                return Some(Step::Open { index });
            }
        }
        // Expanding holds no slot either: the tasks it makes do.
        while let Some(index) = self.expands.pop_front() {
            if self.slots.get(index) == Some(&Slot::Ready) {
                self.set(index, Slot::Expanding);
                return Some(Step::Expand { index });
            }
        }
        if !free {
            return None;
        }
        while let Some(Reverse(index)) = self.ready.pop() {
            if self.slots.get(index) != Some(&Slot::Ready) {
                continue;
            }
            if let Some(group) = self.nodes.get(index).and_then(|n| n.group)
                && let Some(g) = self.groups.get_mut(group)
            {
                if g.running >= g.most {
                    // Its fan-out is at `max_parallel`: it starts when one ends.
                    g.held.push_back(index);
                    continue;
                }
                g.running += 1;
            }
            let attempt = self.next_attempt.get(index).copied().unwrap_or(1);
            if let Some(next) = self.next_attempt.get_mut(index) {
                *next = attempt.saturating_add(1);
            }
            self.set(index, Slot::Running);
            self.running += 1;
            return Some(Step::Start { index, attempt });
        }
        None
    }

    /// Task `index` is settled as `ended` without an attempt of this
    /// process (kept from before a resume, a cache hit, a skip): what
    /// depends on it may become ready. A task already settled stays so.
    pub fn settle(&mut self, index: usize, ended: Ended) {
        match self.slots.get(index) {
            None | Some(Slot::Done(_)) => return,
            Some(Slot::Running) => {
                self.running = self.running.saturating_sub(1);
                self.left_group(index);
            }
            Some(Slot::Open) => self.open = self.open.saturating_sub(1),
            Some(_) => {}
        }
        let failed = ended == Ended::Failed
            || self
                .nodes
                .get(index)
                .is_some_and(|n| n.upstream.iter().any(|&u| self.failed(u)));
        if let Some(slot) = self.failed_line.get_mut(index) {
            *slot = failed;
        }
        self.any_failed |= ended == Ended::Failed;
        self.set(index, Slot::Done(ended));
        self.settled += 1;
        let downstream = self.downstream.get(index).cloned().unwrap_or_default();
        for down in downstream {
            let Some(count) = self.unsettled.get_mut(down) else {
                continue;
            };
            *count = count.saturating_sub(1);
            if *count == 0 && self.slots.get(down) == Some(&Slot::Waiting) {
                self.became_ready(down);
            }
        }
    }

    /// Attempt of task `index` ended: `succeeded`, or failed with an
    /// outcome that is `retriable` or not.
    pub fn attempt_ended(
        &mut self,
        index: usize,
        succeeded: bool,
        retriable: bool,
    ) -> AfterAttempt {
        if succeeded {
            self.settle(index, Ended::Succeeded);
            return AfterAttempt::Settled(Ended::Succeeded);
        }
        let failures = self
            .failures
            .get(index)
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        if let Some(slot) = self.failures.get_mut(index) {
            *slot = failures;
        }
        let max = self.nodes.get(index).map_or(1, |n| n.max_attempts);
        if retriable && failures < max {
            self.running = self.running.saturating_sub(1);
            self.left_group(index);
            self.set(index, Slot::Backoff);
            return AfterAttempt::Retry { retry: failures };
        }
        self.settle(index, Ended::Failed);
        AfterAttempt::Settled(Ended::Failed)
    }

    /// Task `index`'s retry delay is over: it is ready again (and starts in
    /// plan order among the ready).
    pub fn retry_due(&mut self, index: usize) {
        if self.slots.get(index) == Some(&Slot::Backoff) {
            self.set(index, Slot::Ready);
            self.ready.push(Reverse(index));
        }
    }

    /// Gate `index` closed: `Succeeded` (approved), `Failed` (rejected,
    /// or timed out to fail) or `Skipped` (timed out to skip). What needs
    /// it may then become ready, as after any task.
    pub fn gate_closed(&mut self, index: usize, ended: Ended) {
        if self.slots.get(index) == Some(&Slot::Open) {
            self.settle(index, ended);
        }
    }

    /// Fan-out `index` could not be expanded (its output is not an array,
    /// too large, or policy refuses what it would run): it failed, and
    /// nothing of it runs.
    pub fn expansion_failed(&mut self, index: usize) {
        if self.slots.get(index) == Some(&Slot::Expanding) {
            self.settle(index, Ended::Failed);
        }
    }

    /// The core of `plan` — this core's plan with a fan-out expanded —
    /// standing where this one stands: `old_of[i]` is the index in this
    /// core's plan of task `i` of `plan`, if it had one. Settled tasks stay
    /// settled, attempts out and retries waiting stay so (counted against
    /// `max_parallel` as before), open gates stay open; the expanded tasks
    /// start from nothing.
    #[must_use]
    pub fn carried_over(&self, plan: &Plan, old_of: &[Option<usize>]) -> Self {
        let mut core = Self::new(plan);
        let carried = || {
            old_of
                .iter()
                .enumerate()
                .filter_map(|(new, old)| Some((new, (*old)?)))
        };
        // Settled first, in plan order: what they free is ready as before.
        for (new, old) in carried() {
            if let (Some(next), Some(failures)) =
                (self.next_attempt.get(old), self.failures.get(old))
            {
                core.resume_counts(new, *next, *failures);
            }
            if let Some(ended) = self.ended(old) {
                core.settle(new, ended);
            }
        }
        for (new, old) in carried() {
            match self.slots.get(old) {
                Some(Slot::Running) => {
                    core.set(new, Slot::Running);
                    core.running += 1;
                    if let Some(g) = core
                        .nodes
                        .get(new)
                        .and_then(|n| n.group)
                        .and_then(|group| core.groups.get_mut(group))
                    {
                        g.running += 1;
                    }
                }
                Some(Slot::Backoff) => core.set(new, Slot::Backoff),
                Some(Slot::Open) => {
                    core.set(new, Slot::Open);
                    core.open += 1;
                }
                Some(Slot::Expanding) => core.set(new, Slot::Expanding),
                _ => {}
            }
        }
        core
    }

    /// Attempts out now.
    #[must_use]
    pub fn running(&self) -> usize {
        self.running
    }

    /// Gates open now (waiting for people).
    #[must_use]
    pub fn open(&self) -> usize {
        self.open
    }

    /// Whether every task is settled.
    #[must_use]
    pub fn is_over(&self) -> bool {
        self.settled == self.nodes.len()
    }

    /// Whether any task failed (the run then fails).
    #[must_use]
    pub fn any_failed(&self) -> bool {
        self.any_failed
    }

    /// An attempt of task `index` is no longer out: a task of its fan-out
    /// held back by `max_parallel` may start.
    fn left_group(&mut self, index: usize) {
        let Some(g) = self
            .nodes
            .get(index)
            .and_then(|n| n.group)
            .and_then(|group| self.groups.get_mut(group))
        else {
            return;
        };
        g.running = g.running.saturating_sub(1);
        if let Some(next) = g.held.pop_front() {
            self.ready.push(Reverse(next));
        }
    }

    fn failed(&self, index: usize) -> bool {
        self.failed_line.get(index).copied().unwrap_or(false)
    }

    fn set(&mut self, index: usize, slot: Slot) {
        if let Some(s) = self.slots.get_mut(index) {
            *s = slot;
        }
    }

    fn ended(&self, index: usize) -> Option<Ended> {
        match self.slots.get(index) {
            Some(Slot::Done(ended)) => Some(*ended),
            _ => None,
        }
    }

    /// Everything upstream of `index` is settled: queue it to start, or
    /// to be skipped as its `when` says.
    fn became_ready(&mut self, index: usize) {
        self.set(index, Slot::Ready);
        let Some(node) = self.nodes.get(index) else {
            return;
        };
        let up_failed = node.upstream.iter().any(|&u| self.failed(u));
        let not_ok = node.upstream.iter().find_map(|&u| match self.ended(u) {
            Some(Ended::Succeeded) => None,
            other => Some((u, other)),
        });
        let name = |u: usize| self.nodes.get(u).map_or("?", |n| n.name.as_str());
        let skip = match node.when {
            When::Success => not_ok.map(|(u, ended)| match ended {
                Some(Ended::Failed) => format!("upstream `{}` failed", name(u)),
                _ => format!("upstream `{}` was skipped", name(u)),
            }),
            When::Failure if !up_failed => Some("nothing upstream failed".to_owned()),
            When::Failure | When::Always => None,
        };
        match skip {
            Some(reason) => self.skips.push_back((index, reason)),
            None if node.gate => self.gates.push_back(index),
            None if node.expands => self.expands.push_back(index),
            None => self.ready.push(Reverse(index)),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]
mod tests {
    use super::*;

    fn plan(toml: &str) -> Plan {
        let manifest = crate::manifest::parse(toml).unwrap();
        Plan::new(&manifest).unwrap()
    }

    fn index(plan: &Plan, name: &str) -> usize {
        plan.tasks
            .iter()
            .position(|t| t.task.name.value.as_str() == name)
            .unwrap()
    }

    /// Drive `core` to the end with `outcome(name, attempt)` -> (succeeded,
    /// retriable); the steps as `start NAME#N`, `skip NAME: why`, `retry NAME`.
    fn drive(
        plan: &Plan,
        core: &mut Core,
        slots: usize,
        outcome: impl Fn(&str, u32) -> (bool, bool),
    ) -> Vec<String> {
        let name = |i: usize| plan.tasks[i].task.name.value.to_string();
        let mut log = Vec::new();
        let mut out: VecDeque<(usize, u32)> = VecDeque::new();
        loop {
            while let Some(step) = core.next(core.running() < slots) {
                match step {
                    Step::Skip { index, reason } => {
                        log.push(format!("skip {}: {reason}", name(index)));
                        core.settle(index, Ended::Skipped);
                    }
                    Step::Start { index, attempt } => {
                        log.push(format!("start {}#{attempt}", name(index)));
                        out.push_back((index, attempt));
                    }
                    Step::Open { index } => {
                        log.push(format!("open {}", name(index)));
                        let ended = match outcome(&name(index), 0) {
                            (true, _) => Ended::Succeeded,
                            (false, true) => Ended::Skipped,
                            (false, false) => Ended::Failed,
                        };
                        core.gate_closed(index, ended);
                    }
                    Step::Expand { index } => {
                        log.push(format!("expand {}", name(index)));
                        core.expansion_failed(index);
                    }
                }
            }
            let Some((index, attempt)) = out.pop_front() else {
                break;
            };
            let (ok, retriable) = outcome(&name(index), attempt);
            if let AfterAttempt::Retry { retry } = core.attempt_ended(index, ok, retriable) {
                log.push(format!("retry {} ({retry})", name(index)));
                core.retry_due(index);
            }
        }
        assert!(core.is_over(), "{log:?}");
        log
    }

    const DIAMOND: &str = r#"
[workflow]
name = "w"
[tasks.a]
component = "x.wasm"
[tasks.b]
component = "x.wasm"
needs = ["a"]
retries = { max = 2 }
[tasks.c]
component = "x.wasm"
needs = ["a"]
[tasks.d]
component = "x.wasm"
needs = ["b", "c"]
[tasks.cleanup]
component = "x.wasm"
needs = ["d"]
when = "failure"
[tasks.report]
component = "x.wasm"
needs = ["d"]
when = "always"
"#;

    #[test]
    fn ready_tasks_start_in_plan_order_and_a_success_skips_failure_handlers() {
        let plan = plan(DIAMOND);
        let mut core = Core::new(&plan);
        let log = drive(&plan, &mut core, 1, |_, _| (true, false));
        assert_eq!(
            log,
            [
                "start a#1",
                "start b#1",
                "start c#1",
                "start d#1",
                "skip cleanup: nothing upstream failed",
                "start report#1"
            ]
        );
        assert!(!core.any_failed());
    }

    #[test]
    fn retries_are_counted_and_a_failure_skips_downstream_but_runs_handlers() {
        let plan = plan(DIAMOND);
        let mut core = Core::new(&plan);
        let log = drive(&plan, &mut core, 2, |name, _| (name != "b", true));
        assert_eq!(
            log,
            [
                "start a#1",
                "start b#1",
                "start c#1",
                "retry b (1)",
                "start b#2",
                "retry b (2)",
                "start b#3",
                "skip d: upstream `b` failed",
                "start cleanup#1",
                "start report#1"
            ]
        );
        assert!(core.any_failed());
    }

    #[test]
    fn a_permanent_failure_is_not_retried() {
        let plan = plan(DIAMOND);
        let mut core = Core::new(&plan);
        let log = drive(&plan, &mut core, 2, |name, _| (name != "b", false));
        assert!(log.contains(&"start b#1".to_owned()));
        assert!(!log.iter().any(|l| l.starts_with("retry")), "{log:?}");
    }

    #[test]
    fn a_resumed_run_keeps_what_was_settled_and_counts_attempts_on() {
        let plan = plan(DIAMOND);
        let mut core = Core::new(&plan);
        core.settle(index(&plan, "a"), Ended::Succeeded);
        core.settle(index(&plan, "c"), Ended::Succeeded);
        core.resume_counts(index(&plan, "b"), 3, 2);
        let log = drive(&plan, &mut core, 2, |name, _| (name != "b", true));
        // b has used two of its three attempts: one more, then it fails.
        assert_eq!(
            log,
            [
                "start b#3",
                "skip d: upstream `b` failed",
                "start cleanup#1",
                "start report#1"
            ]
        );
    }

    #[test]
    fn a_gate_holds_no_slot_and_what_needs_it_waits_for_its_decision() {
        let text = r#"
[workflow]
name = "w"
[tasks.build]
component = "x.wasm"
[tasks.lint]
component = "x.wasm"
[tasks.approve]
approval = { required = 2 }
needs = ["build"]
[tasks.deploy]
component = "x.wasm"
needs = ["approve", "build"]
[tasks.rollback]
component = "x.wasm"
needs = ["deploy"]
when = "failure"
"#;
        let plan = plan(text);
        // Approved: deploy runs.
        let mut core = Core::new(&plan);
        let log = drive(&plan, &mut core, 1, |_, _| (true, false));
        assert_eq!(
            log,
            [
                "start build#1",
                "open approve",
                "start lint#1",
                "start deploy#1",
                "skip rollback: nothing upstream failed"
            ]
        );
        // Rejected: deploy is skipped, the failure handler runs, the run fails.
        let mut core = Core::new(&plan);
        let log = drive(&plan, &mut core, 1, |name, _| (name != "approve", false));
        assert!(
            log.contains(&"skip deploy: upstream `approve` failed".to_owned()),
            "{log:?}"
        );
        assert!(log.contains(&"start rollback#1".to_owned()), "{log:?}");
        assert!(core.any_failed());
        // Timed out to skip: nothing after it runs and nothing failed.
        let mut core = Core::new(&plan);
        let log = drive(&plan, &mut core, 1, |name, _| (name != "approve", true));
        assert!(
            log.contains(&"skip deploy: upstream `approve` was skipped".to_owned()),
            "{log:?}"
        );
        assert!(!core.any_failed());

        // Left open, the run is not over and holds no attempt.
        let mut core = Core::new(&plan);
        let mut opened = Vec::new();
        while let Some(step) = core.next(core.running() < 4) {
            match step {
                Step::Start { index, .. } => {
                    core.attempt_ended(index, true, false);
                }
                Step::Open { index } => opened.push(index),
                Step::Skip { index, .. } | Step::Expand { index } => {
                    core.settle(index, Ended::Skipped);
                }
            }
        }
        assert_eq!(opened, [index(&plan, "approve")]);
        assert_eq!((core.open(), core.running()), (1, 0));
        assert!(!core.is_over());
    }

    #[test]
    fn an_output_fan_out_expands_once_its_output_is_in_and_carries_the_run_over() {
        let text = r#"
[workflow]
name = "w"
[tasks.slow]
component = "x.wasm"
[tasks.list]
component = "x.wasm"
outputs = ["items"]
[tasks.fetch]
component = "x.wasm"
for_each = "list.items"
max_parallel = 1
outputs = ["page"]
[tasks.merge]
component = "x.wasm"
inputs = { pages = "fetch[*].page" }
"#;
        let old = plan(text);
        let mut core = Core::new(&old);
        // `slow` and `list` start; the template waits for `list`.
        let s1 = core.next(true);
        let s2 = core.next(true);
        assert_eq!(
            (s1, s2),
            (
                Some(Step::Start {
                    index: index(&old, "slow"),
                    attempt: 1
                }),
                Some(Step::Start {
                    index: index(&old, "list"),
                    attempt: 1
                })
            )
        );
        assert_eq!(core.next(true), None);
        core.attempt_ended(index(&old, "list"), true, false);
        let fetch = index(&old, "fetch");
        assert_eq!(
            core.next(false),
            Some(Step::Expand { index: fetch }),
            "holds no slot"
        );
        assert_eq!(core.next(true), None, "expands once");

        let new = old.expand_output(fetch, &["a".into(), "b".into()]).unwrap();
        let names: Vec<&str> = new
            .tasks
            .iter()
            .map(|t| t.task.name.value.as_str())
            .collect();
        assert_eq!(names, ["slow", "list", "fetch[a]", "fetch[b]", "merge"]);
        let old_of: Vec<Option<usize>> = names
            .iter()
            .map(|n| {
                old.tasks
                    .iter()
                    .position(|t| t.task.name.value.as_str() == *n)
            })
            .collect();
        let mut core = core.carried_over(&new, &old_of);
        assert_eq!(core.running(), 1, "`slow` is still out");
        let i = |n: &str| index(&new, n);
        assert_eq!(
            core.next(true),
            Some(Step::Start {
                index: i("fetch[a]"),
                attempt: 1
            })
        );
        assert_eq!(core.next(true), None, "max_parallel = 1");
        core.attempt_ended(i("fetch[a]"), true, false);
        assert_eq!(
            core.next(true),
            Some(Step::Start {
                index: i("fetch[b]"),
                attempt: 1
            })
        );
        assert_eq!(core.next(true), None, "the fan-in waits for every one");
        core.attempt_ended(i("fetch[b]"), true, false);
        assert_eq!(
            core.next(true),
            Some(Step::Start {
                index: i("merge"),
                attempt: 1
            })
        );
        core.attempt_ended(i("merge"), true, false);
        assert!(!core.is_over(), "`slow`, carried over, is still out");
        core.attempt_ended(i("slow"), true, false);
        assert!(core.is_over() && !core.any_failed());
    }

    #[test]
    fn a_fan_out_runs_at_most_max_parallel_at_once_and_fan_in_waits_for_all() {
        let text = r#"
[workflow]
name = "w"
[tasks.fetch]
component = "x.wasm"
for_each = ["a", "b", "c", "d", "e"]
max_parallel = 2
outputs = ["page"]
[tasks.merge]
component = "x.wasm"
inputs = { pages = "fetch[*].page" }
"#;
        let plan = plan(text).with_params(&std::collections::BTreeMap::new());
        let names: Vec<&str> = plan
            .tasks
            .iter()
            .map(|t| t.task.name.value.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "fetch[a]", "fetch[b]", "fetch[c]", "fetch[d]", "fetch[e]", "merge"
            ]
        );
        let merge = &plan.tasks[5];
        let inputs: Vec<String> = merge
            .upstream
            .iter()
            .map(|u| match &u.why {
                crate::plan::Dependency::Data { input, .. } => format!("{input}<-{}", u.from),
                crate::plan::Dependency::Needs => format!("needs {}", u.from),
            })
            .collect();
        assert_eq!(
            inputs,
            [
                "pages[a]<-0",
                "pages[b]<-1",
                "pages[c]<-2",
                "pages[d]<-3",
                "pages[e]<-4"
            ]
        );
        let mut core = Core::new(&plan);
        let mut most = 0;
        let mut out: VecDeque<usize> = VecDeque::new();
        let mut order = Vec::new();
        loop {
            while let Some(step) = core.next(core.running() < 8) {
                if let Step::Start { index, .. } = step {
                    order.push(index);
                    out.push_back(index);
                }
            }
            let fetching = out.iter().filter(|&&i| i < 5).count();
            most = most.max(fetching);
            let Some(index) = out.pop_front() else { break };
            core.attempt_ended(index, true, false);
        }
        assert_eq!(most, 2, "max_parallel = 2");
        assert_eq!(order, [0, 1, 2, 3, 4, 5], "plan order, merge last");
        assert!(core.is_over());
    }

    #[test]
    fn a_chain_of_twenty_thousand_runs_one_task_at_a_time_to_the_end() {
        let mut text = String::from("[workflow]\nname = \"w\"\n");
        let n = 20_000;
        for i in 0..n {
            text.push_str(&format!("[tasks.t{i}]\ncomponent = \"x.wasm\"\n"));
            if i > 0 {
                text.push_str(&format!("needs = [\"t{}\"]\n", i - 1));
            }
        }
        let plan = plan(&text);
        let mut core = Core::new(&plan);
        let mut started = 0;
        while let Some(Step::Start { index, .. }) = core.next(core.running() < 4) {
            started += 1;
            assert_eq!(core.running(), 1, "a chain runs one at a time");
            core.attempt_ended(index, true, false);
        }
        assert_eq!(started, n);
        assert!(core.is_over());
    }
}
