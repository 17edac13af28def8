//! Limits on what Cairn hands to Cedar, checked before Cedar sees it.
//!
//! Cedar's parser, validator and evaluator recurse on a policy's structure
//! (a nested bracket costs Cedar's parser about 18 KiB of stack, a nested
//! `if` about 2 KiB, each operator of a chain such as `a || b || …` about
//! 64 bytes); its entity store computes the transitive closure of the group
//! hierarchy recursively and in super-linear time; and each bad escape in a
//! string copies the whole string into its error. So every policy text and
//! every entity hierarchy is checked here first, in one linear pass, and
//! anything past the limits below is refused at its line and column.
//! What passes fits in [`STACK`], the stack every thread that calls Cedar
//! has (`cli` runs commands on such a thread and sizes the runtime's
//! threads to it), and takes Cedar time about linear in its size.
//!
//! Nothing here decides anything or parses Cedar for real: the checks only
//! over-estimate what Cedar will build, and leave every other problem to
//! Cedar's own diagnostics. Pure: no I/O.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::Value;

use crate::diag::Diagnostic;

/// The stack of every thread that calls Cedar: room for the deepest policy
/// the limits below allow, several times over.
pub const STACK: usize = 16 << 20;
/// The largest policy file (or recorded policy text), in bytes.
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// The deepest nesting of brackets (`(`, `[`, `{`) in a policy.
pub const MAX_BRACKETS: usize = 64;
/// The most `if`s on one path through a policy's expression.
pub const MAX_IFS: usize = 200;
/// The most operators (`||`, `&&`, comparisons, arithmetic, `!`, `.`,
/// `in`, `has`, `like`, `is`, `if`, each `when`/`unless`) on one path
/// through a policy's expression, counting every operator of each bracket
/// level the path passes through.
pub const MAX_OPERATORS: usize = 10_000;
/// The largest entities file (or recorded entities), in bytes.
pub const MAX_ENTITIES_BYTES: usize = 16 << 20;
/// The most entities in one file.
pub const MAX_ENTITIES: usize = 100_000;
/// The most entities in a recorded set: a run records one per task besides
/// the people, and a manifest within its 16 MiB holds fewer than this many
/// tasks, so every run Cairn carries out stays verifiable.
pub const MAX_RECORDED_ENTITIES: usize = 1_000_000;
/// The longest chain of parents (a user in a group in a group…).
pub const MAX_HIERARCHY_DEPTH: usize = 32;
/// The most (entity, ancestor) pairs in one hierarchy: the size of the
/// transitive closure Cedar keeps.
pub const MAX_ANCESTRY: usize = 1_000_000;

/// Check one policy file's text against the limits; the first problem is
/// returned, at its place in `source`.
///
/// # Errors
///
/// A [`Diagnostic`] saying which limit is passed, and where.
pub fn check_policy_text(source: &str) -> Result<(), Diagnostic> {
    if source.len() > MAX_POLICY_BYTES {
        return Err(Diagnostic::whole_file(format!(
            "the policy file has {} bytes; Cairn reads policy files of at most {} MiB",
            source.len(),
            MAX_POLICY_BYTES >> 20
        ))
        .help("split the policies into several files"));
    }
    Scanner::new(source).run()
}

/// Operator counts of one bracket level (or of one policy, at the top).
#[derive(Debug, Clone, Copy)]
struct Level {
    /// Where it opens (the bracket, or where the policy starts).
    open: usize,
    /// Operators and `if`s directly at this level.
    ops: usize,
    ifs: usize,
    /// The most of each on a path through the levels inside it.
    inner_ops: usize,
    inner_ifs: usize,
}

