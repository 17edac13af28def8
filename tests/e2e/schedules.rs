//! Schedules in the real daemon: ticks start runs as the schedule's
//! principal when policy allows, every tick that starts nothing is
//! recorded with why, pauses are decided and recorded, missed ticks are
//! caught up as the schedule says, and a `kill -9` between a tick and its
//! run yields that run exactly once. (When ticks fall is tested against
//! DST tables in `cairn::serve::schedule`, without a clock.)

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use crate::serve::{Daemon, assert_log_verifies, kinds, log, token, wait_for, workflow};
use crate::support::{Scratch, cairn};

/// The audit log as it is now, while the daemon may be writing (a line
/// being written is left out).
fn live_log(s: &Scratch) -> Vec<Value> {
    std::fs::read_to_string(s.path().join(".cairn/audit/log.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The `tick` records of schedule `schedule`.
fn ticks<'a>(log: &'a [Value], schedule: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|r| r["kind"] == "tick" && r["schedule"] == schedule)
        .collect()
}

fn why<'a>(log: &'a [Value], schedule: &str, why: &str) -> Vec<&'a Value> {
    ticks(log, schedule)
        .into_iter()
        .filter(|t| t["why"] == why)
        .collect()
}

fn run_ticks<'a>(log: &'a [Value], schedule: &str) -> Vec<&'a Value> {
    ticks(log, schedule)
        .into_iter()
        .filter(|t| t["decision"] == "run")
        .collect()
}

/// Every run a tick started has at most one `run-started`, and no two
/// ticks of a schedule started a run for the same nominal time.
#[track_caller]
fn assert_each_tick_ran_once(all: &[Value], schedule: &str) {
    let mut nominal = HashSet::new();
    for tick in run_ticks(all, schedule) {
        assert!(
            nominal.insert(tick["nominal"].as_str().unwrap().to_owned()),
            "tick {} of {schedule} ran twice",
            tick["nominal"]
        );
        let run = tick["starts"].as_str().unwrap();
        assert!(
            kinds(all, run, "run-started").len() <= 1,
            "run {run} started twice"
        );
    }
}

