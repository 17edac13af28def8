//! The polyglot example's Rust tasks, one component with a step per `STEP`;
//! between them runs `count`, a task written in C (`../c/count.c`):
//!
//! - `words`: reads every text under `/texts` (mounted read-only), and
//!   writes `words`: each word, lower case, one per line;
//! - `summarize`: reads the C task's `counts` (`#total` line, then
//!   `count<TAB>word` lines) and writes a Markdown `summary`.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use cairn_guest::{Error, Task, info, input, output};

struct Step;

impl Task for Step {
    fn run() -> cairn_guest::Result<()> {
        match std::env::var("STEP").unwrap_or_default().as_str() {
            "words" => words(),
            "summarize" => summarize(),
            other => Err(Error::permanent(format!(
                "unknown STEP `{other}`: words or summarize"
            ))),
        }
    }
}

cairn_guest::export!(Step);

fn words() -> cairn_guest::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir("/texts")?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let mut words = String::new();
    let mut count = 0_usize;
    for name in &names {
        let text = std::fs::read_to_string(name)?;
        for word in text
            .split(|c: char| !c.is_alphanumeric() && c != '\'')
            .map(|w| w.trim_matches('\''))
            .filter(|w| !w.is_empty())
        {
            words.push_str(&word.to_lowercase());
            words.push('\n');
            count += 1;
        }
    }
    info!("{count} words in {} texts", names.len());
    output::write("words", words)?;
    Ok(())
}

fn summarize() -> cairn_guest::Result<()> {
    let counts = input::string("counts")?;
    let mut lines = counts.lines();
    let totals: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let (Some(&"#total"), Some(total), Some(distinct)) =
        (totals.first(), totals.get(1), totals.get(3))
    else {
        return Err(Error::permanent(
            "`counts` does not start with a `#total` line: was it written by count?",
        ));
    };
    let mut md = format!("# Word counts\n\n{total} words, {distinct} distinct.\n\n");
    md.push_str("| Word | Count | |\n|---|---:|---|\n");
    let rows: Vec<(u64, &str)> = lines
        .filter_map(|line| {
            let (n, word) = line.split_once('\t')?;
            Some((n.parse().ok()?, word))
        })
        .collect();
    let most = rows.first().map_or(1, |(n, _)| (*n).max(1));
    for (n, word) in &rows {
        let bar = "█".repeat(usize::try_from(n * 30 / most).unwrap_or(30));
        writeln!(md, "| {word} | {n} | {bar} |")?;
    }
    info!("summarized the top {} of {distinct} words", rows.len());
    output::write("summary", md)?;
    Ok(())
}