impl Level {
    fn at(open: usize) -> Self {
        Self {
            open,
            ops: 0,
            ifs: 0,
            inner_ops: 0,
            inner_ifs: 0,
        }
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// The open levels; the first is the policy being read.
    levels: Vec<Level>,
    /// Whether the last token was `like` (its pattern may escape `*`).
    after_like: bool,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            at: 0,
            levels: vec![Level::at(0)],
            after_like: false,
        }
    }

    fn peek(&self, ahead: usize) -> u8 {
        self.bytes.get(self.at + ahead).copied().unwrap_or(0)
    }

    fn operator(&mut self, is_if: bool) {
        // The policy's own level is always open while reading.
        if let Some(top) = self.levels.last_mut() {
            top.ops += 1;
            if is_if {
                top.ifs += 1;
            }
        }
    }

    fn run(mut self) -> Result<(), Diagnostic> {
        while self.at < self.bytes.len() {
            let start = self.at;
            let byte = self.peek(0);
            let mut like = false;
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' => {
                    self.at += 1;
                    continue;
                }
                b'/' if self.peek(1) == b'/' => {
                    while self.at < self.bytes.len() && !matches!(self.peek(0), b'\n' | b'\r') {
                        self.at += 1;
                    }
                    continue;
                }
                b'"' => {
                    self.string()?;
                    self.after_like = false;
                    continue;
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == b'_' {
                        self.at += 1;
                    }
                    match self.text.get(start..self.at).unwrap_or_default() {
                        "if" => self.operator(true),
                        "in" | "has" | "is" | "when" | "unless" => self.operator(false),
                        "like" => {
                            self.operator(false);
                            like = true;
                        }
                        _ => {}
                    }
                }
                b'(' | b'[' | b'{' => {
                    if self.levels.len() > MAX_BRACKETS {
                        return Err(Diagnostic::at(
                            start..start + 1,
                            format!(
                                "brackets are nested more than {MAX_BRACKETS} deep here, more than Cairn gives to Cedar"
                            ),
                        )
                        .label("too deep")
                        .help("write the condition flatter, or split it into several policies"));
                    }
                    self.levels.push(Level::at(start));
                    self.at += 1;
                }
                b')' | b']' | b'}' => {
                    self.at += 1;
                    if self.levels.len() > 1 {
                        self.close()?;
                    }
                }
                b';' if self.levels.len() == 1 => {
                    self.at += 1;
                    self.close()?;
                    self.levels.push(Level::at(self.at));
                }
                b'|' | b'&' | b'=' | b'!' | b'<' | b'>'
                    if matches!(self.peek(1), b'|' | b'&' | b'=') =>
                {
                    self.at += 2;
                    self.operator(false);
                }
                b'<' | b'>' | b'=' | b'+' | b'-' | b'*' | b'/' | b'%' | b'!' | b'.' => {
                    self.at += 1;
                    self.operator(false);
                }
                _ => self.at += 1,
            }
            self.after_like = like;
        }
        // Unclosed brackets (Cedar reports them) still count.
        while !self.levels.is_empty() {
            self.close()?;
        }
        Ok(())
    }

    /// Close the innermost level: check the paths through it, and count
    /// them in the level around it.
    fn close(&mut self) -> Result<(), Diagnostic> {
        let Some(level) = self.levels.pop() else {
            return Ok(());
        };
        let ops = level.ops + level.inner_ops;
        let ifs = level.ifs + level.inner_ifs;
        let here = level.open..(level.open + 1).min(self.bytes.len());
        if ifs > MAX_IFS {
            return Err(Diagnostic::at(
                here,
                format!("{ifs} `if`s are nested here; Cairn gives Cedar at most {MAX_IFS}"),
            )
            .label("nested too deeply")
            .help("write the conditions as separate policies, or as a set lookup"));
        }
        if ops > MAX_OPERATORS {
            return Err(Diagnostic::at(
                here,
                format!(
                    "{ops} operators are chained here; Cairn gives Cedar at most {MAX_OPERATORS} on one path"
                ),
            )
            .label("too long a chain")
            .help("split the condition into several policies, or test membership with a set: `[\"a\", \"b\"].contains(x)`"));
        }
        if let Some(outer) = self.levels.last_mut() {
            outer.inner_ops = outer.inner_ops.max(ops);
            outer.inner_ifs = outer.inner_ifs.max(ifs);
        }
        Ok(())
    }

    /// A string literal: find its end, and refuse the first escape Cedar
    /// would refuse (Cedar copies the whole string into each such error).
    fn string(&mut self) -> Result<(), Diagnostic> {
        let open = self.at;
        self.at += 1;
        while self.at < self.bytes.len() {
            match self.peek(0) {
                b'\\' => self.at += 2,
                b'"' => break,
                _ => self.at += 1,
            }
        }
        let end = self.at.min(self.bytes.len());
        self.at = end + 1;
        let Some(contents) = self.text.get(open + 1..end) else {
            // An escape split a character or the text ended: Cedar reports it.
            return Ok(());
        };
        match first_bad_escape(contents, self.after_like) {
            Some(bad) => {
                let span = open + 1 + bad.start..open + 1 + bad.end;
                Err(Diagnostic::at(span, "invalid escape in a string")
                    .label("not an escape Cedar knows")
                    .help(r#"Cedar's escapes are \n \r \t \\ \0 \' \" \x41 and \u{e9} (and \* in a `like` pattern)"#))
            }
            None => Ok(()),
        }
    }
}

/// Where the first escape of a Cedar string (its contents, without quotes)
/// that Cedar refuses is, by Cedar's own rules (Rust's, and `\*` in a
/// `like` pattern).
fn first_bad_escape(contents: &str, pattern: bool) -> Option<Range<usize>> {
    if !contents.contains('\\') {
        return None;
    }
    let mut first = None;
    rustc_literal_escaper::unescape_str(contents, |range, result| {
        if first.is_some() {
            return;
        }
        if let Err(e) = result
            && e.is_fatal()
            && !(pattern && contents.get(range.clone()) == Some(r"\*"))
        {
            first = Some(range);
        }
    });
    first
}

/// One entity of a hierarchy: its key, its parents' keys, where it is.
#[derive(Debug, Clone)]
pub struct Node {
    /// The entity (type and id, in any form that is the same for parents).
    pub key: String,
    /// Its parents' keys.
    pub parents: Vec<String>,
    /// Where it is written.
    pub span: Range<usize>,
}

/// The key of a Cedar JSON entity reference, `{"type": T, "id": I}` or
/// `{"__entity": {...}}`.
fn key(value: &Value) -> Option<String> {
    let value = value.get("__entity").unwrap_or(value);
    let kind = value.get("type")?.as_str()?;
    let id = value.get("id")?.as_str()?;
    Some(format!("{kind}::{id:?}"))
}

/// The hierarchy of a Cedar JSON entity: its key and parents' keys
/// (`None` when it is not shaped as one: Cedar reports that).
#[must_use]
pub fn node_of(entity: &Value, span: Range<usize>) -> Option<Node> {
    Some(Node {
        key: key(entity.get("uid")?)?,
        parents: entity
            .get("parents")
            .and_then(Value::as_array)
            .map(|parents| parents.iter().filter_map(key).collect())
            .unwrap_or_default(),
        span,
    })
}

/// Check an entities file (Cedar's JSON entity format) against the
/// limits: its size, how many entities, and its hierarchy.
///
/// # Errors
///
/// A [`Diagnostic`] at the entity that passes a limit.
pub fn check_entities_text(source: &str) -> Result<(), Diagnostic> {
    if source.len() > MAX_ENTITIES_BYTES {
        return Err(Diagnostic::whole_file(format!(
            "the entities file has {} bytes; Cairn reads entities files of at most {} MiB",
            source.len(),
            MAX_ENTITIES_BYTES >> 20
        )));
    }
    // Not an array of JSON values: Cedar says what is wrong.
    let Ok(items) = serde_json::from_str::<Vec<Value>>(source) else {
        return Ok(());
    };
    let starts = element_starts(source);
    let nodes: Vec<Node> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let at = starts.get(i).copied().unwrap_or(0);
            node_of(item, at..(at + 1).min(source.len()))
        })
        .collect();
    check_hierarchy(&nodes)
}