#[test]
fn a_schedule_runs_as_its_principal_and_every_tick_is_recorded_with_why() {
    let s = Scratch::new();
    // `a` takes 1.5 s: a per-second schedule overlaps itself.
    workflow(&s, 1500, 0, "");
    s.append(
        "workflow.toml",
        r#"
[schedules.every]
cron = "* * * * * *"
as = "scheduler"
params = { day = "tick" }

[schedules.intruder]
cron = "* * * * * *"
as = "mallory"
"#,
    );
    let alice = token(&s, "alice");
    let bob = token(&s, "bob");
    let d = Daemon::start(&s);
    wait_for(|| {
        let all = live_log(&s);
        let finished = run_ticks(&all, "every")
            .iter()
            .any(|t| !kinds(&all, t["starts"].as_str().unwrap(), "run-finished").is_empty());
        finished
            && !why(&all, "every", "overlap").is_empty()
            && !why(&all, "intruder", "denied").is_empty()
    });

    let (code, body) = d.get("/v1/workflows/pair/schedules", &alice);
    assert_eq!(code, 200, "{body}");
    let every = &body["schedules"][0];
    assert_eq!(every["name"], "every");
    assert_eq!(every["as"], "scheduler");
    assert_eq!(every["timezone"], "UTC");
    assert_eq!(every["paused"], false);
    assert!(every["next"].is_string(), "{every}");
    assert!(every["last"]["decision"].is_string(), "{every}");
    assert!(!every["tzdb"].as_str().unwrap().is_empty());

    // Pausing is an action of its own: Bob may read, not pause; a schedule
    // that does not exist looks the same.
    let pause = "/v1/workflows/pair/schedules/every/pause";
    let (code, body) = d.call("POST", pause, Some(&bob), None);
    assert_eq!(code, 403, "{body}");
    let (code, nothing) = d.call(
        "POST",
        "/v1/workflows/pair/schedules/nope/pause",
        Some(&alice),
        None,
    );
    assert_eq!((code, &nothing), (403, &body));
    let (code, body) = d.call("POST", pause, Some(&alice), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["paused"], true);
    wait_for(|| !why(&live_log(&s), "every", "paused").is_empty());
    let (_, body) = d.get("/v1/workflows/pair/schedules", &alice);
    assert_eq!(body["schedules"][0]["paused"], true);
    let (code, body) = d.call(
        "POST",
        "/v1/workflows/pair/schedules/every/resume",
        Some(&alice),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let resumed_at = live_log(&s)
        .iter()
        .rfind(|r| r["kind"] == "pause")
        .map(|r| r["seq"].as_u64().unwrap())
        .unwrap();
    wait_for(|| {
        run_ticks(&live_log(&s), "every")
            .iter()
            .any(|t| t["seq"].as_u64().unwrap() > resumed_at)
    });
    // The CLI client: list, and a pause policy denies (exit 3).
    let client = |token: &str, args: &[&str]| {
        cairn()
            .current_dir(s.path())
            .env("CAIRN_SERVER", d.server())
            .env("CAIRN_TOKEN", token)
            .args(args)
            .output()
            .unwrap()
    };
    let listed = client(&alice, &["schedules", "list", "pair"]);
    assert_eq!(listed.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("every") && listed.contains("* * * * * *"),
        "{listed}"
    );
    let denied = client(&bob, &["schedules", "pause", "pair", "every"]);
    assert_eq!(denied.status.code(), Some(3));
    let (code, _) = d.term();
    assert_eq!(code, 0);

    let all = log(&s);
    let pauses: Vec<&Value> = all.iter().filter(|r| r["kind"] == "pause").collect();
    assert_eq!(pauses.len(), 2);
    assert_eq!(pauses[0]["paused"], true);
    assert_eq!(pauses[0]["user"], "alice");
    let access = &all[pauses[0]["access"].as_u64().unwrap() as usize];
    assert_eq!(access["action"], "pause_schedule");
    assert_eq!(access["decision"], "allow");
    // Each run tick: allowed first, as the schedule's principal; its trigger
    // names it; its run started once, with the schedule's parameters.
    let started = run_ticks(&all, "every");
    assert!(!started.is_empty());
    for tick in &started {
        let seq = tick["seq"].as_u64().unwrap();
        let access = &all[tick["access"].as_u64().unwrap() as usize];
        assert_eq!(access["kind"], "access");
        assert_eq!(access["decision"], "allow");
        assert_eq!(access["principal"]["id"], "scheduler");
        assert_eq!(access["context"]["via"], "schedule");
        assert!(access["seq"].as_u64().unwrap() < seq);
        let run = tick["starts"].as_str().unwrap();
        let trigger = all
            .iter()
            .find(|r| r["kind"] == "trigger" && r["starts"] == run)
            .expect("a trigger for the tick's run");
        assert_eq!(trigger["cause"], seq);
        assert_eq!(trigger["source"], "every");
        assert_eq!(trigger["via"], "schedule");
        assert_eq!(trigger["user"], "scheduler");
        assert_eq!(trigger["parameters"]["day"], "tick");
        assert!(tick["local"].as_str().unwrap().ends_with("[UTC]"), "{tick}");
        assert!(!tick["tzdb"].as_str().unwrap().is_empty());
        for r in kinds(&all, run, "run-started") {
            assert_eq!(r["trigger"], trigger["seq"]);
        }
    }
    assert_each_tick_ran_once(&all, "every");
    let overlap = why(&all, "every", "overlap");
    assert!(
        overlap[0]["detail"].as_str().unwrap().contains("still"),
        "{}",
        overlap[0]
    );
    // Mallory's schedule never ran: each tick denied, the denial recorded first.
    assert!(run_ticks(&all, "intruder").is_empty());
    for tick in why(&all, "intruder", "denied") {
        let access = &all[tick["access"].as_u64().unwrap() as usize];
        assert_eq!(access["decision"], "deny");
        assert_eq!(access["principal"]["id"], "mallory");
    }
    assert_log_verifies(&s);
}

#[test]
fn a_kill_9_between_a_tick_and_its_run_starts_that_run_once_on_restart() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    s.append(
        "workflow.toml",
        "\n[schedules.every]\ncron = \"* * * * * *\"\nas = \"scheduler\"\n",
    );
    let d = Daemon::start_with(&s, &[("CAIRN_CRASH_AT", "after-tick")]);
    let (code, _) = d.exited(Duration::from_secs(30));
    assert_ne!(code, Some(0), "the daemon died at the crash point");
    let all = log(&s);
    let crashed = run_ticks(&all, "every");
    assert_eq!(crashed.len(), 1, "one tick, recorded, then the crash");
    let run = crashed[0]["starts"].as_str().unwrap().to_owned();
    assert!(kinds(&all, &run, "run-started").is_empty());

    let d = Daemon::start(&s);
    wait_for(|| !kinds(&live_log(&s), &run, "run-finished").is_empty());
    // And the schedule goes on after it.
    wait_for(|| run_ticks(&live_log(&s), "every").len() >= 3);
    let (code, _) = d.term();
    assert_eq!(code, 0);
    let all = log(&s);
    assert_eq!(
        kinds(&all, &run, "run-started").len(),
        1,
        "started exactly once"
    );
    assert_eq!(kinds(&all, &run, "run-finished")[0]["status"], "succeeded");
    assert_each_tick_ran_once(&all, "every");
    assert_log_verifies(&s);
}

