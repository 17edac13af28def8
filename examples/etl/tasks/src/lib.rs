//! The ETL example's tasks, one component with a step per `STEP`:
//!
//! - `extract`: reads the raw export (mounted read-only at `/data`) and
//!   splits it into `orders` (what was bought, when, by which customer id)
//!   and `customers` (who they are: name, email, phone, address, birth
//!   date) — the manifest labels `customers` `pii`;
//! - `validate`: checks every order (date, quantity, price, currency, SKU,
//!   unique id) and writes the `valid` ones and the `rejects` with reasons;
//!   fails if more than `MAX_REJECT_PERCENT` (default 5) are rejected;
//! - `anonymize`: turns `customers` into `segments` that identify no one —
//!   customer id (an opaque key), country, region (first two digits of the
//!   postal code) and age band; names, emails, phones and streets are
//!   dropped. Policy lets this task, and only it, drop the `pii` label;
//! - `aggregate`: joins `valid` orders with `segments` into `totals` (JSON):
//!   revenue in EUR by month, country, age band and SKU;
//! - `report`: renders `totals` and `rejects` as a Markdown `report`.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use cairn_guest::{Error, Task, info, input, output, warn};
use serde_json::{Value, json};

struct Step;

impl Task for Step {
    fn run() -> cairn_guest::Result<()> {
        let step = std::env::var("STEP").unwrap_or_default();
        match step.as_str() {
            "extract" => extract(),
            "validate" => validate(),
            "anonymize" => anonymize(),
            "aggregate" => aggregate(),
            "report" => report(),
            other => Err(Error::permanent(format!(
                "unknown STEP `{other}`: extract, validate, anonymize, aggregate or report"
            ))),
        }
    }
}

cairn_guest::export!(Step);

/// Columns of the `orders` output.
const ORDER_COLUMNS: [&str; 8] = [
    "order_id",
    "order_date",
    "customer_id",
    "sku",
    "quantity",
    "unit_price",
    "currency",
    "country",
];
/// Columns of the `customers` output (personal data).
const CUSTOMER_COLUMNS: [&str; 9] = [
    "customer_id",
    "customer_name",
    "email",
    "phone",
    "street",
    "postal_code",
    "city",
    "country",
    "birth_date",
];
/// Columns of the `segments` output: nothing that identifies a person.
const SEGMENT_COLUMNS: &[&str] = &["customer_id", "country", "region", "age_band"];

/// A CSV file: a header and rows of fields (RFC 4180 quoting).
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn parse(what: &str, text: &str) -> cairn_guest::Result<Self> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                ('"', true) => quoted = false,
                ('"', false) if field.is_empty() => quoted = true,
                (',', false) => record.push(std::mem::take(&mut field)),
                ('\n', false) => {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                ('\r', false) if chars.peek() == Some(&'\n') => {}
                (c, _) => field.push(c),
            }
        }
        if quoted {
            return Err(Error::permanent(format!(
                "{what}: unterminated quoted field"
            )));
        }
        if !field.is_empty() || !record.is_empty() {
            record.push(field);
            records.push(record);
        }
        let mut records = records.into_iter();
        let header = records
            .next()
            .ok_or_else(|| Error::permanent(format!("{what} is empty: expected a CSV header")))?;
        let rows: Vec<_> = records.collect();
        for (n, row) in rows.iter().enumerate() {
            if row.len() != header.len() {
                return Err(Error::permanent(format!(
                    "{what}, line {}: {} fields, the header has {}",
                    n + 2,
                    row.len(),
                    header.len()
                )));
            }
        }
        Ok(Self { header, rows })
    }

    fn read(name: &str) -> cairn_guest::Result<Self> {
        Self::parse(&format!("input `{name}`"), &input::string(name)?)
    }

    /// The index of each of `names`, or an error naming the first missing.
    fn columns<const N: usize>(&self, names: [&str; N]) -> cairn_guest::Result<[usize; N]> {
        let mut found = [0; N];
        for (slot, name) in found.iter_mut().zip(names) {
            *slot = self
                .header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| Error::permanent(format!("no `{name}` column")))?;
        }
        Ok(found)
    }
}

/// A row's field by column index (rows are checked to be as wide as the header).
fn at(row: &[String], column: usize) -> &str {
    row.get(column).map_or("", String::as_str)
}

/// The fields of `row` at `columns`, in that order.
fn pick<'a>(row: &'a [String], columns: &[usize]) -> Vec<&'a str> {
    columns.iter().map(|&c| at(row, c)).collect()
}

/// Render rows as CSV, quoting fields that need it.
fn csv<'a>(header: &[&str], rows: impl IntoIterator<Item = Vec<&'a str>>) -> String {
    fn field(out: &mut String, value: &str) {
        if value.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&value.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    let mut out = header.join(",");
    out.push('\n');
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, value);
        }
        out.push('\n');
    }
    out
}