/// Where each element of the JSON array `text` starts (a scan that knows
/// strings and brackets, nothing more: `text` is valid JSON already).
fn element_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut expecting) = (0usize, false, false, false);
    for (at, byte) in text.bytes().enumerate() {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if expecting && !byte.is_ascii_whitespace() && byte != b']' {
            starts.push(at);
            expecting = false;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                expecting = depth == 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expecting = true,
            _ => {}
        }
    }
    starts
}

/// Check entities in Cedar's JSON format held as a value (as the audit log
/// records them): as [`check_entities_text`], without places, and with
/// room for one entity per task ([`MAX_RECORDED_ENTITIES`]).
///
/// # Errors
///
/// A [`Diagnostic`] naming the entity that passes a limit.
pub fn check_entities_value(entities: &Value) -> Result<(), Diagnostic> {
    let Some(items) = entities.as_array() else {
        return Ok(());
    };
    let nodes: Vec<Node> = items.iter().filter_map(|e| node_of(e, 0..0)).collect();
    check_hierarchy_of(&nodes, MAX_RECORDED_ENTITIES).map_err(|mut d| {
        d.span = None;
        d
    })
}

/// Check a hierarchy: at most [`MAX_ENTITIES`] entities, no cycle, no chain
/// of parents longer than [`MAX_HIERARCHY_DEPTH`], at most
/// [`MAX_ANCESTRY`] (entity, ancestor) pairs. Linear in the entities and
/// their parents, iterative (no recursion on the input).
///
/// # Errors
///
/// A [`Diagnostic`] at the first entity found that passes a limit.
pub fn check_hierarchy(nodes: &[Node]) -> Result<(), Diagnostic> {
    check_hierarchy_of(nodes, MAX_ENTITIES)
}

