//! The languages example's Rust task, `report`: between it and the meter
//! export run a Python task (`../python/ingest.py`) and a JavaScript task
//! (`../js/profile.js`). It reads
//!
//! - `load`: per feeder, `{suppressed, reason?, meters, capacity_kw, peak:
//!   {time, kw}, peak_percent, over_capacity: [time], hours}` (from
//!   `profile`), and
//! - `rejects`: `[{line, reason}]` (from `ingest`),
//!
//! and writes `report`, in Markdown: each feeder's peak against its
//! capacity, the hours it was over, and which rows of the export were
//! refused.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use cairn_guest::{Error, Task, info, input, output};
use serde_json::Value;

struct Report;

impl Task for Report {
    fn run() -> cairn_guest::Result<()> {
        let load: Value = serde_json::from_str(&input::string("load")?)?;
        let rejects: Value = serde_json::from_str(&input::string("rejects")?)?;
        let (Some(load), Some(rejects)) = (load.as_object(), rejects.as_array()) else {
            return Err(Error::permanent(
                "`load` must be a JSON object and `rejects` a JSON array: were they written by profile and ingest?",
            ));
        };

        let mut md = String::from("# Feeder load, by hour\n\n");
        md.push_str(
            "| Feeder | Meters | Peak (kW) | At | Capacity (kW) | Peak / capacity | Hours over |\n",
        );
        md.push_str("|---|---:|---:|---|---:|---:|---:|\n");
        let mut overloaded = Vec::new();
        for (feeder, f) in load {
            let capacity = f["capacity_kw"].as_f64().unwrap_or(0.0);
            if f["suppressed"].as_bool() == Some(true) {
                let why = f["reason"].as_str().unwrap_or("too few meters");
                writeln!(
                    md,
                    "| {feeder} | — | suppressed: {why} | | {capacity:.1} | | |"
                )?;
                continue;
            }
            let over: Vec<&str> = f["over_capacity"]
                .as_array()
                .map(|hours| hours.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            writeln!(
                md,
                "| {feeder} | {} | {:.2} | {} | {capacity:.1} | {:.1}% | {} |",
                f["meters"].as_u64().unwrap_or(0),
                f.pointer("/peak/kw").and_then(Value::as_f64).unwrap_or(0.0),
                f.pointer("/peak/time")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                f["peak_percent"].as_f64().unwrap_or(0.0),
                over.len(),
            )?;
            if !over.is_empty() {
                overloaded.push((feeder, over));
            }
        }

        if overloaded.is_empty() {
            md.push_str("\nNo feeder went over its capacity.\n");
        }
        for (feeder, hours) in &overloaded {
            let hours: Vec<&str> = hours.iter().map(|t| t.get(11..16).unwrap_or(t)).collect();
            writeln!(
                md,
                "\n**{feeder} was over capacity** at {} (UTC).",
                hours.join(", ")
            )?;
        }

        writeln!(md, "\n## Rows refused ({})\n", rejects.len())?;
        for reject in rejects {
            writeln!(
                md,
                "- line {}: {}",
                reject["line"].as_u64().unwrap_or(0),
                reject["reason"].as_str().unwrap_or("?")
            )?;
        }

        info!(
            "rust: reported {} feeders, {} over capacity, {} rows refused",
            load.len(),
            overloaded.len(),
            rejects.len()
        );
        output::write("report", md)?;
        Ok(())
    }
}

cairn_guest::export!(Report);
