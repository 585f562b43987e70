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