#[test]
fn a_kill_9_after_a_tick_is_allowed_but_before_it_is_recorded_decides_it_again_once() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    s.append(
        "workflow.toml",
        "\n[schedules.every]\ncron = \"* * * * * *\"\nas = \"scheduler\"\n",
    );
    let d = Daemon::start_with(&s, &[("CAIRN_CRASH_AT", "before-tick")]);
    let (code, _) = d.exited(Duration::from_secs(30));
    assert_ne!(code, Some(0));
    let all = log(&s);
    assert!(
        ticks(&all, "every").is_empty(),
        "the crash came before the tick record"
    );
    let allowed = all
        .iter()
        .filter(|r| r["kind"] == "access" && r["context"]["via"] == "schedule")
        .count();
    assert_eq!(allowed, 1);

    // Back up: the tick was missed; catch-up (`latest`) runs the latest missed.
    let d = Daemon::start(&s);
    wait_for(|| {
        let all = live_log(&s);
        run_ticks(&all, "every")
            .iter()
            .any(|t| !kinds(&all, t["starts"].as_str().unwrap(), "run-finished").is_empty())
    });
    let (code, _) = d.term();
    assert_eq!(code, 0);
    let all = log(&s);
    assert_each_tick_ran_once(&all, "every");
    assert_log_verifies(&s);
}

#[test]
fn ticks_missed_while_down_are_caught_up_as_each_schedule_says() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    let schedule = |name: &str, catch_up: &str| {
        format!(
            "\n[schedules.{name}]\ncron = \"* * * * * *\"\nas = \"scheduler\"\ncatch_up = \"{catch_up}\"\noverlap = \"allow\"\n"
        )
    };
    s.append(
        "workflow.toml",
        &(schedule("all", "all") + &schedule("latest", "latest") + &schedule("none", "none")),
    );
    let up = |s: &Scratch| {
        let d = Daemon::start(s);
        let before: BTreeMap<&str, usize> = ["all", "latest", "none"]
            .into_iter()
            .map(|n| (n, run_ticks(&live_log(s), n).len()))
            .collect();
        wait_for(|| {
            let all = live_log(s);
            before
                .iter()
                .all(|(n, had)| run_ticks(&all, n).len() >= had + 2)
        });
        let (code, _) = d.term();
        assert_eq!(code, 0);
    };
    up(&s);
    // Down for three seconds: three ticks or more of each are missed.
    std::thread::sleep(Duration::from_secs(3));
    up(&s);

    let all = log(&s);
    // `all`: every second from the first tick to the last ran, once.
    let seconds: Vec<i64> = run_ticks(&all, "all")
        .iter()
        .map(|t| epoch(t["nominal"].as_str().unwrap()))
        .collect();
    let (first, last) = (seconds[0], *seconds.last().unwrap());
    let mut sorted = seconds.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (first..=last).collect::<Vec<_>>(),
        "`all` lost or repeated a tick"
    );
    assert!(why(&all, "all", "superseded").is_empty());
    // `latest`: the missed ones but the last, in one record, counted.
    let superseded = why(&all, "latest", "superseded");
    assert_eq!(superseded.len(), 1, "{superseded:?}");
    assert!(
        superseded[0]["count"].as_u64().unwrap() >= 2,
        "{}",
        superseded[0]
    );
    assert!(superseded[0]["through"].is_string());
    // `none`: the missed ones, in one record.
    let missed = why(&all, "none", "catch-up-none");
    assert_eq!(missed.len(), 1, "{missed:?}");
    for name in ["all", "latest", "none"] {
        assert_each_tick_ran_once(&all, name);
    }
    assert_log_verifies(&s);
}

/// Seconds since the epoch of an RFC 3339 UTC time (`...Z`).
fn epoch(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_second()
}

#[test]
fn an_edited_schedule_goes_on_from_the_edit() {
    let s = Scratch::new();
    workflow(&s, 0, 0, "");
    let yearly = "\n[schedules.every]\ncron = \"@yearly\"\nas = \"scheduler\"\n";
    s.append("workflow.toml", yearly);
    let d = Daemon::start(&s);
    // Up for a while under the yearly cron: nothing due.
    std::thread::sleep(Duration::from_secs(2));
    let edited = std::fs::read_to_string(s.path().join("workflow.toml"))
        .unwrap()
        .replace("@yearly", "* * * * * *");
    let at = jiff::Timestamp::now();
    s.write("workflow.toml", &edited);
    wait_for(|| !run_ticks(&live_log(&s), "every").is_empty());
    // Stopped once a run has ended, so that the log it leaves is whole.
    wait_for(|| live_log(&s).iter().any(|r| r["kind"] == "run-finished"));
    let (code, _) = d.term();
    assert_eq!(code, 0);
    let all = log(&s);
    for tick in ticks(&all, "every") {
        let nominal: jiff::Timestamp = tick["nominal"].as_str().unwrap().parse().unwrap();
        assert!(
            nominal.as_second() >= at.as_second(),
            "tick {nominal} is from before the edit at {at}: {tick}"
        );
    }
    assert_log_verifies(&s);
}
