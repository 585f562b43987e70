//! `dialtone replay` runs the emulated carrier against the real router in virtual time: every
//! call is logged by dialtone, the report balances, the call records are complete, and a seed
//! replays byte for byte.

use std::process::Command;

fn replay(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args([
            "replay",
            "--arrivals-per-second",
            "3",
            "--dial-limit",
            "4",
            "--fanout",
            "2",
            "--patience-mean-s",
            "30",
            "--answer-probability",
            "0.7",
            "--ring-median-s",
            "4",
            "--duration-s",
            "900",
            // The carrier's queue as the 2018 platform met it: every leg asked for.
            "--policy",
            "none",
            "--json",
        ])
        .args(extra)
        .output()
        .expect("run dialtone replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn replay_logs_every_call_through_the_router_and_balances() {
    let dir = tempfile::tempdir().unwrap();
    let cdr = dir.path().join("cdr.jsonl");
    let out = replay(&["--seed", "5", "--cdr-out", cdr.to_str().unwrap()]);
    let r = &out["report"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let calls = n(&r["calls"]);
    assert!(calls > 2000, "{r}");
    assert_eq!(
        n(&out["dialtone_logged_calls"]),
        calls,
        "dialtone logged every call"
    );
    assert_eq!(
        n(&r["connected"]) + n(&r["voicemail"]) + n(&r["abandoned"]) + n(&r["failed"]),
        calls
    );
    // Offered 6 legs/s against a limit of 4: legs queue and callers give up.
    assert!(r["queue_wait_s"]["p95"].as_f64().unwrap() > 1.0, "{r}");
    assert!(n(&r["abandoned"]) > 0);
    assert_eq!(n(&r["legs"]["requested"]), 2 * calls);

    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&cdr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let inbound: std::collections::HashSet<&str> = lines
        .iter()
        .filter(|l| l["direction"] == "inbound")
        .map(|l| l["sid"].as_str().unwrap())
        .collect();
    assert_eq!(inbound.len() as u64, calls);
    let legs: Vec<_> = lines
        .iter()
        .filter(|l| l["direction"] == "outbound-dial")
        .collect();
    assert_eq!(legs.len() as u64, 2 * calls);
    for leg in &legs {
        assert!(inbound.contains(leg["parent_call_sid"].as_str().unwrap()));
        assert!(leg["queue_time"].as_str().unwrap().parse::<u64>().is_ok());
        match leg["start_time"].as_str() {
            Some(t) => drop(chrono::DateTime::parse_from_rfc2822(t).unwrap()),
            // Dropped from the dial queue before it was set up.
            None => assert_eq!(leg["status"], "canceled", "{leg}"),
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let a = replay(&["--seed", "9"]);
    let b = replay(&["--seed", "9"]);
    assert_eq!(a["report"], b["report"]);
    assert_ne!(a["report"], replay(&["--seed", "10"])["report"]);
}

#[test]
fn bad_replay_flags_are_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["replay", "--dial-limit", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--dial-limit must be a positive number"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const SMALL_DAY: &str = r#"
name = "three groups"
start = "2026-05-14T09:00:00-04:00"
duration_s = 1800
[traffic]
calls = 2500
curve = [0.5, 1.5]
[callers]
patience = { distribution = "exponential", mean_s = 40 }
menu_choices = ["1", "2"]
[agents]
answer_probability = 0.7
ring = { distribution = "log_normal", median_s = 4, sigma = 0.5 }
[carrier]
dial_limit = 3
[[companies]]
name = "simulcall"
count = 5
share = 2
flow = "simulcall"
fanout = 3
record = true
[[companies]]
name = "single"
count = 4
share = 1
flow = "single"
[[companies]]
name = "menu"
count = 2
share = 1
flow = "menu"
fanout = 2
"#;

#[test]
fn a_scenario_file_replays_many_companies_and_reports_each_group() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("day.toml");
    std::fs::write(&file, SMALL_DAY).unwrap();
    let plot = dir.path().join("day.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("replay")
        .arg(&file)
        .args(["--json", "--seed", "4", "--policy", "none", "--plot"])
        .arg(&plot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &out["report"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap();
    let calls = n(&r["calls"]);
    // 2,500 expected; Poisson noise is about ±50.
    assert!((2300..2700).contains(&calls), "{r}");
    assert_eq!(
        n(&out["dialtone_logged_calls"]),
        calls,
        "every company's calls were logged"
    );
    let groups = out["by_group"].as_array().unwrap();
    assert_eq!(groups.len(), 3);
    let total: u64 = groups.iter().map(|g| n(&g["calls"])).sum();
    assert_eq!(total, calls);
    // Shares 2:1:1.
    let share = |i: usize| n(&groups[i]["calls"]) as f64 / calls as f64;
    assert!((share(0) - 0.5).abs() < 0.05, "{groups:?}");
    // Legs per call follow each group's flow: three at a time for simulcall, one for single
    // (callers who hang up during the recording notice dial nobody); the menu rings two
    // (choice 1) or one (choice 2).
    let legs = |i: usize| n(&groups[i]["legs"]);
    let of = |i: usize| n(&groups[i]["calls"]);
    assert!(legs(0).is_multiple_of(3) && legs(0) <= 3 * of(0) && legs(0) * 10 > 3 * of(0) * 8);
    assert!(legs(1) <= of(1) && legs(1) * 10 > of(1) * 8);
    let menu_legs = n(&groups[2]["legs"]) as f64 / n(&groups[2]["calls"]) as f64;
    assert!(menu_legs > 1.2 && menu_legs < 1.8, "{menu_legs}");
    // The curve doubles the rate from the first quarter hour to the last.
    let minutes = r["per_minute"].as_array().unwrap();
    let arrivals = |range: std::ops::Range<usize>| -> u64 {
        minutes[range].iter().map(|m| n(&m["arrivals"])).sum()
    };
    assert!(arrivals(15..30) > arrivals(0..15), "{r}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("three groups") && svg.contains("UTC-04:00"));
}

#[test]
fn scenario_mistakes_and_conflicting_flags_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        SMALL_DAY.replace("flow = \"single\"", "flow = \"singel\""),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .arg("replay")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[file.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml") && err.contains("line 27") && err.contains("singel"),
        "{err}"
    );
    let err = run(&["business-day", "--fanout", "2"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = run(&["no-such-day"]);
    assert!(
        err.contains("neither a built-in scenario (business-day"),
        "{err}"
    );
}

#[test]
fn built_in_scenarios_are_listed_and_shown() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["replay", "business-day", "--show-scenario"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed: toml::Value = toml::from_str(&text).expect("the shown scenario is TOML");
    assert_eq!(parsed["name"].as_str(), Some("business day"));
    let list = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["replay", "--list-scenarios"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).starts_with("business-day: "));
}

/// The same overload with and without dial admission: 2 calls/s ringing 3 phones each against a
/// carrier that sets up 4 legs/s.
fn overload(extra: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args([
            "replay",
            "--arrivals-per-second",
            "2",
            "--dial-limit",
            "4",
            "--fanout",
            "3",
            "--patience-mean-s",
            "30",
            "--answer-probability",
            "0.8",
            "--ring-median-s",
            "4",
            "--duration-s",
            "1800",
            "--seed",
            "3",
            "--json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn dial_admission_keeps_the_carriers_queue_short_with_the_limit_known_or_estimated() {
    let none = overload(&["--policy", "none"]);
    let known = overload(&["--policy", "adaptive"]);
    let unknown = overload(&["--policy", "adaptive", "--limit-unknown"]);
    let p95 = |v: &serde_json::Value| v["report"]["queue_wait_s"]["p95"].as_f64().unwrap();
    let connected = |v: &serde_json::Value| v["report"]["connected"].as_u64().unwrap();
    let abandoned = |v: &serde_json::Value| v["report"]["abandoned"].as_u64().unwrap();
    assert_eq!(none["degraded_calls"], 0);
    assert!(
        p95(&none) > 10.0,
        "unshaped, legs queue for many seconds: {}",
        p95(&none)
    );
    for shaped in [&known, &unknown] {
        assert!(shaped["degraded_calls"].as_u64().unwrap() > 0);
        assert!(p95(shaped) < 2.5, "{}", p95(shaped));
        assert!(connected(shaped) > connected(&none) * 12 / 10);
        assert!(abandoned(shaped) * 3 / 2 < abandoned(&none));
    }
    // Without the limit in its configuration dialtone reads it from when legs start, and says so.
    let kinds = |v: &serde_json::Value| -> Vec<String> {
        v["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let estimate = unknown["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "effective_limit")
        .expect("an effective-limit alert");
    let message = estimate["message"].as_str().unwrap();
    assert!(
        message.contains("≈ 3.") || message.contains("≈ 4."),
        "{message}"
    );
    assert!(
        kinds(&known).contains(&"degrading".to_owned()),
        "{:?}",
        kinds(&known)
    );
    // The 2018 platform watched for sudden shifts only: no forecast, no objectives, no estimate.
    for alert in none["alerts"].as_array().unwrap() {
        assert!(
            alert["message"].as_str().unwrap().contains("3σ threshold"),
            "{alert}"
        );
    }
    // Every call was still logged by dialtone.
    for v in [&none, &known, &unknown] {
        assert_eq!(v["dialtone_logged_calls"], v["report"]["calls"]);
    }
}

#[test]
fn an_outage_falls_back_to_the_exported_documents_and_reconcile_restores_every_call() {
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args([
            "replay",
            "--arrivals-per-second",
            "1",
            "--fanout",
            "2",
            "--duration-s",
            "1800",
            "--outage",
            "13:10-13:20",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = |x: &serde_json::Value| x.as_u64().unwrap();
    let calls = n(&v["report"]["calls"]);
    // A third of the half hour dialtone was unreachable: those calls were not tracked...
    let tracked = v["tracked_ratio"].as_f64().unwrap();
    assert!(tracked > 0.55 && tracked < 0.8, "{tracked}");
    // ...but every caller still reached a person (the backup document rings the primary),
    assert_eq!(n(&v["report"]["connected"]), calls);
    // and afterwards the carrier's records put every call in the log.
    let recovered = n(&v["recovered_calls"]);
    assert!(recovered > 0);
    assert_eq!(n(&v["dialtone_logged_calls"]), calls);
    let missed = ((1.0 - tracked) * calls as f64).round() as u64;
    assert!(
        recovered.abs_diff(missed) <= 1,
        "{recovered} recovered, {missed} missed"
    );
    // A bad window is refused.
    let bad = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["replay", "--duration-s", "60", "--outage", "13:20-13:10"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the end must be after the start"));
}

#[test]
fn replays_of_one_scenario_are_plotted_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for policy in ["none", "adaptive"] {
        let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
            .args([
                "replay",
                "--arrivals-per-second",
                "2",
                "--dial-limit",
                "4",
                "--fanout",
                "3",
            ])
            .args(["--duration-s", "300", "--json", "--policy", policy])
            .output()
            .unwrap();
        assert!(out.status.success());
        let file = dir.path().join(format!("{policy}.json"));
        std::fs::write(&file, &out.stdout).unwrap();
        files.push(file);
    }
    let svg = dir.path().join("both.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .arg("plot")
        .arg("--out")
        .arg(&svg)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = std::fs::read_to_string(&svg).unwrap();
    for needle in ["none wait", "adaptive connected", ">13:00<"] {
        assert!(doc.contains(needle), "{needle}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_dialtone"))
        .args(["plot", "--out"])
        .arg(&svg)
        .arg(&svg)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a replay's JSON report"));
}
