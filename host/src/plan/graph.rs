//! Drawing the plan as a graph: Graphviz DOT or Mermaid.
//!
//! Data edges are labelled with the output's name and its labels; `needs`
//! edges are dashed; tasks that run on failure or always say so; approval
//! gates are drawn as diamonds with the approvals they need; a fan-out
//! over an output (expanded only when it arrives) as `task[*]`, its edge
//! from that output labelled `each OUTPUT`. Names are
//! validated identifiers, so they need no escaping.

use std::fmt::Write as _;

use super::{Dependency, Plan};
use crate::manifest::When;

/// A graph language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

fn node_label(plan: &Plan, i: usize) -> String {
    let Some(t) = plan.tasks.get(i) else {
        return String::new();
    };
    let name = match (&t.task.approval, t.fans_out_at_run_time()) {
        (Some(a), _) => format!("{}: {} approval(s)", t.task.name.value, a.value.required),
        (None, Some((from, output))) => {
            format!(
                "{}[*]: one per element of {from}.{output}",
                t.task.name.value
            )
        }
        (None, None) => t.task.name.value.to_string(),
    };
    match t.task.when.value {
        When::Success => name,
        when => format!("{name} (on {})", when.as_str()),
    }
}

fn edge_label(plan: &Plan, from: usize, output: &crate::name::Name) -> String {
    let labels: Vec<&str> = plan
        .tasks
        .get(from)
        .and_then(|t| t.task.outputs.get(output))
        .map(|o| o.labels.iter().map(|l| l.value.as_str()).collect())
        .unwrap_or_default();
    if labels.is_empty() {
        output.to_string()
    } else {
        format!("{output} [{}]", labels.join(", "))
    }
}

/// The plan as a graph in `format`.
#[must_use]
pub fn render(plan: &Plan, format: Format) -> String {
    let mut out = String::new();
    let name = |i: usize| plan.tasks.get(i).map_or("", |t| t.task.name.value.as_str());
    // The output task `t` fans out over, when it comes from task `from`.
    let over = |t: &super::PlannedTask, from: usize| -> Option<String> {
        t.fans_out_at_run_time()
            .filter(|(task, _)| task.as_str() == name(from))
            .map(|(_, output)| output.to_string())
    };
    match format {
        Format::Dot => {
            let _ = writeln!(out, "digraph \"{}\" {{", plan.name);
            let _ = writeln!(out, "  rankdir=LR;\n  node [shape=box, style=rounded];");
            for (i, t) in plan.tasks.iter().enumerate() {
                let style = match (t.task.is_gate(), t.task.when.value == When::Success) {
                    (true, _) => ", shape=diamond",
                    (false, true) => "",
                    (false, false) => ", style=\"rounded,dashed\"",
                };
                let _ = writeln!(
                    out,
                    "  \"{}\" [label=\"{}\"{style}];",
                    name(i),
                    node_label(plan, i)
                );
            }
            for (i, t) in plan.tasks.iter().enumerate() {
                for up in &t.upstream {
                    let attrs = match &up.why {
                        Dependency::Needs if over(t, up.from).is_some() => {
                            format!("label=\"each {}\"", over(t, up.from).unwrap_or_default())
                        }
                        Dependency::Needs => "style=dashed".to_owned(),
                        Dependency::Data { output, .. } => {
                            format!("label=\"{}\"", edge_label(plan, up.from, output))
                        }
                    };
                    let _ = writeln!(out, "  \"{}\" -> \"{}\" [{attrs}];", name(up.from), name(i));
                }
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for (i, t) in plan.tasks.iter().enumerate() {
                let (open, close) = if t.task.is_gate() {
                    ("{", "}")
                } else {
                    ("[", "]")
                };
                let _ = writeln!(out, "  t{i}{open}\"{}\"{close}", node_label(plan, i));
            }
            for (i, t) in plan.tasks.iter().enumerate() {
                for up in &t.upstream {
                    let _ = match &up.why {
                        Dependency::Needs if over(t, up.from).is_some() => writeln!(
                            out,
                            "  t{} -->|\"each {}\"| t{i}",
                            up.from,
                            over(t, up.from).unwrap_or_default()
                        ),
                        Dependency::Needs => writeln!(out, "  t{} -.-> t{i}", up.from),
                        Dependency::Data { output, .. } => {
                            writeln!(
                                out,
                                "  t{} -->|\"{}\"| t{i}",
                                up.from,
                                edge_label(plan, up.from, output)
                            )
                        }
                    };
                }
            }
        }
    }
    out
}