/// [`check_hierarchy`] with at most `most` entities.
fn check_hierarchy_of(nodes: &[Node], most: usize) -> Result<(), Diagnostic> {
    if nodes.len() > most {
        let span = nodes.get(most).map_or(0..0, |n| n.span.clone());
        return Err(Diagnostic::at(
            span,
            format!(
                "{} entities; Cairn gives Cedar at most {most} at once",
                nodes.len()
            ),
        )
        .label("one too many"));
    }
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        index.entry(node.key.as_str()).or_insert(i);
    }
    // Parents that are entities here (others are leaves to Cedar), and the
    // children of each.
    let parents: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            let mut p: Vec<usize> = n
                .parents
                .iter()
                .filter_map(|k| index.get(k.as_str()).copied())
                .collect();
            p.sort_unstable();
            p.dedup();
            p
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut waiting: Vec<usize> = Vec::with_capacity(nodes.len());
    for (child, ps) in parents.iter().enumerate() {
        waiting.push(ps.len());
        for &p in ps {
            if let Some(c) = children.get_mut(p) {
                c.push(child);
            }
        }
    }
    // Kahn's order from the topmost groups down: each entity once its
    // parents are done, with its depth and ancestors.
    let mut depth = vec![0usize; nodes.len()];
    let mut ancestors: Vec<Vec<u32>> = vec![Vec::new(); nodes.len()];
    let mut ready: Vec<usize> = (0..nodes.len())
        .filter(|&i| waiting.get(i) == Some(&0))
        .collect();
    let mut done = vec![false; nodes.len()];
    let (mut pairs, mut work) = (0usize, 0usize);
    let too_large = |node: &Node| {
        Diagnostic::at(
            node.span.clone(),
            format!(
                "the group hierarchy is too large: more than {MAX_ANCESTRY} (entity, ancestor) pairs by `{}`",
                node.key
            ),
        )
        .help("give entities fewer parents, or flatten the groups")
    };
    while let Some(i) = ready.pop() {
        let Some(node) = nodes.get(i) else { continue };
        let mut mine: Vec<u32> = Vec::new();
        let mut deepest = 0;
        for &p in parents.get(i).map_or(&[][..], Vec::as_slice) {
            deepest = deepest.max(depth.get(p).copied().unwrap_or(0) + 1);
            let theirs = ancestors.get(p).map_or(&[][..], Vec::as_slice);
            work += theirs.len() + 1;
            mine.push(u32::try_from(p).unwrap_or(u32::MAX));
            mine.extend_from_slice(theirs);
        }
        if work > 4 * MAX_ANCESTRY {
            return Err(too_large(node));
        }
        mine.sort_unstable();
        mine.dedup();
        pairs += mine.len();
        if pairs > MAX_ANCESTRY {
            return Err(too_large(node));
        }
        if deepest > MAX_HIERARCHY_DEPTH {
            return Err(Diagnostic::at(
                node.span.clone(),
                format!(
                    "`{}` is {deepest} parents below its topmost group; Cairn gives Cedar hierarchies at most {MAX_HIERARCHY_DEPTH} deep",
                    node.key
                ),
            )
            .label("too deep")
            .help("flatten the group hierarchy"));
        }
        if let Some(d) = depth.get_mut(i) {
            *d = deepest;
        }
        if let Some(a) = ancestors.get_mut(i) {
            *a = mine;
        }
        if let Some(d) = done.get_mut(i) {
            *d = true;
        }
        for &c in children.get(i).map_or(&[][..], Vec::as_slice) {
            if let Some(w) = waiting.get_mut(c) {
                *w -= 1;
                if *w == 0 {
                    ready.push(c);
                }
            }
        }
    }
    // What is left is on a cycle or below one: every such entity has a
    // parent that is left too, so following those parents finds a cycle.
    let Some(start) = done.iter().position(|d| !d) else {
        return Ok(());
    };
    let mut path = vec![start];
    let mut on_path = vec![usize::MAX; nodes.len()];
    if let Some(o) = on_path.get_mut(start) {
        *o = 0;
    }
    loop {
        let Some(&last) = path.last() else {
            return Ok(());
        };
        let next = parents.get(last).and_then(|ps| {
            ps.iter()
                .copied()
                .find(|&p| !done.get(p).copied().unwrap_or(true))
        });
        let Some(next) = next else { return Ok(()) };
        match on_path.get(next).copied() {
            Some(at) if at != usize::MAX => {
                let cycle = path.get(at..).unwrap_or_default();
                return Err(cycle_error(nodes, cycle));
            }
            _ => {
                if let Some(o) = on_path.get_mut(next) {
                    *o = path.len();
                }
                path.push(next);
            }
        }
    }
}

