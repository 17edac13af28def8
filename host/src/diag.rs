//! Diagnostics about input files: what is wrong, where, and what to do.
//!
//! Every check of a user's file (manifest today; policies later) reports
//! [`Diagnostic`]s with byte spans into the file's text, collected in
//! [`Diagnostics`] so that all problems are reported at once. Rendering is
//! miette's compiler-style output (file:line:column, the text underlined, a
//! help line); [`Diagnostics::to_json`] gives the same for machines. Pure: no
//! I/O, the caller prints.

use std::ops::Range;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

/// The most diagnostics rendered or listed; the rest are counted.
pub const MAX_SHOWN: usize = 50;

/// Lines longer than this (in bytes) are not drawn under a diagnostic:
/// it names the place and shows a little text around it instead. (miette
/// cannot draw past column 65,535, and a line of thousands of characters
/// under a caret helps no one.)
pub const MAX_DRAWN_LINE: usize = 1_000;

/// The line of `source` holding byte `offset`, as a byte range.
fn line_around(source: &str, offset: usize) -> Range<usize> {
    let offset = offset.min(source.len());
    let bytes = source.as_bytes();
    let start = bytes
        .get(..offset)
        .and_then(|b| b.iter().rposition(|c| *c == b'\n'))
        .map_or(0, |i| i + 1);
    let end = bytes
        .get(offset..)
        .and_then(|b| b.iter().position(|c| *c == b'\n'))
        .map_or(source.len(), |i| offset + i);
    start..end
}

/// A little of `source` around byte `offset`, on one line, printable.
fn excerpt(source: &str, offset: usize) -> String {
    let line = line_around(source, offset);
    let mut from = offset.saturating_sub(30).max(line.start);
    while !source.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (offset + 30).min(line.end);
    while !source.is_char_boundary(to) {
        to += 1;
    }
    let text: String = source
        .get(from..to)
        .unwrap_or_default()
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    format!(
        "{}{text}{}",
        if from > line.start { "…" } else { "" },
        if to < line.end { "…" } else { "" }
    )
}

/// One problem in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// Where, as a byte range of the source (empty range: a position).
    pub span: Option<Range<usize>>,
    /// Text under the underline.
    pub label: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
    /// Other places that explain the problem (e.g. the rest of a cycle).
    pub related: Vec<(Range<usize>, String)>,
}

impl Diagnostic {
    /// A problem at `span`.
    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: Some(span),
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    /// A problem with the file as a whole.
    pub fn whole_file(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    /// Set the text under the underline.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Set what to do about it.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Add another place that explains the problem.
    #[must_use]
    pub fn related(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related.push((span, label.into()));
        self
    }
}

/// All problems found in one file, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

/// A 1-based line and column (in characters) of a byte offset.
#[must_use]
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

impl Diagnostics {
    /// Record a problem.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    /// Whether nothing was found.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Render like a compiler: `file:line:column`, the source underlined, help.
    #[must_use]
    pub fn render(&self, file: &str, source: &str, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_links(false);
        let mut out = String::new();
        for diagnostic in self.0.iter().take(MAX_SHOWN) {
            let long = |span: &Range<usize>| {
                [span.start, span.end]
                    .iter()
                    .any(|at| line_around(source, *at).len() > MAX_DRAWN_LINE)
            };
            let drawn = diagnostic
                .span
                .as_ref()
                .is_none_or(|span| !long(span) && diagnostic.related.iter().all(|(r, _)| !long(r)));
            // Without a span miette shows no location: name the file at least.
            let message = match &diagnostic.span {
                Some(_) if drawn => diagnostic.message.clone(),
                Some(span) => {
                    let (line, column) = line_col(source, span.start);
                    format!(
                        "{file}:{line}:{column}: {}\n  near: {}",
                        diagnostic.message,
                        excerpt(source, span.start)
                    )
                }
                None => format!("{file}: {}", diagnostic.message),
            };
            let mut report = MietteDiagnostic::new(message);
            if let Some(span) = diagnostic.span.as_ref().filter(|_| drawn) {
                let primary =
                    LabeledSpan::new_primary_with_span(diagnostic.label.clone(), span.clone());
                report = report.and_label(primary);
            }
            for (span, label) in diagnostic.related.iter().filter(|_| drawn) {
                report = report.and_label(LabeledSpan::new_with_span(
                    Some(label.clone()),
                    span.clone(),
                ));
            }
            if let Some(help) = &diagnostic.help {
                report = report.with_help(help.clone());
            }
            let report = if drawn {
                miette::Report::new(report)
                    .with_source_code(NamedSource::new(file, source.to_owned()))
            } else {
                miette::Report::new(report)
            };
            if handler.render_report(&mut out, report.as_ref()).is_err() {
                // Rendering into a String cannot fail; keep the message at least.
                out.push_str(&diagnostic.message);
            }
            out.push('\n');
        }
        if self.0.len() > MAX_SHOWN {
            out.push_str(&format!(
                "… and {} more problems\n",
                self.0.len() - MAX_SHOWN
            ));
        }
        out
    }