fn extract() -> cairn_guest::Result<()> {
    let path = std::env::var("SOURCE").unwrap_or_else(|_| "/data/orders.csv".to_owned());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::permanent(format!("cannot read `{path}`: {e}")))?;
    let table = Table::parse(&path, &text)?;
    let order = table.columns(ORDER_COLUMNS)?;
    let customer = table.columns(CUSTOMER_COLUMNS)?;
    let orders: Vec<Vec<&str>> = table.rows.iter().map(|r| pick(r, &order)).collect();
    // One row per customer, as first seen.
    let mut seen = BTreeSet::new();
    let customers: Vec<Vec<&str>> = table
        .rows
        .iter()
        .map(|r| pick(r, &customer))
        .filter(|c| seen.insert(c.first().copied().unwrap_or_default()))
        .collect();
    info!(
        "extracted {} orders of {} customers from {path}",
        orders.len(),
        customers.len()
    );
    output::write("orders", csv(&ORDER_COLUMNS, orders))?;
    output::write("customers", csv(&CUSTOMER_COLUMNS, customers))?;
    Ok(())
}

/// Currencies the pipeline knows, with their EUR rate.
fn eur_rate(currency: &str) -> Option<f64> {
    match currency {
        "EUR" => Some(1.0),
        "SEK" => Some(0.087),
        _ => None,
    }
}

/// Why an order is invalid, if it is.
fn problem(order: &[String], columns: &[usize; 7], ids: &mut BTreeSet<String>) -> Option<String> {
    let [id, date, customer, sku, quantity, price, currency] = columns.map(|c| at(order, c));
    if !ids.insert(id.to_owned()) {
        return Some(format!("duplicate order id {id}"));
    }
    let mut parts = date.split('-').map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(1900..=2100)), Some(Ok(1..=12)), Some(Ok(1..=31)), None) => {}
        _ => return Some(format!("invalid date `{date}`")),
    }
    if customer.is_empty() {
        return Some("no customer".to_owned());
    }
    if sku.is_empty() {
        return Some("no SKU".to_owned());
    }
    match quantity.parse::<i64>() {
        Ok(q) if q > 0 => {}
        _ => return Some(format!("quantity `{quantity}` is not a positive number")),
    }
    match price.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => {}
        _ => return Some(format!("invalid unit price `{price}`")),
    }
    if eur_rate(currency).is_none() {
        return Some(format!("unknown currency `{currency}`"));
    }
    None
}

fn validate() -> cairn_guest::Result<()> {
    let orders = Table::read("orders")?;
    let columns = orders.columns([
        "order_id",
        "order_date",
        "customer_id",
        "sku",
        "quantity",
        "unit_price",
        "currency",
    ])?;
    let [id] = orders.columns(["order_id"])?;
    let mut ids = BTreeSet::new();
    let mut valid = Vec::new();
    let mut rejects = Vec::new();
    for row in &orders.rows {
        match problem(row, &columns, &mut ids) {
            None => valid.push(row.iter().map(String::as_str).collect()),
            Some(reason) => rejects.push((at(row, id).to_owned(), reason)),
        }
    }
    let header: Vec<&str> = orders.header.iter().map(String::as_str).collect();
    let max: f64 = std::env::var("MAX_REJECT_PERCENT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5.0);
    let total = orders.rows.len().max(1);
    let percent = rejects.len() as f64 * 100.0 / total as f64;
    for (id, reason) in &rejects {
        warn!("rejected {id}: {reason}");
    }
    info!(
        "{} valid orders, {} rejected ({percent:.1}%)",
        valid.len(),
        rejects.len()
    );
    if percent > max {
        return Err(Error::permanent(format!(
            "{percent:.1}% of the orders are invalid, more than MAX_REJECT_PERCENT={max}: \
             fix the export (see the warnings) or raise the threshold"
        )));
    }
    output::write("valid", csv(&header, valid))?;
    output::write(
        "rejects",
        csv(
            &["order_id", "reason"],
            rejects.iter().map(|(id, r)| vec![id.as_str(), r.as_str()]),
        ),
    )?;
    Ok(())
}

/// The age band of someone born on `birth_date` (YYYY-MM-DD), as of `year`.
fn age_band(birth_date: &str, year: i64) -> &'static str {
    let Some(Ok(born)) = birth_date.split('-').next().map(str::parse::<i64>) else {
        return "unknown";
    };
    match year - born {
        ..18 => "under 18",
        18..=29 => "18-29",
        30..=44 => "30-44",
        45..=59 => "45-59",
        _ => "60+",
    }
}

