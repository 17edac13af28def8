//! The layout of policy files: what `cairn policy fmt` writes.
//!
//! [`format`] lays out one `*.cedar` file as `cedar format` does: Cedar's
//! own formatter library with its default settings (lines of 80 columns,
//! indents of two spaces). Only whitespace and line breaks change, comments
//! are kept, and the formatter itself refuses a result that does not parse
//! to the same policies. [`find`] lists the policy files under a path, and
//! [`Change`] says where a formatted text first differs from the original.
//!
//! Nothing here writes a file (the command does, atomically) or decides
//! anything. A text goes through [`bounds`] before Cedar sees it, as every
//! policy text does.

use std::path::{Path, PathBuf};

use cedar_policy::PolicySet;
use cedar_policy_formatter::{Config, policies_str_to_pretty};

use super::{bounds, from_cedar};
use crate::diag::Diagnostics;

/// The file name ending of policy files.
pub const SUFFIX: &str = ".cedar";

/// At most this many lines of each side of a [`Change`] are kept.
const SHOWN_LINES: usize = 4;

/// `source` laid out as `cedar format` lays it out (Cedar's formatter with
/// its defaults); the same text if it is already.
///
/// # Errors
///
/// The problems of a text that does not parse as Cedar policies, or is past
/// the limits of [`bounds`], each at its place in `source`.
pub fn format(source: &str) -> Result<String, Diagnostics> {
    if let Err(problem) = bounds::check_policy_text(source) {
        return Err(Diagnostics(vec![problem]));
    }
    // The formatter stops at its parser's first error; Cedar's own parser
    // (the same grammar) names them all, as `cairn policy validate` does.
    if let Err(errors) = source.parse::<PolicySet>() {
        return Err(Diagnostics(
            errors.iter().map(|error| from_cedar(error)).collect(),
        ));
    }
    policies_str_to_pretty(source, &Config::default()).map_err(|report| {
        let message = report
            .chain()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        let mut diagnostic = from_cedar(report.as_ref());
        diagnostic.message = format!("Cedar's formatter cannot lay out the policies: {message}");
        Diagnostics(vec![diagnostic])
    })
}

/// Where a formatted text first differs from its original, and a few lines
/// of each around there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The first line (1-based) of the original that differs.
    pub line: usize,
    /// Up to [`SHOWN_LINES`] lines of the original from there.
    pub old: Vec<String>,
    /// Up to [`SHOWN_LINES`] lines of the formatted text from there.
    pub new: Vec<String>,
    /// Whether more lines differ than are shown.
    pub more: bool,
}

impl Change {
    /// How `formatted` differs from `original`, or `None` if it does not.
    /// The lines shown are those between the lines both texts begin and
    /// end with.
    #[must_use]
    pub fn between(original: &str, formatted: &str) -> Option<Self> {
        if original == formatted {
            return None;
        }
        // Lines with their newlines, so a missing or extra last newline
        // counts as a difference too.
        let old: Vec<&str> = original.split_inclusive('\n').collect();
        let new: Vec<&str> = formatted.split_inclusive('\n').collect();
        let same_start = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
        let rest = old.len().min(new.len()) - same_start;
        let same_end = old
            .iter()
            .rev()
            .zip(new.iter().rev())
            .take(rest)
            .take_while(|(a, b)| a == b)
            .count();
        let middle = |lines: &[&str]| -> Vec<String> {
            let end = lines.len() - same_end;
            lines
                .iter()
                .take(end)
                .skip(same_start)
                .map(|line| line.strip_suffix('\n').unwrap_or(line).to_owned())
                .collect()
        };
        let (old, new) = (middle(&old), middle(&new));
        let more = old.len() > SHOWN_LINES || new.len() > SHOWN_LINES;
        let shown = |mut lines: Vec<String>| {
            lines.truncate(SHOWN_LINES);
            lines
        };
        Some(Self {
            line: same_start + 1,
            old: shown(old),
            new: shown(new),
            more,
        })
    }
}

/// `path` if it is a file, else every `*.cedar` file under it (skipping
/// `target/` and hidden folders), sorted.
///
/// # Errors
///
/// A path or folder that cannot be read.
pub fn find(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    super::files_under(path, SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSY: &str = "// who may run what\n@id(\"anyone-runs\")\npermit(principal,action==Cairn::Action::\"run\",resource)   ;\n\n\n\
                         forbid (principal, action, resource) when { context.run_by == Cairn::User::\"mallory\" } ; // nobody trusts mallory\n";

    #[test]
    fn lays_out_as_cedar_format_does_and_keeps_comments() {
        let formatted = format(MESSY).unwrap();
        assert_eq!(
            formatted,
            "// who may run what\n\
             @id(\"anyone-runs\")\n\
             permit (\n\
             \x20 principal,\n\
             \x20 action == Cairn::Action::\"run\",\n\
             \x20 resource\n\
             );\n\
             \n\
             forbid (principal, action, resource)\n\
             when { context.run_by == Cairn::User::\"mallory\" }; // nobody trusts mallory\n"
        );
    }

    #[test]
    fn comments_anywhere_are_kept() {
        let source = "// head\n\n@id(\"a\") // after the id\nforbid (principal, action, resource) when {\n  \
                      // inside\n  context.run_by == Cairn::User::\"mallory\" // trailing\n};\n// at the end\n";
        let formatted = format(source).unwrap();
        for comment in [
            "// head",
            "// after the id",
            "// inside",
            "// trailing",
            "// at the end",
        ] {
            assert!(formatted.contains(comment), "{comment} lost:\n{formatted}");
        }
    }

    #[test]
    fn formatting_twice_changes_nothing_more() {
        let once = format(MESSY).unwrap();
        assert_eq!(format(&once).unwrap(), once);
    }

    #[test]
    fn a_text_that_does_not_parse_is_refused_where_it_goes_wrong() {
        let source =
            "permit (principal, action, resource);\nforbid (principal, action resource);\n";
        let problems = format(source).unwrap_err();
        let first = problems.0.first().unwrap();
        let span = first.span.clone().unwrap();
        assert_eq!(crate::diag::line_col(source, span.start).0, 2);
    }

    #[test]
    fn a_text_past_the_limits_is_refused_before_cedar_sees_it() {
        let deep = format!(
            "permit (principal, action, resource) when {{ {}true{} }};\n",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let problems = format(&deep).unwrap_err();
        assert!(problems.0.first().unwrap().message.contains("nested"));
    }

    #[test]
    fn a_change_starts_at_the_first_line_that_differs() {
        assert_eq!(Change::between("a\nb\n", "a\nb\n"), None);
        let change = Change::between("a\nb  \nc\n", "a\nb\nc\n").unwrap();
        assert_eq!(change.line, 2);
        assert_eq!(change.old, ["b  "]);
        assert_eq!(change.new, ["b"]);
        assert!(!change.more);
        let change = Change::between("x\n", "x\n\n").unwrap();
        assert_eq!((change.line, change.old.len(), change.new.len()), (2, 0, 1));
    }

    #[test]
    fn a_long_change_shows_a_few_lines() {
        let old = "1\n2\n3\n4\n5\n6\n";
        let new = "1 \n2 \n3 \n4 \n5 \n6\n";
        let change = Change::between(old, new).unwrap();
        assert_eq!(change.line, 1);
        assert_eq!(change.old.len(), SHOWN_LINES);
        assert!(change.more);
    }
}