    /// The same problems for machines: file, line, column, end, message,
    /// label, help.
    #[must_use]
    pub fn to_json(&self, file: &str, source: &str) -> serde_json::Value {
        let items: Vec<serde_json::Value> = self
            .0
            .iter()
            .map(|d| {
                let (start, end) = match &d.span {
                    Some(span) => (
                        Some(line_col(source, span.start)),
                        Some(line_col(source, span.end)),
                    ),
                    None => (None, None),
                };
                serde_json::json!({
                    "file": file,
                    "line": start.map(|p| p.0),
                    "column": start.map(|p| p.1),
                    "end_line": end.map(|p| p.0),
                    "end_column": end.map(|p| p.1),
                    "message": d.message,
                    "label": d.label,
                    "help": d.help,
                })
            })
            .collect();
        serde_json::Value::Array(items)
    }
}

/// The candidate closest to `word`, if close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        // Cheap filter first: names of very different lengths are no typo.
        if candidate.len().abs_diff(word.len()) > 3 {
            continue;
        }
        let distance = strsim::damerau_levenshtein(word, candidate);
        let threshold = (word.chars().count().max(candidate.chars().count()) / 3).max(1);
        if distance <= threshold && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "tests fail loudly by design")]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // after "bé " (é is two bytes)
        assert_eq!(line_col(text, 10), (2, 4));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn suggestions_only_for_likely_typos() {
        let names = ["extract", "anonymize", "load"];
        assert_eq!(did_you_mean("extarct", names), Some("extract"));
        assert_eq!(did_you_mean("lod", names), Some("load"));
        assert_eq!(did_you_mean("report", names), None);
    }

    #[test]
    fn a_place_on_a_very_long_line_is_named_not_drawn() {
        let source = format!("a = 1\n{}oops = 2\n", " ".repeat(70_000));
        let at = source.find("oops").unwrap();
        let mut diags = Diagnostics::default();
        diags.push(
            Diagnostic::at(at..at + 4, "unknown field `oops`")
                .label("here")
                .related(0..1, "and here")
                .help("remove it"),
        );
        let text = diags.render("w.toml", &source, false);
        assert!(
            text.contains("w.toml:2:70001: unknown field `oops`"),
            "{text}"
        );
        assert!(text.contains("near: …"), "{text}");
        assert!(text.contains("oops = 2"), "{text}");
        assert!(text.contains("remove it"), "{text}");
        assert!(text.len() < 1_000, "{text}");
    }

    #[test]
    fn renders_location_underline_and_help() {
        let source = "[tasks.a]\ncomponet = \"a.wasm\"\n";
        let mut diags = Diagnostics::default();
        diags.push(
            Diagnostic::at(10..18, "unknown field `componet`")
                .label("here")
                .help("did you mean `component`?"),
        );
        let text = diags.render("w.toml", source, false);
        assert!(text.contains("w.toml:2:1"), "{text}");
        assert!(text.contains("unknown field `componet`"), "{text}");
        assert!(text.contains("did you mean `component`?"), "{text}");
        let json = diags.to_json("w.toml", source);
        assert_eq!(json[0]["line"], 2);
        assert_eq!(json[0]["column"], 1);
    }
}