fn cycle_error(nodes: &[Node], cycle: &[usize]) -> Diagnostic {
    let name = |i: &usize| nodes.get(*i).map_or("?", |n| n.key.as_str());
    let mut shown: Vec<&str> = cycle.iter().take(5).map(name).collect();
    if cycle.len() > 5 {
        shown.push("…");
    }
    shown.push(cycle.first().map_or("?", name));
    let first = cycle.first().and_then(|i| nodes.get(*i));
    Diagnostic::at(
        first.map_or(0..0, |n| n.span.clone()),
        format!(
            "the parents form a cycle of {} entit{}: {}",
            cycle.len(),
            if cycle.len() == 1 { "y" } else { "ies" },
            shown.join(" → ")
        ),
    )
    .label("in a cycle")
    .help("a group cannot be inside itself: remove one of the parents")
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "tests fail loudly"
)]
mod tests {
    use super::*;

    fn policy(condition: &str) -> String {
        format!("permit(principal, action, resource) when {{ {condition} }};\n")
    }

    #[test]
    fn a_run_of_more_tasks_than_an_entities_file_may_hold_still_verifies() {
        let task = |i: usize| {
            serde_json::json!({
                "uid": { "type": "Cairn::Task", "id": format!("t{i}") },
                "attrs": {},
                "parents": [{ "type": "Cairn::Workflow", "id": "w" }],
            })
        };
        let recorded = Value::Array((0..MAX_ENTITIES + 2).map(task).collect());
        check_entities_value(&recorded).unwrap();
        let text = recorded.to_string();
        let d = check_entities_text(&text).unwrap_err();
        assert!(d.message.contains("at most 100000"), "{}", d.message);
    }

    #[test]
    fn ordinary_policies_pass() {
        let text = r#"
// A comment with ((( and "quotes
@id("a") permit (principal in Cairn::Group::"x", action == Cairn::Action::"run", resource)
when { context.path like "/v1/\*/x" && principal.labels.contains("pii") || !(1 + 2 < 3) }
unless { if context.run_by == Cairn::User::"a\u{e9}" then true else false };
forbid (principal, action, resource) when { [1, [2, {a: 3}]].contains(1) };
"#;
        check_policy_text(text).unwrap();
        check_policy_text(&policy(&"(".repeat(MAX_BRACKETS - 1))).unwrap();
        check_policy_text(&policy(&"if true then 1 else ".repeat(MAX_IFS - 1))).unwrap();
    }