fn anonymize() -> cairn_guest::Result<()> {
    let customers = Table::read("customers")?;
    let [id, country, postal, birth] =
        customers.columns(["customer_id", "country", "postal_code", "birth_date"])?;
    let year = std::env::var("AS_OF_YEAR")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2026);
    let segments: Vec<[String; 4]> = customers
        .rows
        .iter()
        .map(|row| {
            [
                at(row, id).to_owned(),
                at(row, country).to_owned(),
                at(row, postal).chars().take(2).collect(),
                age_band(at(row, birth), year).to_owned(),
            ]
        })
        .collect();
    info!(
        "{} customers reduced to id, country, region and age band; {} columns dropped",
        segments.len(),
        customers.header.len() - SEGMENT_COLUMNS.len()
    );
    output::write(
        "segments",
        csv(
            SEGMENT_COLUMNS,
            segments
                .iter()
                .map(|s| s.iter().map(String::as_str).collect()),
        ),
    )?;
    Ok(())
}

/// Adds `amount` to `key`'s revenue and one to its order count.
fn add(totals: &mut BTreeMap<String, (f64, u64)>, key: &str, amount: f64) {
    let entry = totals.entry(key.to_owned()).or_insert((0.0, 0));
    entry.0 += amount;
    entry.1 += 1;
}

fn as_json(totals: &BTreeMap<String, (f64, u64)>) -> Value {
    Value::Array(
        totals
            .iter()
            .map(|(key, (revenue, orders))| {
                json!({ "key": key, "revenue_eur": (revenue * 100.0).round() / 100.0, "orders": orders })
            })
            .collect(),
    )
}

fn aggregate() -> cairn_guest::Result<()> {
    let orders = Table::read("valid")?;
    let segments = Table::read("segments")?;
    let [s_id, s_band] = segments.columns(["customer_id", "age_band"])?;
    let band: BTreeMap<&str, &str> = segments
        .rows
        .iter()
        .map(|r| (at(r, s_id), at(r, s_band)))
        .collect();
    let [date, customer, sku, quantity, price, currency, country] = orders.columns([
        "order_date",
        "customer_id",
        "sku",
        "quantity",
        "unit_price",
        "currency",
        "country",
    ])?;
    let mut by = [(); 4].map(|()| BTreeMap::new());
    let mut customers = BTreeSet::new();
    let mut revenue = 0.0;
    for row in &orders.rows {
        let qty: f64 = at(row, quantity).parse().unwrap_or(0.0);
        let unit: f64 = at(row, price).parse().unwrap_or(0.0);
        let amount = qty * unit * eur_rate(at(row, currency)).unwrap_or(0.0);
        revenue += amount;
        customers.insert(at(row, customer));
        let month = at(row, date).get(..7).unwrap_or("unknown");
        let age = band.get(at(row, customer)).copied().unwrap_or("unknown");
        let [m, c, a, s] = &mut by;
        add(m, month, amount);
        add(c, at(row, country), amount);
        add(a, age, amount);
        add(s, at(row, sku), amount);
    }
    let [by_month, by_country, by_age, by_sku] = by;
    let count = orders.rows.len();
    let average = if count == 0 {
        0.0
    } else {
        revenue / count as f64
    };
    let totals = json!({
        "orders": count,
        "customers": customers.len(),
        "revenue_eur": (revenue * 100.0).round() / 100.0,
        "average_order_eur": (average * 100.0).round() / 100.0,
        "by_month": as_json(&by_month),
        "by_country": as_json(&by_country),
        "by_age_band": as_json(&by_age),
        "by_sku": as_json(&by_sku),
    });
    info!(
        "{count} orders, {} customers, EUR {revenue:.2}",
        customers.len()
    );
    output::write("totals", serde_json::to_vec_pretty(&totals)?)?;
    Ok(())
}

fn report() -> cairn_guest::Result<()> {
    let totals: Value = serde_json::from_str(&input::string("totals")?)?;
    let rejects = Table::read("rejects")?;
    let number = |key: &str| totals.get(key).cloned().unwrap_or(Value::Null);
    let mut md = String::from("# Orders report\n\n");
    writeln!(
        md,
        "{} valid orders from {} customers, EUR {} in all (EUR {} per order on average).\n",
        number("orders"),
        number("customers"),
        number("revenue_eur"),
        number("average_order_eur")
    )?;
    for (key, title) in [
        ("by_month", "Month"),
        ("by_country", "Country"),
        ("by_age_band", "Age band"),
        ("by_sku", "SKU"),
    ] {
        writeln!(md, "## By {}\n", title.to_lowercase())?;
        writeln!(md, "| {title} | Orders | Revenue (EUR) |\n|---|---:|---:|")?;
        for row in totals
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let field = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
            let key = field("key");
            writeln!(
                md,
                "| {} | {} | {:.2} |",
                key.as_str().unwrap_or_default(),
                field("orders"),
                field("revenue_eur").as_f64().unwrap_or_default()
            )?;
        }
        md.push('\n');
    }
    writeln!(md, "## Rejected orders ({})\n", rejects.rows.len())?;
    let [id, reason] = rejects.columns(["order_id", "reason"])?;
    for row in &rejects.rows {
        writeln!(md, "- {}: {}", at(row, id), at(row, reason))?;
    }
    info!("report: {} bytes", md.len());
    output::write("report", md)?;
    Ok(())
}