    #[test]
    fn deep_brackets_ifs_and_chains_are_refused_where_they_are() {
        let deep = policy(&format!("{}true{}", "(".repeat(1000), ")".repeat(1000)));
        let d = check_policy_text(&deep).unwrap_err();
        assert!(d.message.contains("nested more than 64"), "{d:?}");
        // `{` and 63 parentheses are 64 levels: the next is refused.
        assert_eq!(d.span.unwrap().start, deep.find("((").unwrap() + 63);

        let ifs = policy(&format!("{}true", "if true then true else ".repeat(10_000)));
        let d = check_policy_text(&ifs).unwrap_err();
        assert!(d.message.contains("`if`s are nested"), "{d:?}");

        let ors = policy(&vec!["context.a == 1"; 6_000].join(" || "));
        let d = check_policy_text(&ors).unwrap_err();
        assert!(d.message.contains("operators are chained"), "{d:?}");

        // A chain spread over brackets counts along its path.
        let spread = policy(&format!(
            "({}) && {}",
            vec!["x.a"; 6_000].join(" || "),
            vec!["x.a"; 3_000].join(" && ")
        ));
        assert!(check_policy_text(&spread).is_err());

        // Many `when`s are one long conjunction.
        let whens = format!(
            "permit(principal, action, resource){};",
            " when { true }".repeat(20_000)
        );
        assert!(check_policy_text(&whens).is_err());
        // Many policies are not.
        let many = policy("x.a == 1 && x.b == 2").repeat(10_000);
        check_policy_text(&many).unwrap();
    }

    #[test]
    fn the_first_bad_escape_is_refused_at_its_place() {
        let text = policy(&format!(
            "context.a == \"ok {}\"",
            r"\u00e9".repeat(100_000)
        ));
        let d = check_policy_text(&text).unwrap_err();
        assert!(d.message.contains("invalid escape"), "{d:?}");
        assert!(text[d.span.unwrap()].starts_with(r"\u"));
        // `\*` only in a `like` pattern.
        check_policy_text(&policy(r#"context.a like "\*x""#)).unwrap();
        assert!(check_policy_text(&policy(r#"context.a == "\*x""#)).is_err());
    }

    fn chain(n: usize, cycle: bool) -> String {
        let mut items: Vec<String> = (0..n)
            .map(|i| {
                let parent = if i + 1 < n {
                    format!(r#"[{{"type":"Cairn::Group","id":"g{}"}}]"#, i + 1)
                } else if cycle {
                    r#"[{"type":"Cairn::Group","id":"g0"}]"#.to_owned()
                } else {
                    "[]".to_owned()
                };
                format!(r#"{{"uid":{{"type":"Cairn::Group","id":"g{i}"}},"attrs":{{}},"parents":{parent}}}"#)
            })
            .collect();
        items.push(r#"{"uid":{"type":"Cairn::User","id":"u"},"attrs":{},"parents":[{"type":"Cairn::Group","id":"g0"}]}"#.to_owned());
        format!("[\n{}\n]", items.join(",\n"))
    }

    #[test]
    fn hierarchies_are_bounded_and_acyclic() {
        check_entities_text(&chain(MAX_HIERARCHY_DEPTH, false)).unwrap();
        let deep = chain(1_000, false);
        let d = check_entities_text(&deep).unwrap_err();
        assert!(
            d.message.contains("parents below its topmost group"),
            "{d:?}"
        );

        let cycle = chain(10_000, true);
        let d = check_entities_text(&cycle).unwrap_err();
        assert!(d.message.contains("cycle of 10000 entities"), "{d:?}");
        assert!(d.message.contains("Cairn::Group::\"g0\""), "{d:?}");
        // It points at an entity in the file.
        assert_eq!(&cycle[d.span.unwrap()], "{");

        let selfish = r#"[{"uid":{"type":"Cairn::Group","id":"g"},"attrs":{},"parents":[{"type":"Cairn::Group","id":"g"}]}]"#;
        let d = check_entities_text(selfish).unwrap_err();
        assert!(d.message.contains("cycle of 1 entity"), "{d:?}");

        // Wide lattices: every entity under every group of the layer above.
        let mut lattice = Vec::new();
        for layer in 0..20 {
            for g in 0..100 {
                let parents: Vec<Value> = if layer == 0 {
                    Vec::new()
                } else {
                    (0..100)
                        .map(|p| serde_json::json!({"type": "Cairn::Group", "id": format!("{}-{p}", layer - 1)}))
                        .collect()
                };
                lattice.push(serde_json::json!({"uid": {"type": "Cairn::Group", "id": format!("{layer}-{g}")}, "attrs": {}, "parents": parents}));
            }
        }
        let d = check_entities_value(&Value::Array(lattice)).unwrap_err();
        assert!(d.message.contains("too large"), "{d:?}");
    }
}
